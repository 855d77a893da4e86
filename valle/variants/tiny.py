"""The sizes every variant's ``tiny()`` config shares: vocabulary facts and a small backbone.

Each variant's ``Config.tiny(**size, ...)`` (the contract tests' config, tests/variants/
test_contract.py) takes these as keywords and adds only what differs (layout, prompt, prosody,
mel, ...); :func:`tiny_config` assembles the sections and applies the overrides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from valle.config import apply_overrides, from_dict

__all__ = ["TinySize", "tiny_config"]

C = TypeVar("C")


TINY_VOCAB = {"text_vocab_size": 12, "codebook_size": 16, "num_codebooks": 4}  # counts
TINY_BACKBONE = {"d_model": 32, "num_layers": 2, "num_heads": 2, "ffn_dim": 64, "dropout": 0.0}
# the generation bound (frames per text token) and the AR's sampler kind (greedy: the
# contract tests compare outputs exactly)
TINY_GENERATION = {"max_len_ratio": 4.0, "sampler": "greedy"}


class TinySize:
    """A model small enough to train in seconds on a CPU: keywords of :data:`TINY_VOCAB`,
    :data:`TINY_BACKBONE` and :data:`TINY_GENERATION` override their defaults."""

    def __init__(self, **size: Any) -> None:
        known = {**TINY_VOCAB, **TINY_BACKBONE, **TINY_GENERATION}
        unknown = sorted(set(size) - set(known))
        if unknown:
            raise TypeError(f"unknown tiny() size keyword(s) {unknown}; known: {sorted(known)}")
        self.values = {**known, **size}
        self.max_len_ratio: float = self.values["max_len_ratio"]
        self.sampler: str = self.values["sampler"]

    def vocab(self) -> dict[str, Any]:
        """The ``vocab`` section."""
        return {k: self.values[k] for k in TINY_VOCAB}

    def backbone(self) -> dict[str, Any]:
        """A ``backbone`` section (:class:`~valle.config.TransformerConfig`)."""
        return {k: self.values[k] for k in TINY_BACKBONE}

    def ar(self, **more: Any) -> dict[str, Any]:
        """An ``ar`` section (:class:`~valle.ar.config.ARConfig`): this backbone, length
        bound and sampler kind, and ``more`` component sections."""
        return {"backbone": self.backbone(), **more, "max_len_ratio": self.max_len_ratio,
                "sampler": {"kind": self.sampler}}  # fmt: skip

    def nar(self, **prompt: Any) -> dict[str, Any]:
        """A ``nar`` section: this backbone and the ``prompt`` policy's settings."""
        return {"backbone": self.backbone(), "prompt": prompt}


def tiny_config(cls: type[C], size: TinySize, overrides: Iterable[str] = (), **sections: Any) -> C:
    """``cls`` from ``size``'s vocabulary and ``sections`` (plain dicts), then ``overrides``
    (``key=value`` strings, as on the command line)."""
    return apply_overrides(from_dict(cls, {"vocab": size.vocab(), **sections}), overrides)
