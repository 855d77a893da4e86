"""VALL-E X: language ids per token reach the AR and the NAR as the paper defines them, the
three language kinds train, and a tiny model learns to speak by its language id."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from valle.data import batch as B_
from valle.modules.language import LanguageEmbedding, LanguageIds, TextLanguageConditioner
from valle.registry import build_model
from valle.testing.model import batch_from_codes, dummy_batch
from valle.variants.vallex import VallexConfig

EN, ZH, JA = 0, 1, 2


def _record(module: torch.nn.Module, calls: list[torch.Tensor]) -> Any:
    def hook(_m: torch.nn.Module, args: tuple[Any, ...], _out: Any) -> None:
        ids = args[1]
        calls.append(ids.text.clone() if isinstance(ids, LanguageIds) else ids.clone())

    return module.register_forward_hook(hook)


def _model(kind: str = "acoustic", seed: int = 0, **kwargs: Any) -> Any:
    torch.manual_seed(seed)
    return build_model(VallexConfig.tiny(language=kind, **kwargs)).eval()


@pytest.mark.parametrize("kind", ["acoustic", "text", "acoustic_and_text"])
def test_each_language_kind_builds_its_components_and_trains(kind: str) -> None:
    model = _model(kind)
    audio = [m for m in model.modules() if isinstance(m, LanguageEmbedding)]
    text = [m for m in model.modules() if isinstance(m, TextLanguageConditioner)]
    assert len(text) == (0 if kind == "acoustic" else 2)  # AR and NAR
    assert len(audio) == {"acoustic": 2, "text": 2, "acoustic_and_text": 4}[kind]
    cfg = model.config
    batch = dummy_batch(cfg, batch_size=3)
    assert batch[B_.LANGUAGE_TOKENS].shape == batch[B_.TEXT_TOKENS].shape
    loss, _ = model.train().loss(batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    for m in audio + text:
        assert all(p.grad is not None and p.grad.any() for p in m.parameters())


def test_cross_lingual_ids_reach_the_acoustic_tokens_of_ar_and_nar() -> None:
    """Acoustic side (VALL-E X Sec 3-4): the BOS and the prompt's steps carry the prompt
    language, every generated step the target language; the NAR's prompt frames the prompt
    language and its target frames the target language."""
    model = _model("acoustic")
    ar_calls: list[torch.Tensor] = []
    nar_calls: list[torch.Tensor] = []
    _record(model.ar.audio_language, ar_calls)
    _record(model.nar.audio_conditioner, nar_calls)
    text = torch.randint(1, 12, (2, 7))
    text_lens = torch.tensor([7, 5])
    prompt = torch.randint(0, 16, (2, 4, 4))
    prompt_lens = torch.tensor([4, 3])
    out = model.generate(
        text, text_lens, prompt, prompt_lens,
        language=torch.tensor([EN, EN]), prompt_language=torch.tensor([ZH, JA]),
        prompt_text_lens=torch.tensor([3, 2]), max_len_ratio=2.0,
    )  # fmt: skip
    prefill, steps = ar_calls[0], ar_calls[1:]
    assert prefill.shape == (2, 5)  # [BOS, 4 prompt steps], row 1 padded
    assert (prefill[0] == ZH).all() and (prefill[1, :4] == JA).all()
    assert steps and all((s == EN).all() for s in steps)
    assert len(nar_calls) == 3  # stages 2..4
    T = max(o.shape[0] for o in out)
    for ids in nar_calls:
        assert ids.shape == (2, 4 + T)
        assert (ids[0, :4] == ZH).all() and (ids[1, :3] == JA).all()
        assert (ids[:, 4:] == EN).all()


def test_text_side_ids_per_token_prompt_transcript_then_target() -> None:
    model = _model("text")
    ar_calls: list[torch.Tensor] = []
    nar_calls: list[torch.Tensor] = []
    _record(model.ar.text_conditioner, ar_calls)
    _record(model.nar.text_conditioner, nar_calls)
    text = torch.randint(1, 12, (1, 6))
    model.generate(
        text, torch.tensor([6]), torch.randint(0, 16, (1, 3, 4)), torch.tensor([3]),
        language=torch.tensor([ZH]), prompt_language=torch.tensor([EN]),
        prompt_text_lens=torch.tensor([2]), max_len_ratio=1.0,
    )  # fmt: skip
    assert ar_calls[0].tolist() == [[EN, EN, ZH, ZH, ZH, ZH]]
    # same_utterance_prefix: the NAR reads prompt transcript + target text too
    assert all(c.tolist() == [[EN, EN, ZH, ZH, ZH, ZH]] for c in nar_calls)
    # a code-switched text: every token its own id
    ar_calls.clear()
    mixed = torch.tensor([[EN, EN, ZH, JA, JA, ZH]])
    model.generate(
        text, torch.tensor([6]), torch.randint(0, 16, (1, 3, 4)), torch.tensor([3]),
        language=torch.tensor([ZH]), language_tokens=mixed, max_len_ratio=1.0,
    )  # fmt: skip
    assert torch.equal(ar_calls[0], mixed)


def test_a_nar_that_reads_the_target_text_alone_gets_the_target_ids() -> None:
    model = _model("text", prompt="other_utterance")
    calls: list[torch.Tensor] = []
    _record(model.nar.text_conditioner, calls)
    model.generate(
        torch.randint(1, 12, (1, 6)), torch.tensor([6]), torch.randint(0, 16, (1, 3, 4)),
        torch.tensor([3]), language=torch.tensor([JA]), prompt_language=torch.tensor([EN]),
        prompt_text_lens=torch.tensor([2]), max_len_ratio=1.0,
    )  # fmt: skip
    assert calls and all(c.tolist() == [[JA] * 4] for c in calls)


def test_training_ids_come_from_the_batch_per_token() -> None:
    model = _model("acoustic_and_text").train()
    cfg = model.config
    batch = dummy_batch(cfg, batch_size=2, seed=3)
    S = batch[B_.TEXT_TOKENS].shape[1]
    batch[B_.LANGUAGE] = torch.tensor([ZH, JA])
    batch[B_.LANGUAGE_TOKENS] = torch.tensor([[EN] * 2 + [ZH] * (S - 2), [JA] * S])
    text_calls: list[torch.Tensor] = []
    audio_calls: list[torch.Tensor] = []
    _record(model.ar.text_conditioner, text_calls)
    _record(model.ar.audio_language, audio_calls)
    model.loss(batch, stages=("ar",))
    assert torch.equal(text_calls[0], batch[B_.LANGUAGE_TOKENS])
    assert (audio_calls[0][0] == ZH).all() and (audio_calls[0][1] == JA).all()


def test_out_of_range_language_ids_are_refused_clearly() -> None:
    model = _model("acoustic")
    with pytest.raises(ValueError, match="3 languages"):
        model.generate(
            torch.randint(1, 12, (1, 4)), torch.tensor([4]), torch.randint(0, 16, (1, 2, 4)),
            torch.tensor([2]), language=torch.tensor([7]),
        )  # fmt: skip


def test_the_language_id_steers_generation_after_training() -> None:
    """Learning test: one text, two utterances in two languages with different codes, no
    prompt; only the acoustic language id tells them apart, and greedy generation with
    each id gives that language's codes (the id is what selects the language's tokens)."""
    torch.manual_seed(0)
    cfg = VallexConfig.tiny(language="acoustic", num_codebooks=1, num_layers=1,
                            overrides=["nar=null"])  # fmt: skip
    model = build_model(cfg)
    text = torch.tensor([3, 5, 7, 2])
    codes = [torch.randint(0, 16, (6, 1), generator=torch.Generator().manual_seed(s))
             for s in (1, 2)]  # fmt: skip
    assert not torch.equal(codes[0], codes[1])
    batch = batch_from_codes([text, text], codes)
    batch[B_.LANGUAGE] = torch.tensor([EN, ZH])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss, metrics = model.loss(batch, stages=("ar",))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(metrics["ar/acc"]) == 1.0
    model.eval()
    empty = torch.zeros(1, 0, 1, dtype=torch.long)
    for lang, want in ((EN, codes[0]), (ZH, codes[1])):
        (out,) = model.generate(text[None], torch.tensor([4]), empty, torch.tensor([0]),
                                language=torch.tensor([lang]), max_len_ratio=3.0)  # fmt: skip
        assert torch.equal(out, want), (lang, out, want)


@pytest.mark.parametrize("size", ["tiny", "base"])
def test_the_preset_composes_with_each_size(size: str) -> None:
    from valle.config import compose_config

    cfg = compose_config(
        "vallex", size, text_vocab_size=40, codebook_size=1024, num_codebooks=8,
        overrides=["language.kind=text"],
    )  # fmt: skip
    assert isinstance(cfg, VallexConfig) and cfg.language.kind == "text"
    with pytest.raises(ValueError, match="language.kind"):
        VallexConfig.tiny(language="phonemes")


def test_language_kinds_choose_their_components_by_type() -> None:
    """Each ``language.kind`` is its own settings class naming the component of each side."""
    from valle.modules.language import (
        AcousticAndTextLanguageConfig,
        AcousticLanguageConfig,
        TextLanguageConfig,
    )

    kinds = {
        "acoustic": (AcousticLanguageConfig, LanguageEmbedding, type(None)),
        "text": (TextLanguageConfig, type(None), TextLanguageConditioner),
        "acoustic_and_text": (AcousticAndTextLanguageConfig, LanguageEmbedding,
                              TextLanguageConditioner),
    }  # fmt: skip
    for kind, (settings, audio, text) in kinds.items():
        cfg = VallexConfig.tiny(language=kind)
        assert type(cfg.language) is settings and cfg.language.kind == kind
        model = build_model(cfg)
        for part, audio_side in ((model.ar, model.ar.audio_language),
                                 (model.nar, model.nar.audio_conditioner)):  # fmt: skip
            assert type(audio_side) is audio and type(part.text_conditioner) is text
