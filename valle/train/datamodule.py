"""Lightning data module over lhotse cuts, a batch-making dataset and a bucketing sampler.

The Trainer runs with ``use_distributed_sampler=False``: Lightning must not wrap the lhotse
sampler in a ``DistributedSampler``; instead every rank builds its own sampler with its
``rank`` and ``world_size`` (lhotse then deals each rank a different batch of the same
bucket). The position in the stream (epoch, batches consumed) is saved in every checkpoint
and restored on resume, see :mod:`valle.train.resumable`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from valle.data.dataset import make_sampler
from valle.train.resumable import ResumableSampler, SeededDataset

logger = logging.getLogger(__name__)

SamplerFactory = Callable[..., Any]


def simple_sampler(
    cuts: Any,
    *,
    max_duration: float,
    num_buckets: int,
    shuffle: bool,
    seed: int,
    rank: int,
    world_size: int,
    drop_last: bool,
) -> Any:
    """lhotse ``SimpleCutSampler`` (no bucketing) for dev sets, same keyword interface."""
    from lhotse.dataset import SimpleCutSampler

    del num_buckets
    return SimpleCutSampler(
        cuts,
        max_duration=max_duration,
        shuffle=shuffle,
        seed=seed,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
    )


class SpeechDataModule(L.LightningDataModule):
    """Train / dev dataloaders whose batches follow ``valle.data.batch``.

    Args:
        train_cuts: lhotse ``CutSet`` of tokenized training cuts.
        dataset: map-style dataset taking a ``CutSet`` mini-batch and returning a batch dict.
        dev_cuts: optional dev ``CutSet`` (validation losses); ``None`` disables validation.
        max_duration: seconds of audio per batch per device.
        num_buckets: duration buckets for the training sampler.
        shuffle: shuffle the training cuts (seeded by ``seed`` and the epoch).
        seed: base seed of the sampler and of the per-batch dataset RNG.
        num_workers: dataloader worker processes.
        sampler_factory: builds the training sampler (keywords as :func:`valle.data.dataset.make_sampler`).
        dev_dataset: dataset for dev batches (defaults to ``dataset``).
    """

    def __init__(
        self,
        train_cuts: Any,
        dataset: Any,
        *,
        dev_cuts: Any | None = None,
        max_duration: float = 100.0,
        num_buckets: int = 10,
        shuffle: bool = True,
        seed: int = 42,
        num_workers: int = 0,
        sampler_factory: SamplerFactory = make_sampler,
        dev_dataset: Any | None = None,
    ) -> None:
        super().__init__()
        self.train_cuts = train_cuts
        self.dev_cuts = dev_cuts
        self.dataset = dataset
        self.dev_dataset = dev_dataset if dev_dataset is not None else dataset
        self.max_duration = max_duration
        self.num_buckets = num_buckets
        self.shuffle = shuffle
        self.seed = seed
        self.num_workers = num_workers
        self.sampler_factory = sampler_factory
        self.train_sampler: ResumableSampler | None = None
        self._restored: dict[str, int] | None = None

    # ------------------------------------------------------------------ rank / world size
    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def _loader(self, sampler: ResumableSampler, dataset: Any, rank: int) -> DataLoader:
        return DataLoader(
            SeededDataset(dataset, seed=self.seed, rank=rank),
            sampler=sampler,
            batch_size=None,  # the sampler yields whole mini-batches (CutSets)
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        inner = self.sampler_factory(
            self.train_cuts,
            max_duration=self.max_duration,
            num_buckets=self.num_buckets,
            shuffle=self.shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            drop_last=world > 1,  # keeps ranks in step; alone, every cut is used
        )
        self.train_sampler = ResumableSampler(inner)
        if self._restored is not None:
            self.train_sampler.resume_from(self._restored["epoch"], self._restored["consumed"])
            self._restored = None
            self._resume_epoch_in_lightning()
        return self._loader(self.train_sampler, self.dataset, rank)

    def val_dataloader(self) -> DataLoader | list:
        if self.dev_cuts is None:
            return []
        rank, world = self._rank_world()
        inner = simple_sampler(
            self.dev_cuts,
            max_duration=self.max_duration,
            num_buckets=1,
            shuffle=False,
            seed=self.seed,
            rank=rank,
            world_size=world,
            drop_last=False,
        )
        return self._loader(ResumableSampler(inner), self.dev_dataset, rank)

    def _resume_epoch_in_lightning(self) -> None:
        """Let Lightning finish the restored epoch through the data stream (issue #8.2).

        A checkpoint written after the last batch of an epoch has Lightning's
        ``batch_progress.is_last_batch`` set. With a sampler of unknown length Lightning then
        moves to the next epoch on restore but keeps the finished epoch's batch count, so the
        next epoch counts as done before its first batch and is skipped. Clearing the flag makes
        Lightning continue the restored epoch like any mid-epoch resume: the sampler, told to
        skip every batch of that epoch, ends it at once, and the next epoch starts from its
        first batch exactly as in an uninterrupted run.
        """
        trainer = getattr(self, "trainer", None)
        progress = getattr(
            getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "batch_progress", None
        )
        if progress is not None and progress.is_last_batch:
            progress.is_last_batch = False

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """Stream position: the epoch and the batches of it already trained on."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {
            "epoch": int(trainer.current_epoch),
            "consumed": int(progress.processed),
            "world_size": int(trainer.world_size),
            "seed": int(self.seed),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        _, world = self._rank_world()
        if state_dict.get("world_size", world) != world:
            logger.warning(
                "resuming with %d devices in all, the checkpoint was made with %d: the batch "
                "order will differ from the uninterrupted run",
                world,
                state_dict["world_size"],
            )
        if state_dict.get("seed", self.seed) != self.seed:
            logger.warning("train.seed changed since the checkpoint: the batch order will differ")
        self._restored = {
            "epoch": int(state_dict["epoch"]),
            "consumed": int(state_dict["consumed"]),
        }
