"""A toy variant: the smallest model that keeps the variant contract (docs/adding_a_variant.md).

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks, V codebook size,
D model width.

Not a paper. It exists to show, in one short file, every extension point a new variant uses,
and the contract test (tests/variants/test_contract.py) runs it beside the real variants:

- a frozen config dataclass registered with ``@register_variant("toy")``, with ``build()``,
  ``tiny()`` (the contract tests' config), ``stages`` (the parts that train apart) and
  ``data_request()`` (the per-item fields it reads: here language per token, made by the
  :class:`~valle.data.featurizers.LanguagePerToken` featurizer);
- a model with ``loss(batch, stages, generator) -> (loss, {"<stage>/<name>": ...})`` and
  ``generate(text_tokens, text_lens, prompt_codes, prompt_lens, *, language, ...)`` returning
  B code tensors (T_b, Q);
- a shared component reused as is: the NAR's :class:`~valle.nar.prompts.SameUtterancePrefix`
  prompt policy splits each training utterance into prompt and target.

The model predicts every frame's Q codes at once from a summary of the text (token plus
language embeddings, averaged), a summary of the acoustic prompt (sum of the codebook
embeddings, averaged) and the frame's position (stage ``frames``); a length head predicts the
log number of frames from the same summary (stage ``length``). It is registered when this module
is imported, not by ``valle.variants``, so the CLI does not offer it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from valle.config import VocabConfig, apply_overrides, from_dict, opt
from valle.data import batch as B_
from valle.data.featurizers import DataRequest, LanguagePerToken
from valle.modules.metrics import masked_token_loss
from valle.nar.prompts import SameUtterancePrefix
from valle.registry import register_variant

__all__ = ["ToyConfig", "ToyModel"]

STAGES = ("frames", "length")


@register_variant("toy")
@dataclass(frozen=True)
class ToyConfig:
    """Toy variant: pooled text + prompt summary -> all codes of every frame, and a length."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    d_model: int = opt(32, "model width (channels)")
    num_languages: int = opt(3, "language embedding rows (count; valle.text.LANGUAGES ids)")
    max_frames: int = opt(256, "longest output the position table covers (frames)")
    max_len_ratio: float = opt(4.0, "generation bound: at most ceil(ratio * text tokens) frames")
    prompt_ratio: float = opt(0.25, "training prompt: this fraction of the utterance, in (0, 1)")

    stages: ClassVar[tuple[str, ...]] = STAGES  # the parts that train apart (train.stages)

    def build(self) -> ToyModel:
        return ToyModel(self)

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """Language id per text token; no second utterance (the prompt is a prefix)."""
        return DataRequest(featurizers=(LanguagePerToken(),))

    @classmethod
    def tiny(
        cls,
        *,
        text_vocab_size: int = 12,
        codebook_size: int = 16,
        num_codebooks: int = 4,
        overrides: Iterable[str] = (),
        **fields: Any,
    ) -> ToyConfig:
        """A config for tests: ``fields`` set top-level keys (``d_model=16``)."""
        vocab = {
            "text_vocab_size": text_vocab_size,
            "codebook_size": codebook_size,
            "num_codebooks": num_codebooks,
        }
        return apply_overrides(from_dict(cls, {"vocab": vocab, **fields}), overrides)


def _masked_mean(x: Tensor, lens: Tensor) -> Tensor:
    """(B, L, D) averaged over each row's first ``lens`` positions -> (B, D); 0 for empty rows."""
    keep = (torch.arange(x.shape[1], device=x.device) < lens[:, None]).to(x.dtype)  # (B, L)
    return (x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)


class ToyModel(nn.Module):
    """See the module docstring. ``loss(batch)`` trains, ``generate(...)`` synthesizes."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        v, d = config.vocab, config.d_model
        self.config = config
        self.num_codebooks, self.codebook_size = v.num_codebooks, v.codebook_size
        self.text = nn.Embedding(v.text_vocab_size, d)
        self.language = nn.Embedding(config.num_languages, d)
        self.codes = nn.Embedding(v.num_codebooks * v.codebook_size, d)  # one table, offset per Q
        self.position = nn.Embedding(config.max_frames, d)
        self.body = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.heads = nn.Linear(d, v.num_codebooks * v.codebook_size)
        self.length = nn.Linear(d, 1)
        self.prompt_policy = SameUtterancePrefix(config.prompt_ratio, config.prompt_ratio)

    def summary(
        self,
        text: Tensor,
        text_lens: Tensor,
        languages: Tensor,
        prompt: Tensor,
        prompt_lens: Tensor,
    ) -> Tensor:
        """Text (B, S), languages per token (B, S), prompt codes (B, P, Q) -> (B, D)."""
        offsets = torch.arange(self.num_codebooks, device=prompt.device) * self.codebook_size
        t = _masked_mean(self.text(text) + self.language(languages), text_lens)  # (B, D)
        p = _masked_mean(self.codes(prompt + offsets).sum(2), prompt_lens)  # (B, D)
        return t + p

    def frame_logits(self, h: Tensor, num_frames: int) -> Tensor:
        """Summary (B, D) -> logits (B, T, Q, V) of frames 0..T-1."""
        if num_frames > self.config.max_frames:
            raise ValueError(f"{num_frames} frames > max_frames={self.config.max_frames}")
        pos = self.position(torch.arange(num_frames, device=h.device))  # (T, D)
        x = self.body(h[:, None] + pos)  # (B, T, D)
        return self.heads(x).view(*x.shape[:2], self.num_codebooks, self.codebook_size)

    def loss(
        self,
        batch: Mapping[str, Any],
        stages: Iterable[str] = STAGES,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum of the chosen stages' losses; metrics ``"<stage>/<name>"`` and ``"loss"``."""
        stages = tuple(stages)
        if not stages or any(s not in STAGES for s in stages):
            raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {stages}")
        split = self.prompt_policy(batch, generator)
        h = self.summary(
            batch[B_.TEXT_TOKENS],
            batch[B_.TEXT_LENS],
            batch[B_.LANGUAGE_TOKENS],  # asked for in ToyConfig.data_request
            split.prompt_codes,
            split.prompt_lens,
        )
        metrics: dict[str, Tensor] = {}
        total = h.new_zeros(())
        if "frames" in stages:
            logits = self.frame_logits(h, split.target_codes.shape[1])  # (B, T, Q, V)
            mask = split.target_mask()[..., None].expand_as(split.target_codes)  # (B, T, Q)
            loss, m = masked_token_loss(logits, split.target_codes, mask)
            total = total + loss
            metrics.update({f"frames/{k}": v for k, v in m.items()})
        if "length" in stages:
            target = split.target_lens.clamp(min=1).float().log()  # (B,)
            loss = (self.length(h).squeeze(-1) - target).pow(2).mean()
            total = total + loss
            metrics["length/loss"] = loss.detach()
        metrics["loss"] = total.detach()
        return total, metrics

    @torch.no_grad()
    def generate(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        *,
        language: Tensor | None = None,
        prompt_text_lens: Tensor | None = None,
        max_len_ratio: float | None = None,
        sampler: Any | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Tensor]:
        """B long tensors (T_b, Q), T_b <= ceil(max_len_ratio * S_b); greedy without a sampler.

        The text is the prompt's transcript then the target text, as in training (the prompt
        is a prefix of the training utterance), so ``prompt_text_lens`` is not needed.
        """
        del prompt_text_lens
        B, S = text_tokens.shape
        lang = language if language is not None else text_tokens.new_zeros(B)
        h = self.summary(text_tokens, text_lens, lang[:, None].expand(B, S), prompt_codes,
                         prompt_lens)  # fmt: skip
        ratio = self.config.max_len_ratio if max_len_ratio is None else max_len_ratio
        bound = torch.ceil(ratio * text_lens.float()).long().clamp(max=self.config.max_frames)
        lens = torch.minimum(self.length(h).squeeze(-1).exp().round().long().clamp(min=1), bound)
        T = int(lens.max()) if B else 0
        logits = self.frame_logits(h, T)  # (B, T, Q, V)
        if sampler is None:
            ids = logits.argmax(-1)
        else:
            flat = logits.reshape(-1, self.codebook_size)  # (B*T*Q, V)
            empty = flat.new_zeros(flat.shape[0], 0, dtype=torch.long)
            ids = sampler(flat, empty, generator).view(B, T, self.num_codebooks)
        return [ids[b, : int(lens[b])] for b in range(B)]
