"""The batch contract between valle.data and the models.

Shape legend: B batch, S text tokens, T code frames, P prompt frames, Q codebooks.

Every training batch is a plain ``dict`` with these keys (made by
``valle.data.dataset.SpeechTokenDataset``; ``valle.testing`` makes dummy ones):

===================  ==================  ==========================================================
key                  type / shape        meaning
===================  ==================  ==========================================================
``text_tokens``      long (B, S)         phoneme ids from the symbol table, right-padded with
                                         ``PAD_ID`` (0); no BOS/EOS added here (models add theirs)
``text_lens``        long (B,)           valid length of each row of ``text_tokens``
``language``         long (B,)           language id per utterance (``valle.text.LANGUAGES``)
``audio_codes``      long (B, T, Q)      codec codes of the target utterance, right-padded with 0
``audio_lens``       long (B,)           valid frames per row of ``audio_codes``
``prompt_codes``     long (B, P, Q)      acoustic prompt (another utterance of the same speaker
                                         or a segment of the same one), right-padded with 0;
                                         present only when the dataset has a prompt provider
``prompt_lens``      long (B,)           valid frames per row of ``prompt_codes`` (with the above)
``prompt_start``     long (B,)           frame of ``audio_codes`` the row's prompt was copied from
                                         (a prefix of the target: 0), -1 when it comes from
                                         another utterance; present with ``prompt_codes``
``durations``        long (B, S)         frames per text token (code frames, >= 1 each, a row
                                         sums to its ``audio_lens``) from the aligner stage
                                         (``valle.align``), padded with 0; ``durations_lens``
                                         (B,) equals ``text_lens``; optional: only with the
                                         ``Durations`` featurizer (VALL-E R, RALL-E)
``frame_rate``       float (B, 1)        the codec's code frames per second of each item;
                                         ``frame_rate_lens`` (B,) ones; optional: only with the
                                         ``FrameRate`` featurizer (VALL-E 2's NAR split)
``cut_ids``          list[str] (B)       lhotse cut ids
``speakers``         list[str] (B)       speaker ids
===================  ==================  ==========================================================

Optional per-item fields that a variant asks for (``valle.data.featurizers``: language per
token, durations, pitch buckets, mel frames, ...) travel under their featurizer's name; collate
pads every sequence field it finds, with the pad value of :data:`PAD_VALUES` (or the
featurizer's own), and adds its lengths under :func:`lens_key` (``text_tokens`` ->
``text_lens``, any other ``x`` -> ``x_lens``).

Padding values are never meaningful: consumers mask with the ``*_lens`` tensors.

Synthesis takes one :class:`SynthesisInputs` (text, lengths, prompt, languages, optional
durations or mel prompt) from the CLI down to the model, instead of the 4-tuple
``(text_tokens, text_lens, prompt_codes, prompt_lens)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

PAD_ID = 0

TEXT_TOKENS = "text_tokens"
TEXT_LENS = "text_lens"
LANGUAGE = "language"
AUDIO_CODES = "audio_codes"
AUDIO_LENS = "audio_lens"
PROMPT_CODES = "prompt_codes"
PROMPT_LENS = "prompt_lens"
DURATIONS = "durations"
CUT_IDS = "cut_ids"
SPEAKERS = "speakers"
PROMPT_START = "prompt_start"
LANGUAGE_TOKENS = "language_tokens"
PITCH = "pitch"
PITCH_TOKENS = "pitch_tokens"
DURATION_TOKENS = "duration_tokens"
MEL = "mel"
FRAME_RATE = "frame_rate"

PAD_VALUES: dict[str, float] = {
    TEXT_TOKENS: PAD_ID,  # phoneme ids; PAD_ID is never a phoneme
    AUDIO_CODES: 0,  # codec codes (0 is a real code: mask with audio_lens)
    PROMPT_CODES: 0,  # codec codes (mask with prompt_lens)
    DURATIONS: 0,  # frames per text token (a padded token lasts 0 frames; real ones >= 1)
    LANGUAGE_TOKENS: 0,  # language id per text token (mask with text_lens)
    PITCH: 0,  # pitch bucket per text token (mask with text_lens)
    PITCH_TOKENS: 0,  # RALL-E pitch token per phoneme (0 unvoiced, 1..M_p; valle.data.prosody)
    DURATION_TOKENS: 0,  # RALL-E duration token per phoneme (frames clipped at M_d)
    MEL: 0.0,  # log-mel frames (mask with mel_lens; featurizers.MelFrames pads with silence)
    FRAME_RATE: 0.0,  # frames per second, one value per item (never padded in practice)
}
"""Pad value of each sequence field; a field not listed pads with 0 (or its featurizer's)."""

_LENS = {TEXT_TOKENS: TEXT_LENS, AUDIO_CODES: AUDIO_LENS, PROMPT_CODES: PROMPT_LENS}


def lens_key(key: str) -> str:
    """Key of the lengths of sequence field ``key`` (``audio_codes`` -> ``audio_lens``)."""
    return _LENS.get(key, f"{key}_lens")


def pad_value(key: str) -> float:
    """Pad value of sequence field ``key`` (:data:`PAD_VALUES`, else 0)."""
    return PAD_VALUES.get(key, 0)


def pad_rows(rows: Sequence[Tensor], value: float = PAD_ID) -> tuple[Tensor, Tensor]:
    """B tensors (L_b, ...) -> right-padded (B, max L_b, ...) and lengths (B,)."""
    if not rows:
        raise ValueError("cannot pad an empty list of rows")
    lens = torch.tensor([r.shape[0] for r in rows], dtype=torch.long, device=rows[0].device)
    out = rows[0].new_full((len(rows), int(lens.max()), *rows[0].shape[1:]), value)
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r
    return out, lens


def _rows(x: Tensor, lens: Tensor) -> list[Tensor]:
    return [x[b, : int(n)] for b, n in enumerate(lens.tolist())]


@dataclass(frozen=True, eq=False)
class SynthesisInputs:
    """Everything a zero-shot synthesis call needs, batched and right-padded.

    Shape legend: B batch, S text tokens, P prompt frames, Q codebooks, M mel prompt frames,
    F mel bins.

    Attributes:
        text_tokens: (B, S) long, the prompt's transcript followed by the target text
            (VALL-E Sec 4.3), padded with ``PAD_ID``.
        text_lens: (B,) valid tokens per row.
        prompt_codes: (B, P, Q) long acoustic prompt codes, padded with 0.
        prompt_lens: (B,) valid prompt frames per row.
        language: (B,) long target language ids (``valle.text.LANGUAGES``), or None.
        prompt_text_lens: (B,) how many leading tokens of each row are the prompt's
            transcript, or None when unknown. A model whose NAR trained on the target text
            alone needs it (see ``valle.nar.prompts``).
        durations: (B, S) long frames per text token to force an alignment, or None.
        prompt_mel: (B, M, F) float mel prompt for a mel model, or None.
        prompt_mel_lens: (B,) valid mel prompt frames (with ``prompt_mel``).
    """

    text_tokens: Tensor
    text_lens: Tensor
    prompt_codes: Tensor
    prompt_lens: Tensor
    language: Tensor | None = None
    prompt_text_lens: Tensor | None = None
    durations: Tensor | None = None
    prompt_mel: Tensor | None = None
    prompt_mel_lens: Tensor | None = None

    def __post_init__(self) -> None:
        B = self.text_tokens.shape[0]
        if self.text_tokens.dim() != 2 or self.prompt_codes.dim() != 3:
            raise ValueError(
                f"need text_tokens (B, S) and prompt_codes (B, P, Q), got "
                f"{tuple(self.text_tokens.shape)} and {tuple(self.prompt_codes.shape)}"
            )
        for name in ("text_lens", "prompt_codes", "prompt_lens", "language", "prompt_text_lens",
                     "durations", "prompt_mel", "prompt_mel_lens"):  # fmt: skip
            t = getattr(self, name)
            if t is not None and t.shape[0] != B:
                raise ValueError(f"{name} has {t.shape[0]} rows, text_tokens {B}")
        if (self.prompt_mel is None) != (self.prompt_mel_lens is None):
            raise ValueError("give prompt_mel and prompt_mel_lens together")
        if self.prompt_text_lens is not None and bool(
            (self.prompt_text_lens > self.text_lens).any()
        ):
            raise ValueError(
                "prompt_text_lens exceeds text_lens: the prompt transcript is a prefix"
            )

    @property
    def batch_size(self) -> int:
        return int(self.text_tokens.shape[0])

    @classmethod
    def from_rows(
        cls,
        texts: Sequence[Tensor],
        prompts: Sequence[Tensor],
        *,
        language: Sequence[int] | Tensor | None = None,
        prompt_text_lens: Sequence[int] | Tensor | None = None,
    ) -> SynthesisInputs:
        """From per-item text ids (S_b,) (prompt transcript + target text) and prompts (P_b, Q)."""
        text, text_lens = pad_rows(texts, PAD_ID)  # (B, S)
        prompt, prompt_lens = pad_rows(prompts, 0)  # (B, P, Q)
        dev = text.device

        def as_long(x: Sequence[int] | Tensor | None) -> Tensor | None:
            return None if x is None else torch.as_tensor(x, dtype=torch.long, device=dev)

        return cls(text, text_lens, prompt, prompt_lens, as_long(language),
                   as_long(prompt_text_lens))  # fmt: skip

    def to(self, device: torch.device | str) -> SynthesisInputs:
        moved = {
            f.name: (v.to(device) if isinstance(v, Tensor) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }
        return SynthesisInputs(**moved)

    def replace(self, **changes: Any) -> SynthesisInputs:
        """A copy with the given fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def row(self, b: int) -> SynthesisInputs:
        """Row ``b`` alone, trimmed to its lengths (a batch of one)."""

        def one(x: Tensor | None, n: Tensor | None = None) -> Tensor | None:
            if x is None:
                return None
            x = x[b : b + 1]
            return x[:, : int(n[b])] if n is not None else x

        return SynthesisInputs(
            one(self.text_tokens, self.text_lens),  # type: ignore[arg-type]
            one(self.text_lens),  # type: ignore[arg-type]
            one(self.prompt_codes, self.prompt_lens),  # type: ignore[arg-type]
            one(self.prompt_lens),  # type: ignore[arg-type]
            one(self.language),
            one(self.prompt_text_lens),
            one(self.durations, self.text_lens),
            one(self.prompt_mel, self.prompt_mel_lens),
            one(self.prompt_mel_lens),
        )

    def target_text_only(self) -> SynthesisInputs:
        """The same inputs with the prompt transcript cut from the text (needs
        ``prompt_text_lens``); ``durations`` lose the same leading tokens."""
        if self.prompt_text_lens is None:
            raise ValueError(
                "this model reads the target text alone but the inputs do not say where the "
                "prompt transcript ends: pass prompt_text_lens (SynthesisInputs.prompt_text_lens)"
            )
        starts = self.prompt_text_lens.tolist()
        texts = [
            t[s:] for t, s in zip(_rows(self.text_tokens, self.text_lens), starts, strict=True)
        ]
        text, lens = pad_rows(texts, PAD_ID)
        durations = None
        if self.durations is not None:
            rows = _rows(self.durations, self.text_lens)
            durations, _ = pad_rows([d[s:] for d, s in zip(rows, starts, strict=True)], 0)
        return self.replace(
            text_tokens=text,
            text_lens=lens,
            prompt_text_lens=torch.zeros_like(self.prompt_text_lens),
            durations=durations,
        )

    def without_prompt(self) -> SynthesisInputs:
        """The same inputs with an empty acoustic prompt (P = 0)."""
        return self.replace(
            prompt_codes=self.prompt_codes[:, :0], prompt_lens=torch.zeros_like(self.prompt_lens)
        )
