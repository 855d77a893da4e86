import pytest

pytest.importorskip("pyopenjtalk", reason="Japanese G2P needs pyopenjtalk-plus (valle[ja])")

from valle.text import EmptyTextError, get_frontend, tokenize_text  # noqa: E402
from valle.text.japanese import FALL, PHRASE_BOUNDARY, RISE, JapaneseFrontend  # noqa: E402

OPENJTALK_PHONEMES = set(
    "a i u e o A I U E O N cl pau k g s sh z j t ch ts d n h f b p m y r w "
    "ky gy ny hy by py my ry v dy ty".split()
)


def test_known_phonemes():
    assert tokenize_text("こんにちは", "ja") == ["k", "o", "N", "n", "i", "ch", "i", "w", "a"]
    tokens = tokenize_text("今日は良い天気ですね。東京に行きました！", "ja")
    assert set(tokens) - set(".!") <= OPENJTALK_PHONEMES
    assert "U" in tokens  # devoiced vowel in desu
    assert get_frontend("ja").language == "ja"


def test_punctuation_is_kept():
    tokens = tokenize_text("はい、そうですか？", "ja")
    assert "," in tokens and tokens[-1] == "?"


def test_prosody_marks_follow_the_accent():
    frontend = JapaneseFrontend(prosody=True)
    # 箸 (ha'shi) is accented on its first mora: fall after "ha", then a new accent phrase.
    assert frontend("箸を使う")[:5] == ["h", "a", FALL, "sh", "i"]
    tokens = frontend("東京タワーに行きました")
    assert RISE in tokens and FALL in tokens and PHRASE_BOUNDARY in tokens
    plain = [t for t in tokens if t not in (RISE, FALL, PHRASE_BOUNDARY)]
    assert plain == tokenize_text("東京タワーに行きました", "ja")


def test_empty_japanese():
    with pytest.raises(EmptyTextError):
        tokenize_text("。。。", "ja")


def test_japanese_frontend_pickles():
    import pickle

    frontend = JapaneseFrontend(prosody=True)
    clone = pickle.loads(pickle.dumps(frontend))
    assert clone.prosody and clone("箸を使う") == frontend("箸を使う")
