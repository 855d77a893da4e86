"""Zero-shot TTS from a checkpoint: text + a ~3 s prompt recording -> a wave.

Shape legend: B batch, S text tokens, P prompt frames, T generated frames, Q codebooks,
N samples.

VALL-E inference (Sec 4.3): the model's text input is the prompt's transcript followed by the
target text (phonemes, joined by a word boundary when the symbol table has one), its acoustic
prefix is the prompt's codes, and it continues the prompt; only the continuation is decoded
with the codec and returned. Several jobs go through one batched AR/NAR ``generate`` call
(rows of different lengths need no padding tricks, see :mod:`valle.modules.positions`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from valle.codec.base import Codec
from valle.inference.codec_spec import codec_from_dir, codec_from_spec
from valle.inference.prompt import PromptAudio, PromptTrim, load_prompt, trim_prompt
from valle.sampling import TokenSampler
from valle.text import SymbolTable, UnknownSymbolError, language_id, tokenize_text
from valle.text.punctuation import WORD_BOUNDARY

logger = logging.getLogger(__name__)

__all__ = ["CheckpointContentError", "CodecMismatchError", "SynthesisJob", "Synthesizer"]

SYMBOLS_KEY = "symbols"  # optional checkpoint entry: list[str], the symbol table in id order
CODEC_KEY = "codec"  # optional checkpoint entry: a codec spec (CodecInfo fields)
DEFAULT_TRIM = PromptTrim()  # ~3 s prompts (see valle.inference.prompt)


class CodecMismatchError(ValueError):
    """The codec's facts do not match the model's vocabulary."""


class CheckpointContentError(ValueError):
    """A checkpoint lacks something inference needs; the message says what to pass."""


@dataclass(frozen=True)
class SynthesisJob:
    """One utterance to synthesize (one line of a ``valle-infer --jobs`` file)."""

    text: str  # what to say
    prompt_wav: PromptAudio  # the voice: a file, or samples (N,) / (C, N)
    prompt_text: str  # transcript of the prompt recording
    language: str = "en"  # language of ``text``
    prompt_language: str | None = None  # language of ``prompt_text`` (None: ``language``)
    prompt_sample_rate: int | None = None  # rate of array prompts (None: the codec's)
    id: str | None = None


@dataclass
class _Prepared:
    text_ids: list[int]
    prompt_codes: Tensor  # (P, Q)
    language: int


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; check the path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # Lightning checkpoints carry non-tensor state (RNG states)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict):
        raise CheckpointContentError(f"{path} is not a valle checkpoint (not a dict)")
    return obj


def _model_from(obj: Mapping[str, Any], path: Path) -> tuple[nn.Module, dict[str, Any]]:
    from valle.registry import build_model
    from valle.train.checkpoint import (
        CONFIG_KEY,
        INFERENCE_FORMAT,
        load_weights,
        model_config_from,
    )

    config = obj.get(CONFIG_KEY)
    state = obj.get("state_dict")
    if not isinstance(config, Mapping) or not isinstance(state, Mapping):
        raise CheckpointContentError(
            f"{path} has no '{CONFIG_KEY}' and 'state_dict'; pass an inference checkpoint "
            "(<exp>/model.pt) or a Lightning checkpoint written by valle-train"
        )
    if obj.get("format") != INFERENCE_FORMAT:  # Lightning: the weights are under "model."
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        if not state:
            raise CheckpointContentError(f"{path} holds no 'model.*' weights")
    model = build_model(model_config_from(config))
    load_weights(model, state, source=str(path))
    return model, dict(config)


class Synthesizer:
    """A model, its symbol table and its codec, ready to synthesize.

    Args:
        model: a model with ``generate(text_tokens, text_lens, prompt_codes, prompt_lens, *,
            language, sampler, generator) -> list[(T_b, Q)]`` (e.g. :class:`valle.variants.valle.Valle`).
        symbols: the training data's symbol table.
        codec: the codec that made the training codes.
        device: where the model runs.
        sampler: the AR sampler (None: the model's configured default).
        prompt_trim: how long prompts are shortened (``PromptTrim(seconds=None)``: never).
        max_len_ratio: overrides the AR's length bound (frames per text token).
    """

    def __init__(
        self,
        model: nn.Module,
        symbols: SymbolTable,
        codec: Codec,
        *,
        device: str | torch.device = "cpu",
        sampler: TokenSampler | None = None,
        prompt_trim: PromptTrim = DEFAULT_TRIM,
        max_len_ratio: float | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.symbols = symbols
        self.codec = codec
        self.sampler = sampler
        self.prompt_trim = prompt_trim
        self.max_len_ratio = max_len_ratio
        self._check_vocab()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        *,
        codec: Codec | str | os.PathLike[str] | None = None,
        tokens: str | os.PathLike[str] | SymbolTable | None = None,
        device: str | torch.device = "cpu",
        sampler: TokenSampler | None = None,
        **kwargs: Any,
    ) -> Synthesizer:
        """Load an inference checkpoint (``<exp>/model.pt``) or a full Lightning checkpoint.

        The model is rebuilt from the config stored inside. The symbol table and the codec
        are, in order: the explicit ``tokens`` (a ``tokens.txt`` path or a table) and
        ``codec`` (a Codec or a codec directory, see
        :func:`~valle.inference.codec_spec.codec_from_dir`); the checkpoint's own
        ``"symbols"`` / ``"codec"`` entries; the ``data.tokens`` / ``data.codec_dir`` paths
        recorded in its training config when they exist on this machine. Otherwise a
        :class:`CheckpointContentError` says what to pass. ``kwargs`` go to the constructor.
        """
        path = Path(path)
        obj = _read_checkpoint(path)
        model, config = _model_from(obj, path)
        data: Mapping[str, Any] = config.get("data") or {}
        if not isinstance(data, Mapping):
            data = {}
        symbols = cls._symbols_from(tokens, obj.get(SYMBOLS_KEY), data.get("tokens"), path)
        codec_obj = cls._codec_from(codec, obj.get(CODEC_KEY), data.get("codec_dir"), path, device)
        logger.info("loaded %s (step %s) with %d symbols", path, obj.get("step"), len(symbols))
        return cls(model, symbols, codec_obj, device=device, sampler=sampler, **kwargs)

    @staticmethod
    def _symbols_from(
        tokens: str | os.PathLike[str] | SymbolTable | None,
        stored: Any,
        recorded: Any,
        path: Path,
    ) -> SymbolTable:
        if isinstance(tokens, SymbolTable):
            return tokens
        if tokens is not None:
            return SymbolTable.from_file(tokens)
        if stored is not None:
            if not isinstance(stored, (list, tuple)):
                raise CheckpointContentError(
                    f"{path}: '{SYMBOLS_KEY}' must be a list of symbols in id order"
                )
            return SymbolTable(list(stored))
        if recorded and Path(recorded).is_file():
            logger.info("symbol table from the training config: %s", recorded)
            return SymbolTable.from_file(recorded)
        raise CheckpointContentError(
            f"{path} carries no symbol table (no '{SYMBOLS_KEY}' entry"
            + (f"; the recorded {recorded!r} is not here" if recorded else "")
            + "); pass the training data's tokens.txt (tokens= / --tokens)"
        )

    @staticmethod
    def _codec_from(
        codec: Codec | str | os.PathLike[str] | None,
        stored: Any,
        recorded: Any,
        path: Path,
        device: str | torch.device,
    ) -> Codec:
        if isinstance(codec, (str, os.PathLike)):
            return codec_from_dir(codec, device=str(device))
        if codec is not None:
            if not isinstance(codec, Codec):
                raise TypeError(f"codec must be a Codec or a directory, got {type(codec).__name__}")
            return codec
        if stored is not None:
            if not isinstance(stored, Mapping):
                raise CheckpointContentError(f"{path}: '{CODEC_KEY}' must be a codec spec dict")
            return codec_from_spec(stored, device=str(device))
        if recorded and Path(recorded).exists():
            logger.info("codec from the training config: %s", recorded)
            return codec_from_dir(recorded, device=str(device))
        raise CheckpointContentError(
            f"{path} carries no codec (no '{CODEC_KEY}' entry"
            + (f"; the recorded {recorded!r} is not here" if recorded else "")
            + "); pass the codec (codec= a Codec or a directory with codec.json / --codec-dir)"
        )

    def _check_vocab(self) -> None:
        vocab = getattr(getattr(self.model, "config", None), "vocab", None)
        if vocab is None:
            return
        got = (int(self.codec.num_codebooks), int(self.codec.codebook_size))
        want = (int(vocab.num_codebooks), int(vocab.codebook_size))
        if got != want:
            raise CodecMismatchError(
                f"the codec gives {got[0]} codebooks of {got[1]} codes but the model was trained "
                f"on {want[0]} codebooks of {want[1]}; pass the codec the training codes were "
                "made with (its codec.json / directory)"
            )
        if len(self.symbols) != int(vocab.text_vocab_size):
            raise CheckpointContentError(
                f"the symbol table has {len(self.symbols)} symbols but the model was trained with "
                f"{vocab.text_vocab_size}; pass the tokens.txt of the training data"
            )

    # ------------------------------------------------------------------ facts

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) of the returned waves (the codec's)."""
        return int(self.codec.sample_rate)

    # ------------------------------------------------------------------ text and prompt

    def _phonemes(self, text: str, language: str, what: str) -> list[str]:
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"the {what} is empty; pass the sentence to speak as text")
        language_id(language)  # UnsupportedLanguageError lists the supported ones
        return tokenize_text(text, language)

    def text_ids(
        self, text: str, prompt_text: str, language: str = "en", prompt_language: str | None = None
    ) -> list[int]:
        """Ids of ``[prompt phonemes ; (word boundary) ; target phonemes]``.

        Raises:
            ValueError: empty text or prompt transcript.
            UnsupportedLanguageError: unknown language.
            UnknownSymbolError: phonemes the model has no id for (all of them are named).
        """
        target = self._phonemes(text, language, "text")
        prompt = self._phonemes(prompt_text, prompt_language or language, "prompt transcript")
        joint = WORD_BOUNDARY in self.symbols and prompt[-1] != WORD_BOUNDARY
        tokens = prompt + ([WORD_BOUNDARY] if joint else []) + target
        unknown = [t for t in tokens if t not in self.symbols]
        if unknown:
            raise UnknownSymbolError(
                unknown,
                hint=f"the model's symbol table has no id for these phonemes of {text!r} / "
                f"{prompt_text!r}; rephrase the text (e.g. spell out foreign words) or use a "
                "model trained on data containing them",
            )
        return self.symbols.encode(tokens)

    def prompt_codes(
        self, prompt_wav: PromptAudio, prompt_text: str, sample_rate: int | None = None
    ) -> tuple[Tensor, str]:
        """Load, trim and encode a prompt; returns its codes (P, Q) and (trimmed) transcript.

        Prompts are encoded one at a time so that a job's codes never depend on its batch.
        """
        wave = load_prompt(prompt_wav, self.sample_rate, sample_rate)
        wave, prompt_text = trim_prompt(wave, prompt_text, self.sample_rate, self.prompt_trim)
        (codes,) = self.codec.encode([wave])  # (P, Q)
        if codes.shape[0] == 0:
            raise ValueError("the prompt is too short to give one codec frame; pass ~3 s of audio")
        return codes.long(), prompt_text

    def prepare(self, job: SynthesisJob) -> _Prepared:
        codes, prompt_text = self.prompt_codes(
            job.prompt_wav, job.prompt_text, job.prompt_sample_rate
        )
        ids = self.text_ids(job.text, prompt_text, job.language, job.prompt_language)
        return _Prepared(ids, codes, language_id(job.language))

    # ------------------------------------------------------------------ synthesis

    def synthesize(
        self,
        text: str,
        prompt_wav: PromptAudio,
        prompt_text: str,
        *,
        language: str = "en",
        prompt_language: str | None = None,
        prompt_sample_rate: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        sampler: TokenSampler | None = None,
    ) -> tuple[np.ndarray, int]:
        """Say ``text`` in the voice of ``prompt_wav``; returns (wave float32 (N,), sample rate).

        ``seed`` (or an explicit ``generator`` on the model's device) makes sampling
        reproducible; ``sampler`` overrides the synthesizer's.
        """
        job = SynthesisJob(text, prompt_wav, prompt_text, language, prompt_language,
                           prompt_sample_rate)  # fmt: skip
        return self.synthesize_batch([job], seed=seed, generator=generator, sampler=sampler)[0]

    def synthesize_batch(
        self,
        jobs: Sequence[SynthesisJob],
        *,
        batch_size: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        sampler: TokenSampler | None = None,
    ) -> list[tuple[np.ndarray, int]]:
        """Synthesize ``jobs``, ``batch_size`` at a time (None: all) through one batched
        generate call each; results in the order of ``jobs``.

        Under greedy decoding a job's wave does not depend on its batch neighbours.
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        prepared = [self.prepare(j) for j in jobs]  # all errors before any generation
        size = batch_size or max(1, len(prepared))
        out: list[tuple[np.ndarray, int]] = []
        for start in range(0, len(prepared), size):
            out += self._generate(prepared[start : start + size], generator, sampler)
        return out

    def _generate(
        self,
        items: list[_Prepared],
        generator: torch.Generator | None,
        sampler: TokenSampler | None,
    ) -> list[tuple[np.ndarray, int]]:
        dev = self.device
        B = len(items)
        text_lens = torch.tensor([len(i.text_ids) for i in items], dtype=torch.long, device=dev)
        prompt_lens = torch.tensor(
            [len(i.prompt_codes) for i in items], dtype=torch.long, device=dev
        )
        Q = items[0].prompt_codes.shape[1]
        text = torch.zeros(B, int(text_lens.max()), dtype=torch.long, device=dev)  # (B, S)
        prompt = torch.zeros(
            B, int(prompt_lens.max()), Q, dtype=torch.long, device=dev
        )  # (B, P, Q)
        for b, it in enumerate(items):
            text[b, : len(it.text_ids)] = torch.tensor(it.text_ids, dtype=torch.long)
            prompt[b, : len(it.prompt_codes)] = it.prompt_codes.to(dev)
        language = torch.tensor([i.language for i in items], dtype=torch.long, device=dev)
        kwargs: dict[str, Any] = {}
        if self.max_len_ratio is not None:
            kwargs["max_len_ratio"] = self.max_len_ratio
        with torch.inference_mode():
            generate: Any = self.model.generate
            codes = generate(
                text,
                text_lens,
                prompt,
                prompt_lens,
                language=language,
                sampler=sampler if sampler is not None else self.sampler,
                generator=generator,
                **kwargs,
            )  # B x (T_b, Q)
            nonempty = [b for b, c in enumerate(codes) if c.shape[0] > 0]
            waves = self.codec.decode([codes[b].cpu() for b in nonempty]) if nonempty else []
        out: list[tuple[np.ndarray, int]] = [
            (np.zeros(0, dtype=np.float32), self.sample_rate) for _ in range(B)
        ]
        for b, w in zip(nonempty, waves, strict=True):
            out[b] = (w.detach().float().cpu().numpy().reshape(-1), self.sample_rate)
        if len(nonempty) < B:
            logger.warning(
                "%d of %d jobs ended at once (EOS first): empty waves", B - len(nonempty), B
            )
        return out
