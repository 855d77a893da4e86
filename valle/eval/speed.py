"""Inference speed of VALL-E-style models: one row per model and batch (``valle-bench speed``).

Shape legend: B batch, S text tokens, P prompt frames, T generated frames, Q codebooks,
D model width.

What :func:`measure_speed` measures, per size preset (random weights,
:func:`build_random_model`) or trained model and batch size (all rows of a batch have the same
lengths; ``S`` random phoneme ids, a ``P``-frame random prompt, ``T = seconds * frame_rate``
frames), through the model's own decoding API (:mod:`valle.eval.decode_timing`):

- AR with the KV cache: ``prefill`` once, then ``N - 1`` steps of arg-max sampling (EOS
  excluded, so every run makes exactly ``N`` steps), each timed; the mean, the mean of the
  first and of the last 10 % of steps (flat = equal: a step's cost must not grow with the
  sequence) are reported. ``N = ceil(T / G)``: a layout of G frames per step (VALL-E 2's
  grouped codes, ``--variant valle2 --set ar.layout.group=2``) makes the T frames in ``T / G``
  steps, and the table's "AR steps" and "G" columns say so.
- AR recomputing everything (no cache): ``nocache_points`` lengths evenly spaced over the run
  are timed and a quadratic in the length is fitted and averaged over all steps; the table
  says how many lengths were timed.
- The matrix-vector floor (:mod:`valle.eval.matvec_floor`): one pass is timed every 25 cached
  steps, interleaved, so that both see the same machine load (on a shared machine the load
  changes by the minute); ``step/floor`` is the mean cached step over the mean pass.
- NAR: ``nar_stages_timed`` of the ``Q - 1`` stages are run (full forwards over text, prompt
  and the ``T`` frames) and scaled to all stages when fewer are timed.
- A mel model (MELLE, ``--variant melle --set ar.reduction=4``): a random log-mel prompt, each
  step feeds back the latent head's mean step (the stop flag is not read), T comes from the
  model's own mel frame rate (sample_rate / hop, 62.5 Hz for the paper's 16 kHz / 256), and the
  post-net's one pass over the output stands in the NAR column.
- RTF = (AR prefill + AR steps + NAR) / (B * seconds): seconds of compute per second of speech,
  the codec (vocoder) excluded.
- Peak memory of the cached AR + NAR run (:mod:`valle.eval.peak_memory`), labelled with what
  it measures.
- Training throughput (:mod:`valle.eval.train_speed`) when a :class:`TrainSetup` is given.

With ``quantize`` (:func:`speed_rows`) the model is measured with weight-only low precision
(:mod:`valle.inference.quantize`): with int8 the floor column stays the float32 floor (int8
weights are a quarter of those bytes, so the int8 floor is a quarter of it); with bf16 the
floor is measured on the bf16 weights themselves. The table and files:
:mod:`valle.eval.speed_table`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from valle.eval.decode_timing import time_cached_ar, time_nar, time_recomputed_ar, time_refine
from valle.eval.matvec_floor import MatvecPass, matvec_floor_ms
from valle.eval.peak_memory import PeakMemory
from valle.eval.speed_row import SpeedRow
from valle.eval.speed_table import COLUMNS, format_table, summaries, write_table
from valle.eval.train_speed import TrainSetup, TrainSpeed, measure_train_speed
from valle.eval.trained_model import TrainedModel

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "MatvecPass",
    "SpeedRow",
    "SpeedSetup",
    "TrainSetup",
    "TrainSpeed",
    "build_random_model",
    "format_table",
    "matvec_floor_ms",
    "measure_speed",
    "measure_train_speed",
    "random_inputs",
    "setup_for_checkpoint",
    "speed_rows",
    "summaries",
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


def random_inputs(
    setup: SpeedSetup, batch: int, n_mels: int | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Seeded random text ids (B, S), their lengths (B,), a prompt (B, P, Q) of codes (or, with
    ``n_mels``, a log-mel prompt (B, P, F)) and its lengths (B,), on ``setup.device``."""
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
    text, tl, prompt, pl = random_inputs(setup, batch, None if mel is None else mel.n_mels)
    if prompt.is_floating_point():  # a mel prompt, in the weights' dtype (--quantize bf16)
        prompt = prompt.to(next(ar.parameters()).dtype)
    per_step = int(ar.layout.frames_per_step)
    steps = -(-setup.steps // per_step)  # AR steps that make the frames: ceil(T / G)
    floor = MatvecPass(ar, batch)
    floor()
    # a model whose steps carry per-call conditioning (the frame-aligned MELLE's frame track)
    # gives the decoding of this call; others decode with ar.decoding
    make: Any = getattr(model, "benchmark_decoding", None)
    dec = None if make is None else make(text, tl, pl, steps)
    time_cached_ar(ar, text, tl, prompt, pl, min(steps, 4), decoding=dec)  # warm-up
    logger.info("%s B=%d: AR %d steps with the KV cache", size, batch, steps)
    with PeakMemory(device) as mem:
        prefill, times, floors, codes, audio_in, in_lens = time_cached_ar(
            ar, text, tl, prompt, pl, steps, floor, decoding=dec
        )
        nar_s, nar_timed = (0.0, 0)
        if nar is not None:
            logger.info("%s B=%d: NAR", size, batch)
            # (B, T') the first codebook's frames the steps make (grouped: G a step; merged
            # codes: each step repeated over its m frames)
            first = torch.stack([ar.layout.from_steps(c)[:, 0] for c in codes])
            nar_s, nar_timed = time_nar(nar, text, tl, prompt, pl, first, setup.nar_stages_timed)
        refine: Any = getattr(model, "refine", None)
        if refine is not None:  # MELLE's post-net over the whole output, in the "NAR" time
            nar_s = time_refine(refine, ar.layout.from_steps(codes))  # frames (B, T, F)
    logger.info("%s B=%d: AR without cache at %d lengths", size, batch, setup.nocache_points)
    nocache = time_recomputed_ar(
        ar, text, tl, audio_in, in_lens, codes, setup.nocache_points, decoding=dec
    )
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


def setup_for_checkpoint(
    setup: SpeedSetup, trained: TrainedModel, keep_frame_rate: bool = False
) -> SpeedSetup:
    """``setup`` for a trained model: its vocabulary and (unless ``keep_frame_rate``, a rate
    the caller chose) its frame rate; a model whose frame rate is unknown keeps the setup's,
    with a warning."""
    v: Any = trained.model.config.vocab  # type: ignore[union-attr]
    if not keep_frame_rate:
        if trained.frame_rate is None:
            logger.warning(
                "%s carries no codec facts and no --codec-dir / --frame-rate was given: "
                "assuming %g frames/s for the RTF",
                trained.path,
                setup.frame_rate,
            )
        else:
            setup = replace(setup, frame_rate=trained.frame_rate)
    return replace(
        setup,
        text_vocab_size=v.text_vocab_size,
        codebook_size=v.codebook_size,
        num_codebooks=v.num_codebooks,
    )


def speed_rows(
    models: Iterable[tuple[str, Callable[[], nn.Module]]],
    batches: Sequence[int],
    setup: SpeedSetup,
    train: TrainSetup | None = None,
    quantize: str = "none",
    weights: str | None = None,
    on_row: Callable[[SpeedRow], None] | None = None,
) -> list[SpeedRow]:
    """:func:`measure_speed` of each model at each batch size.

    ``models``: ``(label, make)`` pairs; ``make()`` gives the model when its turn comes, so
    that one model at a time is held. ``quantize`` (none | int8 | bf16) measures a quantized
    copy (:func:`valle.inference.quantize.quantize_model`; the label says so). ``weights``
    describes the weights in the table's notes (default: random weights). ``on_row`` is called
    with each row as it is measured (progress).
    """
    from valle.inference.quantize import quantize_model

    rows: list[SpeedRow] = []
    for label, make in models:
        net = make()
        if quantize != "none":
            net = quantize_model(net, quantize)
            label = f"{label} {quantize}"
        for b in batches:
            row = measure_speed(label, b, setup, net, train)
            if weights is not None:
                row.extra["weights"] = weights
            rows.append(row)
            if on_row is not None:
                on_row(row)
        del net
    return rows
