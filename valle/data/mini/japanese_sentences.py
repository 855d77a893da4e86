"""More Japanese text for the mini corpus: varied sentences generated from templates.

espeak-ng's Japanese voice reads kana only (it reads kanji as Chinese), and no kana text
corpus is installed offline, so the training voices read sentences made from the templates
and word lists below, written for valle (licence: CC0 1.0, public domain dedication): who
does what, when and where (``きのう ともだちは こうえんで ほんを よみました。``), what
something is like (``この まちの よるは とても しずか です。``) and where someone goes
(``あした せんせいは どこへ いきますか。``). About 130,000 distinct sentences; a fixed,
seeded sample is used. The committed ``mini_ja_sentences.txt`` stays the held-out test voices'
text, so no test sentence is heard in training.
"""

from __future__ import annotations

import itertools
import random

__all__ = ["japanese_sentences"]

_TIMES = ("きのう", "きょう", "あした", "けさ", "ゆうがた", "よる", "まいにち", "しゅうまつに",
          "らいしゅう", "さっき", "はやく", "ときどき")  # fmt: skip
_PEOPLE = ("わたしは", "ともだちは", "おかあさんは", "おとうさんは", "せんせいは", "あには",
           "いもうとは", "となりの ひとは", "こどもたちは", "がくせいは", "おばあさんは",
           "たなかさんは")  # fmt: skip
_PLACES = ("こうえんで", "えきの まえで", "としょかんで", "いえで", "がっこうで", "みせで",
           "うみの ちかくで", "やまの うえで", "だいどころで", "かいしゃで", "にわで",
           "カフェで")  # fmt: skip
_ACTIONS = (  # (object + verb stem)
    "ほんを よみ", "おちゃを のみ", "てがみを かき", "ごはんを たべ", "しゃしんを とり",
    "うたを うたい", "えいがを み", "やさいを かい", "にほんごを べんきょうし",
    "ともだちと はなし", "くるまを あらい", "ピアノを ひき", "サッカーを し", "パンを やき",
    "はなを かざり", "そうじを し", "コーヒーを いれ", "てを あらい",
)  # fmt: skip
_ENDINGS = ("ます。", "ました。", "ません。", "ませんでした。")
_THINGS = ("まち", "へや", "こうえん", "やま", "うみ", "そら", "みせ", "でんしゃ", "にわ",
           "がっこう")  # fmt: skip
_WHEN = ("あさ", "ひる", "よる", "なつ", "ふゆ", "はる", "あき")
_ADJECTIVES = ("しずか です。", "きれい です。", "おおきい です。", "ちいさい です。",
               "あかるい です。", "にぎやか です。", "さむい です。", "あつい です。",
               "ひろい です。", "たのしい です。")  # fmt: skip
_DEMONSTRATIVES = ("この", "その", "あの")
_DEGREE = ("とても", "すこし", "いつも", "ほんとうに")
_QUESTIONS = ("どこへ いきますか。", "なにを しますか。", "だれと あいますか。",
              "なんじに かえりますか。", "なにを たべましたか。")  # fmt: skip


def _all_sentences() -> list[str]:
    out = [
        f"{t} {p} {pl} {a}{e}"
        for t, p, pl, a, e in itertools.product(_TIMES, _PEOPLE, _PLACES, _ACTIONS, _ENDINGS)
    ]
    out += [
        f"{d} {th}の {w}は {g} {adj}"
        for d, th, w, g, adj in itertools.product(
            _DEMONSTRATIVES, _THINGS, _WHEN, _DEGREE, _ADJECTIVES
        )
    ]
    out += [f"{t} {p} {q}" for t, p, q in itertools.product(_TIMES, _PEOPLE, _QUESTIONS)]
    return out


def japanese_sentences(count: int = 4000, seed: int = 0) -> list[str]:
    """``count`` distinct generated sentences (a seeded sample of all template sentences,
    each kind in proportion to its count), in a fixed order."""
    everything = _all_sentences()
    if not 0 < count <= len(everything):
        raise ValueError(f"count must be in 1..{len(everything)}, got {count}")
    return random.Random(seed).sample(everything, count)
