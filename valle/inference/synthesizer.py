"""Zero-shot TTS from a checkpoint: text + a ~3 s prompt recording -> a wave.

Shape legend: B batch, S text tokens, P prompt frames, T generated frames, Q codebooks,
N samples.

VALL-E inference (Sec 4.3): the model's text input is the prompt's transcript followed by the
target text (phonemes, joined by a word boundary when the symbol table has one), its acoustic
prefix is the prompt's codes, and it continues the prompt; only the continuation is decoded
with the codec and returned. Several jobs go through one batched AR/NAR ``generate`` call
(rows of different lengths need no padding tricks, see :mod:`valle.modules.positions`).

Long text is spoken in chunks of at most ``max_text_tokens`` phonemes (cut at sentence, then
clause, then word boundaries, :mod:`valle.inference.chunking`), each continuing the same
prompt, joined with ``chunk_pause`` seconds of silence: time and memory stay bounded by the
chunk, not the text. Punctuation the symbol table lacks is rewritten into the pauses it has
(:func:`valle.text.punctuation.fit_punctuation`).

Prosody from a reference (a model whose ``generate`` takes ``durations``: VALL-E R, RALL-E):
a job's ``reference_wav`` says its target text; the aligner (``Synthesizer(aligner=...)``)
gives its frames per target phoneme (and, for a model with pitch tokens, its pitch tokens),
which the model follows (:mod:`valle.inference.reference`); ``speed`` / ``pitch_scale`` then
scale them as the model defines. A long text's chunks take the durations of their own
phonemes; the word boundary dropped at a cut loses its frames to ``chunk_pause``.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from valle.ar.windows import check_merge_rate
from valle.codec.base import Codec
from valle.data.batch import SynthesisInputs
from valle.inference.chunking import split_tokens
from valle.inference.codec_spec import (
    codec_from_dir,
    codec_from_embedded_entry,
    codec_from_spec,
    resolve_codec_path,
)
from valle.inference.prompt import PromptAudio, PromptTrim, load_prompt, trim_prompt
from valle.inference.quantize import quantize_model
from valle.inference.reference import (
    ReferenceAudio,
    ReferenceProsody,
    load_aligner_for,
    reference_prosody,
)
from valle.sampling import TokenSampler
from valle.text import SymbolTable, UnknownSymbolError, language_id, tokenize_text
from valle.text.language_tags import (
    AUTO,
    dominant_language,
    has_language_tags,
    tokenize_multilingual,
)
from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY

logger = logging.getLogger(__name__)

__all__ = ["CheckpointContentError", "CodecMismatchError", "SynthesisJob", "Synthesizer"]

SYMBOLS_KEY = "symbols"  # optional checkpoint entry: list[str], the symbol table in id order
CODEC_KEY = "codec"  # optional checkpoint entry: a codec spec (CodecInfo fields)
CODEC_EMBEDDED_KEY = "codec_embedded"  # optional: a small codec's own tensors (valle.io.checkpoint)
DEFAULT_TRIM = PromptTrim()  # ~3 s prompts (see valle.inference.prompt)
MAX_TEXT_TOKENS = 150  # target phonemes per chunk (~10-15 s of speech, as in training)
CHUNK_PAUSE = 0.25  # seconds of silence between the chunks of a long text
PROMPT_CACHE_SIZE = 64  # encoded prompt files a Synthesizer keeps (see Synthesizer.prompt_codes)


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
    language: str = "en"  # language of ``text``; "auto": by script; [EN]..[EN] tags win
    prompt_language: str | None = None  # language of ``prompt_text`` (None: ``language``)
    prompt_sample_rate: int | None = None  # rate of array prompts (None: the codec's)
    id: str | None = None
    accent: str | None = None  # language id of the generated speech (None: the text's own)
    reference_wav: ReferenceAudio | None = None  # says ``text``: its durations (and pitch)
    reference_sample_rate: int | None = None  # rate of an array reference (None: the codec's)


@dataclass
class _Prepared:  # one row of a generate call: a job, or one chunk of a long job
    text_ids: list[int]
    prompt_codes: Tensor  # (P, Q)
    language: int
    prompt_text_len: int | None = None  # leading text_ids that are the prompt's transcript
    prompt_language: int | None = None  # language id of the prompt's speech
    language_tokens: list[int] | None = None  # language id of every text_ids entry
    durations: list[int] | None = None  # frames per target token (a reference's), forced
    pitch: list[int] | None = None  # pitch token per target token (a reference's), forced
    prompt_durations: list[int] | None = None  # frames per prompt-transcript token (aligner)


@dataclass
class PreparedJob:
    """A job checked and encoded, ready to generate: one row per chunk of its text."""

    rows: list[_Prepared]
    id: str | None = None


def _chunk_languages(
    tokens: Sequence[str], languages: Sequence[int], chunks: Sequence[Sequence[str]]
) -> list[list[int]]:
    """The language ids of each chunk of ``tokens`` (chunks are its tokens in order, some
    boundary tokens left out)."""
    out, pos = [], 0
    for chunk in chunks:
        ids = []
        for tok in chunk:
            while pos < len(tokens) and tokens[pos] != tok:
                pos += 1
            ids.append(languages[min(pos, len(languages) - 1)])
            pos += 1
        out.append(ids)
    return out


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's entries, read safely (weights only; see :mod:`valle.io.checkpoint`)."""
    from valle.io.checkpoint import load_checkpoint

    return load_checkpoint(path, mmap=True)


def _model_from(
    obj: Mapping[str, Any], path: Path, overrides: Sequence[str] = ()
) -> tuple[nn.Module, dict[str, Any]]:
    from valle.io.checkpoint import CheckpointMismatchError, model_from_checkpoint

    try:
        return model_from_checkpoint(obj, path, overrides)
    except CheckpointMismatchError as err:
        if "valle_config" in str(err) or "state_dict" in str(err) or "weights" in str(err):
            raise CheckpointContentError(str(err)) from None
        raise


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
        max_text_tokens: longest text (target phonemes) spoken in one go; longer text is cut
            into chunks (None: never cut, memory then grows with the text).
        chunk_pause: seconds of silence between the chunks of a long text.
        speed: speaking-rate factor for a model with prosody control (its ``generate`` takes
            ``speed``, e.g. VALL-E R): 0.8 slower, 1.25 faster; None: the model's own rate.
        pitch_scale: F0 factor for a model whose ``generate`` takes ``pitch_scale`` (RALL-E's
            pitch tokens): 1.2 higher, 0.8 lower; None: the model's own pitch.
        quantize: weight precision of the model at inference (:mod:`valle.inference.quantize`):
            None or ``"none"`` (float32), ``"int8"`` (CPU: int8 weights of every linear layer),
            ``"bf16"``; the codec is left as it is.
        aligner: the trained aligner (``data/align/aligner.pt`` or a
            :class:`valle.align.Aligner`) that turns a job's ``reference_wav`` into durations;
            needs a model with prosody control and the aligner of the model's data (same
            symbol table, same codec frame rate). None: references are refused. A model whose
            ``generate`` takes ``prompt_durations`` (VALL-E R, RALL-E, the frame-aligned
            MELLE) is also given the aligner's frames per prompt-transcript token, as its
            training data had them (without the aligner: the prompt's frames split uniformly).
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
        max_text_tokens: int | None = MAX_TEXT_TOKENS,
        chunk_pause: float = CHUNK_PAUSE,
        speed: float | None = None,
        pitch_scale: float | None = None,
        quantize: str | None = None,
        aligner: Any = None,
    ) -> None:
        if aligner is not None:
            self._check_prosody_control(model, "a reference recording (aligner)")
        if speed is not None:
            if not speed > 0:
                raise ValueError(f"speed must be > 0, got {speed}")
            if "speed" not in inspect.signature(model.generate).parameters:  # type: ignore[arg-type]
                raise ValueError(
                    f"speed control needs a model with prosody control (e.g. the vallr variant); "
                    f"this {type(model).__name__} has none"
                )
        self.speed = speed
        if pitch_scale is not None:
            if not pitch_scale > 0:
                raise ValueError(f"pitch_scale must be > 0, got {pitch_scale}")
            if "pitch_scale" not in inspect.signature(model.generate).parameters:  # type: ignore[arg-type]
                raise ValueError(
                    "pitch control needs a model with pitch tokens (the ralle variant); "
                    f"this {type(model).__name__} has none"
                )
        self.pitch_scale = pitch_scale
        if max_text_tokens is not None and max_text_tokens < 1:
            raise ValueError(f"max_text_tokens must be >= 1 (or None), got {max_text_tokens}")
        if not chunk_pause >= 0:
            raise ValueError(f"chunk_pause must be >= 0 seconds, got {chunk_pause}")
        self.max_text_tokens = max_text_tokens
        self.chunk_pause = chunk_pause
        self.device = torch.device(device)
        self.model = quantize_model(model.to(self.device), quantize)
        self.symbols = symbols
        self.codec = codec
        self.sampler = sampler
        self.prompt_trim = prompt_trim
        self.max_len_ratio = max_len_ratio
        self._prompts: OrderedDict[tuple[Any, ...], tuple[Tensor, str]] = OrderedDict()
        self._check_vocab()
        self.aligner = None if aligner is None else load_aligner_for(aligner, symbols, codec)

    @staticmethod
    def _check_prosody_control(model: nn.Module, what: str) -> None:
        if "durations" not in inspect.signature(model.generate).parameters:  # type: ignore[arg-type]
            raise ValueError(
                f"{what} needs a model with prosody control (a generate that takes durations: "
                f"the vallr or ralle variant); this {type(model).__name__} has none"
            )

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
        model_overrides: Sequence[str] = (),
        **kwargs: Any,
    ) -> Synthesizer:
        """Load an inference checkpoint (``<exp>/model.pt``) or a full Lightning checkpoint.

        The model is rebuilt from the config stored inside. The symbol table and the codec
        are, in order: the explicit ``tokens`` (a ``tokens.txt`` path or a table) and
        ``codec`` (a Codec or a codec directory, see
        :func:`~valle.inference.codec_spec.codec_from_dir`); the checkpoint's own
        ``"symbols"`` / ``"codec"`` entries; the ``data.tokens`` / ``data.codec_dir`` paths
        recorded in its training config when they exist on this machine. Otherwise a
        :class:`CheckpointContentError` says what to pass. ``model_overrides``: ``key=value``
        inference settings of the stored model config (e.g. ``ar.stop.threshold=0.9``), see
        :func:`valle.io.checkpoint.model_from_checkpoint`. ``kwargs`` go to the constructor.
        """
        path = Path(path)
        obj = _read_checkpoint(path)
        model, config = _model_from(obj, path, tuple(model_overrides))
        data: Mapping[str, Any] = config.get("data") or {}
        if not isinstance(data, Mapping):
            data = {}
        symbols = cls._symbols_from(tokens, obj.get(SYMBOLS_KEY), data.get("tokens"), path)
        make_wave: Any = getattr(model, "wave_maker", None)
        if make_wave is not None:  # a mel model owns its wave maker (MELLE); no codec applies
            from valle.codec.vocoder import MelWaveMaker

            if codec is not None:
                logger.info("%s is a mel model: its own vocoder makes the waves, not %s",
                            path, codec)  # fmt: skip
            codec_obj: Any = MelWaveMaker(make_wave(device=device))
        else:
            codec_obj = cls._codec_from(
                codec, obj.get(CODEC_KEY), data.get("codec_dir"), path, device,
                embedded=obj.get(CODEC_EMBEDDED_KEY),
            )  # fmt: skip
        logger.info("loaded %s (step %s) with %d symbols", path, obj.get("step"), len(symbols))
        return cls(model, symbols, codec_obj, device=device, sampler=sampler, **kwargs)

    @staticmethod
    def _symbols_from(
        tokens: str | os.PathLike[str] | SymbolTable | None,
        stored: Any,
        recorded: Any,
        path: Path,
    ) -> SymbolTable:
        if stored is not None and not isinstance(stored, (list, tuple)):
            raise CheckpointContentError(
                f"{path}: '{SYMBOLS_KEY}' must be a list of symbols in id order"
            )
        if tokens is not None:
            given = tokens if isinstance(tokens, SymbolTable) else SymbolTable.from_file(tokens)
            if stored is not None and len(given) == len(stored):  # other sizes: _check_vocab
                pairs = enumerate(zip(given.symbols, stored, strict=True))
                diff = [i for i, (a, b) in pairs if a != b]
                if diff:
                    i = diff[0]
                    what = tokens if not isinstance(tokens, SymbolTable) else "the given table"
                    raise CheckpointContentError(
                        f"the symbol table {what} differs from the one stored in {path} at "
                        f"{len(diff)} id(s), e.g. id {i}: {given.symbols[i]!r} vs "
                        f"{stored[i]!r}; the model only understands its own table: drop "
                        "--tokens (tokens=) to use the checkpoint's"
                    )
            return given
        if stored is not None:
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
        embedded: Any = None,
    ) -> Codec:
        if isinstance(codec, (str, os.PathLike)):
            return codec_from_dir(codec, device=str(device))
        if codec is not None:
            if not isinstance(codec, Codec):
                raise TypeError(f"codec must be a Codec or a directory, got {type(codec).__name__}")
            return codec
        if stored is not None and not isinstance(stored, Mapping):
            raise CheckpointContentError(f"{path}: '{CODEC_KEY}' must be a codec spec dict")
        if embedded is not None:  # a small codec travels inside the checkpoint
            return codec_from_embedded_entry(embedded, stored, device=str(device))
        if stored is not None:  # a path, also looked up relative to the checkpoint
            return codec_from_spec(stored, device=str(device), near=path)
        if recorded and resolve_codec_path(recorded, path)[0] is not None:
            logger.info("codec from the training config: %s", recorded)
            return codec_from_dir(recorded, device=str(device), near=path)
        raise CheckpointContentError(
            f"{path} carries no codec (no '{CODEC_KEY}' entry"
            + (f"; the recorded {recorded!r} is not here" if recorded else "")
            + "); pass the codec (codec= a Codec or a directory with codec.json / --codec-dir)"
        )

    def _check_vocab(self) -> None:
        vocab = getattr(getattr(self.model, "config", None), "vocab", None)
        if vocab is None:
            return
        if getattr(self.codec, "continuous", False):  # a mel model's wave maker: no codebooks
            got = None
        else:
            got = (int(self.codec.num_codebooks), int(self.codec.codebook_size))
        want = (int(vocab.num_codebooks), int(vocab.codebook_size))
        if got is not None and got != want:
            raise CodecMismatchError(
                f"the codec gives {got[0]} codebooks of {got[1]} codes but the model was trained "
                f"on {want[0]} codebooks of {want[1]}; pass the codec the training codes were "
                "made with (its codec.json / directory)"
            )
        if got is not None:  # prompts are encoded by this codec: merged as the AR expects?
            check_merge_rate(self.model.config, self.codec, strict=False)
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

    @property
    def known_punctuation(self) -> frozenset[str]:
        """The punctuation marks the symbol table has; text is fitted to them."""
        return frozenset(m for m in PUNCTUATION if m in self.symbols)

    def _phonemes(self, text: str, language: str, what: str, hint: str) -> list[str]:
        return self._phonemes_and_languages(text, language, what, hint)[0]

    def _phonemes_and_languages(
        self, text: str, language: str, what: str, hint: str
    ) -> tuple[list[str], list[int]]:
        """Phonemes and the language id of each: ``[EN]..[EN]`` tags and, with ``language``
        "auto", detection by script (:mod:`valle.text.language_tags`)."""
        if not isinstance(text, str):
            raise TypeError(f"the {what} must be a string, got {type(text).__name__} {text!r}")
        if not text.strip():
            raise ValueError(f"the {what} is empty; {hint}")
        if language != AUTO:
            language_id(language)  # UnsupportedLanguageError lists the supported ones
        if language == AUTO or has_language_tags(text):
            return tokenize_multilingual(text, language, punctuation=self.known_punctuation)
        tokens = tokenize_text(text, language, punctuation=self.known_punctuation)
        return tokens, [language_id(language)] * len(tokens)

    def _target(self, text: str, language: str) -> list[str]:
        return self._phonemes(text, language, "text to speak", "pass the sentence to speak")

    def _prompt(self, prompt_text: str, language: str) -> list[str]:
        return self._phonemes(
            prompt_text,
            language,
            "prompt transcript",
            "pass the words spoken in the prompt recording (prompt_text / --prompt-text)",
        )

    def _encode(
        self, prompt: list[str], targets: list[list[str]], text: str, prompt_text: str
    ) -> list[list[int]]:
        """Ids of ``[prompt ; (word boundary) ; target]`` for each target."""
        joint = WORD_BOUNDARY in self.symbols and prompt[-1] != WORD_BOUNDARY
        sep = [WORD_BOUNDARY] if joint else []
        unknown = [t for t in prompt + [t for x in targets for t in x] if t not in self.symbols]
        if unknown:
            raise UnknownSymbolError(
                unknown,
                hint=f"the model's symbol table has no id for these phonemes of {text[:200]!r} "
                f"/ {prompt_text!r}; rephrase the text (e.g. spell out foreign words) or use a "
                "model trained on data containing them",
            )
        return [self.symbols.encode(prompt + sep + target) for target in targets]

    def text_ids(
        self, text: str, prompt_text: str, language: str = "en", prompt_language: str | None = None
    ) -> list[int]:
        """Ids of ``[prompt phonemes ; (word boundary) ; target phonemes]`` (the whole text,
        never cut into chunks; see :meth:`text_chunks`).

        Raises:
            TypeError: text or prompt transcript that is not a string.
            ValueError: empty text or prompt transcript.
            UnsupportedLanguageError: unknown language.
            UnknownSymbolError: phonemes the model has no id for (all of them are named).
        """
        target = self._target(text, language)
        prompt = self._prompt(prompt_text, prompt_language or language)
        return self._encode(prompt, [target], text, prompt_text)[0]

    def text_chunks(
        self, text: str, prompt_text: str, language: str = "en", prompt_language: str | None = None
    ) -> list[list[int]]:
        """Like :meth:`text_ids`, one id list per chunk of at most ``max_text_tokens`` target
        phonemes (one chunk for text within the budget)."""
        return self._text_rows(text, prompt_text, language, prompt_language)[0]

    def _text_rows(
        self, text: str, prompt_text: str, language: str, prompt_language: str | None
    ) -> tuple[list[list[int]], int]:
        """:meth:`text_chunks` and the number of leading ids that are the prompt transcript
        (with its word boundary), the same in every chunk."""
        rows, n, _ = self._text_rows_with_languages(text, prompt_text, language, prompt_language)
        return rows, n

    def _text_rows_with_languages(
        self, text: str, prompt_text: str, language: str, prompt_language: str | None
    ) -> tuple[list[list[int]], int, list[list[int]]]:
        """:meth:`_text_rows` and the language id of every id of every row (VALL-E X: the
        prompt transcript and its word boundary in the prompt's languages, the target
        chunk's tokens in theirs)."""
        target, target_langs = self._phonemes_and_languages(
            text, language, "text to speak", "pass the sentence to speak"
        )
        prompt, prompt_langs = self._phonemes_and_languages(
            prompt_text,
            prompt_language or language,
            "prompt transcript",
            "pass the words spoken in the prompt recording (prompt_text / --prompt-text)",
        )
        if self.max_text_tokens is None:
            targets = [target]
        else:
            targets = split_tokens(target, self.max_text_tokens)
        if len(targets) > 1:
            logger.info(
                "long text (%d phonemes) spoken in %d chunks of <= %d: %r",
                len(target),
                len(targets),
                self.max_text_tokens,
                text[:60] + ("..." if len(text) > 60 else ""),
            )
        rows = self._encode(prompt, targets, text, prompt_text)
        n = len(rows[0]) - len(targets[0])
        head = (prompt_langs + prompt_langs[-1:] * n)[:n]  # + the word boundary's
        langs = [head + ids for ids in _chunk_languages(target, target_langs, targets)]
        return rows, n, langs

    def prompt_codes(
        self, prompt_wav: PromptAudio, prompt_text: str, sample_rate: int | None = None
    ) -> tuple[Tensor, str]:
        """Load, trim and encode a prompt; returns its codes (P, Q) and (trimmed) transcript.

        Prompts are encoded one at a time so that a job's codes never depend on its batch. A
        prompt file is encoded once for the jobs that share it (a ``--jobs`` file with a few
        voices): its codes are kept, keyed by the file's path, size and modification time, the
        transcript, the rate and the trim (the last :data:`PROMPT_CACHE_SIZE` files).
        """
        key = self._prompt_key(prompt_wav, prompt_text, sample_rate)
        if key is not None and key in self._prompts:
            self._prompts.move_to_end(key)
            return self._prompts[key]
        wave = load_prompt(prompt_wav, self.sample_rate, sample_rate)
        wave, prompt_text = trim_prompt(wave, prompt_text, self.sample_rate, self.prompt_trim)
        (codes,) = self.codec.encode([wave])  # (P, Q), or (P, F) mel frames of a mel model
        if codes.shape[0] == 0:
            raise ValueError("the prompt is too short to give one codec frame; pass ~3 s of audio")
        out = (codes if codes.is_floating_point() else codes.long()), prompt_text
        if key is not None:
            self._prompts[key] = out
            if len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)  # the least recently used
        return out

    def _prompt_key(
        self, prompt_wav: PromptAudio, prompt_text: str, sample_rate: int | None
    ) -> tuple[Any, ...] | None:
        """What decides a prompt file's codes (None: not a file, or not readable: not kept)."""
        if not isinstance(prompt_wav, (str, os.PathLike)):
            return None
        try:
            st = os.stat(prompt_wav)
        except OSError:
            return None  # load_prompt says what is wrong with it
        where = os.path.realpath(prompt_wav)
        return (where, st.st_size, st.st_mtime_ns, prompt_text, sample_rate, self.prompt_trim)

    def prepare(self, job: SynthesisJob) -> PreparedJob:
        """Check, tokenize and encode a job (all its errors happen here, none in generation)."""
        codes, prompt_text = self.prompt_codes(
            job.prompt_wav, job.prompt_text, job.prompt_sample_rate
        )
        chunks, n, langs = self._text_rows_with_languages(
            job.text, prompt_text, job.language, job.prompt_language
        )
        prompt_lang = dominant_language(langs[0][:n])
        rows = []
        for ids, row_langs in zip(chunks, langs, strict=True):
            # the generated speech's language (VALL-E X): the chunk's own, or the accent asked
            lang = language_id(job.accent) if job.accent else dominant_language(row_langs[n:])
            rows.append(_Prepared(ids, codes, lang, n, prompt_lang, row_langs))
        if self._aligns_prompt():
            durs_p = self.prompt_durations(
                job.prompt_wav, job.prompt_text, self.symbols.decode(rows[0].text_ids[:n]),
                job.prompt_sample_rate, len(codes),
            )  # fmt: skip
            for r in rows:
                r.prompt_durations = durs_p
        if job.reference_wav is not None:
            ref = self.reference_prosody(
                job.reference_wav, job.text, job.language, job.reference_sample_rate
            )
            # each chunk takes the values of its own target phonemes (chunks are the target's
            # tokens in order, boundary tokens at the cuts left out)
            tokens = [self.symbols.decode(r.text_ids[n:]) for r in rows]
            durs = _chunk_languages(ref.phonemes, ref.durations.tolist(), tokens)
            pitch = None
            if ref.pitch is not None:
                pitch = _chunk_languages(ref.phonemes, ref.pitch.tolist(), tokens)
            for i, r in enumerate(rows):
                r.durations = durs[i]
                r.pitch = None if pitch is None else pitch[i]
        return PreparedJob(rows, job.id)

    def _aligns_prompt(self) -> bool:
        """Whether prompts are aligned: an aligner and a model that reads prompt durations."""
        if self.aligner is None:
            return False
        return "prompt_durations" in inspect.signature(self.model.generate).parameters  # type: ignore[arg-type]

    def prompt_durations(
        self,
        prompt_wav: PromptAudio,
        prompt_text: str,
        tokens: Sequence[str],
        sample_rate: int | None = None,
        frames: int | None = None,
    ) -> list[int]:
        """Codec frames per token of the prompt's transcript (``tokens``: the leading tokens of
        :meth:`text_ids`, its word boundary included) from the ``aligner``, over the prompt as
        :meth:`prompt_codes` trims it; ``frames``: the prompt's codec frames when already
        encoded (None: encoded again to count them)."""
        if self.aligner is None:
            raise ValueError("aligning a prompt needs the aligner: Synthesizer(aligner=...)")
        wave = load_prompt(prompt_wav, self.sample_rate, sample_rate)
        wave, _ = trim_prompt(wave, prompt_text, self.sample_rate, self.prompt_trim)
        name = str(prompt_wav) if isinstance(prompt_wav, (str, os.PathLike)) else "the prompt"
        got = reference_prosody(wave, tokens, self.codec, self.aligner, name=name, frames=frames)
        return got.durations.tolist()

    def reference_prosody(
        self,
        reference_wav: ReferenceAudio,
        text: str,
        language: str = "en",
        sample_rate: int | None = None,
    ) -> ReferenceProsody:
        """Frames (and, for a model with pitch tokens, pitch tokens) per target phoneme of
        ``text`` from a recording that says it (:mod:`valle.inference.reference`); the
        phonemes are this synthesizer's own tokens of ``text`` (those after the prompt
        transcript in :meth:`text_ids`). Needs the ``aligner``."""
        self._check_prosody_control(self.model, "a reference recording")
        if self.aligner is None:
            raise ValueError(
                "a reference recording needs the aligner: Synthesizer(aligner="
                "'data/align/aligner.pt') / valle-infer --aligner (prepare.sh --align true "
                "writes it)"
            )
        phonemes = self._target(text, language)
        name = str(reference_wav) if isinstance(reference_wav, (str, os.PathLike)) else None
        return reference_prosody(reference_wav, phonemes, self.codec, self.aligner,
                                 source_rate=sample_rate, pitch=self._pitch_quantizer(),
                                 name=name or "the reference")  # fmt: skip

    def _pitch_quantizer(self) -> Any:
        """The model's pitch buckets when its ``generate`` takes ``pitch`` (RALL-E's
        ``prosody.pitch_buckets``; the quantiser's fixed F0 range), else None."""
        from valle.data.prosody import PitchQuantizer

        if "pitch" not in inspect.signature(self.model.generate).parameters:  # type: ignore[arg-type]
            return None
        prosody = getattr(getattr(self.model, "config", None), "prosody", None)
        buckets = getattr(prosody, "pitch_buckets", None)
        return None if buckets is None else PitchQuantizer(num_buckets=int(buckets))

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
        accent: str | None = None,
        reference_wav: ReferenceAudio | None = None,
        reference_sample_rate: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """Say ``text`` in the voice of ``prompt_wav``; returns (wave float32 (N,), sample rate).

        ``seed`` (or an explicit ``generator`` on the model's device) makes sampling
        reproducible; ``sampler`` overrides the synthesizer's.

        Cross-lingual (VALL-E X): ``prompt_language`` is the prompt's, ``language`` the
        text's ("auto": detected by script; ``[EN]..[EN][ZH]..[ZH]`` tags for code-switched
        text). ``accent``: the language id of the generated speech for a model with language
        ids (None: the text's own, native speech; e.g. the prompt's language: its accent).

        Prosody control (a model with it, and the ``aligner``): ``reference_wav`` (a file, or
        samples at ``reference_sample_rate``) says ``text``; the speech follows its frames
        per phoneme (and its pitch tokens for a model with them), scaled by ``speed`` /
        ``pitch_scale``.
        """
        job = SynthesisJob(text, prompt_wav, prompt_text, language, prompt_language,
                           prompt_sample_rate, accent=accent, reference_wav=reference_wav,
                           reference_sample_rate=reference_sample_rate)  # fmt: skip
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

        Under greedy decoding a job's wave does not depend on its batch neighbours. A long
        text is spoken in chunks, each a row of a generate call (see the module docstring).
        """
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        prepared = [self.prepare(j) for j in jobs]  # all errors before any generation
        return self.synthesize_prepared(
            prepared, batch_size=batch_size or max(1, len(jobs)), seed=seed,
            generator=generator, sampler=sampler,
        )  # fmt: skip

    def synthesize_prepared(
        self,
        jobs: Sequence[PreparedJob],
        *,
        batch_size: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        sampler: TokenSampler | None = None,
    ) -> list[tuple[np.ndarray, int]]:
        """Synthesize jobs made by :meth:`prepare`, ``batch_size`` rows (jobs or chunks of
        long jobs) per generate call, so memory is bounded by ``batch_size`` chunks whatever
        the text length; the chunks of a job are joined with ``chunk_pause`` s of silence."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        rows = [(j, row) for j, job in enumerate(jobs) for row in job.rows]
        pieces: list[list[np.ndarray]] = [[] for _ in jobs]
        with tqdm(
            total=len(rows), unit="chunk", leave=False, disable=len(rows) <= batch_size
        ) as bar:
            for start in range(0, len(rows), batch_size):
                part = rows[start : start + batch_size]
                waves = self._generate([row for _, row in part], generator, sampler)
                for (j, _), (wave, _sr) in zip(part, waves, strict=True):
                    pieces[j].append(wave)
                bar.update(len(part))
        pause = np.zeros(int(round(self.chunk_pause * self.sample_rate)), dtype=np.float32)
        out: list[tuple[np.ndarray, int]] = []
        for job_waves in pieces:
            spoken = [w for w in job_waves if len(w)]
            joined = [x for w in spoken for x in (pause, w)][1:]
            wave = np.concatenate(joined) if joined else np.zeros(0, dtype=np.float32)
            out.append((wave, self.sample_rate))
        return out

    def _language_kwargs(self, items: list[_Prepared], width: int) -> dict[str, Tensor]:
        """``prompt_language`` (B,) and ``language_tokens`` (B, S) for a model whose
        ``generate`` takes them (VALL-E X: cross-lingual synthesis)."""
        takes = inspect.signature(self.model.generate).parameters  # type: ignore[arg-type]
        out: dict[str, Tensor] = {}
        if "prompt_language" in takes and all(i.prompt_language is not None for i in items):
            out["prompt_language"] = torch.tensor(
                [i.prompt_language for i in items], dtype=torch.long, device=self.device
            )
        if "language_tokens" in takes and all(i.language_tokens is not None for i in items):
            tokens = torch.zeros(len(items), width, dtype=torch.long, device=self.device)
            for b, it in enumerate(items):
                tokens[b, : len(it.language_tokens or [])] = torch.tensor(
                    it.language_tokens, dtype=torch.long
                )
            out["language_tokens"] = tokens  # (B, S)
        return out

    def synthesis_inputs(self, rows: Sequence[_Prepared]) -> SynthesisInputs:
        """Rows of :meth:`prepare` (jobs, or chunks of long jobs) as one batch on the model's
        device, right-padded with zeros: text (B, S), prompt codes (B, P, Q) (or (B, P, F)
        mel frames of a mel wave maker), each row's generated-speech language (B,),
        ``prompt_text_lens`` (B,) when every row knows it, and the forced ``durations``
        (B, S) (0 outside the target text) when every row has a reference's."""
        dev = self.device
        text_lens = torch.tensor([len(r.text_ids) for r in rows], dtype=torch.long, device=dev)
        prompt_lens = torch.tensor([len(r.prompt_codes) for r in rows], dtype=torch.long,
                                   device=dev)  # fmt: skip
        first = rows[0].prompt_codes
        text = torch.zeros(len(rows), int(text_lens.max()), dtype=torch.long, device=dev)  # (B, S)
        prompt = torch.zeros(len(rows), int(prompt_lens.max()), first.shape[1], dtype=first.dtype,
                             device=dev)  # fmt: skip  # (B, P, Q)
        for b, r in enumerate(rows):
            text[b, : len(r.text_ids)] = torch.tensor(r.text_ids, dtype=torch.long)
            prompt[b, : len(r.prompt_codes)] = r.prompt_codes.to(dev)
        language = torch.tensor([r.language for r in rows], dtype=torch.long, device=dev)
        prompt_text_lens = None
        if all(r.prompt_text_len is not None for r in rows):  # the NAR may read the target alone
            prompt_text_lens = torch.tensor([r.prompt_text_len for r in rows], dtype=torch.long,
                                            device=dev)  # fmt: skip
        durations = _target_values(rows, lambda r: r.durations, text, 0)  # (B, S) or None
        return SynthesisInputs(text, text_lens, prompt, prompt_lens, language, prompt_text_lens,
                               durations=durations)  # fmt: skip

    def _generate(
        self,
        items: list[_Prepared],
        generator: torch.Generator | None,
        sampler: TokenSampler | None,
    ) -> list[tuple[np.ndarray, int]]:
        B = len(items)
        forced = [i.durations is not None for i in items]
        if any(forced) and not all(forced):  # forced durations steer every row of a call
            out: list[Any] = [None] * B
            for want in (True, False):
                idx = [b for b in range(B) if forced[b] == want]
                part = self._generate([items[b] for b in idx], generator, sampler)
                for b, result in zip(idx, part, strict=True):
                    out[b] = result
            return out
        inputs = self.synthesis_inputs(items)
        kwargs: dict[str, Any] = {}
        if self.max_len_ratio is not None:
            kwargs["max_len_ratio"] = self.max_len_ratio
        if inputs.durations is not None:
            kwargs["durations"] = inputs.durations
            kwargs.update(self._forced_bound(inputs))
            pitch = _target_values(items, lambda r: r.pitch, inputs.text_tokens, -1)
            if pitch is not None:  # -1: left to the model
                kwargs["pitch"] = pitch
        if self.speed is not None:
            kwargs["speed"] = self.speed
        if self.pitch_scale is not None:
            kwargs["pitch_scale"] = self.pitch_scale
        if inputs.prompt_text_lens is not None:
            kwargs["prompt_text_lens"] = inputs.prompt_text_lens
            prompt_durations = _prompt_values(items, inputs.text_tokens)
            if prompt_durations is not None:
                kwargs["prompt_durations"] = prompt_durations
        kwargs.update(self._language_kwargs(items, inputs.text_tokens.shape[1]))
        with torch.inference_mode():
            generate: Any = self.model.generate
            codes = generate(
                inputs.text_tokens,
                inputs.text_lens,
                inputs.prompt_codes,
                inputs.prompt_lens,
                language=inputs.language,
                sampler=sampler if sampler is not None else self.sampler,
                generator=generator,
                **kwargs,
            )  # B x (T_b, Q)
            nonempty = [b for b, c in enumerate(codes) if c.shape[0] > 0]
            waves = self.codec.decode([codes[b].cpu() for b in nonempty]) if nonempty else []
        out = [(np.zeros(0, dtype=np.float32), self.sample_rate) for _ in range(B)]
        for b, w in zip(nonempty, waves, strict=True):
            out[b] = (w.detach().float().cpu().numpy().reshape(-1), self.sample_rate)
        if len(nonempty) < B:
            logger.warning(
                "%d of %d jobs ended at once (EOS first): empty waves", B - len(nonempty), B
            )
        return out

    def _forced_bound(self, inputs: SynthesisInputs) -> dict[str, float]:
        """``max_len_ratio`` raised, when needed, so that the AR's length bound (frames per
        text token) fits the forced durations scaled by ``speed`` (a slow reference is not
        cut short by a bound meant for the model's own rate)."""
        assert inputs.durations is not None
        ratio = self.max_len_ratio
        if ratio is None:
            ratio = getattr(getattr(self.model, "ar", None), "max_len_ratio", None)
        if ratio is None:
            return {}
        speed = self.speed or 1.0
        frames = inputs.durations.double() / speed + 0.5 * (inputs.durations > 0)  # rounding
        need = float(((frames.sum(-1) + 2) / inputs.text_lens.double()).max())
        return {"max_len_ratio": need} if need > ratio else {}


def _prompt_values(rows: Sequence[_Prepared], like: Tensor) -> Tensor | None:
    """Every row's prompt durations at its leading (prompt-transcript) tokens in a (B, S) long
    tensor like ``like``, 0 elsewhere; None unless every row has them."""
    if not rows or any(r.prompt_durations is None for r in rows):
        return None
    out = torch.zeros_like(like)  # (B, S)
    for b, r in enumerate(rows):
        v = r.prompt_durations or []
        out[b, : len(v)] = torch.tensor(v, dtype=torch.long)
    return out


def _target_values(rows: Sequence[_Prepared], get: Any, like: Tensor, fill: int) -> Tensor | None:
    """``get(row)`` (one value per target token) of every row at its target tokens in a (B, S)
    long tensor like ``like``, ``fill`` elsewhere; None unless every row has them."""
    values = [get(r) for r in rows]
    if not rows or any(v is None for v in values) or any(r.prompt_text_len is None for r in rows):
        return None
    out = torch.full_like(like, fill)  # (B, S)
    for b, (r, v) in enumerate(zip(rows, values, strict=True)):
        start = int(r.prompt_text_len or 0)
        out[b, start : start + len(v)] = torch.tensor(v, dtype=torch.long)
    return out
