"""How close the aligner's word boundaries are to the truth of the mini corpus's engines.

Shape legend: S tokens, T frames, F mel bins.

The mini corpus's speech engines (flite, festival, espeak-ng) report the exact timing of every
phone they spoke (``sup.alignment["phone"]``). Their phone sets differ from our G2P tokens, but
both describe the same words, so the unit compared is the word boundary:

- ours: the G2P tokens split into words at ``_`` (punctuation tokens belong to no word); a
  word's start and end are the first frame of its first token and the end of its last token;
- the engine's: the engine's spoken phones (pauses left out) are matched to our word phones by
  an edit-distance alignment over coarse phone classes (consonant identity; every vowel one
  class; flaps count as t or d), and a word starts at the start of the first engine phone
  matched to it and ends at the end of the last one. An utterance where fewer than
  ``min_match`` of our word phones find an engine phone of the same class is left out (counted).

Compared: every word start but the first word's and every word end but an end at the
utterance's last frame (those two are silence edges, which the durations give to the first and
last token by rule). Reported per engine: median and 90th-percentile absolute error in ms and
the share within 20 ms and 40 ms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lhotse.cut import Cut

from valle.data.tokenize import cut_phonemes
from valle.text.punctuation import PUNCTUATION, WORD_BOUNDARY

logger = logging.getLogger(__name__)

__all__ = [
    "BoundaryErrors",
    "engine_word_times",
    "our_word_frames",
    "evaluate_cuts",
    "format_table",
    "plot_alignment",
]

_IPA_CONSONANTS = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "ɡ": "g", "g": "g", "f": "f", "v": "v",
    "θ": "θ", "ð": "ð", "s": "s", "z": "z", "ʃ": "ʃ", "ʒ": "ʒ", "h": "h", "m": "m", "n": "n",
    "ŋ": "ŋ", "l": "l", "ɹ": "ɹ", "r": "ɹ", "w": "w", "j": "j", "tʃ": "tʃ", "dʒ": "dʒ",
    "ɾ": "ɾ", "ʔ": "ʔ", "x": "k", "ɬ": "l", "ç": "h",
}  # fmt: skip
_CMU = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "f": "f", "v": "v", "th": "θ",
    "dh": "ð", "s": "s", "z": "z", "sh": "ʃ", "zh": "ʒ", "hh": "h", "m": "m", "n": "n",
    "ng": "ŋ", "l": "l", "r": "ɹ", "w": "w", "y": "j", "ch": "tʃ", "jh": "dʒ", "dx": "ɾ",
    "em": "m", "en": "n", "el": "l",
}  # fmt: skip
_ESPEAK = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "f": "f", "v": "v", "T": "θ",
    "D": "ð", "s": "s", "z": "z", "S": "ʃ", "Z": "ʒ", "h": "h", "m": "m", "n": "n", "N": "ŋ",
    "l": "l", "r": "ɹ", "r-": "ɹ", "r`": "ɹ", "w": "w", "w#": "w", "j": "j", "tS": "tʃ",
    "dZ": "dʒ", "t#": "ɾ", "t2": "t", "t[": "t", "d#": "d", "n-": "n", "l/": "l", "?": "ʔ",
    "x": "k", "C": "h", "s.": "s", "z.": "z",
}  # fmt: skip
_SILENCES = {"pau", "sil", "h#", "sp", "spn", "brth"}
_VOWEL = "V"


def ipa_class(token: str) -> str:
    """Coarse class of one of our G2P tokens (stress and length marks dropped)."""
    base = token.replace("ˈ", "").replace("ˌ", "").replace("ː", "")
    return _IPA_CONSONANTS.get(base, _VOWEL)


def engine_class(symbol: str, phone_set: str) -> str | None:
    """Coarse class of an engine phone; ``None`` for a pause or a modifier (not a phone)."""
    if symbol in _SILENCES or symbol.startswith("_"):
        return None
    if phone_set == "espeak":
        if symbol in (";", "'", ",", "%", "=", ":"):
            return None
        return _ESPEAK.get(symbol, _VOWEL)
    return _CMU.get(symbol.lower(), _VOWEL)


def _cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if {a, b} <= {"t", "d", "ɾ"}:
        return 0.2
    if (a == _VOWEL) != (b == _VOWEL):
        return 1.5
    return 1.0


def _edit_alignment(ours: Sequence[str], theirs: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of a minimum-cost alignment (substitutions only; gaps left out)."""
    n, m = len(ours), len(theirs)
    D = np.zeros((n + 1, m + 1))
    D[:, 0] = np.arange(n + 1)
    D[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i, j] = min(
                D[i - 1, j - 1] + _cost(ours[i - 1], theirs[j - 1]),
                D[i - 1, j] + 1.0,
                D[i, j - 1] + 1.0,
            )
    pairs: list[tuple[int, int]] = []
    i, j = n, m
    while i > 0 and j > 0:
        if D[i, j] == D[i - 1, j - 1] + _cost(ours[i - 1], theirs[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif D[i, j] == D[i - 1, j] + 1.0:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def words_of(tokens: Sequence[str]) -> list[list[int]]:
    """Token indices of each word: runs of tokens that are neither ``_`` nor punctuation."""
    words: list[list[int]] = []
    cur: list[int] = []
    for i, t in enumerate(tokens):
        if t == WORD_BOUNDARY or (len(t) == 1 and t in PUNCTUATION):
            if cur:
                words.append(cur)
            cur = []
        else:
            cur.append(i)
    if cur:
        words.append(cur)
    return words


def engine_word_times(
    tokens: Sequence[str], phones: Sequence[tuple[str, float, float]], phone_set: str
) -> tuple[list[tuple[float, float] | None], float]:
    """Each word's ``(start_s, end_s)`` in the engine's timing (None where no phone matched),
    and the share of our word phones matched to an engine phone of the same class."""
    words = words_of(tokens)
    ours: list[str] = []
    word_of: list[int] = []
    for w, idx in enumerate(words):
        for i in idx:
            ours.append(ipa_class(tokens[i]))
            word_of.append(w)
    spoken = [(engine_class(s, phone_set), st, st + du) for s, st, du in phones]
    theirs = [(c, st, en) for c, st, en in spoken if c is not None]
    pairs = _edit_alignment(ours, [c for c, _, _ in theirs])
    times: list[list[float] | None] = [None] * len(words)
    same = 0
    for i, j in pairs:
        same += ours[i] == theirs[j][0]
        w = word_of[i]
        _, st, en = theirs[j]
        if times[w] is None:
            times[w] = [st, en]
        else:
            times[w][0] = min(times[w][0], st)  # type: ignore[index]
            times[w][1] = max(times[w][1], en)  # type: ignore[index]
    out = [None if t is None else (t[0], t[1]) for t in times]
    return out, same / max(1, len(ours))


def our_word_frames(tokens: Sequence[str], durations: Sequence[int]) -> list[tuple[int, int]]:
    """Each word's ``(first frame, end frame)`` (end exclusive) from the durations."""
    edges = np.concatenate([[0], np.cumsum(durations)])
    return [(int(edges[idx[0]]), int(edges[idx[-1] + 1])) for idx in words_of(tokens)]


@dataclass
class BoundaryErrors:
    """Absolute word-boundary errors (seconds) per engine, and utterances left out."""

    errors: dict[str, list[float]] = field(default_factory=dict)
    utterances: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)

    def add(self, engine: str, errs: Iterable[float]) -> None:
        self.errors.setdefault(engine, []).extend(errs)
        self.utterances[engine] = self.utterances.get(engine, 0) + 1

    def skip(self, engine: str) -> None:
        self.left_out[engine] = self.left_out.get(engine, 0) + 1

    def rows(self) -> list[dict[str, float | int | str]]:
        rows = []
        names = sorted(set(self.errors) | set(self.left_out))
        every = [e for k in names for e in self.errors.get(k, [])]
        for name, errs in [*((k, self.errors.get(k, [])) for k in names), ("all", every)]:
            a = np.abs(np.asarray(errs)) * 1000.0
            rows.append(
                {
                    "engine": name,
                    "utterances": sum(self.utterances.values())
                    if name == "all"
                    else self.utterances.get(name, 0),
                    "left_out": sum(self.left_out.values())
                    if name == "all"
                    else self.left_out.get(name, 0),
                    "boundaries": int(a.size),
                    "median_ms": float(np.median(a)) if a.size else float("nan"),
                    "p90_ms": float(np.percentile(a, 90)) if a.size else float("nan"),
                    "within_20ms": float((a <= 20).mean()) if a.size else float("nan"),
                    "within_40ms": float((a <= 40).mean()) if a.size else float("nan"),
                }
            )
        return rows


def cut_boundary_errors(
    cut: Cut, durations: Sequence[int], frame_rate: float, min_match: float = 0.6
) -> list[float] | None:
    """Signed boundary errors (ours - truth, seconds) of one cut; None without usable truth."""
    sup = cut.supervisions[0]
    ali = (sup.alignment or {}).get("phone") if sup.alignment else None
    if len(cut.supervisions) != 1 or not ali:
        return None
    tokens = cut_phonemes(cut)
    phone_set = (sup.custom or {}).get("phone_set", "cmu")
    phones = [(a.symbol, a.start - cut.start + sup.start, a.duration) for a in ali]
    truth, match = engine_word_times(tokens, phones, phone_set)
    if match < min_match:
        return None
    ours = our_word_frames(tokens, durations)
    total = int(np.sum(durations))
    errs: list[float] = []
    for w, ((f0, f1), t) in enumerate(zip(ours, truth, strict=True)):
        if t is None:
            continue
        if w > 0 or f0 > 0:
            errs.append(f0 / frame_rate - t[0])
        if f1 < total:
            errs.append(f1 / frame_rate - t[1])
    return errs


def evaluate_cuts(
    cuts: Iterable[Cut],
    durations_of: dict[str, Sequence[int]] | None = None,
    min_match: float = 0.6,
) -> BoundaryErrors:
    """Word-boundary errors of every cut with engine timings, grouped by engine.

    ``durations_of`` maps cut ids to durations; by default each cut's stored durations.
    """
    from valle.align.durations import cut_durations
    from valle.data.prompt import frame_rate_of

    result = BoundaryErrors()
    for cut in cuts:
        sup = cut.supervisions[0]
        engine = (sup.custom or {}).get("engine") or "unknown"
        d = durations_of[cut.id] if durations_of is not None else cut_durations(cut)
        errs = cut_boundary_errors(cut, d, frame_rate_of(cut), min_match)
        if errs is None:
            result.skip(engine)
        else:
            result.add(engine, errs)
    return result


def format_table(rows: Sequence[dict[str, float | int | str]]) -> str:
    """A markdown table of :meth:`BoundaryErrors.rows`."""
    head = (
        "| engine | utterances | left out | boundaries | median (ms) | p90 (ms) | <= 20 ms "
        "| <= 40 ms |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['utterances']} | {r['left_out']} | {r['boundaries']} "
            f"| {r['median_ms']:.1f} | {r['p90_ms']:.1f} | {100 * float(r['within_20ms']):.1f}% "
            f"| {100 * float(r['within_40ms']):.1f}% |"
        )
    return "\n".join(lines)


def plot_alignment(
    cuts: Sequence[Cut],
    features: Sequence[np.ndarray],
    durations: Sequence[Sequence[int]],
    path: str | Path,
    frame_rate: float,
    seconds: float | None = None,
) -> Path:
    """One panel per cut: its features ``(T, F)``, token boundaries and labels (ours, white),
    and the engine's word boundaries where the cut has them (red, dashed); the first
    ``seconds`` of each cut (all of it when None)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(cuts)
    fig, axes = plt.subplots(n, 1, figsize=(16, 3.2 * n), squeeze=False)
    for ax, cut, feats, d in zip(axes[:, 0], cuts, features, durations, strict=True):
        T = feats.shape[0]
        ax.imshow(
            np.asarray(feats).T,
            origin="lower",
            aspect="auto",
            cmap="magma",
            extent=(0, T / frame_rate, 0, feats.shape[1]),
        )
        tokens = cut_phonemes(cut)
        edges = np.concatenate([[0], np.cumsum(d)]) / frame_rate
        for k, tok in enumerate(tokens):
            ax.axvline(edges[k], color="white", lw=0.6, alpha=0.8)
            ax.text(
                (edges[k] + edges[k + 1]) / 2,
                feats.shape[1] * (0.9 if k % 2 else 0.8),
                tok,
                color="white",
                ha="center",
                fontsize=7,
                clip_on=True,
            )
        sup = cut.supervisions[0]
        ali = (sup.alignment or {}).get("phone") if sup.alignment else None
        if ali:
            phone_set = (sup.custom or {}).get("phone_set", "cmu")
            phones = [(a.symbol, a.start, a.duration) for a in ali]
            truth, _ = engine_word_times(tokens, phones, phone_set)
            for t in truth:
                if t is not None:
                    for x in t:
                        ax.axvline(x, color="red", lw=1.0, ls="--", alpha=0.9)
        if seconds is not None:
            ax.set_xlim(0, min(seconds, T / frame_rate))
        ax.set_title(f"{cut.id}: {sup.text[:110]}", fontsize=9)
        ax.set_xlabel("seconds")
        ax.set_ylabel("mel bin")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
