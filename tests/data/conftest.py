"""Fixtures for the data tests."""

from __future__ import annotations

import pytest

from tests.data.factories import FakeCodec, make_cuts


@pytest.fixture
def cuts(tmp_path):
    return make_cuts(tmp_path / "wav")


@pytest.fixture
def fake_codec():
    return FakeCodec()
