"""Training the aligner's acoustic model with CTC on a corpus's own train cuts.

Shape legend: B batch, T frames, F mel bins, V classes, L target tokens.

The targets are each cut's phoneme tokens (``valle.data.tokenize.cut_phonemes``, ids from
``tokens.txt``), word boundaries ``_`` and punctuation included: they are tokens the durations
must cover, and the model learns what they sound like (a pause, or nothing) like any other.
Features of all train cuts are computed once and kept in memory (float16); batches group cuts
of similar length up to ``max_frames`` frames.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from lhotse.cut import Cut
from torch import Tensor
from tqdm import tqdm

from valle.align.features import AlignFeatures, FeatureConfig, num_code_frames
from valle.align.forward_sum import diagonal_prior, forward_sum_loss
from valle.align.model import AcousticModel, ModelConfig, save_aligner
from valle.data.prompt import frame_rate_of
from valle.data.tokenize import cut_phonemes

logger = logging.getLogger(__name__)

__all__ = ["Example", "TrainConfig", "load_examples", "train_aligner", "pad_features"]


@dataclass
class Example:
    """One utterance: features ``(T, F)`` and its token ids ``(L,)``."""

    cut_id: str
    feats: Tensor
    ids: Tensor


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        steps: optimiser steps.
        max_frames: most feature frames per batch (sum over its cuts).
        lr: peak AdamW learning rate (linear warm-up, then cosine to 10% over the steps or
            the time, whichever runs out first).
        warmup: warm-up steps.
        max_minutes: stop after this many minutes of wall time, feature extraction included
            (None: no limit); the learning rate then decays over the time as over the steps.
        forward_sum_weight: weight of the blank-free forward-sum loss beside CTC (0: CTC only).
        prior_steps: the diagonal prior's weight falls linearly from 1 to 0 over these steps
            (0: no prior); it only shapes training, never the alignment.
        prior_floor: the prior's weight never falls below this (1.0: the prior all along).
        prior_width: the prior's width, a share of the utterance (0.1: 10%).
        seed: batch order and initialisation.
    """

    steps: int = 3000
    max_frames: int = 2000
    lr: float = 3e-3
    warmup: int = 30
    max_minutes: float | None = None
    forward_sum_weight: float = 1.0
    prior_steps: int = 200
    prior_floor: float = 1.0
    prior_width: float = 0.08
    log_every: int = 25
    seed: int = 0


def token_ids(cut: Cut, index: dict[str, int]) -> list[int]:
    """The cut's phoneme ids; a token missing from ``tokens.txt`` is an error naming the cut."""
    toks = cut_phonemes(cut)
    missing = sorted({t for t in toks if t not in index})
    if missing:
        raise ValueError(
            f"cut {cut.id} has phonemes missing from tokens.txt: {missing} (tokenize it with the "
            "same symbol table)"
        )
    return [index[t] for t in toks]


def load_examples(
    cuts: Iterable[Cut], features: AlignFeatures, index: dict[str, int], progress: bool = True
) -> list[Example]:
    """Features and token ids of every cut (cuts with more tokens than frames are skipped)."""
    out: list[Example] = []
    skipped = 0
    for cut in tqdm(list(cuts), desc="aligner features", unit="cut", disable=not progress):
        ids = token_ids(cut, index)
        feats = features(cut, num_code_frames(cut))  # (T, F)
        if len(ids) == 0 or len(ids) > feats.shape[0]:
            skipped += 1
            continue
        out.append(Example(cut.id, feats.half(), torch.tensor(ids, dtype=torch.long)))
    if skipped:
        logger.warning("skipped %d cut(s) with no tokens or more tokens than frames", skipped)
    return out


def pad_features(rows: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """``(T_b, F)`` rows -> ``(B, T, F)`` float32 (zero-padded) and lengths ``(B,)``."""
    lens = torch.tensor([r.shape[0] for r in rows], dtype=torch.long)
    out = torch.zeros(len(rows), int(lens.max()), rows[0].shape[1])
    for b, r in enumerate(rows):
        out[b, : r.shape[0]] = r.float()
    return out, lens


def _batches(examples: list[Example], max_frames: int, rng: random.Random) -> list[list[int]]:
    order = sorted(range(len(examples)), key=lambda i: examples[i].feats.shape[0])
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        n = examples[i].feats.shape[0]
        if cur and max(longest, n) * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def losses(
    model: AcousticModel, batch: list[Example], prior_weight: float = 0.0, prior_width: float = 0.1
) -> tuple[Tensor, Tensor]:
    """``(CTC loss per target token, blank-free forward-sum loss per frame)`` of a batch.

    CTC (blank = the last class) over the full softmax; the forward-sum loss
    (:mod:`valle.align.forward_sum`) over ``model.frame_scores`` (the posterior without the
    blank, divided by the scaled class prior), which is what the Viterbi scores, plus
    ``prior_weight`` times the diagonal prior (:func:`valle.align.forward_sum.diagonal_prior`).
    """
    feats, lens = pad_features([e.feats for e in batch])  # (B, T, F)
    logits = model(feats)  # (B, T, V)
    logp = logits.log_softmax(-1)  # (B, T, V)
    targets = torch.cat([e.ids for e in batch])  # (sum L,)
    tlens = torch.tensor([len(e.ids) for e in batch], dtype=torch.long)
    ctc = torch.nn.functional.ctc_loss(
        logp.transpose(0, 1),  # (T, B, V)
        targets,
        lens,
        tlens,
        blank=model.blank,
        reduction="sum",
        zero_infinity=True,
    ) / tlens.sum().clamp_min(1)
    padded = torch.zeros(len(batch), int(tlens.max()), dtype=torch.long)  # (B, S)
    for b, e in enumerate(batch):
        padded[b, : len(e.ids)] = e.ids
    if model.training:
        model.update_prior(logits.detach(), lens)
    nonblank = model.frame_scores(logits)  # (B, T, V - 1)
    prior = None
    if prior_weight > 0:
        prior = prior_weight * diagonal_prior(lens, tlens, prior_width)  # (B, T, S)
    fsum = forward_sum_loss(nonblank, padded, lens, tlens, prior)
    return ctc, fsum


def train_aligner(
    cuts: Iterable[Cut],
    symbols: Sequence[str],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    model_config: ModelConfig | None = None,
    n_mels: int = 80,
    progress: bool = True,
) -> Path:
    """Train the acoustic model on ``cuts`` and write ``<out_dir>/aligner.pt``.

    The frame rate is the cuts' code frame rate (they must all share one).
    Returns the checkpoint path.
    """
    config = config or TrainConfig()
    model_config = model_config or ModelConfig()
    cut_list = list(cuts)
    if not cut_list:
        raise ValueError("no cuts to train the aligner on")
    rates = {round(frame_rate_of(c), 6) for c in cut_list}
    if len(rates) != 1:
        raise ValueError(f"the cuts' codes have different frame rates {sorted(rates)}")
    feat_cfg = FeatureConfig(frame_rate=rates.pop(), n_mels=n_mels)
    index = {s: i for i, s in enumerate(symbols)}
    t_start = time.perf_counter()
    examples = load_examples(cut_list, AlignFeatures(feat_cfg), index, progress)
    if not examples:
        raise ValueError("no usable cuts to train the aligner on")
    logger.info(
        "aligner: %d cuts, %.2f h, features in %.0f s",
        len(examples),
        sum(e.feats.shape[0] for e in examples) / feat_cfg.frame_rate / 3600,
        time.perf_counter() - t_start,
    )
    feat_s = time.perf_counter() - t_start
    if config.max_minutes is not None:  # the features took part of the wall-time budget
        config = dataclasses.replace(config, max_minutes=max(0.1, config.max_minutes - feat_s / 60))
    model, stats = train_model(examples, len(symbols), n_mels, config, model_config, progress)
    stats["features_seconds"] = round(feat_s, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = save_aligner(
        out / "aligner.pt",
        model,
        feat_cfg,
        list(symbols),
        extras={"train": stats},
    )
    logger.info("aligner: %s -> %s", stats, path)
    return path


def train_model(
    examples: list[Example],
    num_symbols: int,
    n_mels: int = 80,
    config: TrainConfig | None = None,
    model_config: ModelConfig | None = None,
    progress: bool = True,
) -> tuple[AcousticModel, dict[str, float | int]]:
    """Train an acoustic model on prepared examples; returns it (eval mode) and its stats."""
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model = AcousticModel(n_mels, num_symbols, model_config)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-2)

    t_train = time.perf_counter()

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        if config.max_minutes is not None:
            frac = max(frac, (time.perf_counter() - t_train) / 60 / config.max_minutes)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    batches: list[list[int]] = []
    bar = tqdm(total=config.steps, desc="aligner CTC", unit="step", disable=not progress)
    avg: tuple[float, float] | None = None
    step = 0
    model.train()
    for step in range(config.steps):  # noqa: B007 - step is reported below
        if not batches:
            batches = _batches(examples, config.max_frames, rng)
        fade = max(0.0, 1.0 - step / config.prior_steps) if config.prior_steps > 0 else 0.0
        pw = max(config.prior_floor, fade)
        ctc, fsum = losses(model, [examples[i] for i in batches.pop()], pw, config.prior_width)
        loss = ctc + config.forward_sum_weight * fsum
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        now = (ctc.item(), fsum.item())
        avg = now if avg is None else (0.95 * avg[0] + 0.05 * now[0], 0.95 * avg[1] + 0.05 * now[1])
        bar.update(1)
        bar.set_postfix(ctc=f"{avg[0]:.3f}", fsum=f"{avg[1]:.3f}")
        if step % config.log_every == 0:
            logger.info("step %d: CTC %.3f per token, forward-sum %.3f per frame", step, *avg)
        minutes = (time.perf_counter() - t_train) / 60
        if config.max_minutes is not None and minutes >= config.max_minutes:
            logger.info("stopping after %.1f minutes (max_minutes)", minutes)
            break
    bar.close()
    train_s = time.perf_counter() - t_train
    model.eval()
    assert avg is not None
    stats = {
        "steps": step + 1,
        "ctc_loss": round(avg[0], 4),
        "forward_sum_loss": round(avg[1], 4),
        "train_seconds": round(train_s, 1),
        "num_cuts": len(examples),
        "features_seconds": 0.0,
    }
    return model, stats
