"""Training throughput: timed AdamW steps of a model on a random batch (``valle-bench speed``).

Shape legend: B batch (utterances), S text tokens, P prompt frames, T code frames, Q codebooks.

:func:`measure_train_speed` runs ``steps`` optimizer steps (forward of ``model.loss(batch)``,
i.e. every part the model has, backward, AdamW step) after ``warmup`` untimed ones, on a random
batch of ``batch`` utterances of ``T`` code frames and ``S`` text tokens (plus a ``P``-frame
prompt, and the per-item fields the variant declares, made up by its featurizers); audio
tokens per second = ``B * T`` code frames per step over the mean step time, and the peak
memory of the timed steps (:class:`valle.eval.peak_memory.PeakMemory`). Options: per-layer
activation checkpointing (as in training) and bf16 autocast.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from valle.eval.clock import sync
from valle.eval.peak_memory import PeakMemory

logger = logging.getLogger(__name__)

__all__ = ["TrainSetup", "TrainSpeed", "measure_train_speed"]


@dataclass(frozen=True)
class TrainSetup:
    """The batch and the number of optimizer steps of a training-throughput run."""

    batch: int = 4  # utterances per batch (B)
    seconds: float = 5.0  # speech per utterance (s); T = seconds * frame_rate code frames
    prompt_seconds: float = 3.0  # acoustic prompt per utterance (s)
    phonemes: int = 60  # text tokens per utterance (S)
    steps: int = 3  # timed optimizer steps (>= 1)
    warmup: int = 1  # untimed steps first (allocator, optimizer state)
    lr: float = 1e-4  # AdamW learning rate (the value does not change the cost)
    seed: int = 0
    checkpointing: bool = False  # per-layer activation checkpointing (as in training)
    precision: str = "32"  # 32 | bf16-mixed (autocast to bfloat16 around forward and loss)

    def frames(self, frame_rate: float) -> int:
        return max(2, int(round(self.seconds * frame_rate)))

    def prompt_frames(self, frame_rate: float) -> int:
        return max(1, int(round(self.prompt_seconds * frame_rate)))


@dataclass(frozen=True)
class TrainSpeed:
    """Training throughput of one model on one batch shape."""

    batch: int
    frames: int  # T per utterance
    text_tokens: int  # S per utterance
    steps: int  # timed steps
    ms_step: float  # mean forward + backward + AdamW step
    tokens_per_s: float  # B * T / mean step seconds
    peak_mem_mb: float
    mem_kind: str


def measure_train_speed(
    model: nn.Module, setup: TrainSetup, frame_rate: float, device: str = "cpu"
) -> TrainSpeed:
    """Time ``setup.steps`` optimizer steps of ``model`` (see the module docstring).

    The model is trained on a copy of its weights, so the caller's model is left unchanged
    (and in its original train/eval mode).
    """
    import copy

    from valle.data.batch import lens_key, pad_rows
    from valle.registry import data_request
    from valle.testing.model import batch_from_codes

    if setup.steps < 1 or setup.warmup < 0 or setup.batch < 1:
        raise ValueError("training speed needs steps >= 1, warmup >= 0 and batch >= 1")
    if not hasattr(model, "loss") or getattr(model, "config", None) is None:
        raise ValueError("training speed needs a valle model (with .config and .loss(batch))")
    dev = torch.device(device)
    if setup.precision not in ("32", "bf16-mixed"):
        raise ValueError(f"training precision {setup.precision!r}: use 32 or bf16-mixed")
    net: Any = copy.deepcopy(model).to(dev).train()
    from valle.train.module import set_activation_checkpointing

    set_activation_checkpointing(net, setup.checkpointing)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=setup.precision != "32")
    v = net.config.vocab
    T, P, S = setup.frames(frame_rate), setup.prompt_frames(frame_rate), setup.phonemes
    g = torch.Generator().manual_seed(setup.seed)
    texts = [torch.randint(1, v.text_vocab_size, (S,), generator=g) for _ in range(setup.batch)]
    codes = [
        torch.randint(0, v.codebook_size, (T, v.num_codebooks), generator=g)  # (T, Q)
        for _ in range(setup.batch)
    ]
    prompts = [
        torch.randint(0, v.codebook_size, (P, v.num_codebooks), generator=g)  # (P, Q)
        for _ in range(setup.batch)
    ]
    raw = batch_from_codes(texts, codes, prompts)
    for f in data_request(net.config).featurizers:  # the fields the variant reads, made up
        rows = [f.example(S, T, g) for _ in range(setup.batch)]  # e.g. a frame rate
        raw[f.name], raw[lens_key(f.name)] = pad_rows(rows, f.pad_value)
    batch = {k: x.to(dev) if isinstance(x, Tensor) else x for k, x in raw.items()}
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=setup.lr)

    def one_step() -> float:
        sync(dev)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            # no generator, as in training (valle.train): the per-step draws come from the
            # seeded global RNG. A generator has one device, and the parts differ: the NAR
            # prompt policy draws on the CPU, MELLE's latent noise on the model's device
            loss, _ = net.loss(batch)
        loss.backward()
        optimizer.step()
        sync(dev)
        return time.perf_counter() - t0

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(setup.seed)
        for _ in range(setup.warmup):
            one_step()
        logger.info("training: %d steps of B=%d x T=%d frames", setup.steps, setup.batch, T)
        with PeakMemory(dev) as mem:
            times = [one_step() for _ in range(setup.steps)]
    step_s = float(np.mean(times))
    return TrainSpeed(
        batch=setup.batch,
        frames=T,
        text_tokens=S,
        steps=setup.steps,
        ms_step=1000.0 * step_s,
        tokens_per_s=setup.batch * T / step_s,
        peak_mem_mb=mem.mb,
        mem_kind=mem.kind,
    )
