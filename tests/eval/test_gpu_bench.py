"""python -m valle.bin.gpu_bench: the CPU smoke path (arguments, table, JSON) at tiny size."""

from __future__ import annotations

import json

import pytest
import torch

from valle.bin.gpu_bench import main
from valle.eval.gpu_bench import ar_weight_bytes, compile_ar, device_bandwidth
from valle.inference.quantize import quantize_model
from valle.testing.model import tiny_model

SMOKE = ["--size", "tiny", "--device", "cpu", "--seconds", "0.3", "--prompt-seconds", "0.1",
         "--phonemes", "8", "--nar-stages-timed", "1", "--train-batch", "2",
         "--train-seconds", "0.3", "--train-steps", "1", "--train-warmup", "0", "--threads", "1",
         "--bandwidth-gbs", "20"]  # fmt: skip


def test_smoke_run_prints_both_tables_and_writes_json(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    assert main([*SMOKE, "--batch-sizes", "1,2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for col in ("AR ms/step", "bandwidth floor ms", "step/floor", "RTF", "tokens/s", "peak MiB"):
        assert col in text, col
    assert "20 GB/s (given)" in text
    assert "static ms/step" not in text  # no --cuda-graph: no static-step columns
    data = json.loads(out.read_text())
    assert [r["batch"] for r in data["inference"]] == [1, 2]
    row = data["inference"][0]
    assert row["ar_steps"] == round(0.3 * 75) and row["dtype"] == "fp32" and row["rtf"] > 0
    weight_bytes = data["facts"]["ar_weight_bytes"]
    assert row["bw_floor_ms"] == pytest.approx(1000 * weight_bytes / 20e9)
    assert row["step_over_bw_floor"] == pytest.approx(row["ar_ms_step"] / row["bw_floor_ms"])
    assert row["static_step"] == "off"
    (tr,) = data["training"]
    assert tr["batch"] == 2 and tr["precision"] == "32" and tr["tokens_per_s"] > 0


def test_bf16_training_checkpointing_and_a_compiled_step_run(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    rc = main([*SMOKE, "--batch-sizes", "1", "--dtype", "bf16", "--train-precision",
               "bf16-mixed", "--train-checkpointing", "--compile", "--compile-backend", "eager",
               "--json", str(out)])  # fmt: skip
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["inference"][0]["compiled"] and data["inference"][0]["dtype"] == "bf16"
    assert data["training"][0]["checkpointing"] and data["training"][0]["tokens_per_s"] > 0


def test_cuda_graph_option_times_the_static_step_eagerly_on_the_cpu(tmp_path, capsys) -> None:
    out = tmp_path / "gpu.json"
    rc = main([*SMOKE, "--batch-sizes", "1,2", "--cuda-graph", "--train-steps", "0",
               "--json", str(out)])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    for col in ("static step", "static ms/step", "static/floor"):
        assert col in text, col
    mode = "cuda graph" if torch.cuda.is_available() else "eager"
    data = json.loads(out.read_text())
    for row in data["inference"]:
        assert row["static_step"] == mode and row["static_ms_step"] > 0
        assert row["static_over_bw_floor"] == pytest.approx(
            row["static_ms_step"] / row["bw_floor_ms"]
        )
    assert data["training"] == []


def test_bad_arguments_are_user_errors(capsys) -> None:
    assert main([*SMOKE, "--batch-sizes", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--size", "tiny", "--device", "cuda"]) == 2
        assert "no CUDA" in capsys.readouterr().err


def test_weight_bytes_follow_the_weight_precision() -> None:
    fp32 = ar_weight_bytes(tiny_model(seed=0).ar)  # type: ignore[arg-type]
    bf16 = ar_weight_bytes(tiny_model(seed=0).to(torch.bfloat16).ar)  # type: ignore[arg-type]
    int8 = ar_weight_bytes(quantize_model(tiny_model(seed=0), "int8").ar)  # type: ignore[arg-type]
    assert bf16 * 2 == fp32 and int8 * 4 == fp32


def test_bandwidth_source() -> None:
    assert device_bandwidth(torch.device("cpu"), 100.0) == (100.0, "given")
    with pytest.raises(ValueError, match="bandwidth"):
        device_bandwidth(torch.device("cpu"), 0.0)


def test_compiled_layers_give_the_same_logits() -> None:
    model = tiny_model(seed=0).eval()
    text, tl = torch.randint(1, 12, (1, 5)), torch.tensor([5])
    audio, al = torch.randint(0, 16, (1, 7)), torch.tensor([7])
    with torch.no_grad():
        ref = model.ar(text, tl, audio, al)  # type: ignore[operator,union-attr]
        assert compile_ar(model.ar, backend="eager") == 2  # type: ignore[arg-type]
        out = model.ar(text, tl, audio, al)  # type: ignore[operator,union-attr]
    assert torch.allclose(ref, out, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_run_at_tiny_size(tmp_path) -> None:
    out = tmp_path / "gpu.json"
    assert main(["--size", "tiny", "--seconds", "0.5", "--train-steps", "1",
                 "--train-warmup", "0", "--json", str(out)]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    assert data["facts"]["bandwidth_gbs"] > 0 and data["inference"][0]["dtype"] == "bf16"
