"""Acoustic prompt policies for NAR training (lifeiteng's ``prefix_mode`` as classes).

Shape legend: B batch, T frames, P prompt frames, Q codebooks.

A policy splits a batch into an acoustic prompt (all Q codebooks, seen in full by the NAR)
and a target (the NAR predicts its codebook j from the codebooks < j; the loss covers the
target frames that were not copied into the prompt). VALL-E (Sec 4.2.2, 4.3) prompts with a
~3 s enrolled recording of the speaker.

- :class:`NoPrompt`: no prompt; target = the utterance.
- :class:`SameUtterancePrefix`: a random prefix of the utterance is the prompt, the rest the
  target (so training matches inference, where the prompt precedes the continuation).
- :class:`RandomSegmentPrompt`: a random segment of the utterance is the prompt; target =
  the whole utterance, the segment's frames left out of the loss (lifeiteng's prefix_mode 2
  marks them with the ignore index: a frame the model sees in full in the prompt would
  otherwise be learnt by copying).
- :class:`OtherUtterancePrompt`: the batch's ``prompt_codes`` (another utterance of the same
  speaker) is the prompt; target = the whole utterance. Rows whose prompt is the target's own
  prefix (``batch["prompt_start"] >= 0``: a speaker with one utterance, or ``data.prompt:
  prefix``) leave the copied frames out of the loss.

A policy also says what the data must hold and what the NAR reads at inference, so training
and generation see the same kind of input:

- ``needs_other_utterance``: the batches must carry ``prompt_codes`` from another utterance
  (the data loader reads a second utterance per item only then);
- ``text_includes_prompt``: the NAR's text is the prompt's transcript followed by the target
  text (true when the training prompt is a prefix of the utterance whose transcript is the
  text); otherwise the NAR reads the target text alone;
- ``uses_prompt``: the NAR sees acoustic prompt frames at all.

:meth:`PromptPolicyBase.inference_inputs` applies the last two to a
:class:`~valle.data.batch.SynthesisInputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from valle.data import batch as B_
from valle.data.batch import SynthesisInputs

__all__ = [
    "PromptSplit",
    "PromptPolicy",
    "PromptPolicyBase",
    "NoPrompt",
    "SameUtterancePrefix",
    "RandomSegmentPrompt",
    "OtherUtterancePrompt",
    "slice_rows",
    "span_mask",
    "build_prompt_policy",
    "prompt_policy_class",
    "PROMPT_POLICIES",
]


@dataclass(frozen=True)
class PromptSplit:
    prompt_codes: Tensor  # (B, P, Q)
    prompt_lens: Tensor  # (B,)
    target_codes: Tensor  # (B, T, Q)
    target_lens: Tensor  # (B,)
    copied: Tensor | None = None  # (B, T) bool: target frames also in the prompt (no loss)

    def target_mask(self) -> Tensor:
        """(B, T) bool: the positions the loss covers (valid and not copied into the prompt)."""
        T = self.target_codes.shape[1]
        valid = torch.arange(T, device=self.target_lens.device) < self.target_lens[:, None]
        return valid if self.copied is None else valid & ~self.copied


class PromptPolicy(Protocol):
    needs_other_utterance: bool
    text_includes_prompt: bool
    uses_prompt: bool

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit: ...

    def inference_inputs(self, inputs: SynthesisInputs) -> SynthesisInputs: ...


class PromptPolicyBase:
    """What a policy declares (see the module docstring) and the inference inputs it implies."""

    needs_other_utterance = False
    text_includes_prompt = False
    uses_prompt = True

    @classmethod
    def from_ratios(cls, min_ratio: float, max_ratio: float) -> PromptPolicyBase:
        """The policy built from ``nar.prompt``; only policies that take the ratios read them."""
        return cls()

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit:
        """Split ``batch`` into the NAR's acoustic prompt and its target (a subclass's job)."""
        raise NotImplementedError

    def inference_inputs(self, inputs: SynthesisInputs) -> SynthesisInputs:
        """The NAR's view of zero-shot inputs (text = prompt transcript + target text).

        Policies that trained on the target text alone drop the prompt transcript (this needs
        ``inputs.prompt_text_lens``); :class:`NoPrompt` also drops the acoustic prompt.
        """
        if not self.text_includes_prompt:
            inputs = inputs.target_text_only()
        if not self.uses_prompt:
            inputs = inputs.without_prompt()
        return inputs


def span_mask(start: Tensor, length: Tensor, width: int) -> Tensor:
    """(B, width) bool: True on frames ``start[b] : start[b] + length[b]`` (none where start < 0)."""
    t = torch.arange(width, device=start.device)
    return (t >= start[:, None]) & (t < (start + length)[:, None]) & (start[:, None] >= 0)


def slice_rows(codes: Tensor, start: Tensor, length: Tensor) -> Tensor:
    """Row b's frames ``start[b] : start[b] + length[b]``, left-aligned and zero-padded.

    codes (B, T, Q), start/length (B,) -> (B, max(length), Q).
    """
    B, T, Q = codes.shape
    width = int(length.max()) if length.numel() else 0
    idx = start[:, None] + torch.arange(width, device=codes.device)  # (B, W)
    out = codes.gather(1, idx.clamp(max=max(T - 1, 0))[..., None].expand(B, width, Q))
    keep = torch.arange(width, device=codes.device) < length[:, None]  # (B, W)
    return out * keep[..., None]


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(n, generator=generator).to(device)


def _targets(batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    return batch[B_.AUDIO_CODES], batch[B_.AUDIO_LENS]


class NoPrompt(PromptPolicyBase):
    """No acoustic prompt (lifeiteng prefix_mode 0); the NAR reads the target text alone."""

    uses_prompt = False

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit:
        codes, lens = _targets(batch)
        empty = codes[:, :0]  # (B, 0, Q)
        return PromptSplit(empty, torch.zeros_like(lens), codes, lens)


class SameUtterancePrefix(PromptPolicyBase):
    """Prompt = the first ``r * T_b`` frames, r ~ U[min_ratio, max_ratio]; loss on the rest.

    (lifeiteng prefix_mode 1.) The prefix is at least 1 frame and leaves at least 1 target
    frame whenever the utterance has 2 or more frames. The text is the whole utterance's
    transcript, i.e. the prompt's words and then the target's, as at inference (Sec 4.3).
    """

    text_includes_prompt = True

    def __init__(self, min_ratio: float = 0.25, max_ratio: float = 0.5) -> None:
        if not 0.0 <= min_ratio <= max_ratio <= 1.0:
            raise ValueError(f"need 0 <= min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
        self.min_ratio, self.max_ratio = min_ratio, max_ratio

    @classmethod
    def from_ratios(cls, min_ratio: float, max_ratio: float) -> PromptPolicyBase:
        return cls(min_ratio, max_ratio)

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit:
        codes, lens = _targets(batch)
        r = self.min_ratio + (self.max_ratio - self.min_ratio) * _uniform(
            len(lens), generator, lens.device
        )
        p = torch.round(r * lens).long()
        p = torch.minimum(p.clamp(min=1), (lens - 1).clamp(min=0))  # (B,)
        prompt = slice_rows(codes, torch.zeros_like(p), p)
        target = slice_rows(codes, p, lens - p)
        return PromptSplit(prompt, p, target, lens - p)


class RandomSegmentPrompt(PromptPolicyBase):
    """Prompt = a random segment of ``r * T_b`` frames of the utterance; target = all of it.

    (lifeiteng prefix_mode 2.) The segment's frames are left out of the loss (the NAR sees
    them in full in the prompt, so it could copy them); the segment leaves at least one
    frame to score whenever the utterance has 2 or more. The text is the target's (the whole
    utterance's), so at inference the NAR reads the target text alone.
    """

    def __init__(self, min_ratio: float = 0.25, max_ratio: float = 0.5) -> None:
        if not 0.0 <= min_ratio <= max_ratio <= 1.0:
            raise ValueError(f"need 0 <= min_ratio <= max_ratio <= 1, got {min_ratio}, {max_ratio}")
        self.min_ratio, self.max_ratio = min_ratio, max_ratio

    @classmethod
    def from_ratios(cls, min_ratio: float, max_ratio: float) -> PromptPolicyBase:
        return cls(min_ratio, max_ratio)

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit:
        codes, lens = _targets(batch)
        r = self.min_ratio + (self.max_ratio - self.min_ratio) * _uniform(
            len(lens), generator, lens.device
        )
        n = torch.round(r * lens).long().clamp(min=1)
        n = torch.minimum(n, (lens - 1).clamp(min=1))  # (B,) leave a frame to score
        n = torch.minimum(n, lens)
        start = torch.floor(_uniform(len(lens), generator, lens.device) * (lens - n + 1)).long()
        start = torch.minimum(start, lens - n)
        copied = span_mask(start, n, codes.shape[1])  # (B, T)
        return PromptSplit(slice_rows(codes, start, n), n, codes, lens, copied)


class OtherUtterancePrompt(PromptPolicyBase):
    """Prompt = ``batch["prompt_codes"]``, another utterance of the speaker (prefix_mode 4).

    This is the paper's setting (Sec 4.3): the 3 s enrolled recording is not part of the
    target, and the text is the target's alone (so at inference the NAR reads the target
    text alone). The batch must come from a dataset with a prompt provider. Where the
    provider had to fall back on the target's own prefix (``batch["prompt_start"] >= 0``),
    those frames are left out of the loss.
    """

    needs_other_utterance = True

    def __call__(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> PromptSplit:
        if B_.PROMPT_CODES not in batch or B_.PROMPT_LENS not in batch:
            raise KeyError(
                "OtherUtterancePrompt needs batch['prompt_codes'] and batch['prompt_lens']; "
                "give the dataset a prompt provider or choose nar.prompt.kind=same_utterance_prefix"
            )
        codes, lens = _targets(batch)
        prompt = batch[B_.PROMPT_CODES]
        if prompt.shape[-1] != codes.shape[-1]:
            raise ValueError(
                f"prompt_codes has {prompt.shape[-1]} codebooks but audio_codes {codes.shape[-1]}"
            )
        prompt_lens = batch[B_.PROMPT_LENS]
        copied = None
        if B_.PROMPT_START in batch:
            copied = span_mask(batch[B_.PROMPT_START], prompt_lens, codes.shape[1])  # (B, T)
        return PromptSplit(prompt, prompt_lens, codes, lens, copied)


def prompt_policy_class(kind: str) -> type[PromptPolicyBase]:
    """The policy class named ``kind`` (see :data:`PROMPT_POLICIES`): what it declares."""
    from valle.registry import choose_component

    return choose_component(PROMPT_POLICIES, kind, "NAR prompt policy")


def build_prompt_policy(kind: str, min_ratio: float, max_ratio: float) -> PromptPolicy:
    """The policy named ``kind`` (see :data:`PROMPT_POLICIES`); ratios where it takes them."""
    return prompt_policy_class(kind).from_ratios(min_ratio, max_ratio)


PROMPT_POLICIES: dict[str, type[PromptPolicyBase]] = {
    "none": NoPrompt,
    "same_utterance_prefix": SameUtterancePrefix,
    "random_segment": RandomSegmentPrompt,
    "other_utterance": OtherUtterancePrompt,
}
