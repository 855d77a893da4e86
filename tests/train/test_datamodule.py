"""Data module and resumable stream: per-rank samplers, skipping, seeding, empty epochs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.train.fakes import FakeDataset, make_cuts
from valle.train.datamodule import SpeechDataModule
from valle.train.resumable import EmptyEpochError, ResumableSampler, SeededDataset, derive_seed


def _ids(loader):
    return [tuple(b["cut_ids"]) for b in loader]


def _dm(**kw):
    return SpeechDataModule(make_cuts(24), FakeDataset(), max_duration=4.0, num_buckets=2, **kw)


def test_each_rank_gets_its_own_disjoint_batches():
    per_rank = []
    for rank in (0, 1):
        dm = _dm()
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        per_rank.append(_ids(dm.train_dataloader()))
    assert len(per_rank[0]) == len(per_rank[1]) > 0  # drop_last keeps the ranks in step
    seen0 = {c for b in per_rank[0] for c in b}
    seen1 = {c for b in per_rank[1] for c in b}
    assert not seen0 & seen1


def test_resume_skips_consumed_batches_and_epochs_differ():
    dm = _dm()
    loader = dm.train_dataloader()
    dm.train_sampler.set_epoch(0)
    epoch0 = _ids(loader)
    dm.train_sampler.set_epoch(1)
    epoch1 = _ids(loader)
    assert len(epoch0) > 0 and epoch0 != epoch1
    fresh = _dm()
    fresh.load_state_dict({"epoch": 1, "consumed": 3, "world_size": 1, "seed": 42})
    resumed_loader = fresh.train_dataloader()
    assert _ids(resumed_loader) == epoch1[3:]
    # the skip applies once: iterating the epoch again starts from its beginning
    assert _ids(resumed_loader) == epoch1


def test_seeded_dataset_is_reproducible_per_position():
    ds = SeededDataset(FakeDataset(), seed=7)
    cuts = make_cuts(6)
    a = ds[(0, 5, cuts)]
    torch.rand(100)  # whatever ran in between
    b = ds[(0, 5, cuts)]
    assert torch.equal(a["audio_codes"], b["audio_codes"])
    assert ds.dataset.epochs_seen == {0}
    others = [ds[(0, i, cuts)]["text_tokens"] for i in range(6)]
    assert any(not torch.equal(others[0], o) for o in others[1:])  # seeds differ by index
    assert derive_seed(1, 2, 3) != derive_seed(1, 3, 2)


def test_empty_epoch_is_an_error_not_an_endless_loop():
    sampler = ResumableSampler([])
    with pytest.raises(EmptyEpochError, match="max_duration"):
        list(sampler)


def test_no_dev_cuts_means_no_val_loader():
    assert _dm().val_dataloader() == []
    dm = _dm(dev_cuts=make_cuts(4, seed=1))
    batches = list(dm.val_dataloader())
    assert sum(len(b["cut_ids"]) for b in batches) == 4
