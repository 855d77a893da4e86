"""Weight-only int8 / bf16 inference (valle.inference.quantize) keeps shapes and logits.

Tolerance (random tiny weights; a trained model's logits are sharper): the teacher-forced
softmax of the quantized AR and NAR stays within a total-variation distance of 0.05 of the
float32 one at every position, and the largest logit error is under 5 % of the largest
float32 logit. Greedy choices agree at >= 95 % of the positions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from valle.inference import Synthesizer
from valle.inference.quantize import quantize_model
from valle.testing.model import (
    dummy_batch,
    generate_from,
    synthesis_inputs,
    tiny_config,
    tiny_model,
)

KW = {"d_model": 64, "num_heads": 4, "ffn_dim": 128}
TV_MAX = 0.05  # total variation between softmaxes
REL_LOGIT_MAX = 0.05  # max |logit error| / max |fp32 logit|


def _logits(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        ar = model.ar(  # type: ignore[operator,union-attr]
            batch["text_tokens"], batch["text_lens"], batch["audio_codes"][..., 0],
            batch["audio_lens"],
        )  # fmt: skip
        nar = model.nar(  # type: ignore[operator,union-attr]
            batch["text_tokens"], batch["text_lens"], batch["prompt_codes"], batch["prompt_lens"],
            batch["audio_codes"], batch["audio_lens"], 2,
        )  # fmt: skip
    return ar.float(), nar.float()


def _close(ref: torch.Tensor, out: torch.Tensor, lens: torch.Tensor) -> None:
    valid = torch.arange(ref.shape[1])[None] < lens[:, None]  # (B, T)
    ref, out = ref[valid], out[valid]  # (N, V)
    tv = 0.5 * (ref.softmax(-1) - out.softmax(-1)).abs().sum(-1)
    assert tv.max() <= TV_MAX, tv.max()
    assert (out - ref).abs().max() <= REL_LOGIT_MAX * ref.abs().max()
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.95


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_quantized_logits_stay_close_to_float32(mode: str) -> None:
    cfg = tiny_config(**KW)
    batch = dummy_batch(cfg, 3, seed=1)
    ref_ar, ref_nar = _logits(tiny_model(seed=0, **KW), batch)
    q = quantize_model(tiny_model(seed=0, **KW), mode)
    out_ar, out_nar = _logits(q, batch)
    if mode == "int8":
        assert any(isinstance(m, DynamicLinear) for m in q.ar.modules())  # type: ignore[union-attr]
        assert any(isinstance(m, DynamicLinear) for m in q.nar.modules())  # type: ignore[union-attr]
    assert not torch.equal(out_ar, ref_ar)  # it did change the arithmetic
    _close(ref_ar, out_ar, batch["audio_lens"])
    _close(ref_nar, out_nar, batch["audio_lens"])


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_quantized_model_generates_codes_of_the_right_shape(mode: str) -> None:
    cfg = tiny_config(**KW)
    batch = dummy_batch(cfg, 2, seed=3)
    q = quantize_model(tiny_model(seed=0, **KW), mode)
    out = generate_from(q, synthesis_inputs(batch))
    assert len(out) == 2
    for codes in out:
        assert codes.dtype == torch.long and codes.ndim == 2
        assert codes.shape[1] == cfg.vocab.num_codebooks and codes.shape[0] >= 1
        assert 0 <= int(codes.min()) and int(codes.max()) < cfg.vocab.codebook_size


@pytest.mark.parametrize("mode", ["int8", "bf16"])
def test_the_caller_s_model_is_left_as_it_was(mode: str) -> None:
    """quantize_model returns a quantized copy: the float32 model keeps its layers, dtype,
    weights and train mode, and still gives its own logits."""
    cfg = tiny_config(**KW)
    batch = dummy_batch(cfg, 2, seed=1)
    model = tiny_model(seed=0, **KW).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_model(model, mode)
    assert q is not model and not q.training and model.training
    assert not any(isinstance(m, DynamicLinear) for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    ref_ar, _ = _logits(tiny_model(seed=0, **KW), batch)
    assert torch.equal(_logits(model.eval(), batch)[0], ref_ar)


def test_no_quantization_returns_the_model_itself_in_eval_mode() -> None:
    model = tiny_model(seed=0).train()
    assert quantize_model(model, "none") is model and not model.training
    assert quantize_model(model, None) is model


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="int8"):
        quantize_model(tiny_model(), "int4")


def test_synthesizer_quantize_option_makes_a_wave(setup) -> None:
    synth = Synthesizer.from_checkpoint(setup.checkpoint, quantize="int8")
    assert any(isinstance(m, DynamicLinear) for m in synth.model.modules())
    wave, sr = synth.synthesize("She sells sea shells.", setup.prompt_wav, "The quick brown fox.")
    assert sr == 16000 and wave.ndim == 1 and np.isfinite(wave).all()


def test_infer_cli_quantize_int8_writes_a_wav(setup, tmp_path) -> None:
    import soundfile as sf

    from valle.bin.infer import main

    out = tmp_path / "q.wav"
    rc = main(
        ["--checkpoint", str(setup.checkpoint), "--prompt-wav", str(setup.prompt_wav),
         "--prompt-text", "She sells sea shells.", "--text", "The lazy dog.",
         "--out", str(out), "--quantize", "int8"]
    )  # fmt: skip
    assert rc == 0
    wave, sr = sf.read(out)
    assert sr == 16000 and wave.ndim == 1 and len(wave) > 0


@pytest.mark.parametrize("mode", ["int8", "bf16"])
@pytest.mark.parametrize("variant", ["melle", "vallr", "ralle", "valle2"])
def test_every_kind_of_model_generates_with_quantized_weights(variant: str, mode: str) -> None:
    """Not only VALL-E: a mel model's float prompt must reach bf16 weights in their dtype
    (MELLE's generate cast it to float32: ``mat1 and mat2 must have the same dtype``), and a
    mel model still returns float32 frames for the vocoder."""
    cfg = tiny_config(variant)
    batch = dummy_batch(cfg, 2, seed=3)
    q = quantize_model(tiny_model(seed=0, variant=variant), mode)
    out = generate_from(q, synthesis_inputs(batch), generator=torch.Generator().manual_seed(0))
    assert len(out) == 2
    for row in out:
        assert row.ndim == 2 and row.shape[0] >= 1
        if row.is_floating_point():  # mel frames (T, F)
            assert row.dtype == torch.float32 and torch.isfinite(row).all()
        else:
            assert row.dtype == torch.long


def test_the_mini_recipe_decode_offers_every_mode(monkeypatch, capsys) -> None:
    """egs/mini/local/decode.py --quantize reads its choices from QUANTIZE_MODES."""
    import importlib.util
    import sys
    from pathlib import Path

    from valle.inference.quantize import QUANTIZE_MODES

    path = Path(__file__).resolve().parents[2] / "egs" / "mini" / "local" / "decode.py"
    spec = importlib.util.spec_from_file_location("mini_decode", path)
    assert spec is not None and spec.loader is not None
    decode = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(decode)
    monkeypatch.setattr("valle.inference.quantize.QUANTIZE_MODES", ("none", "int8", "bf16", "x"))
    monkeypatch.setattr(sys, "argv", ["decode.py", "--help"])
    with pytest.raises(SystemExit):
        decode.main()
    assert "{none,int8,bf16,x}" in capsys.readouterr().out
    assert "x" not in QUANTIZE_MODES


def test_quantize_model_dispatches_through_the_one_registry(monkeypatch) -> None:
    """The modes are the keys of QUANTIZERS and quantize_model calls the entry of the mode
    it is given, so a new mode is one entry, not a new branch."""
    from valle.inference.quantize import QUANTIZE_MODES, QUANTIZERS

    assert QUANTIZE_MODES == tuple(QUANTIZERS) == ("none", "int8", "bf16")
    model = tiny_model(seed=0)
    calls: list[torch.nn.Module] = []
    monkeypatch.setitem(QUANTIZERS, "x", lambda m: calls.append(m) or m)
    assert quantize_model(model, "x") is model and calls == [model]


def test_infer_cli_quantize_choices_are_the_registry_s_modes(monkeypatch) -> None:
    """valle-infer --quantize offers QUANTIZE_MODES, not a list of its own."""
    from valle.bin.infer import build_parser

    monkeypatch.setattr("valle.inference.quantize.QUANTIZE_MODES", ("none", "int8", "bf16", "x"))
    (action,) = [a for a in build_parser()._actions if a.dest == "quantize"]
    assert tuple(action.choices) == ("none", "int8", "bf16", "x")
