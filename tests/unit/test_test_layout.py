"""The test tree itself: pytest imports test modules by their base name (rootdir-relative without packages)."""

import collections
import os

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_no_two_test_modules_share_a_base_name():
    seen = collections.defaultdict(list)
    for folder in ("unit", "integration"):
        for entry in os.listdir(os.path.join(TESTS, folder)):
            if entry.startswith("test_") and entry.endswith(".py"):
                seen[entry].append(folder)
    assert not dict((name, folders) for name, folders in seen.items() if len(folders) > 1)
