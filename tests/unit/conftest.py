"""Fixtures that hand the fakes (fakes.py) to unit tests."""

import pytest

from fakes import FakeApi, FakeRunner


@pytest.fixture
def make_runner():
    return FakeRunner


@pytest.fixture
def make_api():
    return FakeApi
