"""Tiny models and dummy batches for tests and examples (tiny configs live on the variants).

Shape legend: B batch, S text tokens, T frames, P prompt frames, Q codebooks.
"""

from __future__ import annotations

from typing import Any

import torch

from valle.data import batch as B_

__all__ = [
    "tiny_valle_config",
    "tiny_config",
    "tiny_model",
    "dummy_batch",
    "batch_from_codes",
    "synthesis_inputs",
    "generate_from",
]


def tiny_valle_config(**kwargs: Any) -> Any:
    """``ValleConfig.tiny(**kwargs)``: a VALL-E config small enough to train in seconds."""
    return tiny_config("valle", **kwargs)


def tiny_config(variant: str = "valle", **kwargs: Any) -> Any:
    """The tiny config of a registered variant: its config class's ``tiny(**kwargs)``."""
    from valle.registry import get_variant

    cls = get_variant(variant)
    tiny = getattr(cls, "tiny", None)
    if tiny is None:
        raise TypeError(
            f"variant {variant!r} ({cls.__name__}) has no tiny() classmethod; every variant "
            "gives one for the contract tests (docs/adding_a_variant.md)"
        )
    return tiny(**kwargs)


def tiny_model(seed: int = 0, variant: str = "valle", **config_kwargs: Any) -> torch.nn.Module:
    """A tiny model with seeded random weights (the global RNG is left untouched)."""
    cfg = tiny_config(variant, **config_kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cfg.build()


def _pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([r.shape[0] for r in rows], dtype=torch.long)
    out = rows[0].new_zeros((len(rows), int(lens.max()), *rows[0].shape[1:]))
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r
    return out, lens


def batch_from_codes(
    texts: list[torch.Tensor],
    codes: list[torch.Tensor],
    prompts: list[torch.Tensor] | None = None,
) -> dict[str, Any]:
    """A batch dict (valle/data/batch.py) from per-item text ids (S_b,) and codes (T_b, Q)."""
    text_tokens, text_lens = _pad(texts)
    audio_codes, audio_lens = _pad(codes)
    batch: dict[str, Any] = {
        B_.TEXT_TOKENS: text_tokens,
        B_.TEXT_LENS: text_lens,
        B_.LANGUAGE: torch.zeros(len(texts), dtype=torch.long),
        B_.AUDIO_CODES: audio_codes,
        B_.AUDIO_LENS: audio_lens,
        B_.CUT_IDS: [f"cut-{b}" for b in range(len(texts))],
        B_.SPEAKERS: [f"spk-{b % 2}" for b in range(len(texts))],
    }
    if prompts is not None:
        batch[B_.PROMPT_CODES], batch[B_.PROMPT_LENS] = _pad(prompts)
    return batch


def dummy_batch(
    cfg: Any,
    batch_size: int = 2,
    *,
    text_len: tuple[int, int] = (3, 8),
    audio_len: tuple[int, int] = (4, 12),
    prompt_len: tuple[int, int] | None = (2, 5),
    seed: int = 0,
) -> dict[str, Any]:
    """Random batch following the batch contract, lengths drawn from the inclusive ranges.

    Text ids avoid 0 (padding); ``prompt_len=None`` leaves out ``prompt_codes``. The fields
    the variant asks for (``data_request``) come from its featurizers' ``example()``.
    """
    g = torch.Generator().manual_seed(seed)
    v = cfg.vocab

    def n(lo_hi: tuple[int, int]) -> int:
        return int(torch.randint(lo_hi[0], lo_hi[1] + 1, (1,), generator=g))

    texts = [
        torch.randint(1, v.text_vocab_size, (n(text_len),), generator=g) for _ in range(batch_size)
    ]
    codes = [
        torch.randint(0, v.codebook_size, (n(audio_len), v.num_codebooks), generator=g)
        for _ in range(batch_size)
    ]
    prompts = None
    if prompt_len is not None:
        prompts = [
            torch.randint(0, v.codebook_size, (n(prompt_len), v.num_codebooks), generator=g)
            for _ in range(batch_size)
        ]
    batch = batch_from_codes(texts, codes, prompts)
    from valle.registry import data_request

    for f in data_request(cfg).featurizers:  # the fields the variant asks for, made up
        make = getattr(f, "example", None)
        if make is None:
            raise TypeError(f"featurizer {f.name!r} has no example(); dummy_batch cannot fake it")
        rows = [make(len(t), len(c), g) for t, c in zip(texts, codes, strict=True)]
        batch[f.name], batch[B_.lens_key(f.name)] = B_.pad_rows(rows, f.pad_value)
    return batch


def synthesis_inputs(batch: dict[str, Any]) -> B_.SynthesisInputs:
    """Zero-shot inputs from a (dummy) batch: its text read as prompt transcript (the first
    half of each row's tokens) + target text, its ``prompt_codes`` as the prompt; with mel
    frames in the batch (a mel model), their first half is the mel prompt too."""
    prompt_mel = prompt_mel_lens = None
    if B_.MEL in batch:
        prompt_mel_lens = batch[B_.lens_key(B_.MEL)] // 2
        prompt_mel = batch[B_.MEL][:, : int(prompt_mel_lens.max())]
    return B_.SynthesisInputs(
        batch[B_.TEXT_TOKENS],
        batch[B_.TEXT_LENS],
        batch[B_.PROMPT_CODES],
        batch[B_.PROMPT_LENS],
        language=batch.get(B_.LANGUAGE),
        prompt_text_lens=batch[B_.TEXT_LENS] // 2,
        prompt_mel=prompt_mel,
        prompt_mel_lens=prompt_mel_lens,
    )


def generate_from(model: torch.nn.Module, inputs: B_.SynthesisInputs, **kwargs: Any) -> Any:
    """``model.generate`` on a :class:`~valle.data.batch.SynthesisInputs`.

    The one place that unpacks the inputs into the ``(text_tokens, text_lens, prompt_codes,
    prompt_lens, *, language, prompt_text_lens)`` signature the variants' ``generate`` still
    has; when ``generate`` takes the inputs object, only this changes.
    """
    generate: Any = model.generate
    if inputs.durations is not None:  # a forced alignment (models with prosody control)
        kwargs = {"durations": inputs.durations, **kwargs}
    if inputs.prompt_mel is not None:  # a mel prompt (mel models)
        kwargs = {"prompt_mel": inputs.prompt_mel, "prompt_mel_lens": inputs.prompt_mel_lens,
                  **kwargs}  # fmt: skip
    return generate(
        inputs.text_tokens,
        inputs.text_lens,
        inputs.prompt_codes,
        inputs.prompt_lens,
        language=inputs.language,
        prompt_text_lens=inputs.prompt_text_lens,
        **kwargs,
    )
