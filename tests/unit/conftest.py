"""A fake Runner: records argv and answers from a script of (prefix, result) pairs."""

import pytest


class FakeRunner:
    def __init__(self, answers=None):
        self.calls = []
        self.answers = list(answers or [])

    def run(self, argv, check=True, data=None):
        self.calls.append(list(argv))
        for prefix, result in self.answers:
            if argv[:len(prefix)] == list(prefix):
                return result
        return 0, "", ""


@pytest.fixture
def make_runner():
    return FakeRunner
