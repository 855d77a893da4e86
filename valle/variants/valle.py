"""VALL-E (Wang et al. 2023): an AR decoder for codebook 1 and a NAR for codebooks 2..Q.

Shape legend: B batch, S text tokens, P prompt frames, T frames, Q codebooks.

The wiring only: the parts live in :mod:`valle.ar` and :mod:`valle.nar`. Training (Sec 4.2)
sums the AR loss (next first-codebook code, with EOS) and the NAR loss (codebook j ~ U{2..Q}
given codebooks < j and an acoustic prompt). Inference (Sec 4.3): the text is the prompt's
transcript followed by the target text, the AR continues the prompt's first codebook and the
NAR fills the other codebooks greedily; only the continuation is returned.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.decoder import ARDecoder
from valle.ar.generate import Sampler, generate_ar, max_new_steps
from valle.config import NARConfig, VocabConfig, opt
from valle.data import batch as B_
from valle.data.batch import SynthesisInputs, pad_rows
from valle.data.featurizers import DataRequest
from valle.nar.decoder import NARDecoder
from valle.nar.prompts import prompt_policy_class
from valle.registry import register_variant
from valle.variants.tiny import TinySize, tiny_config

__all__ = ["ValleConfig", "Valle", "build_nar", "codes_only", "nar_reads_other_utterance"]

STAGES = ("ar", "nar")


@register_variant("valle")
@dataclass(frozen=True)
class ValleConfig:
    """VALL-E: which parts, how big; vocabulary facts come from the data."""

    vocab: VocabConfig = opt(help="vocabulary facts read from tokens.txt and the codec")
    ar: ARConfig | None = opt(help="AR decoder over codebook 1 (null: none)", factory=ARConfig)
    nar: NARConfig | None = opt(
        help="NAR decoder over codebooks 2..Q (null: none)", factory=NARConfig
    )

    stages: ClassVar[tuple[str, ...]] = STAGES  # the parts that train apart (train.stages)

    def build(self) -> Valle:
        ar = build_ar_decoder(self.ar, self.vocab) if self.ar is not None else None
        return Valle(ar, build_nar(self.nar, self.vocab), config=self)

    def data_request(self, stages: tuple[str, ...] | None = None) -> DataRequest:
        """The core batch, plus a second utterance per item only for a trained NAR whose
        prompt policy reads one (``nar.prompt.kind: other_utterance``)."""
        return DataRequest(other_utterance_prompt=nar_reads_other_utterance(self.nar, stages))

    @classmethod
    def tiny(
        cls,
        *,
        mask: str = "prefix",
        prompt: str = "same_utterance_prefix",
        overrides: Iterable[str] = (),
        **size: Any,
    ) -> ValleConfig:
        """A config small enough to train in seconds on a CPU (greedy AR by default); the
        contract tests (tests/variants/test_contract.py) build every variant from its own.
        ``size``: :class:`~valle.variants.tiny.TinySize` keywords (``d_model=16``)."""
        s = TinySize(**size)
        return tiny_config(cls, s, overrides, ar=s.ar(mask=mask),
                           nar=s.nar(kind=prompt))  # fmt: skip


def codes_only(full: Callable[..., tuple[list[Tensor], Any]]) -> Callable[..., list[Tensor]]:
    """A ``generate`` method returning the codes of ``full``, a method that returns (codes,
    what the model followed); it has ``full``'s signature, so callers that read which keywords
    ``generate`` takes (the Synthesizer: ``speed``, ``pitch_scale``) see them. It calls the
    instance's method of that name (a subclass's override included)."""

    @functools.wraps(full)
    def generate(self: Any, *args: Any, **kwargs: Any) -> list[Tensor]:
        return getattr(self, full.__name__)(*args, **kwargs)[0]

    generate.__doc__ = f"Zero-shot TTS; see :meth:`{full.__name__}` (this returns its codes only)."
    return generate


def build_nar(
    cfg: Any,
    vocab: VocabConfig,
    cls: Any = NARDecoder,
    parts: Callable[[int], dict[str, Any]] | None = None,
) -> Any:
    """The NAR ``cfg`` (a NAR config section, or None) describes,
    ``cls.from_config(cfg, vocab, **parts(d_model))`` (``parts``
    makes the extra modules a NAR class takes, only when it is built), or None without one
    or with a single codebook (nothing left for a NAR to predict)."""
    if cfg is None or vocab.num_codebooks <= 1:
        return None
    return cls.from_config(cfg, vocab, **(parts(cfg.backbone.d_model) if parts else {}))


def nar_reads_other_utterance(cfg: NARConfig | None, stages: tuple[str, ...] | None) -> bool:
    """Whether a NAR that trains in ``stages`` (None: all) has a prompt policy reading a
    second utterance of the speaker (the loader reads one only then)."""
    if cfg is None or (stages is not None and "nar" not in stages):
        return False
    policy: Any = prompt_policy_class(cfg.prompt.kind)
    return bool(policy.needs_other_utterance)


class Valle(nn.Module):
    """AR + NAR. ``loss(batch)`` for training, ``generate(...)`` for zero-shot TTS."""

    def __init__(
        self, ar: ARDecoder | None, nar: NARDecoder | None, config: Any | None = None
    ) -> None:
        super().__init__()
        if ar is None and nar is None:
            raise ValueError("a VALL-E model needs an AR, a NAR or both")
        self.ar = ar
        self.nar = nar
        self.config = config

    def loss(
        self,
        batch: Mapping[str, Any],
        stages: Iterable[str] = STAGES,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum of the chosen stages' losses and metrics ``"<stage>/<name>"`` (``loss``, ``acc``,
        ``top10_acc``).

        ``stages`` picks what trains: ``("ar",)`` and ``("nar",)`` train the parts apart.
        """
        self.check_batch(batch)
        stages = tuple(stages)
        unknown = [s for s in stages if s not in STAGES]
        if unknown or not stages:
            raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {stages}")
        total: Tensor | None = None
        metrics: dict[str, Tensor] = {}
        for name in stages:
            part = getattr(self, name)
            if part is None:
                raise ValueError(f"this model has no {name.upper()} (config {name}: null)")
            loss, m = part.loss(batch, generator) if name == "nar" else part.loss(batch)
            metrics.update({f"{name}/{k}": v for k, v in m.items()})
            total = loss if total is None else total + loss
        assert total is not None
        metrics["loss"] = total.detach()
        return total, metrics

    def check_batch(self, batch: Mapping[str, Any]) -> None:
        """Raise a clear error when the batch's ids do not fit the vocabulary (one device sync)."""
        if self.config is None:
            return
        v = self.config.vocab
        checks = [(B_.TEXT_TOKENS, v.text_vocab_size), (B_.AUDIO_CODES, v.codebook_size)]
        if B_.PROMPT_CODES in batch:
            checks.append((B_.PROMPT_CODES, v.codebook_size))
        present = [(k, n) for k, n in checks if batch[k].numel()]
        if not present:
            return
        stats = torch.stack(
            [torch.stack([batch[k].min(), batch[k].max()]) for k, _ in present]
        ).tolist()
        for (key, n), (lo, hi) in zip(present, stats, strict=True):
            if lo < 0 or hi >= n:
                raise ValueError(
                    f"batch[{key!r}] has ids in [{lo}, {hi}] but the model expects [0, {n}); "
                    "the model's vocabulary facts (tokens.txt, codec) do not match the data"
                )
        q = batch[B_.AUDIO_CODES].shape[-1]
        if q != v.num_codebooks:
            raise ValueError(
                f"batch['audio_codes'] has {q} codebooks but the model was built for "
                f"{v.num_codebooks}; rebuild the config with the codec's num_codebooks"
            )

    @torch.no_grad()
    def generate(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        *,
        language: Tensor | None = None,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
        max_len_ratio: float | None = None,
        nar_sampler: Sampler | None = None,
        prompt_text_lens: Tensor | None = None,
    ) -> list[Tensor]:
        """Zero-shot TTS: continue each acoustic prompt with speech for the text.

        Call ``model.eval()`` first (dropout stays as the caller set it).

        Args:
            text_tokens: (B, S) prompt transcript + target text, right-padded.
            text_lens: (B,).
            prompt_codes: (B, P, Q) acoustic prompt codes, right-padded.
            prompt_lens: (B,).
            sampler: the AR's sampler ``(logits (B, V), history (B, t), generator) -> (B,)``;
                None: the AR's default (the config's ``ar.sampler``).
            generator: random state for the samplers (on the model's device).
            nar_sampler: the NAR's sampler; None = greedy (the paper's choice).
            prompt_text_lens: (B,) leading tokens of ``text_tokens`` that are the prompt's
                transcript; needed when the NAR trained on the target text alone
                (``nar.prompt.kind`` other_utterance, random_segment or none).
        Returns:
            B long tensors (T_b, Q): the continuation only, without the prompt.
        """
        steps = generate_ar(
            self.require_ar(),
            text_tokens,
            text_lens,
            prompt_codes,
            prompt_lens,
            language=language,
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
        )
        inputs = SynthesisInputs(
            text_tokens, text_lens, prompt_codes, prompt_lens, language, prompt_text_lens
        )
        first = self.first_codebook(steps, text_lens, max_len_ratio)
        return self.complete(first, inputs, nar_sampler, generator)

    def require_ar(self) -> Any:
        """The AR (generation starts with it); a clear error for a model built without."""
        if self.ar is None:
            raise ValueError("generation needs an AR; this model was built with ar: null")
        return self.ar

    def first_codebook(
        self, steps: list[Tensor], text_lens: Tensor, max_len_ratio: float | None
    ) -> list[Tensor]:
        """The AR's steps B x (N_b, *E) -> each row's first-codebook codes B x (T_b,), at
        most ``ceil(max_len_ratio * text_lens[b])`` frames (the documented bound; a grouped
        layout's last step can pass it by up to G - 1 frames).

        The AR's prompt steps end at each prompt's last frame (a grouped layout leaves out
        the first P mod G frames), so these frames continue right after frame P: the NAR
        gets the whole prompt and places them there, no frame lost or repeated."""
        ar = self.require_ar()
        ratio = ar.max_len_ratio if max_len_ratio is None else max_len_ratio
        bound = max_new_steps(text_lens, ratio).tolist()  # frames
        return [ar.layout.from_steps(s)[:n, 0] for s, n in zip(steps, bound, strict=True)]

    def complete(
        self,
        first: list[Tensor],
        inputs: SynthesisInputs,
        sampler: Sampler | None,
        generator: torch.Generator | None,
        **nar_inputs: Any,
    ) -> list[Tensor]:
        """Each row's first codebook B x (T_b,) completed by the NAR -> B codes (T_b, Q)
        (the first codebook alone, (T_b, 1), without a NAR).

        The NAR's prompt policy picks the text of ``inputs`` it reads (the one it trained
        on); ``sampler`` None is greedy (the paper's choice); ``nar_inputs`` go to the NAR's
        ``generate`` (e.g. language ids, aligned phonemes).
        """
        if self.nar is None:
            return [f[:, None] for f in first]
        codes, lens = pad_rows(first, 0)  # (B, T)
        full = self.nar.generate(
            inputs, codes, lens, sampler=sampler, generator=generator, **nar_inputs
        )  # (B, T, Q)
        return [full[b, : int(lens[b])] for b in range(len(first))]
