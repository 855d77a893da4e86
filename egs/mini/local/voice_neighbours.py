#!/usr/bin/env python3
"""How close is each held-out voice to the training voices? (speaker similarity, issue 9)

A zero-shot model that cannot copy a new voice from its prompt can at best speak the training
voice nearest to it. For every test speaker this prints the mean cosine similarity of its
utterances' speaker embeddings to those of every training speaker of the same language (and
to its own other utterances, the same-speaker level), nearest first: the SIM-o a system gets by
picking the right training voice, beside which a model's SIM-o says whether it copies the
prompt's voice or falls back on a known one.

Usage (from egs/mini):
  python local/voice_neighbours.py --train-cuts data/align/mini_cuts_train.jsonl.gz \
      --test-cuts data/align/mini_cuts_test.jsonl.gz [--language en] [--per-speaker 6] [--top 5]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--train-cuts", type=Path, required=True)
    p.add_argument("--test-cuts", type=Path, required=True)
    p.add_argument("--language", default="en", help="language of the voices compared")
    p.add_argument("--per-speaker", type=int, default=6, help="utterances per speaker (random)")
    p.add_argument("--top", type=int, default=5, help="training voices listed per test voice")
    p.add_argument("--encoder", default="resemblyzer", help="resemblyzer | wavlm-sv")
    p.add_argument("--encoder-path", default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.per_speaker < 2:
        sys.exit("voice_neighbours.py: --per-speaker must be >= 2 (the same-speaker level)")

    import torch
    from lhotse import CutSet

    from valle.eval.similarity import build_speaker_encoder

    def voices(path: Path) -> dict[str, list]:
        if not path.is_file():
            sys.exit(f"voice_neighbours.py: {path} not found (prepare.sh stage 4)")
        out: dict[str, list] = defaultdict(list)
        for c in CutSet.from_file(path):
            sup = c.supervisions[0]
            if (sup.language or "en") == args.language:
                out[str(sup.speaker)].append(c)
        return out

    train, test = voices(args.train_cuts), voices(args.test_cuts)
    if not train or not test:
        sys.exit(f"voice_neighbours.py: no {args.language} speaker in the train or test cuts")
    encoder = build_speaker_encoder(args.encoder, args.encoder_path)
    rng = random.Random(args.seed)

    def embed(cuts: list) -> torch.Tensor:  # (n, D), unit length
        chosen = rng.sample(cuts, min(args.per_speaker, len(cuts)))
        rate = int(chosen[0].sampling_rate)  # one corpus, one rate; the encoder resamples
        e = encoder.embed([c.resample(rate).load_audio()[0] for c in chosen], rate).float()
        return torch.nn.functional.normalize(e, dim=-1)

    emb_train = {s: embed(v) for s, v in sorted(train.items())}
    print(f"| test voice | same voice | nearest training voices ({args.encoder}, mean cosine) |")
    print("|---|---:|---|")
    for speaker, cuts in sorted(test.items()):
        mine = embed(cuts)
        n = mine.shape[0]
        same = (mine @ mine.T)[~torch.eye(n, dtype=torch.bool)].mean().item()
        near = sorted(((float((mine @ e.T).mean()), s) for s, e in emb_train.items()),
                      reverse=True)[: args.top]  # fmt: skip
        listed = ", ".join(f"{s} {v:.3f}" for v, s in near)
        print(f"| {speaker} | {same:.3f} | {listed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
