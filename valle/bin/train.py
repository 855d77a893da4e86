r"""valle-train: train a VALL-E family model on tokenized cuts (recipe stages 5 and 6).

    valle-train --variant valle --size tiny --config conf/train_ar.yaml --set ar.backbone.num_layers=6 \
        --exp-dir exp/valle_ar --train-cuts data/tokenized/mini_cuts_train.jsonl.gz \
        --dev-cuts data/tokenized/mini_cuts_dev.jsonl.gz --tokens data/tokens.txt \
        --codec-dir data/tokenized --stages ar --devices 1

    # continue exactly where the last checkpoint of exp/valle_ar stopped
    valle-train ...same arguments... --resume

    # multi-GPU / multi-node (see docs/training.md for torchrun and SLURM)
    valle-train ... --devices 8 --num-nodes 2 --strategy ddp

Config order: variant preset, size preset, each --config file (sections model/train/data),
the path options below, then each --set (``train.lr=0.001``, ``data.num_workers=0``,
``ar.backbone.num_layers=6``). The resolved config is written to <exp-dir>/config.yaml and into
every checkpoint; <exp-dir>/model.pt is the inference checkpoint of the latest step.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

log = logging.getLogger("valle.bin.train")


def _devices(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="valle-train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--variant", default="valle", help="model variant preset or YAML (valle.registry)"
    )
    p.add_argument("--size", default="tiny", help="size preset (tiny, base) or YAML")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="YAML",
        help="experiment YAML with model/train/data sections (repeatable, in order)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="dotted override, e.g. train.max_steps=2000 or ar.backbone.num_layers=6",
    )
    p.add_argument("--exp-dir", required=True, help="output directory of the run")
    p.add_argument("--train-cuts", help="tokenized training cuts (sets data.train_cuts)")
    p.add_argument("--dev-cuts", help="tokenized dev cuts (sets data.dev_cuts)")
    p.add_argument("--tokens", help="symbol table tokens.txt (sets data.tokens)")
    p.add_argument("--codec-dir", help="directory with codec.json (sets data.codec_dir)")
    p.add_argument(
        "--stages",
        help="model parts to train, comma-separated from the variant's stages "
        "(valle: ar, nar or ar,nar; sets train.stages)",
    )
    p.add_argument(
        "--init-from", help="start from the weights of this checkpoint (e.g. the AR run)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in <exp-dir>/checkpoints",
    )
    p.add_argument("--accelerator", default="auto", help="cpu | gpu | auto (Lightning)")
    p.add_argument("--devices", type=_devices, default="auto", help="devices per node, or auto")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (multi-node DDP)")
    p.add_argument("--strategy", default="auto", help="Lightning strategy: auto | ddp | ...")
    p.add_argument(
        "--num-threads",
        type=int,
        default=0,
        help="torch CPU threads of the training process (0: torch's default); 1 is "
        "fastest on a 2-core machine with a dataloader worker beside it",
    )
    p.add_argument("--progress-bar", action="store_true", help="show Lightning's progress bar")
    return p


def _path_overrides(args: argparse.Namespace) -> list[str]:
    from valle.train.config import parse_stages

    out = []
    for option, key in (
        ("train_cuts", "data.train_cuts"),
        ("dev_cuts", "data.dev_cuts"),
        ("tokens", "data.tokens"),
        ("codec_dir", "data.codec_dir"),
    ):
        value = getattr(args, option)
        if value is not None:
            out.append(f"{key}={value}")
    if args.stages is not None:
        out.append(f"train.stages=[{', '.join(parse_stages(args.stages, args.variant))}]")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import torch

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # print once, not twice
        logging.getLogger(name).propagate = False

    from valle.ar.windows import check_merge_rate
    from valle.config import ConfigError
    from valle.data.codec_info import CodecInfo
    from valle.registry import build_model
    from valle.train.checkpoint import CheckpointMismatchError
    from valle.train.config import compose_data, compose_experiment
    from valle.train.experiment import (
        build_datamodule,
        build_sample_provider,
        checkpoint_extras,
        codec_json,
        vocab_facts,
    )
    from valle.train.resumable import seed_everything_from
    from valle.train.trainer import train

    try:
        # the data section first: vocabulary facts come from the data it points to
        overrides = _path_overrides(args) + list(args.overrides)
        vocab = vocab_facts(compose_data(args.config, overrides))
        cfg = compose_experiment(args.variant, args.size, args.config, overrides, **vocab)
        # an AR of m frames per step needs codes merged at m (VALL-E R); a warning the other way
        check_merge_rate(cfg.model, CodecInfo.from_file(codec_json(cfg.data.codec_dir)))
        seed_everything_from(cfg.train.seed)  # the model's initial weights
        model = build_model(cfg.model)
        datamodule = build_datamodule(cfg)
        provider = build_sample_provider(cfg, datamodule)
        trainer = train(
            cfg,
            model,
            datamodule,
            args.exp_dir,
            resume=args.resume,
            init_from=args.init_from,
            sample_provider=provider,
            checkpoint_extras=checkpoint_extras(cfg.data),
            accelerator=args.accelerator,
            devices=args.devices,
            num_nodes=args.num_nodes,
            strategy=args.strategy,
            enable_progress_bar=args.progress_bar,
        )
    except (
        ConfigError,
        CheckpointMismatchError,
        FileNotFoundError,
        FileExistsError,
        ValueError,
    ) as err:
        log.error("%s", err)
        return 2
    if trainer.is_global_zero:
        print(
            f"trained to step {trainer.global_step}; inference checkpoint {args.exp_dir}/model.pt"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
