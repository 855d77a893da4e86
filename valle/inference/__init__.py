"""Inference: zero-shot TTS from a checkpoint (:class:`Synthesizer`), prompts, codec specs, and
prosody from a reference recording (:func:`reference_prosody`)."""

from valle.inference.codec_spec import CodecSpecError, codec_from_dir, codec_from_spec, codec_spec
from valle.inference.prompt import PromptTrim, load_prompt, trim_prompt
from valle.inference.reference import (
    AlignerMismatchError,
    ReferenceProsody,
    ReferenceTooShortError,
    reference_prosody,
)
from valle.inference.synthesizer import (
    CheckpointContentError,
    CodecMismatchError,
    SynthesisJob,
    Synthesizer,
)

__all__ = [
    "AlignerMismatchError",
    "CheckpointContentError",
    "CodecMismatchError",
    "CodecSpecError",
    "PromptTrim",
    "ReferenceProsody",
    "ReferenceTooShortError",
    "SynthesisJob",
    "Synthesizer",
    "codec_from_dir",
    "codec_from_spec",
    "codec_spec",
    "load_prompt",
    "reference_prosody",
    "trim_prompt",
]
