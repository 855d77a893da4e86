"""Tiny VALL-E configs, models and dummy batches for tests and examples.

Shape legend: B batch, S text tokens, T frames, P prompt frames, Q codebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from valle.config import apply_overrides, from_dict
from valle.data import batch as B_

__all__ = [
    "tiny_valle_config",
    "tiny_config",
    "register_tiny_config",
    "tiny_model",
    "dummy_batch",
    "batch_from_codes",
]


def tiny_valle_config(
    *,
    text_vocab_size: int = 12,
    codebook_size: int = 16,
    num_codebooks: int = 4,
    d_model: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    ffn_dim: int = 64,
    dropout: float = 0.0,
    mask: str = "prefix",
    prompt: str = "same_utterance_prefix",
    max_len_ratio: float = 4.0,
    sampler: str = "greedy",
    overrides: Iterable[str] = (),
) -> Any:
    """A VALL-E config small enough to train in seconds on a CPU (greedy AR by default)."""
    backbone = {
        "num_layers": num_layers,
        "num_heads": num_heads,
        "d_model": d_model,
        "ffn_dim": ffn_dim,
        "dropout": dropout,
    }
    from valle.registry import get_variant

    cfg: Any = from_dict(
        get_variant("valle"),
        {
            "vocab": {
                "text_vocab_size": text_vocab_size,
                "codebook_size": codebook_size,
                "num_codebooks": num_codebooks,
            },
            "ar": {
                "backbone": backbone,
                "mask": mask,
                "max_len_ratio": max_len_ratio,
                "sampler": {"kind": sampler},
            },
            "nar": {"backbone": backbone, "prompt": {"kind": prompt}},
        },
    )
    return apply_overrides(cfg, overrides)


_TINY: dict[str, Callable[..., Any]] = {"valle": tiny_valle_config}


def register_tiny_config(variant: str, factory: Callable[..., Any]) -> None:
    """Register the tiny-config factory of a variant (the contract tests run every variant)."""
    _TINY[variant] = factory


def tiny_config(variant: str = "valle", **kwargs: Any) -> Any:
    """A tiny config of any registered variant that has a tiny factory."""
    if variant not in _TINY:
        raise KeyError(
            f"no tiny config factory for variant {variant!r}; add one with "
            f"valle.testing.model.register_tiny_config (have: {', '.join(sorted(_TINY))})"
        )
    return _TINY[variant](**kwargs)


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

    Text ids avoid 0 (padding); ``prompt_len=None`` leaves out ``prompt_codes``.
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
    return batch_from_codes(texts, codes, prompts)
