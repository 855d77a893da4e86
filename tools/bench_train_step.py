"""Time one model's AR + NAR training step and report the process' peak RSS (one JSON line).

Shape legend: B batch, S text tokens, T code frames, P prompt frames, Q codebooks.

Run by ``tools/bench_base_training.sh`` in a fresh process per configuration, against whatever
``valle`` is first on ``PYTHONPATH`` (the current tree or an older commit's worktree), so it uses
only long-standing APIs: ``compose_config``, ``cfg.build()``, ``model.loss(batch)`` and
``valle.testing.model.batch_from_codes``. The step is ``zero_grad``, ``model.loss(batch)`` over
every stage the model has (AR + NAR for VALL-E), ``backward`` and an AdamW step, fp32 unless
``--bf16``. The peak RSS is the process' whole high-water mark (``ru_maxrss``: weights,
optimizer state and the step's activations), the figure the out-of-memory killer sees.

Usage: python tools/bench_train_step.py --size base --batch 2 [--checkpointing] [--set k=v]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch


def _batch(cfg: Any, args: argparse.Namespace) -> dict[str, Any]:
    from valle.testing.model import batch_from_codes

    v = cfg.vocab
    T = int(round(args.seconds * args.frame_rate))
    P = int(round(args.prompt_seconds * args.frame_rate))
    g = torch.Generator().manual_seed(0)
    texts = [torch.randint(1, v.text_vocab_size, (args.phonemes,), generator=g)
             for _ in range(args.batch)]  # fmt: skip
    codes = [torch.randint(0, v.codebook_size, (T, v.num_codebooks), generator=g)
             for _ in range(args.batch)]  # fmt: skip
    prompts = [torch.randint(0, v.codebook_size, (P, v.num_codebooks), generator=g)
               for _ in range(args.batch)]  # fmt: skip
    batch = batch_from_codes(texts, codes, prompts)
    try:  # the fields a variant asks for (newer trees); VALL-E asks for none
        from valle.data.batch import lens_key, pad_rows
        from valle.registry import data_request

        for f in data_request(cfg).featurizers:
            rows = [f.example(args.phonemes, T, g) for _ in range(args.batch)]
            batch[f.name], batch[lens_key(f.name)] = pad_rows(rows, f.pad_value)
    except ImportError:
        pass
    return batch


OVER_LIMIT = 3  # exit status when the RSS guard stops the process


def _guard_rss(limit_gib: float, every_s: float = 0.2) -> None:
    """Stop the process (exit 3) once its RSS passes ``limit_gib``, before the kernel's
    out-of-memory killer picks a victim, which on a shared machine may be another job."""
    import os
    import threading

    page = os.sysconf("SC_PAGE_SIZE")

    def watch() -> None:
        while True:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page / 2**30
            if rss > limit_gib:
                print(f"RSS {rss:.1f} GiB > --max-rss-gib {limit_gib}: stopped", file=sys.stderr)
                os._exit(OVER_LIMIT)
            time.sleep(every_s)

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variant", default="valle")
    p.add_argument("--size", default="base", help="size preset (valle/conf/size/<size>.yaml)")
    p.add_argument("--batch", type=int, default=2, help="utterances per batch")
    p.add_argument("--seconds", type=float, default=10.0, help="speech per utterance (s)")
    p.add_argument("--prompt-seconds", type=float, default=3.0, help="acoustic prompt (s)")
    p.add_argument("--phonemes", type=int, default=120, help="text tokens per utterance")
    p.add_argument("--frame-rate", type=float, default=75.0, help="code frames per second")
    p.add_argument("--num-codebooks", type=int, default=8)
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--text-vocab", type=int, default=120)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--steps", type=int, default=2, help="timed steps")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--checkpointing", action="store_true",
                   help="per-layer activation checkpointing (trees that have it)")  # fmt: skip
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast around the loss")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="model config override, e.g. ar.backbone.attention_dropout=0")  # fmt: skip
    p.add_argument("--label", default="", help="name of this configuration in the output")
    p.add_argument("--max-rss-gib", type=float, default=0.0,
                   help="stop with exit status 3 past this RSS (0: no guard)")  # fmt: skip
    args = p.parse_args(argv)
    if args.max_rss_gib > 0:
        _guard_rss(args.max_rss_gib)
    torch.set_num_threads(args.threads)
    import valle
    from valle.config import compose_config

    cfg = compose_config(
        args.variant,
        args.size,
        args.overrides,
        text_vocab_size=args.text_vocab,
        codebook_size=args.codebook_size,
        num_codebooks=args.num_codebooks,
    )
    torch.manual_seed(0)
    model: Any = cfg.build().train()
    if args.checkpointing:
        stacks = [m for m in model.modules() if hasattr(m, "checkpointing")]
        if not stacks:
            print("this tree has no activation checkpointing", file=sys.stderr)
            return 2
        for m in stacks:
            m.checkpointing = True
    batch = _batch(cfg, args)
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def step() -> float:
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = model.loss(batch)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step()
    times = [step() for _ in range(args.steps)]
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB
    print(json.dumps({
        "label": args.label, "size": args.size, "batch": args.batch, "threads": args.threads,
        "checkpointing": args.checkpointing, "bf16": args.bf16, "overrides": args.overrides,
        "step_s": [round(t, 3) for t in times], "mean_step_s": round(sum(times) / len(times), 3),
        "peak_rss_gib": round(peak_gb, 2),
        "params_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 1),
        "valle": str(Path(valle.__file__).parent),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
