"""Symbol table: phoneme token <-> integer id, stored as an icefall/k2 ``tokens.txt``.

File format: one ``symbol id`` pair per line, separated by whitespace; ids are unique and
cover ``0..N-1`` exactly; ``<pad>`` has id 0 (it is the padding value of ``text_tokens`` in
the batch contract, ``valle.data.batch.PAD_ID``). Read and written without k2.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from valle.text.errors import SymbolTableFormatError, UnknownSymbolError

logger = logging.getLogger(__name__)

DEFAULT_SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")


def _check_symbol(symbol: object, where: str) -> str:
    if not isinstance(symbol, str):
        raise TypeError(f"{where}: symbols must be str, got {type(symbol).__name__} {symbol!r}")
    if symbol == "" or any(ch.isspace() for ch in symbol):
        raise ValueError(
            f"{where}: symbol {symbol!r} is empty or contains whitespace, which tokens.txt "
            "cannot store; fix the front end that produced it"
        )
    return symbol


class SymbolTable:
    """A bijection between token strings and ids ``0..N-1``, with ``<pad>`` at 0.

    Build one from a tokenized corpus with :meth:`build` (deterministic: specials first, then
    the other symbols sorted), save it with :meth:`to_file`, load it with :meth:`from_file`.
    """

    PAD = "<pad>"
    BOS = "<bos>"
    EOS = "<eos>"
    UNK = "<unk>"

    def __init__(self, symbols: Sequence[str]) -> None:
        """Make a table where ``symbols[i]`` has id ``i``; ``symbols[0]`` must be ``<pad>``."""
        symbols = [_check_symbol(s, f"symbol id {i}") for i, s in enumerate(symbols)]
        if not symbols or symbols[0] != self.PAD:
            first = symbols[0] if symbols else None
            raise ValueError(f"symbol id 0 must be {self.PAD!r}, got {first!r}")
        seen: dict[str, int] = {}
        for i, s in enumerate(symbols):
            if s in seen:
                raise ValueError(f"symbol {s!r} appears twice (ids {seen[s]} and {i})")
            seen[s] = i
        self._symbols: list[str] = symbols
        self._ids: dict[str, int] = seen

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        token_lists: Iterable[Iterable[str]],
        specials: Sequence[str] = DEFAULT_SPECIALS,
    ) -> SymbolTable:
        """Build a table from tokenized utterances.

        Ids: ``specials`` in the given order (the first must be ``<pad>``), then every other
        symbol seen in ``token_lists`` in sorted order, so the same corpus always gives the
        same table whatever its utterance order.
        """
        specials = list(specials)
        if not specials or specials[0] != cls.PAD:
            raise ValueError(f"specials must start with {cls.PAD!r} (id 0), got {specials!r}")
        found: set[str] = set()
        for n, tokens in enumerate(token_lists):
            if isinstance(tokens, str):
                raise TypeError(
                    f"token_lists[{n}] is a str ({tokens[:40]!r}); pass a list of tokens per "
                    "utterance, e.g. [['h', 'ə'], ...]"
                )
            for token in tokens:
                found.add(_check_symbol(token, f"token_lists[{n}]"))
        others = sorted(found.difference(specials))
        return cls(specials + others)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SymbolTable:
        """Load a ``tokens.txt``; malformed files raise :class:`SymbolTableFormatError`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"symbol table {str(path)!r} does not exist")
        by_id: dict[int, tuple[str, int]] = {}  # id -> (symbol, line number)
        by_symbol: dict[str, int] = {}  # symbol -> line number
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                fields = line.split()
                if not fields:
                    continue
                where = f"{path}:{lineno}"
                if len(fields) != 2:
                    raise SymbolTableFormatError(
                        f"{where}: expected 'symbol id', got {line.rstrip()!r} "
                        f"({len(fields)} fields)"
                    )
                symbol, id_text = fields
                try:
                    idx = int(id_text)
                except ValueError:
                    raise SymbolTableFormatError(
                        f"{where}: id {id_text!r} of symbol {symbol!r} is not an integer"
                    ) from None
                if idx < 0:
                    raise SymbolTableFormatError(f"{where}: negative id {idx} for {symbol!r}")
                if idx in by_id:
                    other, other_line = by_id[idx]
                    raise SymbolTableFormatError(
                        f"{where}: id {idx} of {symbol!r} is already used by {other!r} "
                        f"on line {other_line}"
                    )
                if symbol in by_symbol:
                    raise SymbolTableFormatError(
                        f"{where}: symbol {symbol!r} is already defined on line {by_symbol[symbol]}"
                    )
                by_id[idx] = (symbol, lineno)
                by_symbol[symbol] = lineno
        if not by_id:
            raise SymbolTableFormatError(f"{path}: no symbols (empty file)")
        missing = sorted(set(range(len(by_id))) - set(by_id))
        if missing:
            raise SymbolTableFormatError(
                f"{path}: ids must be contiguous 0..{len(by_id) - 1}; missing {missing[:20]}"
            )
        if by_id[0][0] != cls.PAD:
            raise SymbolTableFormatError(
                f"{path}:{by_id[0][1]}: id 0 must be {cls.PAD!r}, got {by_id[0][0]!r}"
            )
        return cls([by_id[i][0] for i in range(len(by_id))])

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """Write ``symbol id`` lines in id order; atomic (:mod:`valle.io.atomic`)."""
        from valle.io.atomic import atomic_write_text

        path = Path(path)
        atomic_write_text(path, "".join(f"{s} {i}\n" for i, s in enumerate(self._symbols)))
        logger.info("wrote %d symbols to %s", len(self), path)

    def merge(self, other: SymbolTable) -> SymbolTable:
        """Union: every id of ``self`` is kept; symbols only in ``other`` are appended in
        ``other``'s id order. Use it to extend a table without invalidating a checkpoint."""
        new = [s for s in other._symbols if s not in self._ids]
        return SymbolTable(self._symbols + new)

    # ------------------------------------------------------------------ lookup
    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Map tokens to ids. Unknown tokens raise :class:`UnknownSymbolError` naming all of
        them (never dropped or silently mapped to ``<unk>``)."""
        if isinstance(tokens, str):
            raise TypeError(
                f"encode() takes a sequence of tokens, got the str {tokens[:40]!r}; "
                "tokenize it first (valle.text.tokenize_text)"
            )
        ids = self._ids
        try:
            return [ids[t] for t in tokens]
        except (KeyError, TypeError):
            unknown = [t for t in tokens if not isinstance(t, str) or t not in ids]
            raise UnknownSymbolError(
                [str(t) for t in unknown],
                hint="rebuild the symbol table from a corpus that contains them, or merge "
                "them in with SymbolTable.merge",
            ) from None

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Map ids back to tokens; ids outside ``0..N-1`` raise ``IndexError``."""
        n = len(self._symbols)
        out: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise IndexError(f"id {i} is outside the symbol table (ids 0..{n - 1})")
            out.append(self._symbols[i])
        return out

    def __getitem__(self, symbol: str) -> int:
        try:
            return self._ids[symbol]
        except KeyError:
            raise UnknownSymbolError([symbol]) from None

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._ids

    def __len__(self) -> int:
        return len(self._symbols)

    def __iter__(self) -> Iterator[str]:
        return iter(self._symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolTable) and self._symbols == other._symbols

    def __hash__(self) -> int:
        return hash(tuple(self._symbols))

    def __repr__(self) -> str:
        return f"SymbolTable({len(self)} symbols)"

    @property
    def symbols(self) -> list[str]:
        """All symbols in id order (a copy)."""
        return list(self._symbols)

    def _special(self, symbol: str) -> int:
        if symbol not in self._ids:
            raise UnknownSymbolError(
                [symbol], hint=f"this table was built without the special {symbol!r}"
            )
        return self._ids[symbol]

    @property
    def pad_id(self) -> int:
        return self._ids[self.PAD]

    @property
    def bos_id(self) -> int:
        return self._special(self.BOS)

    @property
    def eos_id(self) -> int:
        return self._special(self.EOS)

    @property
    def unk_id(self) -> int:
        return self._special(self.UNK)
