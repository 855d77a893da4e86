"""Zero-shot TTS test-set protocols: which utterances are synthesized, with which prompt.

The VALL-E papers (VALL-E §5.1; VALL-E 2 §4; VALL-E R, RALL-E and MELLE follow them) select
the LibriSpeech test-clean utterances of 4 to 10 seconds and evaluate two settings:

- **continuation** (``"cont"``): the prompt is the first 3 s of the utterance and the transcript
  of those 3 s; the system continues the utterance.
- **cross-sentence** (``"cross"``): the prompt is 3 s of *another* utterance of the same speaker
  with its transcript; the system says the whole target sentence.

Any lhotse ``CutSet`` whose cuts have a supervision with text and speaker works.

Prompt transcripts. A prompt's transcript is the words spoken inside the prompt window. With word
alignments (``supervision.alignment["word"]``; lhotse keeps their times relative to the
*recording*, so they are shifted by ``cut.start``) a word belongs to the prompt when its midpoint
lies inside the window. Cuts of the aligner stage (``prepare.sh --align true``) have no word
alignment but the aligner's frames per phoneme token (``custom["durations"]``), from which
:mod:`valle.eval.word_times` places the words (source ``"durations"``). Without either we use a
*time-proportional split*: the ``n`` words of the transcript are spread evenly over the
supervision, word ``k`` taking the midpoint ``start + (k + 0.5) / n * duration``; the item records
``prompt_text_source = "proportional"`` so such approximate prompts can be told apart (on the
mini corpus they misplace the prompt's last word by one to three words).
Chinese or Japanese transcripts written without spaces are split into characters instead of
words (joined back without spaces).

Prompt windows start at the beginning of the prompt cut, which avoids cutting a word at the
window start, and end at a word boundary where the words have times (alignment or durations):
at the start of the first word that does not end within the 3 s (:func:`prompt_window`; the
item's ``prompt_duration`` is that end, at most 3 s). The prompt's audio then holds exactly the
words of its transcript, and a continuation's reference after the prompt holds exactly the
words of ``target_text``; a window cut at 3 s sharp would split a word between the two (the
system says it whole after the prompt while the reference holds only its tail, or not at all),
which skews the continuation's reference lengths and its reference rows' WER. The papers cut
"the first 3 seconds" without saying how a word across the mark is handled.

Lists are written as JSON lines (one :class:`TestItem` per line) and are reproducible: items
are sorted by id and every random choice comes from ``random.Random(seed)``.

Multiple samples. ``n_samples > 1`` asks the system for several samples of each item;
:mod:`valle.eval.rerank` then keeps the best one (VALL-E 2 §4 reports such a "sample N times
and pick the best" figure next to the single-sample one). Sample files are named by
:func:`hypothesis_filename`.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from valle.eval.files import read_jsonl, write_jsonl
from valle.eval.normalize import is_character_language
from valle.eval.word_times import word_times

logger = logging.getLogger(__name__)

Setting = Literal["cont", "cross"]
SETTINGS: tuple[str, ...] = ("cont", "cross")
SETTING_ALIASES = {
    "cont": "cont",
    "continuation": "cont",
    "cross": "cross",
    "cross-sentence": "cross",
    "cross_sentence": "cross",
}

PROMPT_SECONDS = 3.0
MIN_SECONDS = 4.0
MAX_SECONDS = 10.0
MIN_PROMPT_SHARE = 0.5  # a word-boundary prompt window keeps at least this share of its seconds


@dataclass(frozen=True)
class TestItem:
    """One line of a protocol list.

    Times are seconds. ``target_start``/``prompt_start`` are offsets in the recording.
    ``text`` is the full transcript of the target utterance; ``target_text`` is what the system
    is asked to say: the whole of ``text`` for cross-sentence, the words after the prompt for
    continuation (score against ``text`` when the system's output includes the prompt audio).
    """

    __test__ = False  # not a pytest class

    id: str
    setting: str
    speaker: str
    language: str | None
    text: str
    target_text: str
    recording_id: str
    target_start: float
    target_duration: float
    prompt_cut_id: str
    prompt_recording_id: str
    prompt_start: float
    prompt_duration: float
    prompt_text: str
    prompt_text_source: str  # "alignment" | "durations" | "proportional"
    n_samples: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize_setting(setting: str) -> Setting:
    """Map ``cont``/``continuation``/``cross``/``cross-sentence`` to ``"cont"`` or ``"cross"``."""
    key = setting.lower()
    if key not in SETTING_ALIASES:
        raise ValueError(f"unknown setting {setting!r}; use one of {sorted(SETTING_ALIASES)}")
    return SETTING_ALIASES[key]  # type: ignore[return-value]


def hypothesis_filename(item_id: str, sample: int | None = None, ext: str = "wav") -> str:
    """File name of a system output: ``<id>.wav``, or ``<id>-<k>.wav`` for sample ``k`` of many."""
    return f"{item_id}.{ext}" if sample is None else f"{item_id}-{sample}.{ext}"


# --------------------------------------------------------------------------- cut helpers
def _supervision(cut: Any) -> Any:
    sups = [s for s in cut.supervisions if s.text]
    if not sups:
        return None
    return sups[0]


def _timed_words(cut: Any) -> tuple[list[tuple[str, float, float]], str, str]:
    """``(word, start, end)`` of ``cut``'s transcript in seconds from the cut start, the
    separator that joins the words back, and the source (see :func:`words_in_window`)."""
    sup = _supervision(cut)
    if sup is None:
        raise ValueError(f"cut {cut.id} has no supervision with text")
    alignment = (sup.alignment or {}).get("word")
    if alignment:
        # lhotse keeps alignment times in the recording's frame (trimming a cut to its
        # supervision shifts supervision.start but not the alignment items).
        items = [
            (a.symbol, a.start - cut.start, a.start + a.duration - cut.start)
            for a in alignment
            if a.symbol.strip()
        ]
        return items, " ", "alignment"
    if (timed := word_times(cut, sup)) is not None:
        return timed, " ", "durations"
    words, sep = sup.text.split(), " "
    if len(words) == 1 and is_character_language(sup.language):
        # Chinese/Japanese text written without spaces: spread the characters instead
        words, sep = list(words[0]), ""
    step = sup.duration / max(len(words), 1)
    items = [(w, sup.start + k * step, sup.start + (k + 1) * step) for k, w in enumerate(words)]
    return items, sep, "proportional"


def _split(
    items: list[tuple[str, float, float]], sep: str, start: float, end: float
) -> tuple[str, str]:
    mids = [(w, (a + b) / 2) for w, a, b in items]
    inside = [w for w, mid in mids if start <= mid < end]
    return sep.join(inside), sep.join(w for w, mid in mids if mid >= end)


def words_in_window(cut: Any, window_start: float, window_end: float) -> tuple[str, str, str]:
    """Words of ``cut``'s transcript whose midpoint lies in ``[window_start, window_end)``
    (seconds from the cut start), the words after the window, and the method used.

    Returns ``(inside, after, source)`` with ``source`` ``"alignment"`` (word alignments),
    ``"durations"`` (the aligner's token durations, :mod:`valle.eval.word_times`) or
    ``"proportional"``.
    """
    items, sep, source = _timed_words(cut)
    return (*_split(items, sep, window_start, window_end), source)


def prompt_window(cut: Any, prompt_seconds: float) -> tuple[float, str, str, str]:
    """The prompt window of at most ``prompt_seconds`` from ``cut``'s start: ``(end, inside,
    after, source)``, its end in seconds and then as :func:`words_in_window`.

    The window ends at the start of the first word that does not end inside
    ``prompt_seconds``, so the prompt's audio holds whole words, its transcript says exactly
    them, and the words after it are whole (a pause across the mark is cut at
    ``prompt_seconds``). Without word times (``"proportional"``), or where that would keep less
    than :data:`MIN_PROMPT_SHARE` of ``prompt_seconds`` (a long first word), the window is
    ``prompt_seconds`` and the word across its end goes where its midpoint lies."""
    items, sep, source = _timed_words(cut)
    end = prompt_seconds
    if source != "proportional":
        first_out = min((a for _, a, b in items if b > prompt_seconds), default=prompt_seconds)
        if MIN_PROMPT_SHARE * prompt_seconds <= first_out < prompt_seconds:
            end = first_out
    return (end, *_split(items, sep, 0.0, end), source)


def select_utterances(
    cuts: Iterable[Any], min_seconds: float = MIN_SECONDS, max_seconds: float = MAX_SECONDS
) -> list[Any]:
    """Cuts of ``min_seconds``..``max_seconds`` (inclusive) with a transcript, sorted by id."""
    if min_seconds > max_seconds:
        raise ValueError(f"min_seconds {min_seconds} > max_seconds {max_seconds}")
    chosen = [
        c for c in cuts if min_seconds <= c.duration <= max_seconds and _supervision(c) is not None
    ]
    return sorted(chosen, key=lambda c: c.id)


def _speaker(cut: Any) -> str:
    sup = _supervision(cut)
    if sup is None or not sup.speaker:
        raise ValueError(
            f"cut {cut.id} has no speaker in its supervision; the protocols need speaker ids "
            "(set SupervisionSegment.speaker in the corpus recipe)"
        )
    return str(sup.speaker)


def _overlaps(a_start: float, a_dur: float, b_start: float, b_dur: float) -> bool:
    return a_start < b_start + b_dur and b_start < a_start + a_dur


# --------------------------------------------------------------------------- protocol builders
def build_protocol(
    cuts: Iterable[Any],
    setting: str,
    seed: int = 0,
    prompt_seconds: float = PROMPT_SECONDS,
    min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS,
    max_items: int | None = None,
    n_samples: int = 1,
) -> list[TestItem]:
    """Build the test list of one setting from a CutSet (see the module docstring)."""
    st = normalize_setting(setting)
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    if prompt_seconds <= 0 or prompt_seconds >= min_seconds:
        raise ValueError(
            f"prompt_seconds ({prompt_seconds}) must be positive and shorter than the shortest "
            f"target ({min_seconds} s)"
        )
    all_cuts = sorted(cuts, key=lambda c: c.id)
    targets = select_utterances(all_cuts, min_seconds, max_seconds)
    if not targets:
        raise ValueError(
            f"no cut of {min_seconds}-{max_seconds} s with a transcript; check the manifest "
            "or widen --min-seconds/--max-seconds"
        )
    rng = random.Random(seed)
    if max_items is not None and max_items < len(targets):
        targets = sorted(rng.sample(targets, max_items), key=lambda c: c.id)

    if st == "cont":
        items = [_continuation_item(c, prompt_seconds, n_samples) for c in targets]
    else:
        by_speaker: dict[str, list[Any]] = defaultdict(list)
        for c in all_cuts:
            if _supervision(c) is not None and c.duration >= prompt_seconds:
                by_speaker[_speaker(c)].append(c)
        items = []
        skipped = 0
        for c in targets:
            item = _cross_item(c, by_speaker[_speaker(c)], prompt_seconds, n_samples, rng)
            if item is None:
                skipped += 1
            else:
                items.append(item)
        if skipped:
            logger.warning("%d targets skipped: no other utterance of their speaker", skipped)
        if not items:
            raise ValueError(
                "no cross-sentence item: every speaker has a single utterance of at least "
                f"{prompt_seconds} s; the setting needs two utterances per speaker"
            )
    logger.info("%s protocol: %d items (seed %d)", st, len(items), seed)
    return items


def _continuation_item(cut: Any, prompt_seconds: float, n_samples: int) -> TestItem:
    sup = _supervision(cut)
    end, prompt_text, rest, source = prompt_window(cut, prompt_seconds)
    return TestItem(
        id=cut.id,
        setting="cont",
        speaker=_speaker(cut),
        language=sup.language,
        text=sup.text,
        target_text=rest,
        recording_id=cut.recording_id,
        target_start=round(cut.start, 4),
        target_duration=round(cut.duration, 4),
        prompt_cut_id=cut.id,
        prompt_recording_id=cut.recording_id,
        prompt_start=round(cut.start, 4),
        prompt_duration=round(end, 4),
        prompt_text=prompt_text,
        prompt_text_source=source,
        n_samples=n_samples,
    )


def _cross_item(
    cut: Any, same_speaker: Sequence[Any], prompt_seconds: float, n_samples: int, rng: random.Random
) -> TestItem | None:
    candidates = [
        p
        for p in same_speaker
        if p.id != cut.id
        and not (
            p.recording_id == cut.recording_id
            and _overlaps(p.start, prompt_seconds, cut.start, cut.duration)
        )
    ]
    if not candidates:
        return None
    prompt = rng.choice(candidates)
    end, prompt_text, _, source = prompt_window(prompt, prompt_seconds)
    sup = _supervision(cut)
    return TestItem(
        id=cut.id,
        setting="cross",
        speaker=_speaker(cut),
        language=sup.language,
        text=sup.text,
        target_text=sup.text,
        recording_id=cut.recording_id,
        target_start=round(cut.start, 4),
        target_duration=round(cut.duration, 4),
        prompt_cut_id=prompt.id,
        prompt_recording_id=prompt.recording_id,
        prompt_start=round(prompt.start, 4),
        prompt_duration=round(end, 4),
        prompt_text=prompt_text,
        prompt_text_source=source,
        n_samples=n_samples,
    )


# --------------------------------------------------------------------------- list files
def write_protocol(items: Iterable[TestItem], path: str | Path) -> Path:
    """Write a protocol list as JSON lines (atomic)."""
    return write_jsonl(path, (i.as_dict() for i in items))


_REQUIRED = [f.name for f in fields(TestItem) if f.name != "n_samples"]


def read_protocol(path: str | Path) -> list[TestItem]:
    """Read a list written by :func:`write_protocol`; missing fields are a clear error."""
    items = []
    for k, row in enumerate(read_jsonl(path), 1):
        missing = [f for f in _REQUIRED if f not in row]
        if missing:
            raise ValueError(
                f"{path}: item {k} lacks {missing}; make the list with `valle-bench protocol`"
            )
        items.append(TestItem(**{f.name: row[f.name] for f in fields(TestItem) if f.name in row}))
    return items


def load_prompt_audio(item: TestItem, cuts: Any) -> tuple[Any, int]:
    """The prompt wave of ``item`` cut from its prompt cut in ``cuts`` -> ``(wave (N,), sr)``."""
    cut = cuts[item.prompt_cut_id]
    # prompt_start is rounded to 0.1 ms in the list: never let that put the offset before the cut.
    offset = max(0.0, item.prompt_start - cut.start)
    seg = cut.truncate(offset=offset, duration=item.prompt_duration)
    return seg.load_audio()[0], int(cut.sampling_rate)


def target_offset(item: TestItem) -> float:
    """Seconds from the start of ``item``'s target utterance to the part a system is asked to
    say: the prompt window's end for continuation, 0 for cross-sentence."""
    if item.setting != "cont":
        return 0.0
    return float(item.prompt_start) - float(item.target_start) + float(item.prompt_duration)


def after_prompt(item: TestItem, wave: Any, sample_rate: int) -> Any:
    """The part of the target utterance's ``wave`` (N,) that ``item`` asks a system to say:
    what follows the prompt window for continuation, all of it for cross-sentence.

    A continuation system outputs the continuation only; scoring the ground truth or its codec
    resynthesis on the whole utterance would count the prompt itself (the same audio the
    similarity compares against, and words the system was not asked to say) in the reference
    rows. The cut is at the prompt window's end (:func:`target_offset`), the boundary the system
    continues from; a word straddling it is cut with it (the same reference
    :mod:`valle.eval.output_lengths` measures).
    """
    if item.setting != "cont":
        return wave
    start = int(round(target_offset(item) * sample_rate))
    if start >= len(wave):
        raise ValueError(
            f"item {item.id}: the wave ({len(wave) / sample_rate:.2f} s) ends inside its "
            f"{item.prompt_duration} s prompt window; is it the whole target utterance?"
        )
    return wave[start:]


def load_target_audio(item: TestItem, cuts: Any) -> tuple[Any, int]:
    """The original (ground-truth) recording of the target utterance -> ``(wave (N,), sr)``."""
    cut = cuts[item.id]
    return cut.load_audio()[0], int(cut.sampling_rate)
