"""valle-bench speed with --quantize and the training options (checkpointing, bf16 autocast)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from valle.bin.bench import main
from valle.eval.speed import MatvecPass, TrainSetup, measure_train_speed
from valle.inference.quantize import quantize_model
from valle.testing.model import tiny_model


def test_speed_with_int8_weights_reports_the_float32_floor(tmp_path, capsys) -> None:
    out = tmp_path / "speed.csv"
    rc = main(
        ["speed", "--sizes", "tiny", "--batch-sizes", "1", "--seconds", "0.3",
         "--prompt-seconds", "0.1", "--phonemes", "8", "--threads", "1", "--nocache-points", "1",
         "--nar-stages-timed", "1", "--quantize", "int8", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["size"] == "tiny int8" and float(row["ar_ms_step"]) > 0
    assert math.isfinite(float(row["floor_ms"])) and row["train_tokens_per_s"] in ("", "nan")


def test_floor_of_an_int8_model_reads_its_float32_weights() -> None:
    model = tiny_model(seed=0)
    fp32 = MatvecPass(model.ar)  # type: ignore[arg-type]
    q = MatvecPass(quantize_model(tiny_model(seed=0), "int8").ar)  # type: ignore[arg-type]
    assert [w.shape for w in q.weights] == [w.shape for w in fp32.weights]
    assert all(w.dtype == torch.float32 for w in q.weights)
    err = max(
        (a - b).abs().max() / b.abs().max() for a, b in zip(q.weights, fp32.weights, strict=True)
    )
    assert err < 0.01  # int8 per channel: a 1/254 step of each row's range


def test_floor_of_a_bf16_model_reads_its_bf16_weights() -> None:
    """What the module docstring says and docs/performance.md's bf16 row reports: unlike
    int8, the bf16 floor is not the float32 one."""
    q = MatvecPass(quantize_model(tiny_model(seed=0), "bf16").ar)  # type: ignore[arg-type]
    assert q.weights and all(w.dtype == torch.bfloat16 for w in q.weights)


@pytest.mark.parametrize(
    "options", [{"checkpointing": True}, {"precision": "bf16-mixed"}], ids=["ckpt", "bf16"]
)
def test_training_throughput_with_the_memory_options(options: dict) -> None:
    torch.set_num_threads(1)
    setup = TrainSetup(batch=2, seconds=0.4, prompt_seconds=0.1, phonemes=6, steps=1, warmup=0,
                       **options)  # fmt: skip
    tr = measure_train_speed(tiny_model(seed=0), setup, frame_rate=50.0)
    assert math.isfinite(tr.tokens_per_s) and tr.tokens_per_s > 0
    with pytest.raises(ValueError, match="precision"):
        measure_train_speed(tiny_model(), TrainSetup(precision="16"), frame_rate=50.0)


def test_speed_cli_measures_training_with_checkpointing(tmp_path, monkeypatch) -> None:
    import valle.train.module as module

    seen: list[bool] = []
    real = module.set_activation_checkpointing

    def spy(model: torch.nn.Module, on: bool) -> int:
        seen.append(on)
        return real(model, on)

    monkeypatch.setattr(module, "set_activation_checkpointing", spy)
    summary = tmp_path / "speed.json"
    rc = main(
        ["speed", "--sizes", "tiny", "--batch-sizes", "1", "--seconds", "0.3",
         "--prompt-seconds", "0.1", "--phonemes", "8", "--threads", "1", "--nocache-points", "1",
         "--nar-stages-timed", "1", "--train-steps", "1", "--train-warmup", "0",
         "--train-batch", "2", "--train-seconds", "0.3", "--train-checkpointing",
         "--summary", str(summary)]
    )  # fmt: skip
    assert rc == 0
    (s,) = json.loads(summary.read_text())
    assert s["train_tokens_per_s"] > 0 and seen == [True]


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_speed_of_a_mel_model_with_quantized_weights(tmp_path, mode: str) -> None:
    """MELLE's random mel prompt must reach bf16 weights in their dtype (it was float32:
    ``mat1 and mat2 must have the same dtype``)."""
    out = tmp_path / "speed.csv"
    rc = main(
        ["speed", "--variant", "melle", "--sizes", "tiny", "--batch-sizes", "1", "--seconds",
         "0.3", "--prompt-seconds", "0.1", "--phonemes", "8", "--threads", "1",
         "--nocache-points", "1", "--quantize", mode, "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["size"] == f"melle/tiny {mode}" and float(row["ar_ms_step"]) > 0


def test_training_steps_draw_from_the_global_rng_as_training_does(monkeypatch) -> None:
    """A generator has one device and the loss's parts differ (the NAR prompt policy draws on
    the CPU, MELLE's latent noise on the model's device): measure_train_speed passed one made
    on the model's device, so every CUDA run (valle.bin.gpu_bench's training rows) failed with
    "Expected a 'cpu' device type for generator". Like valle.train it passes none, seeds the
    global RNG and leaves the caller's RNG state as it was."""
    import functools

    model = tiny_model(seed=0)
    cls = type(model)
    real, seen = cls.loss, []

    @functools.wraps(real)  # the real signature, generator included
    def spy(self, batch, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((args, kwargs))
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(cls, "loss", spy)
    state = torch.get_rng_state()
    setup = TrainSetup(batch=2, seconds=0.4, prompt_seconds=0.1, phonemes=6, steps=1, warmup=1)
    tr = measure_train_speed(model, setup, frame_rate=50.0)
    assert tr.tokens_per_s > 0 and len(seen) == 2
    assert all(args == () and "generator" not in kwargs for args, kwargs in seen), seen
    assert torch.equal(torch.get_rng_state(), state)
