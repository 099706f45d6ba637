"""Fixtures that hand the fakes (fakes.py) to unit tests."""

import pytest

from fakes import FakeApi, FakeRunner


@pytest.fixture
def make_runner():
    return FakeRunner


@pytest.fixture
def make_api():
    return FakeApi


@pytest.fixture
def pool_dir(tmp_path):
    """An empty folder standing in for the pool (the fake btrfs commands work in it)."""
    path = tmp_path / "pool"
    path.mkdir()
    return str(path)
