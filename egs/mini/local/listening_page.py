#!/usr/bin/env python3
"""Stage 8 (end): the listening page of a scored run, and a screenshot of it in headless Chromium.

Usage: python local/listening_page.py --decode-dir exp/valle_tiny/decode \
           --score-dir exp/valle_tiny/score --cuts data/tokenized/mini_cuts_test.jsonl.gz \
           --out-dir exp/valle_tiny/results [--title ...]

Writes <out-dir>/index.html with every clip beside it (valle.eval.listening_page), then
<out-dir>/index.png, the page as headless Chromium renders it (skipped with a warning when no
Chromium is installed: tools/setup.sh installs Debian's chromium-headless-shell).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--decode-dir", type=Path, required=True)
    p.add_argument("--score-dir", type=Path, required=True)
    p.add_argument("--cuts", type=Path, required=True, help="the test cuts that were decoded")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--title", default="Mini recipe: listening page")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    log = logging.getLogger("listening_page")

    from valle.eval.listening_page import build_listening_page, find_browser, screenshot

    page = build_listening_page(
        args.decode_dir, args.score_dir, args.cuts, args.out_dir, title=args.title
    )
    print(f"listening page: {page}")
    if find_browser() is None:
        log.warning("no headless Chromium installed: %s not rendered", page)
        return 0
    png = screenshot(page, args.out_dir / "index.png")
    print(f"rendered in headless Chromium: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
