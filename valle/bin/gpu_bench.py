"""``python -m valle.bin.gpu_bench``: inference and training speed on a GPU (issue 14).

Examples::

    python -m valle.bin.gpu_bench                           # base, CUDA, B=1 and 8, bf16
    python -m valle.bin.gpu_bench --compile --json gpu.json # torch.compile on the AR layers
    python -m valle.bin.gpu_bench --cuda-graph              # + the AR step as one CUDA graph
    python -m valle.bin.gpu_bench --size tiny --device cpu --seconds 1 --train-steps 1  # smoke

See :mod:`valle.eval.gpu_bench` for what is measured.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import torch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m valle.bin.gpu_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--size", default="base", help="size preset (valle/conf/size/<size>.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override, repeatable")  # fmt: skip
    p.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (the smoke path)")
    p.add_argument("--batch-sizes", default="1,8", help="inference batch sizes, comma-separated "
                   "(empty: no inference)")  # fmt: skip
    p.add_argument("--dtype", default=None, choices=("fp32", "bf16", "fp16"),
                   help="inference weights and activations (default: bf16 on CUDA, fp32 on CPU)")  # fmt: skip
    p.add_argument("--seconds", type=float, default=10.0, help="speech per row (s)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="acoustic prompt (s)")
    p.add_argument("--phonemes", type=int, default=120, help="text tokens per row")
    p.add_argument("--nar-stages-timed", type=int, default=None,
                   help="NAR stages run, scaled to all (default: all)")  # fmt: skip
    p.add_argument("--compile", action="store_true",
                   help="torch.compile every AR layer (dynamic shapes) before timing")  # fmt: skip
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend")
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode, e.g. max-autotune-no-cudagraphs")  # fmt: skip
    p.add_argument("--cuda-graph", action="store_true",
                   help="also time the AR step as one captured CUDA graph over a static KV cache "
                   "(valle.ar.static_step; eager where there is no CUDA)")  # fmt: skip
    p.add_argument("--bandwidth-gbs", type=float, default=None,
                   help="memory bandwidth for the floor (default: known GPU spec, else measured)")  # fmt: skip
    p.add_argument("--train-batch", type=int, default=8, help="utterances per training batch")
    p.add_argument("--train-seconds", type=float, default=10.0, help="speech per utterance (s)")
    p.add_argument("--train-steps", type=int, default=5, help="timed training steps (0: none)")
    p.add_argument("--train-warmup", type=int, default=2, help="untimed training steps first")
    p.add_argument("--train-precision", default=None, choices=("32", "bf16-mixed"),
                   help="training precision (default: bf16-mixed on CUDA, 32 on CPU)")  # fmt: skip
    p.add_argument("--train-checkpointing", action="store_true",
                   help="activation checkpointing per layer in the training steps")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, help="write every measured field here")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from valle.eval.files import write_json
    from valle.eval.gpu_bench import format_gpu_table, rows_as_dicts, run_gpu_bench

    cuda = args.device.startswith("cuda")
    try:
        batches = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        if args.train_steps < 0 or args.train_warmup < 0 or args.train_batch < 1:
            raise ValueError("--train-steps and --train-warmup must be >= 0, --train-batch >= 1")
        infer, train, facts = run_gpu_bench(
            size=args.size,
            device=args.device,
            batch_sizes=batches,
            dtype=args.dtype or ("bf16" if cuda else "fp32"),
            seconds=args.seconds,
            prompt_seconds=args.prompt_seconds,
            phonemes=args.phonemes,
            nar_stages_timed=args.nar_stages_timed,
            compile_step=args.compile,
            compile_backend=args.compile_backend,
            compile_mode=args.compile_mode,
            cuda_graph=args.cuda_graph,
            bandwidth_gbs=args.bandwidth_gbs,
            train_batch=args.train_batch,
            train_seconds=args.train_seconds,
            train_steps=args.train_steps,
            train_warmup=args.train_warmup,
            train_precision=args.train_precision or ("bf16-mixed" if cuda else "32"),
            train_checkpointing=args.train_checkpointing,
            overrides=args.overrides,
        )
    except ValueError as e:
        print(f"gpu_bench: error: {e}", file=sys.stderr)
        return 2
    print()
    print(format_gpu_table(infer, train, facts))
    if args.json:
        print(f"wrote {write_json(args.json, rows_as_dicts(infer, train, facts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
