"""Non-autoregressive decoder: stage conditioning, acoustic prompt policies, generation."""

from valle.nar.aligned import AlignedPhonemeConditioner, PhonemeAlignedNAR
from valle.nar.decoder import NARDecoder
from valle.nar.prompts import (
    NoPrompt,
    OtherUtterancePrompt,
    PromptPolicy,
    PromptPolicyBase,
    PromptSplit,
    RandomSegmentPrompt,
    SameUtterancePrefix,
    build_prompt_policy,
    prompt_policy_class,
)
from valle.nar.stage import AdaLNStage, CodeIdTokenStage, StageConditioning

__all__ = [
    "AdaLNStage",
    "AlignedPhonemeConditioner",
    "CodeIdTokenStage",
    "NARDecoder",
    "NoPrompt",
    "OtherUtterancePrompt",
    "PhonemeAlignedNAR",
    "PromptPolicy",
    "PromptPolicyBase",
    "PromptSplit",
    "RandomSegmentPrompt",
    "SameUtterancePrefix",
    "StageConditioning",
    "build_prompt_policy",
    "prompt_policy_class",
]
