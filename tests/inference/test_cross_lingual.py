"""Cross-lingual synthesis (VALL-E X) from the Python API and valle-infer: the prompt's and
the target's language ids, per token, reach a tiny random model."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch

from valle.config import to_dict
from valle.inference import Synthesizer, codec_spec
from valle.registry import build_model
from valle.testing.codec import tiny_encodec_codec
from valle.text import LANGUAGES, SymbolTable, tokenize_text
from valle.train.checkpoint import save_inference_checkpoint
from valle.variants.vallex import VallexConfig

EN, ZH = LANGUAGES["en"], LANGUAGES["zh"]
PROMPT_ZH = "你好，今天天气很好。"
TEXT_EN = "Hello world."


@pytest.fixture(scope="module")
def vallex(setup: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    root = tmp_path_factory.mktemp("vallex")
    symbols = SymbolTable.build(
        [tokenize_text(PROMPT_ZH, "zh"), tokenize_text(TEXT_EN, "en"), tokenize_text("我用", "zh")]
    )
    torch.manual_seed(0)
    cfg = VallexConfig.tiny(
        text_vocab_size=len(symbols), codebook_size=16, num_codebooks=4, max_len_ratio=1.0,
        language="acoustic_and_text",
    )  # fmt: skip
    model = build_model(cfg)
    codec = tiny_encodec_codec(num_codebooks=4, codebook_size=16)
    codec_dir = root / "codec"
    codec.model.save_pretrained(codec_dir)
    spec = codec_spec(codec, "encodec", codec_dir, bandwidth=codec.bandwidth)
    ckpt = save_inference_checkpoint(
        root / "model.pt", model.state_dict(), {"model": to_dict(cfg)}, step=1,
        symbols=symbols.symbols, codec=spec,
    )  # fmt: skip
    return Synthesizer.from_checkpoint(ckpt), ckpt


def _spy(synth: Synthesizer) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    model = synth.model
    original = model.generate

    @functools.wraps(original)  # the synthesizer reads the signature
    def generate(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    model.generate = generate  # type: ignore[method-assign]
    return calls


def test_prompt_and_target_languages_reach_the_model(setup: Any, vallex: Any) -> None:
    synth, _ = vallex
    calls = _spy(synth)
    wave, _sr = synth.synthesize(
        TEXT_EN, setup.prompt_wav, PROMPT_ZH, language="en", prompt_language="zh", seed=0
    )
    assert wave.ndim == 1
    (kw,) = calls
    n = int(kw["prompt_text_lens"][0])
    assert kw["language"].tolist() == [EN] and kw["prompt_language"].tolist() == [ZH]
    ids = kw["language_tokens"][0].tolist()
    assert n > 0 and ids[:n] == [ZH] * n and set(ids[n:]) == {EN}


def test_accent_sets_the_generated_speech_language_only(setup: Any, vallex: Any) -> None:
    synth, _ = vallex
    calls = _spy(synth)
    synth.synthesize(
        TEXT_EN, setup.prompt_wav, PROMPT_ZH, language="en", prompt_language="zh", accent="zh"
    )
    (kw,) = calls
    n = int(kw["prompt_text_lens"][0])
    assert kw["language"].tolist() == [ZH]  # Chinese-accented English
    assert set(kw["language_tokens"][0].tolist()[n:]) == {EN}  # the phonemes stay English


def test_auto_and_tagged_code_switched_text(setup: Any, vallex: Any) -> None:
    synth, _ = vallex
    calls = _spy(synth)
    synth.synthesize("我用 Hello world.", setup.prompt_wav, PROMPT_ZH, language="auto")
    synth.synthesize("[ZH]我用[ZH][EN]Hello world.[EN]", setup.prompt_wav, PROMPT_ZH,
                     language="en", prompt_language="zh")  # fmt: skip
    for kw in calls:
        n = int(kw["prompt_text_lens"][0])
        target = kw["language_tokens"][0].tolist()[n:]
        assert target[0] == ZH and target[-1] == EN and set(target) == {ZH, EN}
        assert kw["language"].tolist() == [EN]  # the dominant language of the target text


def test_valle_infer_prompt_language_and_accent(setup: Any, vallex: Any, tmp_path: Path) -> None:
    from valle.bin.infer import main

    _, ckpt = vallex
    out = tmp_path / "out.wav"
    rc = main([
        "--checkpoint", str(ckpt), "--prompt-wav", str(setup.prompt_wav),
        "--prompt-text", PROMPT_ZH, "--prompt-language", "zh", "--language", "en",
        "--accent", "zh", "--text", TEXT_EN, "--out", str(out),
    ])  # fmt: skip
    assert rc == 0 and out.is_file()
