"""Phoneme-aligned AR decoding with a monotonic phoneme pointer (VALL-E R, Han et al. 2024).

Shape legend: B batch, S text tokens, T frames, P prompt frames, N AR steps, D model width,
V codebook size.

VALL-E R Sec 3.2: every AR step knows its aligned phoneme, so the text is used from the
first step instead of being found by attention. Here one step is a triple
``[code, pointer, phoneme id]`` (:data:`STEP_CODE`, :data:`STEP_POINTER`, :data:`STEP_PHONEME`):

- the *input* of the step that predicts frame t is the code of frame t-1 (BOS for t = 0)
  plus the embedding of frame t's phoneme (:class:`AlignedStepEmbedding`; the table is the
  decoder's text embedding, shared: the aligned phoneme and its prefix token are the same
  symbol, which costs no parameters and lets an audio position find its text key by content);
  its position descriptor carries ``align`` = frame t's phoneme index;
- the *output* (:class:`JointPointerHead`) is frame t's code and the pointer move from frame
  t to frame t+1 (stay or advance by one); loss = code CE + pointer CE, each logged. The last
  frame's move is "advance" (the pointer passes the last phoneme), so no EOS is needed.

Inference (Sec 3.3, monotonic alignment): the prompt's frames are aligned to the prompt
transcript (uniform split by default, or ``prompt_durations``), the pointer starts at the
first target phoneme and may only stay or advance by one per step (greedy by default,
optionally sampled, optionally guarded by a minimum/maximum of frames per phoneme); the row
ends when the pointer passes the last phoneme (:class:`PointerStop`, reading
``context.text_lens``). Prosody control (Sec 3.4): forced durations decide every move.

The shared loop :func:`~valle.ar.generate.generate_ar` runs unchanged: a
:class:`PointerDecoding` is the :class:`~valle.ar.generate.Decodable` of one call; it holds
what that call aligns to (text, start pointer, prompt alignment, forced durations), which the
loop's components cannot otherwise see (prefill gets no conditions, the head's ``start`` only
the prompt's steps).

Merged codes (Sec 3.1): with the layout ``merged_first_codebook`` (rate m) a step is one window
of m frames instead of one frame (:class:`~valle.ar.layouts.MergedFirstCodebookLayout`): the
durations are counted in windows (:func:`~valle.ar.windows.window_durations`), the pointer
moves once per window, and :meth:`PointerARDecoder.generate` repeats each step's code and
phoneme m times, so it returns frames either way; ``ceil(T / m)`` steps make T frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from valle.ar.builders import build_ar_decoder
from valle.ar.config import ARConfig
from valle.ar.decoder import ARDecoder
from valle.ar.generate import DecodingOf, generate_ar, max_new_steps
from valle.ar.heads import CategoricalHead, CodeHistory, HeadConfig
from valle.ar.stops import DecodeContext, StopConfig
from valle.ar.windows import window_durations
from valle.config import ConfigError, VocabConfig, opt, register_kind
from valle.data import batch as B_
from valle.modules.metrics import masked_token_loss
from valle.modules.positions import NO_ALIGN, SegmentPositions
from valle.modules.transformer import KVCache
from valle.sampling.base import TokenSampler, check_logit_values

__all__ = [
    "STEP_CODE",
    "STEP_PHONEME",
    "STEP_POINTER",
    "AlignedStepEmbedding",
    "GreedyMove",
    "JointPointerHead",
    "PointerARDecoder",
    "PointerDecoding",
    "PointerHeadConfig",
    "PointerStop",
    "PointerStopConfig",
    "SampledMove",
    "alignment_to_durations",
    "build_pointer_decoder",
    "check_durations",
    "check_pointer_config",
    "durations_to_alignment",
    "phoneme_ids",
    "prompt_alignment",
    "prompt_text_lens_or_none",
    "scale_durations",
    "uniform_durations",
]

logger = logging.getLogger(__name__)

STEP_CODE, STEP_POINTER, STEP_PHONEME = 0, 1, 2  # the elements of one aligned step


# --------------------------------------------------------------------------- alignments


def durations_to_alignment(durations: Tensor, text_lens: Tensor, num_frames: int) -> Tensor:
    """Frames per token (B, S) -> each frame's phoneme index (B, T).

    Frame t belongs to the token whose cumulative span holds it; frames at or after a row's
    ``sum(d)`` get ``text_lens`` (past the last phoneme). Tokens of 0 frames are skipped.
    """
    ends = durations.long().cumsum(-1)  # (B, S)
    t = torch.arange(num_frames, device=durations.device).expand(durations.shape[0], -1)
    align = torch.searchsorted(ends, t.contiguous(), right=True)  # (B, T)
    return torch.minimum(align, text_lens[:, None])


def alignment_to_durations(align: Tensor, lens: Tensor, width: int) -> Tensor:
    """Each frame's phoneme index (B, T) with valid frames (B,) -> frames per token (B, width)."""
    T = align.shape[1]
    valid = (torch.arange(T, device=align.device) < lens[:, None]) & (align >= 0) & (align < width)
    out = torch.zeros(align.shape[0], width, dtype=torch.long, device=align.device)
    return out.scatter_add_(1, align.clamp(0, max(width - 1, 0)), valid.long())


def uniform_durations(frames: Tensor, tokens: Tensor, width: int) -> Tensor:
    """``frames[b]`` split as evenly as possible over the first ``tokens[b]`` tokens (B, width).

    Token i gets ``floor((i+1) F / n) - floor(i F / n)`` frames; tokens past ``n`` get 0.
    """
    i = torch.arange(width + 1, device=frames.device)  # (W+1,)
    n = tokens.clamp(min=1)[:, None]
    bounds = torch.minimum(i, tokens[:, None]) * frames[:, None] // n  # (B, W+1)
    return bounds.diff(dim=1)  # (B, W)


def scale_durations(durations: Tensor, speed: float, keep: Tensor | None = None) -> Tensor:
    """Durations (B, S) for speaking ``speed`` times as fast (0.8: slower, 1.25: faster).

    Boundaries are scaled and rounded (``round(cumsum(d) / speed)``), so the total follows
    the speed without accumulating rounding error; a token of ``keep`` (B, S) bool (default:
    the tokens with frames) keeps at least one frame.
    """
    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    ends = torch.round(durations.double().cumsum(-1) / speed).long()  # (B, S)
    scaled = ends.diff(dim=1, prepend=ends.new_zeros(ends.shape[0], 1))
    keep = durations > 0 if keep is None else keep
    return torch.where(keep, scaled.clamp(min=1), torch.zeros_like(scaled))


def prompt_alignment(
    prompt_lens: Tensor,
    prompt_text_lens: Tensor,
    width: int,
    num_frames: int,
    prompt_durations: Tensor | None = None,
) -> Tensor:
    """Each prompt frame's phoneme index (B, P): the prompt's frames over its transcript's
    tokens, split uniformly (default: the prompt has no durations at inference) or by
    ``prompt_durations`` (B, width); NO_ALIGN for a row without a transcript."""
    if prompt_durations is None:
        prompt_durations = uniform_durations(prompt_lens, prompt_text_lens, width)
    align = durations_to_alignment(prompt_durations, prompt_text_lens, num_frames)  # (B, P)
    return torch.where(prompt_text_lens[:, None] > 0, align, torch.full_like(align, NO_ALIGN))


def prompt_text_lens_or_none(
    prompt_text_lens: Tensor | None, prompt_lens: Tensor, text_lens: Tensor
) -> Tensor:
    """``prompt_text_lens``, or zeros (the whole text is the target) with a warning when an
    acoustic prompt comes without its transcript's length."""
    if prompt_text_lens is not None:
        return prompt_text_lens
    if bool((prompt_lens > 0).any()):
        logger.warning(
            "no prompt_text_lens: the prompt's frames stay unaligned and the pointer reads "
            "the whole text as the target (pass the prompt transcript's token count)"
        )
    return torch.zeros_like(text_lens)


def phoneme_ids(text_tokens: Tensor, align: Tensor) -> Tensor:
    """The phoneme id of each aligned position (B, L): ``text_tokens[b, align]``; PAD_ID where
    ``align`` is outside the text (NO_ALIGN, or past the last phoneme)."""
    S = text_tokens.shape[1]
    inside = (align >= 0) & (align < S)
    ids = text_tokens.gather(1, align.clamp(0, max(S - 1, 0)))
    return torch.where(inside, ids, torch.full_like(ids, B_.PAD_ID))


def check_durations(batch: Mapping[str, Any]) -> Tensor:
    """The batch's durations (B, S), checked against its text and frames (one host sync)."""
    if B_.DURATIONS not in batch:
        raise ValueError(
            "this model (VALL-E R) trains on phoneme durations but the batch has no "
            f"{B_.DURATIONS!r}: run the aligner stage on the cuts first "
            "(python -m valle.bin.align durations; egs/*/run.sh aligner stage)"
        )
    d = batch[B_.DURATIONS]
    text, text_lens, lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS], batch[B_.AUDIO_LENS]
    if d.shape[0] != text.shape[0] or d.shape[1] > text.shape[1]:
        raise ValueError(
            f"durations {tuple(d.shape)} do not fit text_tokens {tuple(text.shape)}: one "
            "duration per phoneme token; re-run the aligner with this symbol table"
        )
    if d.shape[1] < text.shape[1]:
        d = F.pad(d, (0, text.shape[1] - d.shape[1]))
    valid = torch.arange(d.shape[1], device=d.device) < text_lens[:, None]
    d = torch.where(valid, d.long(), torch.zeros_like(d, dtype=torch.long))  # (B, S)
    bad = (d.sum(-1) != lens) | (d < 0).any(-1)
    n_len = batch.get(B_.lens_key(B_.DURATIONS))
    if n_len is not None:
        bad |= n_len != text_lens
    if bool(bad.any()):
        b = int(bad.nonzero()[0, 0])
        ids = batch.get(B_.CUT_IDS)
        name = ids[b] if ids is not None else f"row {b}"
        raise ValueError(
            f"{name}: durations (sum {int(d[b].sum())}, {int(valid[b].sum())} tokens) do not "
            f"sum to its {int(lens[b])} frames or do not match its text; re-run the aligner "
            "with this codec and symbol table"
        )
    return d


# --------------------------------------------------------------------------- modules


class AlignedStepEmbedding(nn.Module):
    """A step ``[code, pointer, phoneme id]`` (..., 3) -> code embedding + phoneme embedding (..., D).

    ``phonemes`` is the decoder's text embedding, shared and not a submodule (the decoder
    owns and saves it); PAD_ID (no aligned phoneme) adds nothing.
    """

    def __init__(self, codes: nn.Module, phonemes: nn.Module) -> None:
        super().__init__()
        self.codes = codes
        self._phonemes = [phonemes]

    @property
    def weight(self) -> Tensor:
        """The code table (what a tied head projects onto)."""
        weight = self.codes.weight
        assert isinstance(weight, Tensor)
        return weight

    def forward(self, steps: Tensor) -> Tensor:
        if steps.dim() < 3 or steps.shape[-1] != 3:
            raise ValueError(
                f"the phoneme-aligned AR reads steps [code, pointer, phoneme id] (B, N, 3), got "
                f"{tuple(steps.shape)}: train with its loss() and decode with its generate() "
                "(PointerDecoding), which align the steps"
            )
        ids = steps[..., STEP_PHONEME]
        phon = self._phonemes[0](ids) * (ids != B_.PAD_ID)[..., None]  # (..., D)
        return self.codes(steps[..., STEP_CODE]) + phon


@dataclass
class PointerMemory:
    """Decoding memory of one call: code history, pointer and frames spent on it per row."""

    history: CodeHistory
    pointer: Tensor  # (B,) phoneme index of the frame being drawn
    run: Tensor  # (B,) frames of that phoneme so far, this one included
    text_tokens: Tensor  # (B, S)
    durations: Tensor | None  # (B, S) forced frames per token, or None


class GreedyMove:
    """Pointer move rule: advance where the advance logit is the larger (argmax)."""

    def __call__(self, move: Tensor, generator: torch.Generator | None) -> Tensor:
        """Stay/advance logits (B, 2) -> (B,) bool, True: advance."""
        return move[:, 1] > move[:, 0]


class SampledMove:
    """Pointer move rule: advance with the model's probability (a draw per row)."""

    def __call__(self, move: Tensor, generator: torch.Generator | None) -> Tensor:
        """Stay/advance logits (B, 2) -> (B,) bool, True: advance."""
        return torch.multinomial(move.softmax(-1), 1, generator=generator)[:, 0].bool()


MoveRule = Callable[[Tensor, "torch.Generator | None"], Tensor]  # (B, 2) logits -> (B,) bool
MOVE_RULES: dict[str, type] = {"greedy": GreedyMove, "sample": SampledMove}  # head.advance


class JointPointerHead(nn.Module):
    """Code logits and a stay/advance logit pair from one hidden state (VALL-E R Sec 3.2).

    Output (..., V + 2): the first V are the codes (tied to the code embedding when ``tied``
    is given), the last 2 the pointer move (0 stay, 1 advance by one). ``advance``: the move
    rule at inference (:class:`GreedyMove`, default, or :class:`SampledMove`), not consulted
    when durations are forced; ``min_frames`` / ``max_frames`` guard the frames a phoneme may
    take at inference (forced durations override both).
    """

    def __init__(
        self,
        d_model: int,
        codebook_size: int,
        tied: nn.Module | None = None,
        advance: MoveRule | None = None,
        min_frames: int = 1,
        max_frames: int | None = None,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.codes = CategoricalHead(d_model, codebook_size, (), tied=tied)
        self.move = nn.Linear(d_model, 2)
        self.advance = GreedyMove() if advance is None else advance  # (B, 2), gen -> (B,)
        self.min_frames = min_frames
        self.max_frames = max_frames

    def forward(self, h: Tensor) -> Tensor:
        """(..., D) -> (..., V + 2)."""
        return torch.cat([self.codes(h), self.move(h)], dim=-1)

    def loss(self, out: Tensor, targets: Tensor, mask: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``targets`` (B, N, 2) = [code, move], ``mask`` (B, N): code CE + pointer CE."""
        V = self.codebook_size
        code_loss, m = masked_token_loss(out[..., :V], targets[..., 0], mask)
        move_loss, mm = masked_token_loss(out[..., V:], targets[..., 1], mask)
        loss = code_loss + move_loss
        return loss, {
            "loss": loss.detach(),
            "code_loss": m["loss"],
            "acc": m["acc"],
            "top10_acc": m["top10_acc"],
            "pointer_loss": mm["loss"],
            "pointer_acc": mm["acc"],
        }

    def start(
        self,
        prompt_steps: Tensor,
        prompt_lens: Tensor,
        steps: int,
        *,
        text_tokens: Tensor | None = None,
        start: Tensor | None = None,
        durations: Tensor | None = None,
    ) -> PointerMemory:
        """Memory of one call; the pointer starts at ``start`` (B,) (see :class:`PointerDecoding`)."""
        if text_tokens is None or start is None:
            raise ValueError("the pointer head decodes through PointerDecoding (text and start)")
        return PointerMemory(
            CodeHistory(prompt_steps, prompt_lens, steps),
            start.clone(),
            torch.ones_like(start),
            text_tokens,
            durations,
        )

    def sample(
        self,
        out: Tensor,
        memory: PointerMemory,
        sampler: TokenSampler,
        generator: torch.Generator | None,
    ) -> Tensor:
        """Draw one step (B, 3): the code with ``sampler``, then the move (stay or +1)."""
        if not memory.history.checked:
            check_logit_values(out)
            memory.history.checked = True
        V = self.codebook_size
        code = sampler(out[:, :V], memory.history.view(), generator)  # (B,)
        memory.history.append(code)
        p, run = memory.pointer, memory.run
        if memory.durations is not None:  # forced: the durations decide, nothing is drawn
            S = memory.durations.shape[1]
            want = memory.durations.gather(1, p.clamp(max=S - 1)[:, None])[:, 0]
            adv = run >= want.clamp(min=1)  # every phoneme gets >= 1 frame
        else:
            adv = self.advance(out[:, V:].float(), generator)  # (B,) from the (B, 2) move
            adv = adv & (run >= self.min_frames)
            if self.max_frames is not None:
                adv = adv | (run >= self.max_frames)
        nxt = p + adv.long()  # (B,) never back, never a skip
        memory.pointer = nxt
        memory.run = torch.where(adv, torch.ones_like(run), run + 1)
        ids = phoneme_ids(memory.text_tokens, nxt[:, None])[:, 0]
        return torch.stack([code, nxt, ids], dim=-1)  # (B, 3)


class PointerStop:
    """End a row when its pointer passes the last phoneme (VALL-E R Sec 3.3); EOS is not
    used. The step that passes it is speech (the last phoneme's last frame): kept."""

    keeps_last = True

    def begin(self, context: DecodeContext) -> Tensor:
        return context.text_lens

    def prepare(self, out: Tensor, n: int, state: Tensor) -> Tensor:
        return out

    def __call__(self, step: Tensor, out: Tensor, n: int, state: Tensor) -> Tensor:
        return step[:, STEP_POINTER] >= state  # (B,)


# --------------------------------------------------------------------------- the decoder


class PointerARDecoder(ARDecoder):
    """An :class:`~valle.ar.decoder.ARDecoder` whose steps carry their aligned phoneme.

    Teacher forcing reads ``batch["durations"]``; :meth:`generate` decodes with a
    monotonic pointer. One code per step: a frame (``first_codebook``) or a window of m
    frames of merged codes (``merged_first_codebook``, rate m; durations and the pointer then
    count windows).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if tuple(getattr(self.layout, "step_shape", ())) != ():
            raise ValueError(
                "the phoneme pointer needs one code per AR step (ar.layout.kind first_codebook "
                "or merged_first_codebook), not a group of codes"
            )
        self.rate = int(self.layout.frames_per_step)  # m: frames per step (window)
        self.audio_embedding = AlignedStepEmbedding(self.audio_embedding, self.text_embedding)

    def loss(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Code CE + pointer CE on every frame (VALL-E R Sec 3.2); no EOS target."""
        return self.head.loss(*self.teacher_forced(batch))

    def teacher_forced(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """Head outputs (B, N, V + 2), targets (B, N, 2) = [code, move] and mask (B, N).

        The step predicting frame (window) t reads step t-1's code and step t's phoneme; its
        move target is 1 where step t+1 has the next phoneme (or step t is the last). N = T
        frames, or ``ceil(T / m)`` windows of merged codes, whose phonemes come from
        :func:`~valle.ar.windows.window_durations`.
        """
        durations = check_durations(batch)
        frames = batch[B_.AUDIO_LENS]
        codes, lens = self.layout.to_steps(batch[B_.AUDIO_CODES], frames)[:2]  # (B, N), (B,)
        durations = window_durations(durations, frames, self.rate)  # (B, S) steps per token
        text, text_lens = batch[B_.TEXT_TOKENS], batch[B_.TEXT_LENS]
        B, T = codes.shape
        align = durations_to_alignment(durations, text_lens, T + 1)  # (B, T + 1)
        bos = codes.new_full((B, 1), self.layout.bos_id)  # type: ignore[attr-defined]
        prev = torch.cat([bos, codes[:, :-1]], dim=1)  # (B, T) code of frame t-1
        here = align[:, :T]  # (B, T) phoneme of frame t
        steps = torch.stack([prev, here, phoneme_ids(text, here)], dim=-1)  # (B, T, 3)
        pos = self.audio_positions(lens, T, align=here)
        out = self(text, text_lens, steps, lens, batch.get(B_.LANGUAGE), pos)  # (B, T, V + 2)
        move = (align[:, 1:] - here).clamp(0, 1)  # (B, T) stay 0 / advance 1
        mask = torch.arange(T, device=lens.device) < lens[:, None]
        return out, torch.stack([codes, move], dim=-1), mask

    def decoding(self, text_tokens: Tensor, language: Any = None) -> PointerDecoding:
        """Incremental decoding of a call with the whole text as the target (the pointer
        starts at phoneme 0, the prompt frames carry phoneme 0 too), moves drawn by the head's
        rule: for tools that time ``step`` (``valle-bench speed``); :meth:`generate` builds
        its own with the prompt's alignment."""
        B = text_tokens.shape[0]
        start = torch.zeros(B, dtype=torch.long, device=text_tokens.device)
        return PointerDecoding(self, text_tokens, start, start.new_zeros(B, 0))

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
        generator: torch.Generator | None = None,
        max_len_ratio: float | None = None,
        prompt_durations: Tensor | None = None,
        durations: Tensor | None = None,
    ) -> list[Tensor]:
        """Continue each prompt with a monotonic pointer over the target text.

        Args:
            text_tokens: (B, S) prompt transcript + target text; text_lens (B,).
            prompt_codes: (B, P, Q) and prompt_lens (B,).
            prompt_text_lens: (B,) tokens of the prompt transcript: the pointer starts after
                them (None: 0, the whole text is the target and the prompt stays unaligned).
            prompt_durations: (B, S) frames per prompt-transcript token (summing to
                ``prompt_lens``); None (default): the prompt's frames split uniformly.
            durations: (B, S) forced frames per target token (entries of the prompt
                transcript are ignored): prosody control. The bound is raised to fit them.
        Returns:
            B tensors (T_b, 2) long: each new frame's first-codebook code and phoneme index.
            With merged codes (rate m) each step gives m frames, ``T_b = m N_b`` for N_b
            steps, cut to the sum of the forced durations when they are given, and to the
            length bound (``ceil(max_len_ratio * text_len)`` frames) when that ended the row.
        """
        m = self.rate
        prompt_text_lens = prompt_text_lens_or_none(prompt_text_lens, prompt_lens, text_lens)
        S = text_tokens.shape[1]
        idx = torch.arange(S, device=text_lens.device)
        if prompt_durations is not None and m > 1:  # frames -> the prompt's steps per token
            mine = idx < prompt_text_lens[:, None]  # (B, S) the prompt transcript's tokens
            prompt_durations = window_durations(
                torch.where(mine, prompt_durations.long(), 0), prompt_lens, m
            )
        prompt_align = prompt_alignment(
            self.layout.max_steps(prompt_lens),  # (B,) ceil(P / m) steps
            prompt_text_lens,
            S,
            -(-prompt_codes.shape[1] // m),
            prompt_durations,
        )  # (B, ceil(P / m)) each prompt step's phoneme index
        ratio = self.max_len_ratio if max_len_ratio is None else max_len_ratio
        cap = max_new_steps(text_lens, ratio)  # (B,) frames at most
        if durations is not None:
            target = (idx >= prompt_text_lens[:, None]) & (idx < text_lens[:, None])  # (B, S)
            durations = torch.where(target, durations.long().clamp(min=1), 0)  # (B, S)
            cap = durations.sum(-1)  # (B,) frames: the continuation's length
            ratio = max(ratio, float(((cap.double() + 0.5) / text_lens.double()).max()))
            durations = window_durations(durations, cap, m)  # (B, S) steps per token
        decoding = PointerDecoding(
            self, text_tokens, prompt_text_lens, prompt_align, durations=durations
        )
        raw = generate_ar(
            decoding,
            text_tokens,
            text_lens,
            prompt_codes,
            prompt_lens,
            language=language,
            sampler=sampler,
            generator=generator,
            max_len_ratio=ratio,
        )
        out = []
        for b, frames in enumerate(cap.tolist()):
            s = raw[b]  # (N, 3): code of step n, phoneme of step n + 1
            here = torch.cat([prompt_text_lens[b : b + 1], s[:-1, STEP_POINTER]])  # (N,)
            steps = torch.stack([s[:, STEP_CODE], here], dim=-1)  # (N, 2)
            out.append(steps.repeat_interleave(m, dim=0)[:frames])  # (T, 2): m frames a step
        return out


class _BoundHead:
    """A head whose ``start`` knows the call's text, start pointer and forced durations."""

    def __init__(self, head: JointPointerHead, **call: Any) -> None:
        self.head = head
        self.call = call

    def __call__(self, h: Tensor) -> Tensor:
        return self.head(h)

    def start(self, prompt_steps: Tensor, prompt_lens: Tensor, steps: int) -> PointerMemory:
        return self.head.start(prompt_steps, prompt_lens, steps, **self.call)

    def sample(self, out: Tensor, memory: PointerMemory, sampler: Any, generator: Any) -> Tensor:
        return self.head.sample(out, memory, sampler, generator)


class PointerDecoding(DecodingOf):
    """The :class:`~valle.ar.generate.Decodable` of one generate call of a
    :class:`PointerARDecoder`: its prompt inputs carry their aligned phonemes, its steps the
    pointer, which it copies into the next step's ``align``.

    Args:
        ar: the decoder.
        text_tokens: (B, S) of the call.
        start: (B,) the first target phoneme (the prompt transcript's length).
        prompt_align: (B, P) each prompt frame's phoneme index (NO_ALIGN: none).
        durations: (B, S) forced frames per token, or None.
    """

    def __init__(
        self,
        ar: PointerARDecoder,
        text_tokens: Tensor,
        start: Tensor,
        prompt_align: Tensor,
        durations: Tensor | None = None,
    ) -> None:
        super().__init__(ar)
        self.start = start
        self.prompt_align = prompt_align
        head = ar.head
        assert isinstance(head, JointPointerHead)
        self.head = _BoundHead(head, text_tokens=text_tokens, start=start, durations=durations)

    def prefill(
        self,
        text_tokens: Tensor,
        text_lens: Tensor,
        audio_in: Tensor,
        audio_lens: Tensor,
        language: Tensor | None = None,
        capacity: int = 0,
    ) -> tuple[Tensor, KVCache]:
        """``audio_in`` (B, L) = [BOS, prompt codes]: input k predicts frame k, so it carries
        prompt frame k's phoneme, and the input after the prompt the first target phoneme."""
        B, L = audio_in.shape
        P = audio_lens - 1  # (B,) prompt frames
        width = self.prompt_align.shape[1]
        prompt_align = F.pad(self.prompt_align, (0, max(L - width, 0)))[:, :L]
        k = torch.arange(L, device=audio_in.device)
        align = torch.where(k < P[:, None], prompt_align, self.start[:, None])  # (B, L)
        steps = torch.stack([audio_in, align, phoneme_ids(text_tokens, align)], dim=-1)
        pos = self.ar.audio_positions(audio_lens, L, align=align)
        return self.ar.prefill(
            text_tokens, text_lens, steps, audio_lens, language, capacity, audio_pos=pos
        )

    def step(self, step_in: Tensor, pos: SegmentPositions, cache: KVCache) -> Tensor:
        aligned = SegmentPositions(
            pos.segment, pos.index, pos.valid, step_in[:, None, STEP_POINTER]
        )
        return self.ar.step(step_in, aligned, cache)

    def layout_step(self, step: Tensor) -> Tensor:
        """A fed step (B, 3) = [code, pointer, phoneme id] -> its code (B,)."""
        return step[:, STEP_CODE]


# --------------------------------------------------------------------------- config + builder


@register_kind("pointer")
@dataclass(frozen=True)
class PointerHeadConfig(HeadConfig):
    """Codes + a stay/advance pointer move per step (VALL-E R); used by :class:`PointerARDecoder`."""

    moves_pointer: ClassVar[bool] = True
    kind: str = opt("pointer", "AR output head: categorical | pointer")
    tie_embedding: bool = opt(True, "share the code output layer with the code input embedding")
    advance: str = opt("greedy", "pointer move at inference: greedy (argmax) | sample")
    min_frames: int = opt(
        1,
        "inference guard: frames a phoneme takes at least (count, >= 1; merged codes: "
        "rounded up to whole AR steps)",
    )
    max_frames: int | None = opt(
        None,
        "inference guard: frames after which the pointer advances (count; null: none; "
        "merged codes: rounded up to whole AR steps)",
    )

    def __post_init__(self) -> None:
        if self.advance not in MOVE_RULES:
            raise ConfigError(f"head.advance must be one of {sorted(MOVE_RULES)}, got "
                              f"{self.advance!r}")  # fmt: skip
        if self.min_frames < 1 or (
            self.max_frames is not None and self.max_frames < self.min_frames
        ):
            raise ConfigError(
                f"need 1 <= head.min_frames <= head.max_frames, got {self.min_frames}, "
                f"{self.max_frames}"
            )

    def build(self, d_model: int, layout: Any, embedding: nn.Module) -> Any:
        """The head; on merged codes (m frames per step) the frame guards become steps,
        rounded up (the head counts steps)."""
        m = int(getattr(layout, "frames_per_step", 1))
        return JointPointerHead(
            d_model,
            layout.codebook_size,
            tied=embedding if self.tie_embedding else None,
            advance=MOVE_RULES[self.advance](),
            min_frames=-(-self.min_frames // m),
            max_frames=None if self.max_frames is None else -(-self.max_frames // m),
        )


@register_kind("pointer")
@dataclass(frozen=True)
class PointerStopConfig(StopConfig):
    """Stop when the phoneme pointer passes the last phoneme (VALL-E R)."""

    reads_pointer: ClassVar[bool] = True
    kind: str = opt("pointer", "when generation stops: eos | duration | pointer")

    def build(self, layout: Any) -> Any:
        return PointerStop()


def check_pointer_config(cfg: ARConfig) -> None:
    """A :class:`ConfigError` unless ``cfg`` describes a phoneme-aligned AR: a head that moves
    the phoneme pointer and a stop that reads it (the ``pointer`` kinds; judged by what the
    components declare, not their classes), no alignment prior. The variant's config runs it
    when it is made (loaded or overridden), so :func:`build_pointer_decoder` gets a checked
    config."""
    if not cfg.head.moves_pointer or not cfg.stop.reads_pointer:
        raise ConfigError(
            "the phoneme-aligned AR needs a head that moves the phoneme pointer and a stop "
            f"that reads it (ar.head.kind and ar.stop.kind: pointer), got head kind "
            f"{cfg.head.kind!r} and stop kind {cfg.stop.kind!r}"
        )
    if cfg.alignment_prior is not None:
        raise ConfigError("ar.alignment_prior is not used by the phoneme-aligned AR; set null")


def build_pointer_decoder(cfg: ARConfig, vocab: VocabConfig) -> PointerARDecoder:
    """The phoneme-aligned decoder ``cfg`` describes (checked by :func:`check_pointer_config`)."""
    decoder = build_ar_decoder(cfg, vocab, PointerARDecoder)
    assert isinstance(decoder, PointerARDecoder)
    return decoder
