"""Inference: zero-shot TTS from a checkpoint (:class:`Synthesizer`), prompts, codec specs."""

from valle.inference.codec_spec import CodecSpecError, codec_from_dir, codec_from_spec, codec_spec
from valle.inference.prompt import PromptTrim, load_prompt, trim_prompt
from valle.inference.synthesizer import (
    CheckpointContentError,
    CodecMismatchError,
    SynthesisJob,
    Synthesizer,
)

__all__ = [
    "CheckpointContentError",
    "CodecMismatchError",
    "CodecSpecError",
    "PromptTrim",
    "SynthesisJob",
    "Synthesizer",
    "codec_from_dir",
    "codec_from_spec",
    "codec_spec",
    "load_prompt",
    "trim_prompt",
]
