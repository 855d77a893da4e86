"""Command-line arguments shared by the programs that synthesize from a checkpoint
(``valle-infer``, ``valle-hard``, the recipes' decode stages)."""

from __future__ import annotations

import argparse

__all__ = ["add_model_overrides"]


def add_model_overrides(parser: argparse.ArgumentParser, example: str, note: str = "") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.model_overrides``: inference settings of the
    checkpoint's model config (``Synthesizer.from_checkpoint(model_overrides=)``)."""
    parser.add_argument(
        "--set",
        dest="model_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"inference setting of the checkpoint's model config, e.g. {example} "
        f"(repeatable{'; ' + note if note else ''})",
    )
