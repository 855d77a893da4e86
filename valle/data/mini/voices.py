"""The voices of the offline mini corpus and the plan of who reads what.

Every speaker is one engine voice with fixed settings (rate, pitch); its id is a stable, readable
name such as ``"flite-slt"`` or ``"espeak-en-gb-f2"``. Two pairs of speakers are made from the same
recorded person (flite's and festival's SLT; flite's and festival's KAL): ``source_speaker`` says
so, and the held-out test speakers share no source with any training speaker.

Choice of voices: flite and festival voices make most of the English data and all English test
speakers, because ASR understands them far better (WER about 5-16%) than espeak-ng's formant
voices (37-53%); four espeak-ng English variants add speaker variety. Mandarin and Japanese come
from espeak-ng only: nine variants each (``+m1``..``+m7``, ``+f1``..``+f5`` with their own rate and
pitch), two of them held out for the zero-shot test, each language about 25 minutes (VALL-E X,
issue 10: cross-lingual training needs more than the 3-4 minutes the first two variants gave).
The held-out variants of one language are not training voices of the other (zh test: f2, m7;
ja test: f3, m6).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from valle.data.mini.sentences import load_sentences


@dataclass(frozen=True)
class Voice:
    """One speaker of the mini corpus.

    Attributes:
        speaker: stable speaker id.
        engine: ``"flite"``, ``"festival"`` or ``"espeak"``.
        name: the engine's voice name (flite ``-voice``, festival ``voice_<name>``, espeak-ng
            voice with optional ``+variant``).
        language: ``"en"``, ``"zh"`` or ``"ja"``.
        num_utterances: utterances this voice reads in the full-size corpus (scale 1); an
            utterance is :data:`SENTENCES_PER_UTTERANCE` consecutive sentences.
        source_speaker: the recorded person (or synthesiser) behind the voice.
        stretch: duration stretch (>1 is slower) for flite/festival.
        shift: pitch and formant shift in cents applied to the engine's audio with sox
            (``sox pitch``: durations, and so the phone timings, are kept). A shifted copy of a
            voice sounds like another, larger or smaller speaker: it adds speaker variety
            to the training voices for the zero-shot test (0: none).
        rate: espeak-ng words per minute.
        pitch: espeak-ng pitch, 0..99.
    """

    speaker: str
    engine: str
    name: str
    language: str
    num_utterances: int
    source_speaker: str
    stretch: float = 1.0
    rate: int = 175
    pitch: int = 50
    shift: int = 0

    @property
    def phone_set(self) -> str:
        """The engine's phone inventory: flite and festival use CMU (radio) phones."""
        return "espeak" if self.engine == "espeak" else "cmu"

    def settings(self) -> dict[str, object]:
        """Everything that changes the audio; stored with each utterance to detect stale files."""
        if self.engine == "espeak":
            out: dict[str, object] = {
                "engine": self.engine,
                "voice": self.name,
                "rate": self.rate,
                "pitch": self.pitch,
            }
        else:
            out = {"engine": self.engine, "voice": self.name, "stretch": self.stretch}
        if self.shift:
            out["shift"] = self.shift
        return out


VOICES: tuple[Voice, ...] = (
    Voice("flite-slt", "flite", "slt", "en", 230, "cmu-slt"),
    Voice("flite-rms", "flite", "rms", "en", 230, "cmu-rms", stretch=1.05),
    Voice("flite-awb", "flite", "awb", "en", 55, "cmu-awb"),
    Voice("flite-kal16", "flite", "kal16", "en", 230, "cmu-kal", stretch=0.95),
    Voice("festival-kal", "festival", "kal_diphone", "en", 230, "cmu-kal", stretch=1.1),
    Voice("festival-ked", "festival", "ked_diphone", "en", 55, "cmu-ked"),
    Voice("festival-slt-hts", "festival", "cmu_us_slt_arctic_hts", "en", 230, "cmu-slt"),
    # pitch/formant-shifted copies of training voices (sox): more speaker variety (see Voice.shift)
    Voice("flite-slt-m400", "flite", "slt", "en", 150, "cmu-slt", shift=-400),
    Voice("flite-rms-p400", "flite", "rms", "en", 150, "cmu-rms", stretch=1.05, shift=400),
    Voice("flite-rms-m250", "flite", "rms", "en", 150, "cmu-rms", stretch=0.95, shift=-250),
    Voice("flite-kal16-p300", "flite", "kal16", "en", 150, "cmu-kal", shift=300),
    Voice("festival-kal-m200", "festival", "kal_diphone", "en", 150, "cmu-kal", shift=-200),
    Voice(
        "festival-slt-hts-p250",
        "festival",
        "cmu_us_slt_arctic_hts",
        "en",
        150,
        "cmu-slt",
        stretch=1.1,
        shift=250,
    ),
    Voice("espeak-en-us-m3", "espeak", "en-us+m3", "en", 150, "espeak-m3", rate=165, pitch=45),
    Voice("espeak-en-gb-f2", "espeak", "en+f2", "en", 150, "espeak-f2", rate=160, pitch=55),
    Voice(
        "espeak-en-gb-scotland-m5",
        "espeak",
        "en-gb-scotland+m5",
        "en",
        150,
        "espeak-m5",
        rate=155,
        pitch=40,
    ),
    Voice("espeak-en-029-f4", "espeak", "en-029+f4", "en", 150, "espeak-f4", rate=170, pitch=60),
    # Mandarin: espeak-ng variants with their own rate (words per minute) and pitch (0..99)
    *(
        Voice(
            f"espeak-cmn-{v}",
            "espeak",
            f"cmn-latn-pinyin+{v}",
            "zh",
            n,
            f"espeak-{v}",
            rate=rate,
            pitch=pitch,
        )  # fmt: skip
        for v, n, rate, pitch in (
            ("m1", 50, 150, 45),
            ("m2", 50, 140, 35),
            ("m3", 50, 160, 50),
            ("m4", 50, 135, 40),
            ("f1", 50, 155, 60),
            ("f4", 50, 145, 65),
            ("f5", 50, 165, 58),
            ("f2", 40, 150, 55),  # held out
            ("m7", 40, 150, 42),  # held out
        )
    ),
    # Japanese
    *(
        Voice(
            f"espeak-ja-{v}", "espeak", f"ja+{v}", "ja", n, f"espeak-{v}", rate=rate, pitch=pitch
        )  # fmt: skip
        for v, n, rate, pitch in (
            ("m3", 55, 150, 45),
            ("m1", 55, 145, 40),
            ("m2", 55, 155, 50),
            ("m4", 55, 140, 35),
            ("f1", 55, 150, 62),
            ("f4", 55, 160, 66),
            ("f5", 55, 145, 58),
            ("f3", 40, 150, 60),  # held out
            ("m6", 40, 150, 44),  # held out
        )
    ),
)
"""All speakers. espeak-ng's Mandarin is used through ``cmn-latn-pinyin``: it reads the same Han
characters as ``cmn`` but speaks the dictionary's pinyin itself, whereas the plain ``cmn`` voice in
espeak-ng 1.51 switches to English and spells most syllables out ("ta one")."""

MINI_TEST_SPEAKERS: tuple[str, ...] = (
    "flite-awb",
    "festival-ked",
    "espeak-cmn-f2",
    "espeak-cmn-m7",
    "espeak-ja-f3",
    "espeak-ja-m6",
)
"""Whole speakers held out for the zero-shot test split: two English voices recorded from people
absent from training (AWB, KED), and two Mandarin and two Japanese espeak-ng variants."""


SENTENCES_PER_UTTERANCE: dict[str, int] = {"en": 2, "zh": 1, "ja": 1}
"""Consecutive sentences read as one utterance, per language (absent: 1). One English sentence
lasts about 3.8 s (p90 5.8 s); a model trained on that never sees the 7-13 s prompt + target
sequences of zero-shot inference (VALL-E sec. 5.1: 3 s prompt, 4-10 s targets) and stops early.
Two sentences make 6-15 s utterances, the range of LibriTTS (VALL-E sec. 5.1). The engines read
the joined text as one utterance with one continuous phone timing (a pause at the period)."""


@dataclass(frozen=True)
class PlannedUtterance:
    """One utterance to synthesise: ``id`` is ``<speaker>_<sentence id>``.

    ``sentence_id`` names the first and last sentence read (``"en0012-0013"``) when the utterance
    joins several, else the one sentence (``"zh0007"``).
    """

    id: str
    voice: Voice
    sentence_id: str
    text: str


def voice_by_speaker(speaker: str) -> Voice:
    """Look a voice up by speaker id."""
    for voice in VOICES:
        if voice.speaker == speaker:
            return voice
    raise KeyError(f"unknown mini-corpus speaker {speaker!r}; known: {[v.speaker for v in VOICES]}")


def group_sentences(num_sentences: int, per_utterance: int) -> list[list[int]]:
    """Consecutive sentence indices in groups of ``per_utterance``; a shorter tail joins the last
    full group (so no utterance is shorter than ``per_utterance`` sentences when there are that
    many)."""
    if per_utterance < 1:
        raise ValueError(f"sentences per utterance must be >= 1, got {per_utterance}")
    groups = [
        list(range(i, min(i + per_utterance, num_sentences)))
        for i in range(0, num_sentences, per_utterance)
    ]
    if len(groups) > 1 and len(groups[-1]) < per_utterance:
        groups[-2].extend(groups.pop())
    return groups


def _group_id(language: str, group: list[int]) -> str:
    if len(group) == 1:
        return f"{language}{group[0]:04d}"
    return f"{language}{group[0]:04d}-{group[-1]:04d}"


@dataclass(frozen=True)
class SentencePool:
    """Sentences some voices read; ``prefix`` starts their sentence ids (``"enf0012-0013"``)."""

    prefix: str
    sentences: tuple[str, ...]


def default_pools(language: str) -> tuple[SentencePool, SentencePool]:
    """``(train pool, test pool)`` of a language: who reads what in the default corpus.

    English training voices read sentences cut from Debian's ``fortunes`` files
    (:mod:`valle.data.mini.fortune_sentences`, about 8,000 sentences) and the held-out test
    voices read the committed Alice sentences, so no test text was heard in training and the
    training speakers read thousands of different texts rather than the same ~160. Mandarin
    training voices read sentences from Debian's ``fortunes-zh``
    (:mod:`valle.data.mini.chinese_sentences`, about 14,000), Japanese training voices
    sentences generated from templates (:mod:`valle.data.mini.japanese_sentences`); their
    held-out voices read the committed lists.
    """
    committed = SentencePool(language, tuple(load_sentences(language)))
    if language == "en":
        from valle.data.mini.fortune_sentences import fortune_sentences

        return SentencePool("enf", tuple(fortune_sentences())), committed
    if language == "zh":
        from valle.data.mini.chinese_sentences import chinese_sentences

        return SentencePool("zhf", tuple(chinese_sentences())), committed
    if language == "ja":
        from valle.data.mini.japanese_sentences import japanese_sentences

        return SentencePool("jat", tuple(japanese_sentences())), committed
    return committed, committed


def plan_corpus(
    *,
    seed: int = 0,
    scale: float = 1.0,
    voices: tuple[Voice, ...] = VOICES,
    sentences_per_utterance: Mapping[str, int] | None = None,
    pools: Callable[[str], tuple[SentencePool, SentencePool]] = default_pools,
    test_speakers: tuple[str, ...] | None = None,
) -> list[PlannedUtterance]:
    """Who reads which sentences.

    ``pools(language)`` gives the sentences of training voices and of the held-out test voices
    (``test_speakers``, default :data:`MINI_TEST_SPEAKERS`). The sentences of each pool are
    grouped into utterances of consecutive sentences (``sentences_per_utterance``, default
    :data:`SENTENCES_PER_UTTERANCE`); the groups are shuffled once (``seed``); voice ``k`` of
    the ``K`` voices reading a pool reads a window of that order starting at ``k * N / K``,
    wrapping around, so subsets overlap only when the voices read more than the pool holds and,
    when they read enough, together cover every sentence. ``scale`` shrinks every voice's count
    proportionally (at least one utterance per voice).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0 (1.0 is the full corpus), got {scale}")
    per_utterance = (
        SENTENCES_PER_UTTERANCE if sentences_per_utterance is None else sentences_per_utterance
    )
    held_out = set(MINI_TEST_SPEAKERS if test_speakers is None else test_speakers)
    plan: list[PlannedUtterance] = []
    for language in sorted({v.language for v in voices}):
        train_pool, test_pool = pools(language)
        lang_voices = [v for v in voices if v.language == language]
        readers = [
            (train_pool, [v for v in lang_voices if v.speaker not in held_out]),
            (test_pool, [v for v in lang_voices if v.speaker in held_out]),
        ]
        if train_pool == test_pool:  # one pool: spread all voices over it, as one group
            readers = [(train_pool, lang_voices)]
        for pool, pool_voices in readers:
            if not pool_voices:
                continue
            groups = group_sentences(len(pool.sentences), per_utterance.get(language, 1))
            order = list(range(len(groups)))
            random.Random(f"{seed}-{language}").shuffle(order)
            for k, voice in enumerate(pool_voices):
                count = min(len(groups), max(1, round(voice.num_utterances * scale)))
                offset = (k * len(groups)) // len(pool_voices)
                picked = sorted(order[(offset + j) % len(groups)] for j in range(count))
                for index in picked:
                    group = groups[index]
                    sentence_id = _group_id(pool.prefix, group)
                    plan.append(
                        PlannedUtterance(
                            id=f"{voice.speaker}_{sentence_id}",
                            voice=voice,
                            sentence_id=sentence_id,
                            text=" ".join(pool.sentences[i] for i in group),
                        )
                    )
    return plan
