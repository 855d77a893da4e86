#!/usr/bin/env python3
"""Rewrite a checkpoint that valle refuses as "not trusted" into the safe, weights-only form.

    python tools/convert_untrusted_checkpoint.py --i-trust-this-file old.pt new.pt

valle reads checkpoints with ``torch.load(weights_only=True)`` (docs/trust_and_safety.md). A
file written by an older valle, another toolkit or a modified script may hold pickled Python
objects; unpickling such a file RUNS WHATEVER CODE ITS AUTHOR PUT IN IT. This tool does exactly
that, once, and only with ``--i-trust-this-file``: use it only for a file whose origin you know
(you made it, or you trust who did and how it reached you).

The output keeps tensors, numpy arrays and plain containers (dict, list, tuple, str, int, float,
bool, None). Anything else makes the tool stop and list where it sits, unless ``--drop-unsafe``
drops those entries. The output is checked by reading it back with valle's safe loader and is
written atomically; the input is never modified.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_PLAIN = (str, int, float, bool, bytes, type(None))


def sanitize(obj: Any, where: str, bad: list[str], drop: bool) -> Any:
    """``obj`` with only safe types; the key paths of anything else go to ``bad``."""
    import numpy as np
    import torch

    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)) or type(obj) in _PLAIN:
        return obj.item() if isinstance(obj, np.generic) else obj
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if type(k) not in _PLAIN:
                bad.append(f"{where}[{k!r}] (key of type {type(k).__name__})")
                continue
            clean = sanitize(v, f"{where}[{k!r}]", bad, drop)
            if clean is not _DROPPED:
                out[k] = clean
        return out
    if isinstance(obj, (list, tuple)):
        items = [sanitize(v, f"{where}[{i}]", bad, drop) for i, v in enumerate(obj)]
        items = [v for v in items if v is not _DROPPED]
        return tuple(items) if isinstance(obj, tuple) else items
    bad.append(f"{where} ({type(obj).__module__}.{type(obj).__qualname__})")
    return _DROPPED


_DROPPED = object()


def convert(src: str | Path, dst: str | Path, *, drop_unsafe: bool = False) -> list[str]:
    """Unpickle ``src`` FULLY (runs its code), write the safe form to ``dst``.

    Returns:
        the key paths of the entries that were dropped (only with ``drop_unsafe``).
    Raises:
        ValueError: ``src`` holds other types and ``drop_unsafe`` is off (nothing written).
    """
    import torch

    from valle.io.atomic import atomic_torch_save
    from valle.io.checkpoint import checkpoint_path, load_checkpoint

    src, dst = checkpoint_path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise ValueError("write the converted checkpoint to a new file, not over the input")
    obj = torch.load(src, map_location="cpu", weights_only=False)  # the trusted, explicit opt-in
    bad: list[str] = []
    clean = sanitize(obj, "checkpoint", bad, drop_unsafe)
    if bad and not drop_unsafe:
        raise ValueError(
            f"{src} holds {len(bad)} entr(ies) that are not tensors or plain data: "
            + "; ".join(bad[:10])
            + ". Pass --drop-unsafe to leave them out (check the result works)"
        )
    atomic_torch_save(dst, clean)
    load_checkpoint(dst)  # the safe loader must accept the result
    return bad


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", help="the checkpoint valle refused")
    p.add_argument("output", help="where to write the safe checkpoint (a new file)")
    p.add_argument(
        "--i-trust-this-file",
        action="store_true",
        help="required: you know where the input comes from; reading it can run any code",
    )
    p.add_argument(
        "--drop-unsafe",
        action="store_true",
        help="leave out entries that are not tensors or plain data (they are listed)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.i_trust_this_file:
        print(
            f"error: refusing to unpickle {args.input}: unpickling can run arbitrary code. If "
            "you know where the file comes from and trust it, pass --i-trust-this-file",
            file=sys.stderr,
        )
        return 2
    print(
        f"WARNING: unpickling {args.input} with weights_only=False; any code in it runs now",
        file=sys.stderr,
    )
    try:
        dropped = convert(args.input, args.output, drop_unsafe=args.drop_unsafe)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for where in dropped:
        print(f"dropped {where}", file=sys.stderr)
    print(f"wrote {args.output} (loads with weights_only=True)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
