#!/usr/bin/env python3
"""Average the model weights of several checkpoints into one inference checkpoint.

    # the last 5 full checkpoints of a run
    python tools/average_checkpoints.py --exp-dir exp/valle --last 5 --output exp/valle/model-avg5.pt
    # an explicit list (full .ckpt or inference .pt files of the same model config)
    python tools/average_checkpoints.py exp/a/model.pt exp/b/model.pt --output avg.pt

The output has the inference format of ``valle.io.checkpoint`` (weights, plus the config, symbol
table, codec facts and embedded codec of the last input) and is written atomically. Checkpoints
with different model configs are refused. Inputs are read weights-only (``valle.io.checkpoint``):
a file that would need full unpickling is refused (docs/trust_and_safety.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("average_checkpoints")


def select_checkpoints(exp_dir: str | Path, last: int) -> list[Path]:
    """The ``last`` newest full checkpoints of ``<exp_dir>/checkpoints`` (oldest first)."""
    from valle.train.checkpoint import list_step_checkpoints

    if last < 1:
        raise ValueError(f"--last must be >= 1, got {last}")
    found = list_step_checkpoints(Path(exp_dir) / "checkpoints")
    if len(found) < last:
        raise ValueError(
            f"{exp_dir}/checkpoints has {len(found)} checkpoint(s), fewer than --last {last}; "
            "lower --last or raise train.keep_last_checkpoints"
        )
    return [p for _, p in found[-last:]]


def average_to(paths: Sequence[str | Path], output: str | Path) -> Path:
    """Average ``paths`` and write the inference checkpoint ``output`` (atomically)."""
    from valle.train.checkpoint import (
        average_checkpoints,
        checkpoint_extras_of,
        save_inference_checkpoint,
    )

    state, config = average_checkpoints(list(paths))
    extras = checkpoint_extras_of(paths[-1])  # symbol table and codec facts, when present
    return save_inference_checkpoint(
        output, state, config, step=None, averaged_from=[str(p) for p in paths], **extras
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "checkpoints", nargs="*", help="checkpoints to average (or use --exp-dir/--last)"
    )
    p.add_argument("--exp-dir", help="experiment directory whose last checkpoints are averaged")
    p.add_argument("--last", type=int, default=5, help="how many of the newest checkpoints")
    p.add_argument("--output", required=True, help="averaged inference checkpoint to write")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if bool(args.checkpoints) == bool(args.exp_dir):
            raise ValueError("give either checkpoint paths or --exp-dir (with --last), not both")
        paths = list(args.checkpoints) or select_checkpoints(args.exp_dir, args.last)
        out = average_to(paths, args.output)
    except (ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2
    print(f"averaged {len(paths)} checkpoints -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
