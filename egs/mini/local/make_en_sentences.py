#!/usr/bin/env python3
"""Regenerate valle/data/resources/mini_en_sentences.txt from the public-domain Alice text.

Usage: python egs/mini/local/make_en_sentences.py [/usr/share/doc/flite/examples/alice]
The source file ships with Debian's ``flite`` package. The output is committed, so this script is
needed only to rebuild or audit the list.
"""

from __future__ import annotations

import sys
from pathlib import Path

from valle.data.mini.sentences import split_sentences
from valle.io.atomic import atomic_write_text

HEADER = """\
# English sentences for the valle mini corpus, one per line ('#' lines are comments).
# Source: Lewis Carroll, "Alice's Adventures in Wonderland" (1865), chapters I-II, the Project
# Gutenberg text shipped by Debian's flite package as /usr/share/doc/flite/examples/alice
# (listed as public domain in /usr/share/doc/flite/copyright).
# Licence: public domain. Cut into 4-20 word sentences by
# valle.data.mini.sentences.split_sentences (egs/mini/local/make_en_sentences.py).
"""


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/doc/flite/examples/alice")
    if not source.is_file():
        sys.exit(f"{source} not found: install Debian's flite package (apt-get install flite)")
    sentences = split_sentences(source.read_text(encoding="utf-8", errors="replace"))
    out = Path(__file__).resolve().parents[3] / "valle/data/resources/mini_en_sentences.txt"
    atomic_write_text(out, HEADER + "\n".join(sentences) + "\n")
    print(f"wrote {len(sentences)} sentences to {out}")


if __name__ == "__main__":
    main()
