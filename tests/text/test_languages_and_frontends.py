import pytest

from valle.text import (
    LANGUAGES,
    EmptyTextError,
    TextFrontend,
    UnsupportedLanguageError,
    get_frontend,
    language_id,
    tokenize_text,
)


def test_language_ids_are_the_contract():
    assert LANGUAGES == {"en": 0, "zh": 1, "ja": 2}
    assert [language_id(x) for x in ("en", "zh", "ja")] == [0, 1, 2]


@pytest.mark.parametrize("bad", ["fr", "EN", "", None])
def test_unknown_language_lists_the_supported_ones(bad):
    with pytest.raises(UnsupportedLanguageError) as info:
        language_id(bad)
    assert isinstance(info.value, ValueError)
    for lang in LANGUAGES:
        assert lang in str(info.value)
    with pytest.raises(UnsupportedLanguageError, match="supported languages: en, zh, ja"):
        get_frontend(bad)
    with pytest.raises(UnsupportedLanguageError):
        tokenize_text("hello", bad)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_frontends_are_cached_and_follow_the_protocol(lang):
    frontend = get_frontend(lang)
    assert frontend is get_frontend(lang)
    assert isinstance(frontend, TextFrontend)
    assert frontend.language == lang
    assert hasattr(frontend, "batch")


@pytest.mark.parametrize(
    "text, lang",
    [("", "en"), ("   \n\t", "en"), ("...!?", "en"), ("", "zh"), ("。，！", "zh"), (" ", "zh")],
)
def test_empty_or_unpronounceable_text_is_a_value_error(text, lang):
    with pytest.raises(EmptyTextError) as info:
        tokenize_text(text, lang)
    assert isinstance(info.value, ValueError)


def test_tokenize_text_rejects_non_strings():
    with pytest.raises(TypeError, match="str"):
        tokenize_text(b"hello", "en")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, lang",
    [("Hello there, how are you?", "en"), ("今天天气很好，我们出去玩吧。", "zh")],
)
def test_tokens_are_storable_in_tokens_txt(text, lang):
    tokens = tokenize_text(text, lang)
    assert tokens and all(t and not any(c.isspace() for c in t) for t in tokens)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_frontends_survive_pickling(lang):
    import pickle

    frontend = get_frontend(lang)
    text = {"en": "Pickled text works.", "zh": "我们一起去北京吧"}[lang]
    clone = pickle.loads(pickle.dumps(frontend))
    assert clone is not frontend and clone(text) == frontend(text)


def test_missing_japanese_package_says_what_to_install(monkeypatch):
    import sys

    from valle.text import MissingDependencyError
    from valle.text.japanese import JapaneseFrontend

    monkeypatch.setitem(sys.modules, "pyopenjtalk", None)  # makes `import pyopenjtalk` fail
    with pytest.raises(MissingDependencyError, match="pip install pyopenjtalk-plus"):
        JapaneseFrontend()
