"""ASR backends for intelligibility scoring (WER/CER of synthesized speech).

Shape legend: B batch, N samples, T frames, V vocabulary.

Every backend follows :class:`ASR`: it takes waves at any sample rate, resamples them to its own
``sample_rate`` and returns one transcript per wave.

- :class:`HubertCTCASR`: ``facebook/hubert-large-ls960-ft`` with greedy CTC decoding, the ASR
  of the VALL-E papers (VALL-E §5.1, VALL-E 2 §4, VALL-E R and MELLE use the same model).
- :class:`WhisperASR`: a Whisper checkpoint through transformers (multilingual, used for the
  VALL-E X cross-lingual setting).
- :class:`FasterWhisperASR`: Whisper through CTranslate2 (faster-whisper), the offline default:
  a local model directory, int8 on CPU, beam 5, the language given.

Weights are loaded from a local directory or a hub name with ``from_pretrained``; the
constructors take model objects directly, which is how the tests build tiny random models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from valle.eval.audio import Wave, resample

logger = logging.getLogger(__name__)

#: Offline default model directory for :class:`FasterWhisperASR`.
DEFAULT_FASTER_WHISPER_PATH = "/work/shared/models/faster-whisper-base"
#: The VALL-E papers' ASR model (hub name or a local copy of it).
HUBERT_CTC_NAME = "facebook/hubert-large-ls960-ft"
WHISPER_NAME = "openai/whisper-large-v3"


@runtime_checkable
class ASR(Protocol):
    """Speech recogniser: a batch of waves in, one transcript per wave out."""

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) the model runs at; inputs at other rates are resampled to it."""
        ...

    def transcribe(
        self, waves: Sequence[Wave], sample_rate: int, language: str | None = None
    ) -> list[str]:
        """Transcribe mono waves ``(N,)`` given at ``sample_rate``; ``language`` is an ISO 639-1
        code such as ``"en"`` or ``None`` (backend default or detection)."""
        ...


#: Waves shorter than this hold no word; they are transcribed as "" (all deletions) rather than
#: fed to a model whose feature encoder cannot take them.
MIN_SPEECH_SECONDS = 0.1


def _batches(items: list[np.ndarray], size: int) -> list[list[np.ndarray]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def transcribe_nonempty(
    core: Callable[[list[np.ndarray]], list[str]],
    waves: Sequence[Wave],
    sample_rate: int,
    target_sr: int,
) -> list[str]:
    """Resample ``waves`` to ``target_sr``, run ``core`` on those of at least
    :data:`MIN_SPEECH_SECONDS`, and answer ``""`` for the others: a system that outputs (almost)
    nothing is scored as deleting every word, not as a crash of the benchmark."""
    prepared = [resample(w, sample_rate, target_sr) for w in waves]
    keep = [i for i, w in enumerate(prepared) if len(w) >= MIN_SPEECH_SECONDS * target_sr]
    if len(keep) < len(prepared):
        logger.warning(
            "%d of %d waves are shorter than %.2f s: transcribed as empty",
            len(prepared) - len(keep),
            len(prepared),
            MIN_SPEECH_SECONDS,
        )
    out = [""] * len(prepared)
    if keep:
        texts = core([prepared[i] for i in keep])
        for i, t in zip(keep, texts, strict=True):
            out[i] = t
    return out


class HubertCTCASR:
    """HuBERT (or any ``*ForCTC``) model with a ``Wav2Vec2Processor``; greedy CTC decoding."""

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
    ) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        fe = processor.feature_extractor
        # Without attention masks (group-norm feature encoders) padding changes the output, so
        # such models are run one utterance at a time.
        self.batch_size = batch_size if getattr(fe, "return_attention_mask", False) else 1

    @classmethod
    def from_pretrained(
        cls, name_or_path: str = HUBERT_CTC_NAME, device: str = "cpu", **kwargs: Any
    ) -> HubertCTCASR:
        """Load ``facebook/hubert-large-ls960-ft`` (or a local copy of it)."""
        from transformers import HubertForCTC, Wav2Vec2Processor

        processor = Wav2Vec2Processor.from_pretrained(name_or_path)
        model = HubertForCTC.from_pretrained(name_or_path)
        return cls(model, processor, device=device, **kwargs)

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    def _frames(self, n_samples: torch.Tensor, max_frames: int) -> torch.Tensor:
        lengths = getattr(self.model, "_get_feat_extract_output_lengths", None)
        if lengths is None:
            return torch.full_like(n_samples, max_frames)
        return lengths(n_samples).clamp(max=max_frames)

    def _decode(self, frame_ids: torch.Tensor) -> str:
        # skip_special_tokens=True would drop the CTC blank before collapsing repeats ("LL" with
        # a blank between would become "L"), so decode with blanks and remove the other special
        # tokens (bos/eos/unk) from the text afterwards.
        tok = self.processor.tokenizer
        text = tok.decode(frame_ids)
        for special in tok.all_special_tokens:
            if special != tok.pad_token:
                text = text.replace(special, " ")
        return " ".join(text.split())

    @torch.inference_mode()
    def transcribe(
        self, waves: Sequence[Wave], sample_rate: int, language: str | None = None
    ) -> list[str]:
        if language is not None and language.lower().split("-")[0] != "en":
            raise ValueError(
                f"HubertCTCASR is an English (LibriSpeech) model, got language={language!r}; "
                "use WhisperASR or FasterWhisperASR for other languages"
            )
        return transcribe_nonempty(self._transcribe, waves, sample_rate, self.sample_rate)

    def _transcribe(self, waves: list[np.ndarray]) -> list[str]:
        out: list[str] = []
        for batch in _batches(waves, self.batch_size):
            inputs = self.processor(
                batch, sampling_rate=self.sample_rate, return_tensors="pt", padding=True
            )
            kwargs = {"input_values": inputs["input_values"].to(self.device)}  # (B, N)
            if "attention_mask" in inputs and self.batch_size > 1:
                kwargs["attention_mask"] = inputs["attention_mask"].to(self.device)
            logits = self.model(**kwargs).logits  # (B, T, V)
            ids = logits.argmax(dim=-1).cpu()  # (B, T)
            # Frames past each wave's end come from padding: drop them before CTC collapsing.
            n_samples = torch.tensor([len(w) for w in batch])
            n_frames = self._frames(n_samples, ids.shape[1])
            out += [self._decode(ids[b, : int(n_frames[b])]) for b in range(len(batch))]
        return out


class WhisperASR:
    """Whisper through transformers ``WhisperForConditionalGeneration`` + ``WhisperProcessor``."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        device: str | torch.device = "cpu",
        num_beams: int = 5,
        batch_size: int = 8,
    ) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = torch.device(device)
        self.num_beams = num_beams
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls, name_or_path: str = WHISPER_NAME, device: str = "cpu", **kwargs: Any
    ) -> WhisperASR:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        processor = WhisperProcessor.from_pretrained(name_or_path)
        model = WhisperForConditionalGeneration.from_pretrained(name_or_path)
        return cls(model, processor, device=device, **kwargs)

    @property
    def sample_rate(self) -> int:
        return int(self.processor.feature_extractor.sampling_rate)

    @torch.inference_mode()
    def transcribe(
        self, waves: Sequence[Wave], sample_rate: int, language: str | None = None
    ) -> list[str]:
        gen_kwargs: dict[str, Any] = {"num_beams": self.num_beams, "task": "transcribe"}
        if language is not None:
            gen_kwargs["language"] = language

        def core(prepared: list[np.ndarray]) -> list[str]:
            return self._transcribe(prepared, gen_kwargs)

        return transcribe_nonempty(core, waves, sample_rate, self.sample_rate)

    def _transcribe(self, waves: list[np.ndarray], gen_kwargs: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for batch in _batches(waves, self.batch_size):
            feats = self.processor(
                batch, sampling_rate=self.sample_rate, return_tensors="pt"
            ).input_features  # (B, F, T)
            ids = self.model.generate(feats.to(self.device), **gen_kwargs)  # (B, L)
            out += [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
        return out


class FasterWhisperASR:
    """Whisper through faster-whisper (CTranslate2), offline from a local model directory."""

    sample_rate = 16000
    #: Initial prompt per language when none is given: Whisper writes Mandarin in traditional
    #: characters about as often as in simplified ones, and CER compares characters.
    LANGUAGE_PROMPTS = {"zh": "以下是普通话的句子。"}

    def __init__(
        self,
        model_path: str = DEFAULT_FASTER_WHISPER_PATH,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 5,
        cpu_threads: int = 0,
        model: Any | None = None,
        initial_prompt: str | None = None,
    ) -> None:
        """``initial_prompt`` steers Whisper's output style, e.g. ``"以下是普通话的句子。"`` for
        simplified rather than traditional Chinese characters (CER compares characters); when it
        is None, :attr:`LANGUAGE_PROMPTS` gives the prompt of the language transcribed."""
        if model is None:
            from pathlib import Path

            from faster_whisper import WhisperModel

            if not Path(model_path).is_dir():
                raise FileNotFoundError(
                    f"faster-whisper model directory not found: {model_path}; pass --asr-path "
                    "pointing at a CTranslate2 Whisper directory (model.bin, config.json, ...)"
                )
            model = WhisperModel(
                model_path,
                device=device,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                local_files_only=True,
            )
        self.model = model
        self.beam_size = beam_size
        self.initial_prompt = initial_prompt

    def transcribe(
        self, waves: Sequence[Wave], sample_rate: int, language: str | None = None
    ) -> list[str]:
        prompt = self.initial_prompt
        if prompt is None and language is not None:
            prompt = self.LANGUAGE_PROMPTS.get(language.lower().split("-")[0])

        def core(prepared: list[np.ndarray]) -> list[str]:
            out = []
            for wave in prepared:
                segments, _info = self.model.transcribe(
                    wave,
                    language=language,
                    beam_size=self.beam_size,
                    condition_on_previous_text=False,
                    without_timestamps=True,
                    initial_prompt=prompt,
                )
                out.append(" ".join(seg.text.strip() for seg in segments).strip())
            return out

        return transcribe_nonempty(core, waves, sample_rate, self.sample_rate)


#: Backend name -> factory ``(path or None, device) -> ASR``; used by ``valle-bench wer``.
ASR_BACKENDS: dict[str, Callable[[str | None, str], ASR]] = {
    "hubert-ctc": lambda path, device: HubertCTCASR.from_pretrained(
        path or HUBERT_CTC_NAME, device=device
    ),
    "whisper": lambda path, device: WhisperASR.from_pretrained(path or WHISPER_NAME, device=device),
    "faster-whisper": lambda path, device: FasterWhisperASR(
        path or DEFAULT_FASTER_WHISPER_PATH, device=device
    ),
}


def build_asr(name: str, path: str | None = None, device: str = "cpu") -> ASR:
    """Build a backend by name (``hubert-ctc``, ``whisper``, ``faster-whisper``)."""
    if name not in ASR_BACKENDS:
        raise ValueError(f"unknown ASR backend {name!r}; choose one of {sorted(ASR_BACKENDS)}")
    return ASR_BACKENDS[name](path, device)
