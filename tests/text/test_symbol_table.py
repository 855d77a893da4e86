from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from valle.data.batch import PAD_ID
from valle.text import SymbolTable, SymbolTableFormatError, UnknownSymbolError

CORPUS = [["h", "ə", "l", "ˈoʊ"], ["w", "ˈɜː", "l", "d", "!"], ["n", "i3", "h", "ao3"]]


def test_build_puts_specials_first_and_sorts_the_rest():
    table = SymbolTable.build(CORPUS)
    assert table.symbols[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    rest = table.symbols[4:]
    assert rest == sorted({t for u in CORPUS for t in u})
    assert (table.pad_id, table.bos_id, table.eos_id, table.unk_id) == (PAD_ID, 1, 2, 3)


def test_build_is_deterministic_whatever_the_corpus_order():
    a = SymbolTable.build(CORPUS)
    b = SymbolTable.build(list(reversed([list(reversed(u)) for u in CORPUS])))
    assert a == b and a.symbols == b.symbols


def test_build_does_not_duplicate_specials_found_in_the_corpus():
    table = SymbolTable.build([["<unk>", "a"]])
    assert table.symbols == ["<pad>", "<bos>", "<eos>", "<unk>", "a"]


def test_build_rejects_bad_input():
    with pytest.raises(ValueError, match="<pad>"):
        SymbolTable.build(CORPUS, specials=("<bos>", "<pad>"))
    with pytest.raises(TypeError, match="list of tokens"):
        SymbolTable.build(["hello"])
    with pytest.raises(ValueError, match="whitespace"):
        SymbolTable.build([["a b"]])


def test_file_round_trip_keeps_ids(tmp_path: Path):
    table = SymbolTable.build(CORPUS)
    path = tmp_path / "lang" / "tokens.txt"
    table.to_file(path)
    loaded = SymbolTable.from_file(path)
    assert loaded.symbols == table.symbols
    assert [loaded[s] for s in table.symbols] == list(range(len(table)))
    assert path.read_text(encoding="utf-8").splitlines()[0] == "<pad> 0"
    assert [p.name for p in path.parent.iterdir()] == ["tokens.txt"]  # no temp file left


def test_from_file_accepts_unsorted_lines(tmp_path: Path):
    path = tmp_path / "tokens.txt"
    path.write_text("b 2\n<pad> 0\n\na 1\n", encoding="utf-8")
    assert SymbolTable.from_file(path).symbols == ["<pad>", "a", "b"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("<pad> 0\na\n", r"tokens.txt:2: expected 'symbol id'"),
        ("<pad> 0\na 1 x\n", r"tokens.txt:2: expected 'symbol id'"),
        ("<pad> 0\na one\n", r"tokens.txt:2: id 'one' of symbol 'a' is not an integer"),
        ("<pad> 0\na 1\nb 1\n", r"tokens.txt:3: id 1 of 'b' is already used by 'a' on line 2"),
        ("<pad> 0\na 1\na 2\n", r"tokens.txt:3: symbol 'a' is already defined on line 2"),
        ("<pad> 0\na 2\n", r"contiguous.*missing \[1\]"),
        ("a 0\n<pad> 1\n", r"tokens.txt:1: id 0 must be '<pad>'"),
        ("<pad> 0\na -1\n", r"tokens.txt:2: negative id"),
        ("\n\n", r"empty"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "tokens.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SymbolTableFormatError, match=message):
        SymbolTable.from_file(path)


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SymbolTable.from_file(tmp_path / "nope.txt")


def test_encode_decode_round_trip():
    table = SymbolTable.build(CORPUS)
    for utt in CORPUS:
        ids = table.encode(utt)
        assert all(4 <= i < len(table) for i in ids)
        assert table.decode(ids) == utt


def test_unknown_symbols_are_all_named():
    table = SymbolTable.build(CORPUS)
    with pytest.raises(UnknownSymbolError) as info:
        table.encode(["h", "zz", "ə", "qq", "zz"])
    assert info.value.symbols == ("zz", "qq")
    assert "'zz'" in str(info.value) and "'qq'" in str(info.value)
    assert isinstance(info.value, KeyError)
    with pytest.raises(UnknownSymbolError, match="'nope'"):
        table["nope"]


def test_encode_rejects_a_plain_string():
    with pytest.raises(TypeError, match="tokenize"):
        SymbolTable.build(CORPUS).encode("hello")


def test_decode_out_of_range():
    table = SymbolTable.build(CORPUS)
    with pytest.raises(IndexError, match="outside"):
        table.decode([0, len(table)])
    with pytest.raises(IndexError):
        table.decode([-1])


def test_container_protocol():
    table = SymbolTable.build(CORPUS)
    assert "ə" in table and "zz" not in table
    assert len(table) == 4 + len({t for u in CORPUS for t in u})
    assert table["<pad>"] == 0
    assert list(table) == table.symbols


def test_merge_keeps_existing_ids_and_appends_new_symbols():
    a = SymbolTable.build([["a", "c"]])
    b = SymbolTable.build([["b", "c", "d"]])
    merged = a.merge(b)
    assert merged.symbols[: len(a)] == a.symbols
    assert merged.symbols[len(a) :] == ["b", "d"]
    assert a.merge(a) == a


def test_table_without_bos_says_so():
    table = SymbolTable.build([["a"]], specials=("<pad>",))
    assert table.pad_id == 0
    with pytest.raises(UnknownSymbolError, match="<bos>"):
        _ = table.bos_id


_token = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")),
    min_size=1,
    max_size=4,
).filter(lambda s: not any(c.isspace() for c in s))


@given(st.lists(st.lists(_token, max_size=8), max_size=6))
def test_property_round_trips(tmp_path_factory, corpus):
    table = SymbolTable.build(corpus)
    path = tmp_path_factory.mktemp("st") / "tokens.txt"
    table.to_file(path)
    loaded = SymbolTable.from_file(path)
    assert loaded == table
    for utt in corpus:
        assert loaded.decode(loaded.encode(utt)) == utt
