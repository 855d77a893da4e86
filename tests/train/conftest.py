"""Training tests run the tiny models with one CPU thread: on a small shared machine two
intra-op threads are several times slower than one (measured 2-3 s vs 0.45 s per step)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_cpu_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
