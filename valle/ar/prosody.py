"""An AR decoder with a prosody chain of thought (RALL-E, Xin et al. 2024, arXiv 2404.03204).

Shape legend: B batch, S text tokens (phonemes), T frames, P prompt frames, N audio inputs,
D model width, V codebook size, M_p pitch buckets, M_d largest duration token.

RALL-E Sec 3.2: before the speech tokens the AR predicts, for every phoneme, a pitch token
and a duration token; the two are embedded and their embeddings summed, so the chain of
thought is one step per phoneme. The packed sequence is::

    [ phonemes x_0..x_{S-1} ; prosody r_0..r_{S-1} ; BOS, c_0 .. c_{T-1} ]

with ``r_j = (pitch_j, duration_j)`` (segment PROSODY, index j = its phoneme). As in any LM
the hidden state of a position predicts the next token: the last phoneme's state predicts
``r_0``, ``r_j``'s state predicts ``r_{j+1}``, the audio BOS predicts ``c_0`` and the last
frame's state predicts EOS. Two linear heads (pitch, duration) read the prosody states;
the layout's head reads the audio states; the losses are summed and logged apart
(``pitch_loss``, ``duration_loss``, ``code_loss``).

One addition to the paper's inputs: the input at ``r_j`` also carries the embedding of
the *next* phoneme ``x_{j+1}`` (the text embedding, shared), the phoneme whose prosody that
state predicts, as VALL-E R's steps carry their aligned phoneme; the model need not find
it by attention.

Each audio input carries ``align``, the phoneme of the frame it predicts (from the
durations: ground truth in training, the predicted or forced ones at inference), which the
duration-guided mask (:class:`~valle.ar.masks.DurationGuidedMask`, Sec 3.3) reads; the
duration-guided stop (:class:`~valle.ar.stops.DurationStop`, Sec 3.3) ends a row after
``D = sum(d)`` frames. Generation (:meth:`ProsodyARDecoder.generate`) first decodes the
prosody tokens (a KV-cached loop; prosody control forces or transforms them, Sec 4.4 of
this toolkit's docs: durations or pitch given, durations scaled by a speed, pitch scaled
by a factor), then runs the shared loop :func:`~valle.ar.generate.generate_ar` over the
speech tokens through :class:`ProsodyDecoding`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.decoder import ARDecoder
from valle.ar.generate import DecodingOf, generate_ar
from valle.ar.masks import attention_mask
from valle.ar.pointer import prompt_alignment, uniform_durations
from valle.config import ConfigError, VocabConfig, opt
from valle.data import batch as B_
from valle.modules.embedding import SinusoidalPositionalEncoding, TokenEmbedding
from valle.modules.metrics import masked_token_loss
from valle.modules.positions import PROSODY, SegmentPositions
from valle.modules.transformer import KVCache
from valle.sampling.base import TokenSampler
from valle.sampling.factory import SampleConfig, SamplerConfig

__all__ = [
    "ProsodyARDecoder",
    "ProsodyCoTConfig",
    "ProsodyControl",
    "ProsodyDecoding",
    "ProsodyTokens",
    "build_prosody_decoder",
    "check_prosody_config",
    "frame_alignment",
]

logger = logging.getLogger(__name__)

PITCH_TOKENS = "pitch_tokens"
DURATION_TOKENS = "duration_tokens"


def _nucleus() -> SamplerConfig:
    return SampleConfig(top_p=0.9)


@dataclass(frozen=True)
class ProsodyCoTConfig:
    """The prosody chain of thought's token sets (RALL-E Sec 3.1-3.2) and its sampler.

    ``pitch_buckets`` M_p: pitch token 0 is an unvoiced phoneme, 1..M_p the log-F0 buckets
    (``valle.data.prosody.PitchQuantizer``); null: no pitch tokens. ``max_duration`` M_d:
    duration tokens 0..M_d (frames, clipped at M_d); null: no duration tokens (then neither
    the duration-guided mask nor the duration stop can be used).
    """

    pitch_buckets: int | None = opt(256, "M_p: voiced pitch buckets (count; null: no pitch CoT)")
    max_duration: int | None = opt(
        32, "M_d: duration tokens clip at this many frames (count; null: no duration CoT)"
    )
    sampler: SamplerConfig = opt(
        help="sampler of the pitch and duration tokens (RALL-E: nucleus 0.9)", factory=_nucleus
    )

    def __post_init__(self) -> None:
        if self.pitch_buckets is None and self.max_duration is None:
            raise ConfigError("prosody: give pitch_buckets or max_duration (or set prosody: null)")
        for name in ("pitch_buckets", "max_duration"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"prosody.{name} must be >= 1, got {v}")


class ProsodyTokens(NamedTuple):
    """Per-phoneme prosody of a batch; a stream the model does not use is None."""

    pitch: Tensor | None  # (B, S) pitch tokens (0 unvoiced, 1..M_p)
    duration: Tensor | None  # (B, S) duration tokens (0..M_d)
    frames: Tensor | None  # (B, S) frames per phoneme the audio follows (unclipped)


@dataclass(frozen=True)
class ProsodyControl:
    """How the user steers the chain of thought at inference (forced or transformed tokens).

    Attributes:
        durations: (B, S) frames per target phoneme to force (entries of the prompt
            transcript are ignored), e.g. a reference's; the duration tokens are their
            clipped values and the speech follows the given frames.
        pitch: (B, S) pitch tokens to force (e.g. copied from a reference with
            ``valle.data.prosody``); entries < 0 are left to the model.
        speed: speaking-rate factor: every target duration (predicted or forced) becomes
            ``round(d / speed)`` frames (>= 1).
        pitch_scale: F0 factor: every voiced target pitch token (predicted or forced) moves
            by ``round(M_p * log(scale) / log(f_max / f_min))`` buckets.

    The model decodes its chain of thought unchanged (forced tokens aside) and the transforms
    apply to the finished prosody, which the speech tokens then read and follow: a speed of
    0.5 gives exactly twice the frames of the model's own durations.
        prompt_durations: (B, S) frames per prompt-transcript token (summing to the prompt
            frames); None: the prompt's frames split uniformly over its transcript.
        prompt_pitch: (B, S) pitch tokens of the prompt transcript (None: predicted).
        pitch_bucket_ratio: ``log(f_max / f_min)`` of the quantiser (for ``pitch_scale``).
    """

    durations: Tensor | None = None
    pitch: Tensor | None = None
    speed: float | None = None
    pitch_scale: float | None = None
    prompt_durations: Tensor | None = None
    prompt_pitch: Tensor | None = None
    pitch_bucket_ratio: float = math.log(600.0 / 50.0)

    def __post_init__(self) -> None:
        if self.speed is not None and not self.speed > 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        if self.pitch_scale is not None and not self.pitch_scale > 0:
            raise ValueError(f"pitch_scale must be > 0, got {self.pitch_scale}")


def frame_alignment(
    prompt_align: Tensor, prompt_lens: Tensor, durations: Tensor, text_lens: Tensor, length: int
) -> Tensor:
    """The phoneme of each frame of ``[prompt ; continuation]`` (B, length).

    Frame f < P_b has the prompt's alignment ``prompt_align`` (B, P) (NO_ALIGN where none);
    frame f >= P_b the phoneme of continuation frame ``f - P_b`` under the target
    ``durations`` (B, S) (0 on the prompt transcript), clamped to the last phoneme (frames
    past ``D``: the EOS query and the steps after the stop).
    """
    B = durations.shape[0]
    f = torch.arange(length, device=durations.device).expand(B, length)  # (B, L)
    rel = (f - prompt_lens[:, None]).clamp(min=0)
    ends = durations.long().cumsum(-1)  # (B, S)
    target = torch.searchsorted(ends, rel.contiguous(), right=True)  # (B, L)
    target = torch.minimum(target, (text_lens - 1).clamp(min=0)[:, None])
    P = prompt_align.shape[1]
    if P:
        pa = prompt_align.gather(1, f.clamp(max=P - 1))
        return torch.where(f < prompt_lens[:, None], pa, target)
    return target


class ProsodyEmbedding(nn.Module):
    """A prosody step (pitch, duration) + the next phoneme -> (..., D): the embeddings summed."""

    def __init__(self, d_model: int, pitch_classes: int | None, duration_classes: int | None):
        super().__init__()
        self.pitch = None if pitch_classes is None else TokenEmbedding(pitch_classes, d_model)
        self.duration = (
            None if duration_classes is None else TokenEmbedding(duration_classes, d_model)
        )

    def forward(self, tokens: ProsodyTokens, next_phoneme: Tensor) -> Tensor:
        x = next_phoneme  # (B, S, D)
        if self.pitch is not None:
            assert tokens.pitch is not None
            x = x + self.pitch(tokens.pitch)
        if self.duration is not None:
            assert tokens.duration is not None
            x = x + self.duration(tokens.duration)
        return x


class ProsodyHeads(nn.Module):
    """Two linear heads over a prosody state (..., D): pitch logits and duration logits."""

    def __init__(self, d_model: int, pitch_classes: int | None, duration_classes: int | None):
        super().__init__()
        self.pitch = None if pitch_classes is None else nn.Linear(d_model, pitch_classes)
        self.duration = None if duration_classes is None else nn.Linear(d_model, duration_classes)

    def forward(self, h: Tensor) -> tuple[Tensor | None, Tensor | None]:
        return (
            None if self.pitch is None else self.pitch(h),
            None if self.duration is None else self.duration(h),
        )


class ProsodyARDecoder(ARDecoder):
    """An :class:`~valle.ar.decoder.ARDecoder` that predicts the phonemes' prosody first.

    Teacher forcing reads ``pitch_tokens`` and ``duration_tokens`` (the prosody stage,
    ``python -m valle.bin.prosody``) and ``durations`` (the aligner stage: the frames the
    audio inputs are aligned with). One frame per step (``first_codebook`` layout).
    """

    def __init__(
        self,
        *,
        pitch_buckets: int | None,
        max_duration: int | None,
        prosody_sampler: TokenSampler,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if getattr(self.layout, "frames_per_step", 1) != 1:
            raise ValueError("the prosody chain of thought needs one frame per AR step")
        d = self.backbone.d_model
        self.pitch_classes = None if pitch_buckets is None else pitch_buckets + 1
        self.duration_classes = None if max_duration is None else max_duration + 1
        self.prosody_embedding = ProsodyEmbedding(d, self.pitch_classes, self.duration_classes)
        self.prosody_position = SinusoidalPositionalEncoding(d, self.text_position.dropout.p)
        self.prosody_head = ProsodyHeads(d, self.pitch_classes, self.duration_classes)
        self.prosody_sampler = prosody_sampler

    @property
    def predicts_durations(self) -> bool:
        return self.duration_classes is not None

    # ------------------------------------------------------------------ pieces

    def embed_prosody(
        self, tokens: ProsodyTokens, text_tokens: Tensor, text_lens: Tensor, start: int = 0
    ) -> tuple[Tensor, SegmentPositions]:
        """Prosody inputs for phonemes ``start .. start + L - 1`` ((B, L) tokens) -> (B, L, D)."""
        ref = tokens.pitch if tokens.pitch is not None else tokens.duration
        assert ref is not None
        B, L = ref.shape
        S = text_tokens.shape[1]
        j = torch.arange(start, start + L, device=ref.device)  # phoneme of each column
        nxt = (j + 1).expand(B, L)  # (B, L) the phoneme each state predicts
        has_next = nxt < text_lens[:, None]
        ids = text_tokens.gather(1, nxt.clamp(max=S - 1))
        phon = self.text_embedding(torch.where(has_next, ids, B_.PAD_ID)) * has_next[..., None]
        x = self.prosody_embedding(tokens, phon)  # (B, L, D)
        pos = SegmentPositions.span(
            PROSODY, text_lens - start, L, torch.full_like(text_lens, start)
        )
        return self.prosody_position(x, pos.index), pos

    def clamp_tokens(self, tokens: ProsodyTokens) -> ProsodyTokens:
        """The stored tokens in this model's ranges (pitch as is, durations clipped at M_d)."""
        dur = tokens.duration
        if dur is not None and self.duration_classes is not None:
            dur = dur.long().clamp(0, self.duration_classes - 1)
        return ProsodyTokens(tokens.pitch, dur, tokens.frames)

    def batch_prosody(self, batch: Mapping[str, Any]) -> ProsodyTokens:
        """The batch's prosody tokens and durations (B, S), padded to the text, checked."""
        S = batch[B_.TEXT_TOKENS].shape[1]
        need = []
        if self.pitch_classes is not None:
            need.append(PITCH_TOKENS)
        if self.duration_classes is not None:
            need += [DURATION_TOKENS, B_.DURATIONS]
        missing = [k for k in need if k not in batch]
        if missing:
            raise ValueError(
                f"this model (prosody chain of thought) trains on {need} but the batch has no "
                f"{missing}: run the aligner stage (python -m valle.bin.align durations) and "
                "the prosody stage (python -m valle.bin.prosody) on the cuts first"
            )

        def field(key: str) -> Tensor | None:
            if key not in batch:
                return None
            x = batch[key].long()
            if x.shape[1] != S:
                x = torch.nn.functional.pad(x, (0, S - x.shape[1])) if x.shape[1] < S else x
                if x.shape[1] != S:
                    raise ValueError(f"{key} {tuple(x.shape)} does not fit text_tokens (B, {S})")
            return x

        pitch = field(PITCH_TOKENS) if self.pitch_classes is not None else None
        if pitch is not None and bool((pitch >= self.pitch_classes).any()):  # type: ignore[operator]
            raise ValueError(
                f"pitch tokens reach {int(pitch.max())} but the model has {self.pitch_classes} "
                "classes: the prosody stage's buckets differ from prosody.pitch_buckets"
            )
        dur = field(DURATION_TOKENS) if self.duration_classes is not None else None
        frames = field(B_.DURATIONS)
        return self.clamp_tokens(ProsodyTokens(pitch, dur, frames))

    # ------------------------------------------------------------------ teacher forcing

    def loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Code CE (with EOS) + pitch CE + duration CE (RALL-E Sec 3.2), each logged."""
        text, text_lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
        prosody = self.batch_prosody(batch)
        tf = self.layout.teacher_forcing(batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS])
        N = tf.inputs.shape[1]
        align = None
        if prosody.frames is not None:
            valid = torch.arange(text.shape[1], device=text.device) < text_lens[:, None]
            frames = torch.where(valid, prosody.frames, 0)
            no_prompt = torch.zeros_like(text_lens)
            align = frame_alignment(text.new_zeros(text.shape[0], 0), no_prompt, frames,
                                    text_lens, N)  # fmt: skip
        audio_pos = self.audio_positions(tf.lens, N, align=align)
        h_text, h_pros, h_audio = self.hidden_parts(
            text, text_lens, prosody, tf.inputs, audio_pos, batch.get(B_.LANGUAGE)
        )
        code_loss, m = self.head.loss(self.head(h_audio), tf.targets, tf.mask)
        rows = torch.arange(text.shape[0], device=text.device)
        first = h_text[rows, text_lens - 1]  # (B, D) predicts r_0
        states = torch.cat([first[:, None], h_pros[:, :-1]], dim=1)  # (B, S, D) predicts r_j
        scored = torch.arange(text.shape[1], device=text.device) < text_lens[:, None]
        pitch_logits, dur_logits = self.prosody_head(states)
        total = code_loss
        metrics = {"code_loss": m["loss"], "acc": m["acc"], "top10_acc": m["top10_acc"]}
        for name, logits, target in (
            ("pitch", pitch_logits, prosody.pitch),
            ("duration", dur_logits, prosody.duration),
        ):
            if logits is None:
                continue
            assert target is not None
            part, pm = masked_token_loss(logits, target, scored)
            total = total + part
            metrics[f"{name}_loss"] = pm["loss"]
            metrics[f"{name}_acc"] = pm["acc"]
        metrics["loss"] = total.detach()
        return total, metrics

    def hidden_parts(
        self,
        text: Tensor,
        text_lens: Tensor,
        prosody: ProsodyTokens,
        audio_in: Tensor,
        audio_pos: SegmentPositions,
        language: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Hidden states of the text (B, S, D), prosody (B, S, D) and audio (B, N, D) columns."""
        x_text, p_text = self.embed_text(text, text_lens, language)
        x_pros, p_pros = self.embed_prosody(prosody, text, text_lens)
        x_audio = self.embed_audio(audio_in, audio_pos)
        x = torch.cat([x_text, x_pros, x_audio], dim=1)  # (B, 2S + N, D)
        pos = p_text.cat(p_pros).cat(audio_pos)
        h = self.backbone(x, attention_mask(self.mask, pos, pos))
        S = text.shape[1]
        return h[:, :S], h[:, S : 2 * S], h[:, 2 * S :]

    # ------------------------------------------------------------------ generation

    @torch.no_grad()
    def generate_prosody(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_text_lens: Tensor,
        prompt_lens: Tensor,
        *,
        control: ProsodyControl | None = None,
        language: Tensor | None = None,
        sampler: TokenSampler | None = None,
        generator: torch.Generator | None = None,
    ) -> ProsodyTokens:
        """Decode the prosody chain of thought (RALL-E Sec 3.2), one phoneme per step.

        The prompt transcript's tokens are forced to the prompt's prosody (its durations:
        ``control.prompt_durations`` or a uniform split of its frames; its pitch:
        ``control.prompt_pitch`` when given); the target's are drawn with ``sampler`` (the
        config's nucleus sampler by default), forced or transformed by ``control``. A target
        phoneme gets at least one frame (duration token 0 is never drawn for it).
        """
        control = control or ProsodyControl()
        sampler = self.prosody_sampler if sampler is None else sampler
        B, S = text_tokens.shape
        dev = text_tokens.device
        idx = torch.arange(S, device=dev)
        in_prompt = idx < prompt_text_lens[:, None]  # (B, S)
        p_dur = control.prompt_durations
        if p_dur is None:
            p_dur = uniform_durations(prompt_lens, prompt_text_lens, S)
        p_dur = torch.where(in_prompt, p_dur.long(), 0)
        forced_frames = p_dur.clone()
        forced_dur = in_prompt.clone()
        if control.durations is not None:
            given = control.durations.long().clamp(min=1)
            forced_frames = torch.where(in_prompt, forced_frames, given)
            forced_dur = torch.ones_like(in_prompt)
        forced_pitch = torch.zeros_like(in_prompt)
        pitch_given = torch.zeros_like(idx.expand(B, S))
        if control.prompt_pitch is not None:
            forced_pitch |= in_prompt
            pitch_given = torch.where(in_prompt, control.prompt_pitch.long(), pitch_given)
        if control.pitch is not None:
            target_given = ~in_prompt & (control.pitch >= 0)
            forced_pitch |= target_given
            pitch_given = torch.where(target_given, control.pitch.long(), pitch_given)
        shift = 0
        if control.pitch_scale is not None and self.pitch_classes is not None:
            M_p = self.pitch_classes - 1
            shift = round(M_p * math.log(control.pitch_scale) / control.pitch_bucket_ratio)

        x_text, p_text = self.embed_text(text_tokens, text_lens, language)
        cache = KVCache(2 * S)
        keys = cache.extend(p_text)
        h = self.backbone(x_text, attention_mask(self.mask, p_text, keys), cache)
        state = h[torch.arange(B, device=dev), text_lens - 1]  # (B, D)
        pitch = torch.zeros(B, S, dtype=torch.long, device=dev)
        dur = torch.zeros_like(pitch)
        frames = torch.zeros_like(pitch)
        for j in range(S):
            p_logits, d_logits = self.prosody_head(state)
            if p_logits is not None:
                drawn = sampler(p_logits, pitch[:, :j], generator)  # (B,)
                pitch[:, j] = torch.where(forced_pitch[:, j], pitch_given[:, j], drawn)
            if d_logits is not None:
                d_logits = d_logits.clone()
                d_logits[:, 0] = float("-inf")  # every target phoneme lasts >= 1 frame
                drawn = sampler(d_logits, dur[:, :j], generator)
                f = torch.where(forced_dur[:, j], forced_frames[:, j], drawn)
                frames[:, j] = f
                dur[:, j] = f.clamp(max=self.duration_classes - 1)  # type: ignore[operator]
            tokens = ProsodyTokens(
                pitch[:, j : j + 1] if self.pitch_classes is not None else None,
                dur[:, j : j + 1] if self.duration_classes is not None else None,
                None,
            )
            x, pos = self.embed_prosody(tokens, text_tokens, text_lens, start=j)
            keys = cache.extend(pos)
            state = self.backbone(x, attention_mask(self.mask, pos, keys), cache)[:, 0]
        valid = idx < text_lens[:, None]
        target = valid & ~in_prompt  # (B, S) the phonemes the transforms apply to
        if shift:
            moved = (pitch + shift).clamp(1, self.pitch_classes - 1)  # type: ignore[operator]
            pitch = torch.where(target & (pitch > 0), moved, pitch)
        if control.speed is not None and self.duration_classes is not None:
            scaled = torch.round(frames.double() / control.speed).long().clamp(min=1)
            frames = torch.where(target, scaled, frames)
            dur = frames.clamp(max=self.duration_classes - 1)
        return ProsodyTokens(
            torch.where(valid, pitch, 0) if self.pitch_classes is not None else None,
            torch.where(valid, dur, 0) if self.duration_classes is not None else None,
            torch.where(valid, frames, 0) if self.duration_classes is not None else None,
        )

    @torch.no_grad()
    def generate(  # type: ignore[override]
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        prompt_codes: Tensor,
        prompt_lens: Tensor,
        *,
        prompt_text_lens: Tensor | None = None,
        language: Tensor | None = None,
        sampler: TokenSampler | None = None,
        prosody_sampler: TokenSampler | None = None,
        generator: torch.Generator | None = None,
        max_len_ratio: float | None = None,
        control: ProsodyControl | None = None,
    ) -> tuple[list[Tensor], ProsodyTokens]:
        """Prosody chain of thought, then the speech tokens.

        Args:
            text_tokens, text_lens, prompt_codes, prompt_lens, language, sampler,
                generator, max_len_ratio: as :func:`~valle.ar.generate.generate_ar`.
            prompt_text_lens: (B,) tokens of the prompt transcript (None: 0, the whole text
                is the target and the prompt's frames stay unaligned).
            prosody_sampler: the pitch/duration sampler (None: the config's).
            control: prosody control (forced or transformed durations and pitch).
        Returns:
            B code tensors (N_b, 1) (the layout's frames) and the prosody tokens it followed.
        """
        if prompt_text_lens is None:
            prompt_text_lens = torch.zeros_like(text_lens)
        prosody = self.generate_prosody(
            text_tokens,
            text_lens,
            prompt_text_lens,
            prompt_lens,
            control=control,
            language=language,
            sampler=prosody_sampler,
            generator=generator,
        )
        S, P = text_tokens.shape[1], prompt_codes.shape[1]
        conditions: dict[str, Tensor] = {}
        decoding = ProsodyDecoding(self, prosody, None)
        if prosody.frames is not None:
            target = torch.arange(S, device=text_lens.device) >= prompt_text_lens[:, None]
            target_frames = torch.where(target, prosody.frames, 0)  # (B, S)
            conditions[B_.DURATIONS] = target_frames
            p_dur = None if control is None else control.prompt_durations
            p_align = prompt_alignment(prompt_lens, prompt_text_lens, S, P, p_dur)  # (B, P)
            ratio = self.max_len_ratio if max_len_ratio is None else max_len_ratio
            bound = int(torch.ceil(text_lens.double() * ratio).max())
            length = P + bound + 2
            align = frame_alignment(p_align, prompt_lens, target_frames, text_lens, length)
            decoding = ProsodyDecoding(self, prosody, align)
        steps = generate_ar(
            decoding,
            text_tokens,
            text_lens,
            prompt_codes,
            prompt_lens,
            language=language,
            sampler=sampler,
            generator=generator,
            max_len_ratio=max_len_ratio,
            conditions=conditions,
        )
        return steps, prosody


class ProsodyDecoding(DecodingOf):
    """The :class:`~valle.ar.generate.Decodable` of the speech part of one generate call:
    its prefill runs ``[text ; prosody ; BOS, prompt]`` and every audio input carries the
    aligned phoneme of the frame it predicts (``align`` (B, L) over frames, or None)."""

    def __init__(self, ar: ProsodyARDecoder, prosody: ProsodyTokens, align: Tensor | None):
        super().__init__(ar)
        self.prosody = prosody
        self.align = align

    def _align(self, index: Tensor) -> Tensor | None:
        """Phoneme of the frame predicted by the audio inputs at ``index`` (B, L)."""
        if self.align is None:
            return None
        return self.align.gather(1, index.clamp(max=self.align.shape[1] - 1))

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]:
        ar = self.ar
        x_text, p_text = ar.embed_text(text_tokens, text_lens, language)
        x_pros, p_pros = ar.embed_prosody(self.prosody, text_tokens, text_lens)
        L = audio_in.shape[1]
        index = torch.arange(L, device=audio_in.device).expand(audio_in.shape[0], L)
        audio_pos = ar.audio_positions(audio_lens, L, align=self._align(index))
        x_audio = ar.embed_audio(audio_in, audio_pos)
        cache = KVCache(capacity + x_pros.shape[1])
        query = p_text.cat(p_pros).cat(audio_pos)
        keys = cache.extend(query)
        h = ar.backbone(
            torch.cat([x_text, x_pros, x_audio], 1), attention_mask(ar.mask, query, keys), cache
        )
        last = 2 * text_tokens.shape[1] + audio_lens - 1  # (B,) the last audio input
        return ar.head(h[torch.arange(h.shape[0], device=h.device), last]), cache

    def audio_positions(
        self, lens: Tensor, length: int, start: Tensor | None = None
    ) -> SegmentPositions:
        pos = self.ar.audio_positions(lens, length, start)
        align = self._align(pos.index)
        return SegmentPositions(pos.segment, pos.index, pos.valid, align)


def check_prosody_config(cfg: ARConfig, prosody: ProsodyCoTConfig) -> None:
    """A :class:`ConfigError` unless ``cfg`` fits the chain of thought ``prosody``: the speech
    tokens see the prosody tokens (mask ``duration_guided`` or ``prosody_prefix``), duration
    tokens for a duration-guided mask or stop, no alignment prior. The variant's config runs
    it when it is made, so :func:`build_prosody_decoder` gets a checked config."""
    if not cfg.mask.reads_prosody:
        raise ConfigError(
            "ralle: ar.mask.kind must be duration_guided or prosody_prefix (the speech "
            "tokens must see the prosody tokens)"
        )
    if prosody.max_duration is None and (cfg.mask.reads_durations or cfg.stop.reads_durations):
        raise ConfigError(
            "without duration tokens (prosody.max_duration: null) the AR has no alignment: use "
            "ar.mask.kind: prosody_prefix and ar.stop.kind: eos"
        )
    if cfg.alignment_prior is not None:
        raise ConfigError("ar.alignment_prior is not used with the prosody chain of thought")


def build_prosody_decoder(
    cfg: ARConfig, prosody: ProsodyCoTConfig, vocab: VocabConfig
) -> ProsodyARDecoder:
    """The decoder ``cfg`` and ``prosody`` describe (RALL-E's AR; checked by
    :func:`check_prosody_config`)."""
    decoder = build_ar_decoder(
        cfg,
        vocab,
        ProsodyARDecoder,
        pitch_buckets=prosody.pitch_buckets,
        max_duration=prosody.max_duration,
        prosody_sampler=prosody.sampler.build(),
    )
    assert isinstance(decoder, ProsodyARDecoder)
    return decoder
