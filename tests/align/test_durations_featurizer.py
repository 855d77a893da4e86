"""The ``durations`` batch field: Durations reads the aligner's output; collate pads 0."""

from __future__ import annotations

import pytest
import torch

from valle.data import batch as B
from valle.data.dataset import collate_rows
from valle.data.featurizers import DataRequest, Durations


class _Sup:
    def __init__(self, phonemes):
        self.custom = {"phonemes": phonemes}


class _Cut:
    def __init__(self, cid, phonemes, durations=None):
        self.id = cid
        self.supervisions = [_Sup(phonemes)]
        self.custom = {} if durations is None else {"durations": durations}

    def has_custom(self, name):
        return name in self.custom


def test_durations_are_padded_with_zero_and_get_lengths():
    f = Durations()
    assert f.name == B.DURATIONS and f.pad_value == B.PAD_VALUES[B.DURATIONS] == 0
    a = f(_Cut("a", ["h", "i", "."], [3, 2, 4]))
    b = f(_Cut("b", ["o", "."], [5, 1]))
    batch = collate_rows([{B.DURATIONS: a}, {B.DURATIONS: b}], {f.name: f.pad_value})
    assert batch[B.DURATIONS].tolist() == [[3, 2, 4], [5, 1, 0]]
    assert batch["durations_lens"].tolist() == [3, 2]
    DataRequest(featurizers=(f,))


def test_missing_durations_name_the_cut():
    with pytest.raises(ValueError, match="cut a has no phoneme durations.*aligner stage"):
        Durations()(_Cut("a", ["h"]))


def test_example_sums_to_frames_with_one_frame_each():
    g = torch.Generator().manual_seed(0)
    d = Durations().example(7, 30, g)
    assert d.shape == (7,) and int(d.sum()) == 30 and int(d.min()) >= 1
