"""GPU benchmark of inference and training at a size preset (``python -m valle.bin.gpu_bench``).

Shape legend: B batch, S text tokens, P prompt frames, T generated frames, Q codebooks.

One command that, on a CUDA machine, measures what issue 14 asks for and prints a table:

- **Inference** at each ``--batch-sizes`` (default 1 and 8): random-weight VALL-E of ``--size``
  (default base) in ``--dtype`` (bf16 by default on CUDA), S phonemes, a P-frame prompt and
  ``T = seconds x 75`` frames, timed by :func:`valle.eval.speed.measure_speed` (KV-cached AR,
  every NAR stage, the matrix-vector floor measured between steps). RTF = (AR + NAR) /
  (B x seconds), codec excluded. Beside the AR ms/step: the **bandwidth floor**, the bytes of
  the AR's weight matrices a step reads (all of them, once) over the device's memory bandwidth
  (``--bandwidth-gbs``, else a table of known GPUs, else a measured device-to-device copy).
  ``--compile`` wraps every AR layer in ``torch.compile`` (dynamic shapes: the KV cache grows)
  so that a step launches fewer kernels, the cost that dominates a small-batch step on a GPU.
  ``--cuda-graph`` also times the same AR steps through a fixed-shape
  :class:`~valle.ar.static_step.StaticARStep` (static KV cache, all its kernels captured as
  one CUDA graph and replayed once per step; :func:`valle.eval.decode_timing.time_static_ar`)
  and adds its ms/step and its ratio to the floor beside the KV-cached step's. Where there is
  no CUDA device the static step runs eagerly and the table says "eager".
- **Training**: ``--train-steps`` AdamW steps of AR + NAR on a random batch
  (:func:`valle.eval.train_speed.measure_train_speed`), bf16 autocast by default (``--train-precision``),
  optional activation checkpointing; tokens/s (code frames per second) and peak memory (CUDA
  allocator peak above what was held before).

On the CPU (``--device cpu --size tiny``) the same code runs in seconds: the smoke test of the
arguments and the table; the bandwidth there is a measured memory copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from valle.eval.decode_timing import time_static_ar
from valle.eval.matvec_floor import is_linear
from valle.eval.speed import SpeedSetup, build_random_model, measure_speed, random_inputs
from valle.eval.train_speed import TrainSetup, measure_train_speed

logger = logging.getLogger(__name__)

__all__ = [
    "KNOWN_BANDWIDTH_GBS",
    "GpuInferenceRow",
    "GpuTrainRow",
    "ar_weight_bytes",
    "compile_ar",
    "device_bandwidth",
    "format_gpu_table",
    "run_gpu_bench",
]

#: Peak memory bandwidth (GB/s, vendor figures) by a substring of ``torch.cuda.get_device_name``;
#: the first match wins, so the more specific names come first.
KNOWN_BANDWIDTH_GBS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),  # SXM
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),  # 40 GB
    ("L40S", 864.0),
    ("L40", 864.0),
    ("A10G", 600.0),
    ("A10", 600.0),
    ("L4", 300.0),
    ("V100", 900.0),
    ("T4", 320.0),
    ("RTX 4090", 1008.0),
    ("RTX 3090", 936.0),
)


@dataclass
class GpuInferenceRow:
    size: str
    batch: int
    dtype: str
    compiled: bool
    ar_steps: int
    ar_ms_step: float
    bw_floor_ms: float  # AR weight bytes / bandwidth
    step_over_bw_floor: float
    matvec_floor_ms: float  # measured x @ W.T over the AR's matrices (valle.eval.matvec_floor)
    prefill_ms: float
    nar_s: float
    rtf: float
    peak_mem_mb: float
    static_step: str = "off"  # how the static step ran: off | cuda graph | eager
    static_ms_step: float = float("nan")  # AR ms/step through StaticARStep
    static_over_bw_floor: float = float("nan")


@dataclass
class GpuTrainRow:
    size: str
    batch: int
    precision: str
    checkpointing: bool
    ms_step: float
    tokens_per_s: float
    peak_mem_mb: float


def ar_weight_bytes(ar: nn.Module) -> int:
    """Bytes of the weight matrices an AR step reads once (every linear layer, embeddings left
    out: a step reads one row of them)."""
    total = 0
    for m in ar.modules():
        if is_linear(m):
            w: Any = m.weight
            w = w() if callable(w) else w  # an int8 layer's weight() is its quantized tensor
            total += w.numel() * w.element_size()
    return total


def _measured_copy_gbs(device: torch.device, mib: int) -> float:
    """Bandwidth of a device-to-device copy (read + write bytes over the time), best of 5."""
    n = mib * 2**20 // 4
    src = torch.empty(n, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best / 1e9


def device_bandwidth(device: torch.device, given: float | None = None) -> tuple[float, str]:
    """Memory bandwidth (GB/s) and where it came from: ``given``, the table of known GPUs, or a
    measured copy (1 GiB on CUDA, 256 MiB on the CPU)."""
    if given is not None:
        if not given > 0:
            raise ValueError(f"--bandwidth-gbs must be > 0, got {given}")
        return given, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, gbs in KNOWN_BANDWIDTH_GBS:
            if key in name:
                return gbs, f"{name} spec"
        return _measured_copy_gbs(device, 1024), f"{name}, measured copy"
    return _measured_copy_gbs(device, 256), "CPU, measured copy"


def compile_ar(ar: nn.Module, backend: str = "inductor", mode: str | None = None) -> int:
    """``torch.compile`` every layer of the AR's backbone in place (dynamic shapes, since the
    KV cache grows by one position per step); returns how many layers. The first steps after
    this compile (slow); the benchmark's warm-up pays for it."""
    layers: Any = ar.backbone.layers  # type: ignore[union-attr]
    for layer in layers:
        layer.compile(backend=backend, mode=mode, dynamic=True)
    return len(layers)


def _dtype(name: str) -> torch.dtype:
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"--dtype {name!r}: use one of {', '.join(dtypes)}")
    return dtypes[name]


def run_gpu_bench(
    *,
    size: str = "base",
    device: str = "cuda",
    batch_sizes: Sequence[int] = (1, 8),
    dtype: str = "bf16",
    seconds: float = 10.0,
    prompt_seconds: float = 3.0,
    phonemes: int = 120,
    nar_stages_timed: int | None = None,
    compile_step: bool = False,
    compile_backend: str = "inductor",
    compile_mode: str | None = None,
    cuda_graph: bool = False,
    bandwidth_gbs: float | None = None,
    train_batch: int = 8,
    train_seconds: float = 10.0,
    train_steps: int = 5,
    train_warmup: int = 2,
    train_precision: str = "bf16-mixed",
    train_checkpointing: bool = False,
    overrides: Sequence[str] = (),
) -> tuple[list[GpuInferenceRow], list[GpuTrainRow], dict[str, Any]]:
    """Measure inference at each batch size and one training configuration (``train_steps``
    0: none); ``cuda_graph`` also times the AR steps through the static (graph-captured on
    CUDA) step. Returns the rows and the run's facts (device, bandwidth and its source)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device here; use --device cpu")
    if batch_sizes and min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be positive, got {list(batch_sizes)}")
    torch_dtype = _dtype(dtype)
    bw, bw_source = device_bandwidth(dev, bandwidth_gbs)
    setup = SpeedSetup(
        seconds=seconds,
        prompt_seconds=prompt_seconds,
        phonemes=phonemes,
        nocache_points=1,
        nar_stages_timed=nar_stages_timed,
        device=device,
    )
    facts: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "bandwidth_gbs": bw,
        "bandwidth_source": bw_source,
        "torch": torch.__version__,
        "seconds": seconds,
        "phonemes": phonemes,
        "prompt_seconds": prompt_seconds,
    }
    model = build_random_model(size, replace(setup, device="cpu"), overrides=overrides)
    infer_rows: list[GpuInferenceRow] = []
    if batch_sizes:
        net: Any = model.to(dev, dtype=torch_dtype).eval() if torch_dtype != torch.float32 \
            else model.to(dev).eval()  # fmt: skip
        if compile_step:
            n = compile_ar(net.ar, compile_backend, compile_mode)
            logger.info("torch.compile (%s) on %d AR layers", compile_backend, n)
        weight_bytes = ar_weight_bytes(net.ar)
        floor_ms = 1000.0 * weight_bytes / (bw * 1e9)
        facts["ar_weight_bytes"] = weight_bytes
        for b in batch_sizes:
            r = measure_speed(size, b, setup, net)
            row = GpuInferenceRow(
                size=size,
                batch=b,
                dtype=dtype,
                compiled=compile_step,
                ar_steps=r.steps,
                ar_ms_step=r.ar_ms_step,
                bw_floor_ms=floor_ms,
                step_over_bw_floor=r.ar_ms_step / floor_ms,
                matvec_floor_ms=r.floor_ms,
                prefill_ms=r.prefill_ms,
                nar_s=r.nar_s,
                rtf=r.rtf,
                peak_mem_mb=r.peak_mem_mb,
            )
            if cuda_graph:
                row.static_step, row.static_ms_step = _static_step_ms(net.ar, setup, b, r.steps)
                row.static_over_bw_floor = row.static_ms_step / floor_ms
                logger.info(
                    "static step B=%d (%s): %.3f ms/step", b, row.static_step, row.static_ms_step
                )
            infer_rows.append(row)
            logger.info("inference B=%d: %.2f ms/step, RTF %.4f", b, r.ar_ms_step, r.rtf)
        del net
    train_rows: list[GpuTrainRow] = []
    if train_steps > 0:
        fp32 = build_random_model(size, replace(setup, device="cpu"), overrides=overrides)
        ts = TrainSetup(
            batch=train_batch,
            seconds=train_seconds,
            prompt_seconds=min(prompt_seconds, train_seconds),
            phonemes=phonemes,
            steps=train_steps,
            warmup=train_warmup,
            checkpointing=train_checkpointing,
            precision=train_precision,
        )
        tr = measure_train_speed(fp32, ts, setup.frame_rate, device)
        train_rows.append(
            GpuTrainRow(
                size=size,
                batch=train_batch,
                precision=train_precision,
                checkpointing=train_checkpointing,
                ms_step=tr.ms_step,
                tokens_per_s=tr.tokens_per_s,
                peak_mem_mb=tr.peak_mem_mb,
            )
        )
        facts["train_mem_kind"] = tr.mem_kind
    if dev.type == "cuda":
        facts["max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    return infer_rows, train_rows, facts


def _static_step_ms(ar: Any, setup: SpeedSetup, batch: int, steps: int) -> tuple[str, float]:
    """How the static step ran and its mean ms/step over ``steps`` AR steps (after a 4-step
    warm-up run), on the benchmark's own random inputs."""
    text, tl, prompt, pl = random_inputs(setup, batch)
    time_static_ar(ar, text, tl, prompt, pl, min(steps, 4), graph=True)  # warm-up
    times, mode = time_static_ar(ar, text, tl, prompt, pl, steps, graph=True)
    return mode, 1000.0 * sum(times) / len(times)


def _table(rows: Sequence[Any], cols: Sequence[tuple[str, str, str]]) -> list[str]:
    head = [h for _, h, _ in cols]
    body = [[fmt.format(getattr(r, k)) for k, _, fmt in cols] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    out = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return out


INFER_COLUMNS = (
    ("size", "size", "{}"),
    ("batch", "B", "{}"),
    ("dtype", "dtype", "{}"),
    ("compiled", "compile", "{}"),
    ("ar_steps", "AR steps", "{}"),
    ("ar_ms_step", "AR ms/step", "{:.3f}"),
    ("bw_floor_ms", "bandwidth floor ms", "{:.3f}"),
    ("step_over_bw_floor", "step/floor", "{:.2f}"),
    ("matvec_floor_ms", "matvec ms", "{:.3f}"),
    ("prefill_ms", "prefill ms", "{:.1f}"),
    ("nar_s", "NAR s", "{:.3f}"),
    ("rtf", "RTF", "{:.4f}"),
    ("peak_mem_mb", "peak MiB", "{:.0f}"),
)
STATIC_COLUMNS = (
    ("static_step", "static step", "{}"),
    ("static_ms_step", "static ms/step", "{:.3f}"),
    ("static_over_bw_floor", "static/floor", "{:.2f}"),
)
TRAIN_COLUMNS = (
    ("size", "size", "{}"),
    ("batch", "B", "{}"),
    ("precision", "precision", "{}"),
    ("checkpointing", "ckpt", "{}"),
    ("ms_step", "ms/step", "{:.1f}"),
    ("tokens_per_s", "tokens/s", "{:,.0f}"),
    ("peak_mem_mb", "peak MiB", "{:.0f}"),
)


def format_gpu_table(
    infer: Sequence[GpuInferenceRow], train: Sequence[GpuTrainRow], facts: dict[str, Any]
) -> str:
    """The inference and training tables with the run's facts underneath."""
    lines = [
        f"device {facts['device']}, torch {facts['torch']}, bandwidth "
        f"{facts['bandwidth_gbs']:.0f} GB/s ({facts['bandwidth_source']}); "
        f"{facts['phonemes']} phonemes, {facts['prompt_seconds']} s prompt, "
        f"{facts['seconds']} s of speech per row"
    ]
    if infer:
        lines += ["", "inference (KV-cached AR + all NAR stages, random weights)"]
        static = any(r.static_step != "off" for r in infer)
        lines += _table(infer, INFER_COLUMNS + (STATIC_COLUMNS if static else ()))
        lines.append(
            f"bandwidth floor = {facts['ar_weight_bytes'] / 1e6:.1f} MB of AR weight matrices "
            "read once per step / bandwidth; RTF = (AR + NAR) / (B x seconds), codec excluded"
        )
        if static:
            lines.append(
                "static step: the same AR steps through StaticARStep (fixed-shape KV cache); "
                "'cuda graph' = captured once and replayed per step, 'eager' = no CUDA device, "
                "run op by op (a check of the path, not a graph timing)"
            )
    if train:
        lines += ["", "training (AR + NAR loss, backward, AdamW step; tokens = code frames)"]
        lines += _table(train, TRAIN_COLUMNS)
        lines.append(f"peak MiB: {facts.get('train_mem_kind', '')}")
    return "\n".join(lines)


def rows_as_dicts(
    infer: Sequence[GpuInferenceRow], train: Sequence[GpuTrainRow], facts: dict[str, Any]
) -> dict[str, Any]:
    """Everything measured, for ``--json``."""
    return {
        "facts": facts,
        "inference": [asdict(r) for r in infer],
        "training": [asdict(r) for r in train],
    }
