"""Inference speed of random-weight VALL-E models: KV-cached AR steps vs recomputation, the
matrix-vector floor, NAR time, real-time factor and peak memory (``valle-bench speed``).

Shape legend: B batch, S text tokens, P prompt frames, T generated frames, Q codebooks,
D model width.

What is measured, per size preset and batch size (all rows of a batch have the same lengths;
``S`` random phoneme ids, a ``P``-frame random prompt, ``T = seconds * frame_rate`` steps):

- AR with the KV cache: ``prefill`` once, then ``N - 1`` steps of arg-max sampling (EOS
  excluded, so every run makes exactly ``N`` steps) + ``ARDecoder.step``, each timed; the mean,
  the mean of the first and of the last 10 % of steps (flat = equal: a step's cost must not grow
  with the sequence) are reported. ``N = ceil(T / G)``: a layout of G frames per step (VALL-E
  2's grouped codes, ``--variant valle2 --set ar.layout.group=2``) makes the T frames in
  ``T / G`` steps, and the table's "AR steps" and "G" columns say so.
- AR recomputing everything (no cache): one full forward over ``[text ; BOS, prompt, codes so
  far]`` returning the last position's logits. Timing all ``T`` of them is slow, so
  ``nocache_points`` lengths evenly spaced over the run are timed and a quadratic in the length
  (the exact cost model: linear layers + quadratic attention) is fitted and averaged over all
  steps; the table says how many lengths were timed.
- The matrix-vector floor: ``x @ W.T`` for every weight matrix of the AR (``x`` of B rows, same
  dtype, device and threads), the time any decoder step that reads all weights once needs (the
  memory-bandwidth floor at batch 1). One pass is timed every 25 cached steps, interleaved, so
  that both see the same machine load (on a shared machine the load changes by the minute);
  ``step/floor`` is the mean cached step over the mean pass.
- NAR: ``nar_stages_timed`` of the ``Q - 1`` stages are run (full forwards over text, prompt
  and the ``T`` frames) and scaled to all stages when fewer are timed (every stage has the same
  cost: only the input codes differ).
- A mel model (MELLE, ``--variant melle --set ar.reduction=4``): a random log-mel prompt, each
  step feeds back the latent head's mean step (the stop flag is not read), T comes from the
  model's own mel frame rate (sample_rate / hop, 62.5 Hz for the paper's 16 kHz / 256), and the
  post-net's one pass over the output stands in the NAR column.
- RTF = (AR prefill + AR steps + NAR) / (B * seconds): seconds of compute per second of speech,
  the codec (vocoder) excluded.
- Peak memory of the cached AR + NAR run: on CUDA ``torch.cuda.max_memory_allocated`` above the
  memory held before; on CPU the growth of the process' peak RSS (VmHWM after resetting it
  through ``/proc/self/clear_refs``), labelled as such.
- Training throughput (:func:`measure_train_speed`): ``steps`` optimizer steps (forward of
  ``model.loss(batch)``, i.e. every part the model has, backward, AdamW step) after ``warmup``
  untimed ones, on a random batch of ``batch`` utterances of ``T`` code frames and ``S`` text
  tokens (plus a ``P``-frame prompt); audio tokens per second = ``B * T`` code frames per step
  over the mean step time, and the peak memory of the timed steps (same measure as above).

``--quantize int8`` (or ``bf16``) measures the model with weight-only low precision
(:mod:`valle.inference.quantize`). With int8 the floor column stays the float32 floor (the
weights are dequantized for it; int8 weights are a quarter of those bytes, so the int8 floor is
a quarter of it); with bf16 the floor is measured on the bf16 weights themselves (the whole
model is cast). ``--train-checkpointing`` turns on per-layer activation checkpointing in the
training steps.

``--checkpoint`` measures a trained model (its own config and vocabulary; the frame rate from the
codec facts it carries or from ``--codec-dir``) instead of the size presets; without it the
models are random ones of ``--variant`` (default valle) at each size, with ``--set`` overrides.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

__all__ = [
    "SpeedRow",
    "SpeedSetup",
    "TrainSetup",
    "TrainSpeed",
    "build_random_model",
    "checkpoint_frame_rate",
    "load_checkpoint_model",
    "measure_train_speed",
    "format_table",
    "matvec_floor_ms",
    "measure_speed",
    "write_table",
]


@dataclass(frozen=True)
class SpeedSetup:
    """What one benchmark run decodes."""

    seconds: float = 10.0  # speech to generate per row (s)
    prompt_seconds: float = 3.0  # acoustic prompt (s)
    phonemes: int = 120  # text tokens per row (prompt transcript + target)
    frame_rate: float = 75.0  # codec frames per second (EnCodec 24 kHz)
    num_codebooks: int = 8  # Q (EnCodec 6 kbps)
    codebook_size: int = 1024
    text_vocab_size: int = 120  # symbols in the random vocabulary
    nocache_points: int = 3  # lengths timed for the no-cache estimate (>= 1)
    nar_stages_timed: int | None = None  # NAR stages run (None: all Q - 1)
    device: str = "cpu"
    seed: int = 0

    @property
    def steps(self) -> int:
        """Frames to generate per row (T); an AR of G frames per step makes ``ceil(T / G)``."""
        return max(2, int(round(self.seconds * self.frame_rate)))

    @property
    def prompt_frames(self) -> int:
        return int(round(self.prompt_seconds * self.frame_rate))


@dataclass
class SpeedRow:
    """One line of the table (times in ms or s as named)."""

    size: str
    batch: int
    device: str
    threads: int
    text_tokens: int
    prompt_frames: int
    steps: int  # AR steps per row: ceil(frames / frames_per_step)
    ar_ms_step: float  # KV cache, mean over all steps
    ar_ms_early: float  # mean over the first 10 % of steps
    ar_ms_late: float  # mean over the last 10 % of steps
    nocache_ms_step: float  # recomputation, quadratic fit averaged over all steps
    nocache_points: int  # lengths actually timed for it
    speedup: float  # nocache_ms_step / ar_ms_step
    floor_ms: float  # one x @ W.T over all AR weight matrices (mean of passes between steps)
    step_over_floor: float  # ar_ms_step / floor_ms
    floor_best_ms: float  # fastest of those passes
    prefill_ms: float
    nar_s: float  # all Q - 1 stages
    nar_stages_timed: int
    rtf: float  # (prefill + AR steps + NAR) / (batch * seconds)
    peak_mem_mb: float
    mem_kind: str  # what peak_mem_mb measures
    train_tokens_per_s: float = float("nan")  # code frames per second of training (B*T / step)
    train_ms_step: float = float("nan")  # forward + backward + AdamW step
    train_peak_mem_mb: float = float("nan")
    frames_per_step: int = 1  # G: frames one AR step makes (VALL-E 2's group size)
    extra: dict[str, Any] = field(default_factory=dict)


COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("size", "size", "{}"),
    ("batch", "B", "{}"),
    ("frames_per_step", "G", "{}"),
    ("steps", "AR steps", "{}"),
    ("ar_ms_step", "AR ms/step (cache)", "{:.2f}"),
    ("ar_ms_early", "early 10%", "{:.2f}"),
    ("ar_ms_late", "late 10%", "{:.2f}"),
    ("nocache_ms_step", "AR ms/step (no cache)", "{:.1f}"),
    ("speedup", "speed-up", "{:.1f}x"),
    ("floor_ms", "matvec floor ms", "{:.2f}"),
    ("step_over_floor", "step/floor", "{:.2f}"),
    ("nar_s", "NAR s (7 stages)", "{:.2f}"),
    ("rtf", "RTF", "{:.3f}"),
    ("peak_mem_mb", "peak MiB", "{:.0f}"),
    ("train_tokens_per_s", "train tokens/s", "{:,.0f}"),
    ("train_ms_step", "train ms/step", "{:.1f}"),
    ("train_peak_mem_mb", "train peak MiB", "{:.0f}"),
)


@dataclass(frozen=True)
class TrainSetup:
    """The batch and the number of optimizer steps of a training-throughput run."""

    batch: int = 4  # utterances per batch (B)
    seconds: float = 5.0  # speech per utterance (s); T = seconds * frame_rate code frames
    prompt_seconds: float = 3.0  # acoustic prompt per utterance (s)
    phonemes: int = 60  # text tokens per utterance (S)
    steps: int = 3  # timed optimizer steps (>= 1)
    warmup: int = 1  # untimed steps first (allocator, optimizer state)
    lr: float = 1e-4  # AdamW learning rate (the value does not change the cost)
    seed: int = 0
    checkpointing: bool = False  # per-layer activation checkpointing (as in training)
    precision: str = "32"  # 32 | bf16-mixed (autocast to bfloat16 around forward and loss)

    def frames(self, frame_rate: float) -> int:
        return max(2, int(round(self.seconds * frame_rate)))

    def prompt_frames(self, frame_rate: float) -> int:
        return max(1, int(round(self.prompt_seconds * frame_rate)))


@dataclass(frozen=True)
class TrainSpeed:
    """Training throughput of one model on one batch shape."""

    batch: int
    frames: int  # T per utterance
    text_tokens: int  # S per utterance
    steps: int  # timed steps
    ms_step: float  # mean forward + backward + AdamW step
    tokens_per_s: float  # B * T / mean step seconds
    peak_mem_mb: float
    mem_kind: str


def build_random_model(
    size: str, setup: SpeedSetup, variant: str = "valle", overrides: Sequence[str] = ()
) -> nn.Module:
    """A model of a variant and a size preset (``valle/conf/{variant,size}``) with dotted
    ``overrides`` and seeded random weights."""
    from valle.config import compose_config

    cfg = compose_config(
        variant,
        size,
        overrides,
        text_vocab_size=setup.text_vocab_size,
        codebook_size=setup.codebook_size,
        num_codebooks=setup.num_codebooks,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(setup.seed)
        model = cfg.build()
    return model.to(setup.device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _is_linear(m: nn.Module) -> bool:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return isinstance(m, (nn.Linear, DynamicLinear))


def _float_weight(m: nn.Module) -> Tensor:
    """A linear layer's weight; an int8 one (``--quantize int8``) dequantized to float32, so
    that the floor stays the float32 one (the int8 weights are a quarter of its bytes)."""
    w: Any = m.weight
    if callable(w):  # torch's dynamically quantized Linear: weight() is a quantized tensor
        return w().dequantize()
    return w


class MatvecPass:
    """One ``x @ W.T`` over every weight matrix of a module; calling it returns the seconds.

    ``x`` has ``batch`` rows and the weights' dtype and device; embeddings are left out (a
    step reads one row of them).
    """

    def __init__(self, module: nn.Module, batch: int = 1) -> None:
        self.weights = [_float_weight(m) for m in module.modules() if _is_linear(m)]
        if not self.weights:
            raise ValueError("the module has no linear layers")
        self.device = self.weights[0].device
        self.xs = {
            w.shape[1]: torch.randn(batch, w.shape[1], dtype=w.dtype, device=self.device)
            for w in self.weights
        }

    @torch.inference_mode()
    def __call__(self) -> float:
        _sync(self.device)
        t0 = time.perf_counter()
        for w in self.weights:
            self.xs[w.shape[1]] @ w.T
        _sync(self.device)
        return time.perf_counter() - t0


def matvec_floor_ms(module: nn.Module, batch: int = 1, reps: int = 5) -> float:
    """Best of ``reps`` times (ms) of a :class:`MatvecPass` over ``module`` (after a warm-up)."""
    floor = MatvecPass(module, batch)
    floor()
    return 1000.0 * min(floor() for _ in range(reps))


class _PeakMemory:
    """Peak memory growth over a block: CUDA allocator peak, or the process' peak RSS on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = ""
        self.mb = float("nan")
        self._base: int | None = None
        self._reset = False

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024  # kB -> bytes
        except OSError:
            return None
        return None

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self._base = int(torch.cuda.memory_allocated(self.device))
            torch.cuda.reset_peak_memory_stats(self.device)
            self.kind = "cuda max_memory_allocated growth"
            return self
        self._base = self._status("VmRSS")
        try:  # "5" resets the peak RSS (VmHWM) to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
            self._reset = self._base is not None
        except OSError:
            self._reset = False
        if self._reset:
            self.kind = "CPU peak RSS growth (VmHWM)"
        else:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.kind = "CPU ru_maxrss growth (lower bound)"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._reset:
            peak = self._status("VmHWM") or 0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.mb = max(0, peak - (self._base or 0)) / 2**20


def _inputs(
    setup: SpeedSetup, batch: int, n_mels: int | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(setup.seed + 1)
    S, P = setup.phonemes, setup.prompt_frames
    text = torch.randint(1, setup.text_vocab_size, (batch, S), generator=g)  # (B, S)
    if n_mels is not None:  # a mel model (MELLE): a random log-mel prompt (B, P, F)
        prompt = torch.randn(batch, P, n_mels, generator=g)
    else:
        prompt = torch.randint(
            0, setup.codebook_size, (batch, P, setup.num_codebooks), generator=g
        )  # (B, P, Q)
    dev = setup.device
    lens = torch.full((batch,), S, dtype=torch.long)
    plens = torch.full((batch,), P, dtype=torch.long)
    return text.to(dev), lens.to(dev), prompt.to(dev), plens.to(dev)


def _full_forward_last(ar: Any, text: Tensor, tl: Tensor, audio_in: Tensor, al: Tensor) -> Tensor:
    """No-cache step: a full forward over ``[text ; audio_in]``, the head at the last position."""
    h = ar.hidden(text, tl, audio_in, al)  # (B, N, D)
    return ar.head(h[:, -1])  # (B, *E, V)


def _next_input(ar: Any, out: Tensor) -> Tensor:
    """The step fed back after head output ``out``, never ending a row: the best code other
    than EOS, or a continuous head's mean step (MELLE; its stop flag is not read)."""
    cb = getattr(ar.layout, "codebook_size", None)
    if cb is None:
        from valle.sampling.latent import GaussianSampler

        return ar.head.sample(out, None, GaussianSampler(0.0), None)  # (B, *E)
    return out[..., :cb].argmax(-1)  # (B, *E)


@torch.inference_mode()
def _time_ar(
    ar: Any,
    text: Tensor,
    tl: Tensor,
    prompt: Tensor,
    pl: Tensor,
    steps: int,
    floor: MatvecPass | None = None,
    floor_every: int = 25,
) -> tuple[float, list[float], list[float], Tensor, Tensor, Tensor]:
    """Cached decoding of ``steps`` frames.

    Every ``floor_every`` steps one ``floor`` pass is timed too, so that steps and floor see
    the same machine load. Returns (prefill s, per-step s, floor pass s, steps (B, T, *E),
    audio_in, lens).
    """
    device = text.device
    p_steps, p_lens, _ = ar.layout.to_steps(prompt, pl)
    audio_in, in_lens = ar.layout.with_bos(p_steps, p_lens)  # (B, P + 1, *E)
    capacity = text.shape[1] + audio_in.shape[1] + steps
    _sync(device)
    t0 = time.perf_counter()
    dec = ar.decoding(text)  # what generate steps on (VALL-E X: steps tagged with a language)
    logits, cache = dec.prefill(text, tl, audio_in, in_lens, capacity=capacity)
    ids = _next_input(ar, logits)  # (B, *E) never EOS: every run makes `steps` steps
    _sync(device)
    prefill = time.perf_counter() - t0
    codes = ids.new_zeros(text.shape[0], steps, *ids.shape[1:])  # (B, T, *E)
    codes[:, 0] = ids
    index = in_lens.clone()
    ones = torch.ones_like(index)
    times, floors = [], []
    for n in range(1, steps):
        t0 = time.perf_counter()
        logits = dec.step(ids, dec.audio_positions(ones, 1, index), cache)
        ids = _next_input(ar, logits)
        codes[:, n] = ids
        _sync(device)
        times.append(time.perf_counter() - t0)
        index += 1
        if floor is not None and n % floor_every == 1:
            floors.append(floor())
    return prefill, times, floors, codes, audio_in, in_lens


@torch.inference_mode()
def _time_nocache(
    ar: Any,
    text: Tensor,
    tl: Tensor,
    audio_in: Tensor,
    in_lens: Tensor,
    codes: Tensor,
    points: int,
) -> float:
    """Mean seconds per step of recomputation over ``codes.shape[1]`` steps (quadratic fit)."""
    device = text.device
    T = codes.shape[1]
    lengths = sorted({int(round(x)) for x in np.linspace(0, T - 1, max(1, points))})
    seconds = []
    for n in lengths:
        a = torch.cat([audio_in, codes[:, :n]], dim=1)  # (B, P + 1 + n)
        _sync(device)
        t0 = time.perf_counter()
        _full_forward_last(ar, text, tl, a, in_lens + n)
        _sync(device)
        seconds.append(time.perf_counter() - t0)
    if len(lengths) == 1:
        return seconds[0]
    poly = np.polynomial.Polynomial.fit(lengths, seconds, deg=min(2, len(lengths) - 1))
    return float(np.mean(poly(np.arange(T))))


@torch.inference_mode()
def _time_nar(
    nar: Any,
    text: Tensor,
    tl: Tensor,
    prompt: Tensor,
    pl: Tensor,
    first: Tensor,
    stages_timed: int | None,
) -> tuple[float, int]:
    """Seconds for all NAR stages (scaled from the timed ones) and how many were timed."""
    device = text.device
    Q = nar.num_codebooks
    timed = Q - 1 if stages_timed is None else max(1, min(stages_timed, Q - 1))
    B, T = first.shape
    codes = torch.zeros(B, T, Q, dtype=torch.long, device=device)  # (B, T, Q)
    codes[..., 0] = first
    lens = torch.full((B,), T, dtype=torch.long, device=device)
    _sync(device)
    t0 = time.perf_counter()
    for stage in range(1, timed + 1):
        codes[..., stage] = nar(text, tl, prompt, pl, codes, lens, stage).argmax(-1)
    _sync(device)
    return (time.perf_counter() - t0) * (Q - 1) / timed, timed


def measure_speed(
    size: str,
    batch: int,
    setup: SpeedSetup,
    model: nn.Module | None = None,
    train: TrainSetup | None = None,
) -> SpeedRow:
    """Benchmark one size preset (or ``model``) at one batch size (see the module docstring);
    ``train`` also measures training throughput (``train_*`` fields, NaN without it)."""
    device = torch.device(setup.device)
    if model is None:
        model = build_random_model(size, setup)
    ar: Any = model.ar
    nar: Any = getattr(model, "nar", None)
    mel: Any = getattr(getattr(model, "config", None), "mel", None)
    if mel is not None:  # a mel model: its frame rate is the model's own (MELLE: 62.5 Hz)
        setup = replace(setup, frame_rate=mel.sample_rate / mel.hop_length)
    text, tl, prompt, pl = _inputs(setup, batch, None if mel is None else mel.n_mels)
    if prompt.is_floating_point():  # a mel prompt, in the weights' dtype (--quantize bf16)
        prompt = prompt.to(next(ar.parameters()).dtype)
    per_step = int(ar.layout.frames_per_step)
    steps = -(-setup.steps // per_step)  # AR steps that make the frames: ceil(T / G)
    floor = MatvecPass(ar, batch)
    floor()
    _time_ar(ar, text, tl, prompt, pl, min(steps, 4))  # warm-up (allocator, kernels)
    logger.info("%s B=%d: AR %d steps with the KV cache", size, batch, steps)
    with _PeakMemory(device) as mem:
        prefill, times, floors, codes, audio_in, in_lens = _time_ar(
            ar, text, tl, prompt, pl, steps, floor
        )
        nar_s, nar_timed = (0.0, 0)
        if nar is not None:
            logger.info("%s B=%d: NAR", size, batch)
            first = codes.flatten(1)  # (B, T) frames in order (a grouped layout's steps)
            nar_s, nar_timed = _time_nar(nar, text, tl, prompt, pl, first, setup.nar_stages_timed)
        refine: Any = getattr(model, "refine", None)
        if refine is not None:  # MELLE's post-net over the whole output, in the "NAR" time
            frames = ar.layout.from_steps(codes)  # (B, T, F)
            _sync(device)
            t0 = time.perf_counter()
            refine(frames, torch.ones(frames.shape[:2], dtype=torch.bool, device=device))
            _sync(device)
            nar_s = time.perf_counter() - t0
    logger.info("%s B=%d: AR without cache at %d lengths", size, batch, setup.nocache_points)
    nocache = _time_nocache(ar, text, tl, audio_in, in_lens, codes, setup.nocache_points)
    floor_ms = 1000.0 * float(np.mean(floors))
    tr = None
    if train is not None:
        tr = measure_train_speed(model, train, setup.frame_rate, setup.device)
    tenth = max(1, len(times) // 10)
    step_ms = 1000.0 * float(np.mean(times))
    return SpeedRow(
        size=size,
        batch=batch,
        device=str(device),
        threads=torch.get_num_threads(),
        text_tokens=setup.phonemes,
        prompt_frames=setup.prompt_frames,
        steps=steps,
        ar_ms_step=step_ms,
        ar_ms_early=1000.0 * float(np.mean(times[:tenth])),
        ar_ms_late=1000.0 * float(np.mean(times[-tenth:])),
        nocache_ms_step=1000.0 * nocache,
        nocache_points=min(setup.nocache_points, steps),
        speedup=1000.0 * nocache / step_ms,
        floor_ms=floor_ms,
        step_over_floor=step_ms / floor_ms,
        floor_best_ms=1000.0 * min(floors),
        prefill_ms=1000.0 * prefill,
        nar_s=nar_s,
        nar_stages_timed=nar_timed,
        rtf=(prefill + float(np.sum(times)) + nar_s) / (batch * setup.seconds),
        peak_mem_mb=mem.mb,
        mem_kind=mem.kind,
        train_tokens_per_s=tr.tokens_per_s if tr else float("nan"),
        train_ms_step=tr.ms_step if tr else float("nan"),
        train_peak_mem_mb=tr.peak_mem_mb if tr else float("nan"),
        frames_per_step=per_step,
        extra={"train": asdict(tr)} if tr else {},
    )


def measure_train_speed(
    model: nn.Module, setup: TrainSetup, frame_rate: float, device: str = "cpu"
) -> TrainSpeed:
    """Time ``setup.steps`` optimizer steps of ``model`` (see the module docstring).

    The model is trained on a copy of its weights, so the caller's model is left unchanged
    (and in its original train/eval mode).
    """
    import copy

    from valle.data.batch import lens_key, pad_rows
    from valle.registry import data_request
    from valle.testing.model import batch_from_codes

    if setup.steps < 1 or setup.warmup < 0 or setup.batch < 1:
        raise ValueError("training speed needs steps >= 1, warmup >= 0 and batch >= 1")
    if not hasattr(model, "loss") or getattr(model, "config", None) is None:
        raise ValueError("training speed needs a valle model (with .config and .loss(batch))")
    dev = torch.device(device)
    if setup.precision not in ("32", "bf16-mixed"):
        raise ValueError(f"training precision {setup.precision!r}: use 32 or bf16-mixed")
    net: Any = copy.deepcopy(model).to(dev).train()
    from valle.train.module import set_activation_checkpointing

    set_activation_checkpointing(net, setup.checkpointing)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=setup.precision != "32")
    v = net.config.vocab
    T, P, S = setup.frames(frame_rate), setup.prompt_frames(frame_rate), setup.phonemes
    g = torch.Generator().manual_seed(setup.seed)
    texts = [torch.randint(1, v.text_vocab_size, (S,), generator=g) for _ in range(setup.batch)]
    codes = [
        torch.randint(0, v.codebook_size, (T, v.num_codebooks), generator=g)  # (T, Q)
        for _ in range(setup.batch)
    ]
    prompts = [
        torch.randint(0, v.codebook_size, (P, v.num_codebooks), generator=g)  # (P, Q)
        for _ in range(setup.batch)
    ]
    raw = batch_from_codes(texts, codes, prompts)
    for f in data_request(net.config).featurizers:  # the fields the variant reads, made up
        rows = [f.example(S, T, g) for _ in range(setup.batch)]  # e.g. a frame rate
        raw[f.name], raw[lens_key(f.name)] = pad_rows(rows, f.pad_value)
    batch = {k: x.to(dev) if isinstance(x, Tensor) else x for k, x in raw.items()}
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=setup.lr)

    def one_step() -> float:
        _sync(dev)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            # no generator, as in training (valle.train): the per-step draws come from the
            # seeded global RNG. A generator has one device, and the parts differ: the NAR
            # prompt policy draws on the CPU, MELLE's latent noise on the model's device
            loss, _ = net.loss(batch)
        loss.backward()
        optimizer.step()
        _sync(dev)
        return time.perf_counter() - t0

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(setup.seed)
        for _ in range(setup.warmup):
            one_step()
        logger.info("training: %d steps of B=%d x T=%d frames", setup.steps, setup.batch, T)
        with _PeakMemory(dev) as mem:
            times = [one_step() for _ in range(setup.steps)]
    step_s = float(np.mean(times))
    return TrainSpeed(
        batch=setup.batch,
        frames=T,
        text_tokens=S,
        steps=setup.steps,
        ms_step=1000.0 * step_s,
        tokens_per_s=setup.batch * T / step_s,
        peak_mem_mb=mem.mb,
        mem_kind=mem.kind,
    )


def checkpoint_frame_rate(
    obj: dict[str, Any], config: dict[str, Any], codec_dir: str | None
) -> float | None:
    """Code frames per second: the checkpoint's codec facts, else codec.json of ``codec_dir``
    (or of the training config's ``data.codec_dir``)."""
    import json

    spec = obj.get("codec")
    if isinstance(spec, dict) and spec.get("frame_rate"):
        return float(spec["frame_rate"])
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    for d in (codec_dir, data.get("codec_dir") if data else None):
        if not d:
            continue
        f = Path(d) if Path(d).is_file() else Path(d) / "codec.json"
        if f.is_file():
            rate = json.loads(f.read_text(encoding="utf-8")).get("frame_rate")
            if rate:
                return float(rate)
    return None


def load_checkpoint_model(
    path: str | os.PathLike[str], codec_dir: str | None = None, device: str = "cpu"
) -> tuple[nn.Module, float | None]:
    """The trained model of a checkpoint (eval mode) and its codec frame rate (None: unknown)."""
    from valle.io.checkpoint import checkpoint_extras, load_checkpoint, model_from_checkpoint

    obj = load_checkpoint(path)  # weights only, read once (valle.io.checkpoint)
    model, config = model_from_checkpoint(obj, path)
    model = model.to(device).eval()
    if getattr(model, "ar", None) is None:
        raise ValueError(
            f"{path}: the model has no AR decoder; the speed benchmark times AR decoding "
            "(pass the complete AR + NAR checkpoint, e.g. exp/.../nar/model.pt)"
        )
    return model, checkpoint_frame_rate(checkpoint_extras(obj), config, codec_dir)


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "-"
    return fmt.format(value)


def format_table(rows: Sequence[SpeedRow]) -> str:
    """A fixed-width text table of the rows plus notes on what was measured."""
    head = [h for _, h, _ in COLUMNS]
    body = [[_cell(getattr(r, k), fmt) for k, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    if rows:
        r = rows[0]
        lines += [
            "",
            f"device {r.device}, {r.threads} threads, float32; {r.text_tokens} text tokens, "
            f"{r.prompt_frames} prompt frames, {r.steps} AR steps of {r.frames_per_step} "
            f"frame(s) per row ({r.extra.get('weights', 'random weights')})",
            f"no cache: {r.nocache_points} sequence lengths timed, a quadratic fit averaged over "
            "all steps; floor: x @ W.T over every AR weight matrix (x of B rows), mean of "
            "passes timed between the cached steps (same load)",
            f"NAR: {r.nar_stages_timed} stage(s) timed, scaled to all; RTF = (AR + NAR) / "
            "(B x seconds), codec excluded; peak MiB: " + r.mem_kind,
        ]
        tr = r.extra.get("train")
        if tr:
            lines.append(
                f"training: {tr['steps']} timed AdamW steps (forward + backward + step) of "
                f"B={tr['batch']} x {tr['frames']} code frames, {tr['text_tokens']} text tokens; "
                "tokens/s = B x T / mean step"
            )
    return "\n".join(lines)


def write_table(rows: Sequence[SpeedRow], path: str | os.PathLike[str]) -> Path:
    """All fields of the rows as CSV (atomic)."""
    from valle.eval.files import write_csv

    names = [k for k in asdict(rows[0]) if k != "extra"] if rows else []
    return write_csv(Path(path), names, [asdict(r) for r in rows])


def _finite(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def summaries(rows: Sequence[SpeedRow], system: str | None = None) -> list[dict[str, Any]]:
    """``valle-bench report`` summaries: one system per size and batch.

    With ``system`` (a named model, e.g. the row name of the quality tables) the first row is
    that system and further rows are ``"<system> B=<batch>"``; without it every row is
    ``"valle-<size> B=<batch> (<device>)"``. Keys other than the report's columns describe the
    run (the report ignores them).
    """
    out = []
    for k, r in enumerate(rows):
        if system is None:
            label = r.size if "/" in r.size else f"valle-{r.size}"
            name = f"{label} B={r.batch} ({r.device})"
        else:
            name = system if k == 0 else f"{system} B={r.batch}"
        out.append(
            {
                "system": name,
                "rtf": r.rtf,
                "ar_ms_per_step": r.ar_ms_step,
                "peak_memory_mb": r.peak_mem_mb,
                "train_tokens_per_s": _finite(r.train_tokens_per_s),
                "train_peak_memory_mb": _finite(r.train_peak_mem_mb),
                "model": r.size,
                "batch": r.batch,
                "device": r.device,
                "threads": r.threads,
                "ar_steps": r.steps,
                "frames_per_step": r.frames_per_step,
                "memory": r.mem_kind,
                **({"train": r.extra["train"]} if "train" in r.extra else {}),
            }
        )
    return out


# --------------------------------------------------------------------------- valle-bench speed
def configure(p: Any) -> None:
    """Arguments of ``valle-bench speed``."""
    p.add_argument("--sizes", default="tiny,base", help="size presets, comma-separated")
    p.add_argument("--variant", default="valle",
                   help="variant preset of the random models (e.g. valle2; not with --checkpoint)")  # fmt: skip
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override of the random models, repeatable "
                        "(e.g. --set ar.layout.group=2)")  # fmt: skip
    p.add_argument("--batch-sizes", default="1,8", help="batch sizes, comma-separated")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seconds", type=float, default=10.0, help="speech per row (s)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="acoustic prompt (s)")
    p.add_argument("--phonemes", type=int, default=120, help="text tokens per row")
    p.add_argument("--nocache-points", type=int, default=3,
                   help="sequence lengths timed for the no-cache estimate")  # fmt: skip
    p.add_argument("--nar-stages-timed", type=int, default=None,
                   help="NAR stages to run (scaled to all; default: all)")  # fmt: skip
    p.add_argument("--checkpoint", default=None,
                   help="measure this trained model (its own config) instead of --sizes")  # fmt: skip
    p.add_argument("--codec-dir", default=None,
                   help="codec.json (or its directory) for the frame rate of a --checkpoint "
                        "that carries no codec facts")  # fmt: skip
    p.add_argument("--frame-rate", type=float, default=None,
                   help="code frames per second (default: the checkpoint's codec, else 75)")  # fmt: skip
    p.add_argument("--system", default=None,
                   help="system name of the summary (the model's row in `valle-bench report`)")  # fmt: skip
    p.add_argument("--train-steps", type=int, default=3,
                   help="timed training steps for train tokens/s (0: no training measurement)")  # fmt: skip
    p.add_argument("--train-warmup", type=int, default=1, help="untimed training steps first")
    p.add_argument("--train-batch", type=int, default=4, help="utterances per training batch")
    p.add_argument("--train-seconds", type=float, default=5.0,
                   help="speech per training utterance (s)")  # fmt: skip
    p.add_argument("--train-checkpointing", action="store_true",
                   help="activation checkpointing per layer in the training steps")  # fmt: skip
    p.add_argument("--quantize", choices=("none", "int8", "bf16"), default="none",
                   help="inference weights: none (float32), int8 (CPU, every linear layer; the "
                        "floor stays the float32 one, int8 reads a quarter of its bytes) or "
                        "bf16; no training measurement with a quantized model")  # fmt: skip
    p.add_argument("--out", default=None, help="CSV of all measured fields")
    p.add_argument("--summary", default=None, help="JSON summaries for `valle-bench report`")


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"--{what} must list positive integers, got {text!r}")
    return values


def run(args: Any) -> int:
    """``valle-bench speed``: print the table (and write --out / --summary)."""
    from valle.config import preset_path
    from valle.eval.files import write_json

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    variant = getattr(args, "variant", "valle")
    overrides = list(getattr(args, "overrides", None) or [])
    if args.checkpoint is None:
        for s in sizes:
            preset_path("size", s)  # unknown size: ConfigError (a ValueError) naming the presets
        preset_path("variant", variant)
    elif variant != "valle" or overrides:
        raise ValueError("--variant and --set choose random models; a --checkpoint has its own")
    batches = _int_list(args.batch_sizes, "batch-sizes")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device here; use --device cpu")
    if args.seconds <= 0 or args.prompt_seconds < 0 or args.phonemes < 1:
        raise ValueError("--seconds must be > 0, --prompt-seconds >= 0, --phonemes >= 1")
    if args.nocache_points < 1:
        raise ValueError("--nocache-points must be >= 1")
    if args.train_steps < 0 or args.train_warmup < 0 or args.train_batch < 1:
        raise ValueError("--train-steps and --train-warmup must be >= 0, --train-batch >= 1")
    if args.train_seconds <= 0 or (args.frame_rate is not None and args.frame_rate <= 0):
        raise ValueError("--train-seconds and --frame-rate must be > 0")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train = None
    quantize = getattr(args, "quantize", "none") or "none"
    if args.train_steps > 0 and quantize != "none":
        logger.info("--quantize %s: inference only, no training measurement", quantize)
    elif args.train_steps > 0:
        train = TrainSetup(
            batch=args.train_batch,
            seconds=args.train_seconds,
            prompt_seconds=min(args.prompt_seconds, args.train_seconds),
            phonemes=args.phonemes,
            steps=args.train_steps,
            warmup=args.train_warmup,
            checkpointing=bool(getattr(args, "train_checkpointing", False)),
        )
    setup = SpeedSetup(
        seconds=args.seconds,
        prompt_seconds=args.prompt_seconds,
        phonemes=args.phonemes,
        nocache_points=args.nocache_points,
        nar_stages_timed=args.nar_stages_timed,
        device=args.device,
        **({"frame_rate": args.frame_rate} if args.frame_rate else {}),
    )
    if args.checkpoint is not None:
        trained, rate = load_checkpoint_model(args.checkpoint, args.codec_dir, args.device)
        v: Any = trained.config.vocab  # type: ignore[union-attr]
        if args.frame_rate is None:
            if rate is None:
                logger.warning(
                    "%s carries no codec facts and no --codec-dir / --frame-rate was given: "
                    "assuming %g frames/s for the RTF",
                    args.checkpoint,
                    setup.frame_rate,
                )
            else:
                setup = replace(setup, frame_rate=rate)
        setup = replace(
            setup,
            text_vocab_size=v.text_vocab_size,
            codebook_size=v.codebook_size,
            num_codebooks=v.num_codebooks,
        )
        label = Path(args.checkpoint).parent.name + "/" + Path(args.checkpoint).name
        models: list[tuple[str, nn.Module | None]] = [(label, trained)]
    else:
        models = [(size, None) for size in sizes]
    rows = []
    for size, given in models:
        if given is None:
            net: nn.Module = build_random_model(size, setup, variant, overrides)
            label = size if variant == "valle" else f"{variant}/{size}"
        else:
            net, label = given, size
        if quantize != "none":
            from valle.inference.quantize import quantize_model

            net = quantize_model(net, quantize)
            label = f"{label} {quantize}"
        for b in batches:
            rows.append(measure_speed(label, b, setup, net, train))
            if given is not None:
                rows[-1].extra["weights"] = f"weights of {args.checkpoint}, random inputs"
            print(format_table(rows[-1:]).split("\n")[2], flush=True)  # progress: the row
        del net
    print()
    print(format_table(rows))
    if args.out:
        print(f"wrote {write_table(rows, args.out)}")
    if args.summary:
        print(f"wrote {write_json(args.summary, summaries(rows, args.system))}")
    return 0
