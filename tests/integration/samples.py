"""The real sample databases: Sakila (MySQL's) and Pagila (its PostgreSQL port).

They are not ours to ship: tests read them from MYAAS_SAKILA_DIR and
MYAAS_PAGILA_DIR, or from shared/datasets/ beside the checkout, and are
skipped, saying where they looked, when they are not there.
"""

import os

import pytest

from rig import ROOT

DATASETS = os.path.join(os.path.dirname(ROOT), "shared", "datasets")
SAKILA_DIR = os.environ.get("MYAAS_SAKILA_DIR", os.path.join(DATASETS, "sakila"))
PAGILA_DIR = os.environ.get("MYAAS_PAGILA_DIR", os.path.join(DATASETS, "pagila"))
# As datacharmer/test_db has Sakila, and xzilla/pagila (tag v15.a) Pagila.
SAKILA_FILES = ("sakila-mv-schema.sql", "sakila-mv-data.sql")
PAGILA_FILES = ("pagila-schema.sql", "pagila-data.sql")


def sample_dump(name, directory, files, out_dir):
    """The sample's files concatenated into one dump in ``out_dir`` (skips the test when they are missing)."""
    missing = [part for part in files if not os.path.exists(os.path.join(directory, part))]
    if missing:
        pytest.skip("%s is not on this machine (%s missing in %s; set MYAAS_%s_DIR)"
                    % (name, ", ".join(missing), directory, name.upper()))
    path = os.path.join(out_dir, "%s.sql" % name.lower())
    with open(path, "wb") as out:
        for part in files:
            with open(os.path.join(directory, part), "rb") as handle:
                out.write(handle.read())
    return path


def sakila_dump(out_dir):
    return sample_dump("Sakila", SAKILA_DIR, SAKILA_FILES, out_dir)


def pagila_dump(out_dir):
    return sample_dump("Pagila", PAGILA_DIR, PAGILA_FILES, out_dir)
