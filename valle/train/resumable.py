"""Pieces that make the training data stream resumable to the exact batch.

A lhotse sampler is deterministic given its seed and epoch, so the position in the stream is
just ``(epoch, batches consumed in that epoch)``. :class:`ResumableSampler` wraps any sampler
(lhotse's ``DynamicBucketingSampler`` in practice), tags every batch with its position and,
after a restore, fast-forwards past the batches the interrupted run already trained on.
:class:`SeededDataset` reseeds the random generators from that position before building each
batch, so random choices inside the dataset (prompt picking, augmentation) come out the same
after resuming, whether batches are built in the main process or in dataloader workers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)

_MASK = (1 << 63) - 1


def derive_seed(*parts: int) -> int:
    """Mix integers into one 63-bit seed (order matters; stable across processes and runs)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (int(p) & _MASK) + 0x9E3779B97F4A7C15 + ((h << 6) & _MASK) + (h >> 2)
        h &= _MASK
    return h


def seed_everything_from(seed: int) -> None:
    """Seed python ``random``, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class EmptyEpochError(ValueError):
    """An epoch without a single batch (training would loop forever)."""


class ResumableSampler(Sampler):
    """Yields ``(epoch, index, item)`` for each ``item`` of the wrapped sampler.

    ``set_epoch`` is forwarded to the wrapped sampler (Lightning calls it at every epoch start).
    ``resume_from(epoch, consumed)`` makes the next iteration of that epoch skip its first
    ``consumed`` items; iterating any other epoch cancels the skip.
    """

    def __init__(self, sampler: Iterable[Any]) -> None:
        self.sampler = sampler
        self.epoch = 0
        self._skip_epoch: int | None = None
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)

    def resume_from(self, epoch: int, consumed: int) -> None:
        """Continue epoch ``epoch`` after its first ``consumed`` batches."""
        if consumed < 0:
            raise ValueError(f"consumed must be >= 0, got {consumed}")
        self._skip_epoch, self._skip = int(epoch), int(consumed)
        self.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        epoch = self.epoch
        skip = self._skip if self._skip_epoch == epoch else 0
        self._skip_epoch, self._skip = None, 0
        it = iter(self.sampler)
        for index in range(skip):
            try:
                next(it)
            except StopIteration:
                logger.warning(
                    "epoch %d has only %d batches, fewer than the %d to skip on resume",
                    epoch,
                    index,
                    skip,
                )
                return
        if skip:
            logger.info("resumed epoch %d after its first %d batches", epoch, skip)
        index = skip
        while True:  # not `for ... in it`: lhotse samplers restart when iter() is called again
            try:
                item = next(it)
            except StopIteration:
                if index == 0:
                    raise EmptyEpochError(
                        f"the sampler yielded no batch in epoch {epoch}; there are too few "
                        "cuts for the batch size (raise train.max_duration, lower "
                        "train.num_buckets, or add data)"
                    ) from None
                return
            yield epoch, index, item
            index += 1


class SeededDataset(Dataset):
    """Calls ``dataset[item]`` after seeding all RNGs from ``(seed, rank, epoch, index)``.

    The wrapped dataset's ``set_epoch`` (when it has one) is called with the batch's epoch
    first, in whichever process builds the batch (dataloader workers included).
    """

    def __init__(self, dataset: Any, seed: int, rank: int = 0) -> None:
        self.dataset = dataset
        self.seed = seed
        self.rank = rank

    def __getitem__(self, key: tuple[int, int, Any]) -> Any:
        epoch, index, item = key
        if hasattr(self.dataset, "set_epoch"):  # e.g. prompt choice that changes per epoch
            self.dataset.set_epoch(epoch)
        seed_everything_from(derive_seed(self.seed, 1, self.rank, epoch, index))
        return self.dataset[item]
