"""Reading Arabic numerals in Mandarin text as Han characters (before pinyin conversion).

Rules (applied by :func:`verbalize_numbers`):

* ``12.5%`` -> 百分之十二点五 (percent first, as it is read);
* ``3.14`` -> 三点一四 (integer part as a cardinal, fraction digit by digit);
* a 4-digit number directly followed by 年 is a year, read digit by digit (``2024年`` -> 二零二四年);
* an integer with a leading zero (``007``) or more than 16 digits is read digit by digit;
* any other integer is a cardinal (``10086`` -> 一万零八十六, ``15`` -> 十五);
* thousands separators (``1,000``) are dropped.
"""

from __future__ import annotations

import re

_DIGITS = "零一二三四五六七八九"
_SMALL_UNITS = ("千", "百", "十", "")
_BIG_UNITS = ("", "万", "亿", "万亿")

_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(%?)")


def read_digits(digits: str) -> str:
    """``"2024"`` -> ``"二零二四"``."""
    return "".join(_DIGITS[int(d)] for d in digits)


def _below_10000(n: int) -> str:
    out = ""
    pending_zero = False
    started = False
    for d, unit in zip((n // 1000, n // 100 % 10, n // 10 % 10, n % 10), _SMALL_UNITS, strict=True):
        if d == 0:
            pending_zero = pending_zero or started
            continue
        if pending_zero:
            out += "零"
            pending_zero = False
        out += _DIGITS[d] + unit
        started = True
    return out


def read_cardinal(n: int) -> str:
    """Mandarin cardinal reading of ``0 <= n < 10**16``: 105 -> 一百零五, 12 -> 十二."""
    if not 0 <= n < 10**16:
        raise ValueError(f"read_cardinal handles 0 <= n < 10**16, got {n}")
    if n == 0:
        return "零"
    groups = []  # 4-digit groups, least significant first
    while n:
        groups.append(n % 10000)
        n //= 10000
    out = ""
    pending_zero = False
    for i in reversed(range(len(groups))):
        g = groups[i]
        if g == 0:
            pending_zero = pending_zero or bool(out)
            continue
        if out and (pending_zero or g < 1000):
            out += "零"
        pending_zero = False
        out += _below_10000(g) + _BIG_UNITS[i]
    if out.startswith("一十"):  # 10..19 (and 10万..19万) are read 十X, not 一十X
        out = out[1:]
    return out


def _read_integer(digits: str, year: bool) -> str:
    if year or (len(digits) > 1 and digits[0] == "0") or len(digits) > 16:
        return read_digits(digits)
    return read_cardinal(int(digits))


def verbalize_numbers(text: str) -> str:
    """Replace every Arabic numeral in ``text`` by its Mandarin reading (rules above)."""

    def repl(m: re.Match[str]) -> str:
        whole = m.group(1).replace(",", "")
        frac, percent = m.group(2), m.group(3)
        year = (
            frac is None and not percent and len(whole) == 4 and text[m.end() : m.end() + 1] == "年"
        )
        words = _read_integer(whole, year)
        if frac is not None:
            words += "点" + read_digits(frac)
        return ("百分之" + words) if percent else words

    return _NUMBER.sub(repl, text)
