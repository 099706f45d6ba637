"""Incremental refreshes: a night's changes applied to the template's previous backup, costing only what changed.

A full backup of a live server becomes generation 1 (and its base: the
backup as restored, before any server ran on it); an incremental backup
taken after a small change is applied to a snapshot of that base
(mariadb-backup --prepare --incremental-dir; PostgreSQL 17's
pg_combinebackup) and becomes generation 2, which shares every unchanged
block with generation 1 on btrfs.
"""

import os

import pytest

import backup_sources
from rig import run_module, sh

ENGINES = {"mariadb": ("mariadb:10.11", backup_sources.mariadb_incremental),
           "postgresql": ("postgres:17", backup_sources.postgresql_incremental)}


def ok(result):
    assert not result.get("failed"), (result.get("msg"), result.get("module_stderr"), result.get("module_stdout"))
    return result


def exclusive_bytes(path):
    out = sh("btrfs", "filesystem", "du", "-s", "--raw", path).stdout.splitlines()[-1].split()
    return int(out[1])


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_an_incremental_backup_makes_a_generation_that_costs_what_changed(rig, workdir, engine):
    image, take = ENGINES[engine]
    full, (incremental, second_night), (counts, second_counts) = take(rig.base)
    name = "incr-" + engine
    table = "shop.big" if engine == "mariadb" else "public.big"
    # A server's pool, which receives each generation with myaas_ship (btrfs send / receive).
    server_pool = rig.small_pool(workdir, "4G")
    server = server_pool.__enter__()  # pylint: disable=unnecessary-dunder-call

    def ship():
        return ok(run_module("myaas_ship", {"name": name, "source_pool": rig.pool, "target_pool": server}))

    try:
        # Without the full backup first, there is nothing to apply it to.
        refused = rig.template(name, incremental, engine=engine, image=image)
        assert refused.get("failed") and "Import the full backup first" in refused["msg"], refused.get("msg")

        first = ok(rig.template(name, full, engine=engine, image=image, keep_generations=2))["template"]
        assert first["row_counts"][table] == backup_sources.BIG_ROWS
        assert os.path.basename(first["base"]) == "base-1"
        shipped = ship()
        assert shipped["mode"] == "full", shipped
        second = ok(rig.template(name, incremental, engine=engine, image=image, keep_generations=2))["template"]
        assert second["generation"] == 2 and second["row_counts"] == counts
        assert counts[table] == backup_sources.BIG_ROWS + 1
        assert sh("btrfs", "property", "get", "-ts", second["path"], "ro").stdout.strip() == "ro=true"

        # Its instances see the night's changes.
        instance = ok(rig.instance(name + "-1", template=name))["instance"]
        assert rig.query(instance, "SELECT pad FROM big WHERE id = %d" % (backup_sources.BIG_ROWS + 1))[0][0] \
            == "new row"
        assert rig.query(instance, "SELECT COUNT(*) FROM big WHERE pad = 'changed'")[0][0] == 20

        # Shipped against generation 1, which the server holds: a small fraction of the database crosses,
        # less than the first (zstd-compressed) stream.
        again = ship()
        assert again["mode"] == "incremental" and again["parent"] == 1, again
        assert again["bytes_sent"] < 0.2 * first["size_bytes"], (again["bytes_sent"], first["size_bytes"])
        assert again["bytes_sent"] < shipped["bytes_sent"], (again["bytes_sent"], shipped["bytes_sent"])
        remote = ok(run_module("myaas_instance", {"name": name + "-s", "template": name, "pool": server}))["instance"]
        try:
            assert rig.query(remote, "SELECT pad FROM big WHERE id = %d" % (backup_sources.BIG_ROWS + 1))[0][0] \
                == "new row"
        finally:
            run_module("myaas_instance", {"name": name + "-s", "pool": server, "state": "absent"})

        # What it cost the pool: a small fraction of the database, the first generation's full price.
        sh("btrfs", "filesystem", "sync", rig.pool)
        database = first["size_bytes"]
        assert exclusive_bytes(second["path"]) < 0.2 * database, (exclusive_bytes(second["path"]), database)
        assert second["pool_bytes_added"] < 0.3 * first["pool_bytes_added"], (second["pool_bytes_added"],
                                                                              first["pool_bytes_added"])
        assert first["pool_bytes_added"] > 0.5 * database

        # The same incremental again: PostgreSQL's pg_combinebackup refuses it (it does not follow the new
        # base), and generation 2 serves on. MariaDB's incrementals start at a checkpoint LSN, which a quiet
        # server does not move: applying one again gives the same data (the LSN check is a unit test's).
        again = rig.template(name, incremental, engine=engine, image=image, keep_generations=2, force=True)
        if engine == "postgresql":
            assert again.get("failed") and "pg_combinebackup" in again["msg"], again.get("msg")
        else:
            assert ok(again)["template"]["row_counts"] == counts
        # The next night's incremental does: a chain of them refreshes the template night after night.
        third = ok(rig.template(name, second_night, engine=engine, image=image, keep_generations=2))["template"]
        assert third["row_counts"] == second_counts
        assert second_counts[table] == backup_sources.BIG_ROWS + 1
        rig.instance(name + "-1", state="reset")
        assert rig.query(instance, "SELECT COUNT(*) FROM big WHERE id IN (1, %d)" % (backup_sources.BIG_ROWS + 2))[0][0] \
            == 1
        assert rig.template(name, second_night, engine=engine, image=image, keep_generations=2)["changed"] is False
        # Two generations kept, with their bases; the first one's pruned.
        kept = sorted(path.rsplit("/", 1)[1] for path in rig.subvolumes() if path.startswith("templates/%s/" % name))
        number = third["generation"]
        assert kept == sorted("%s-%d" % (kind, gen) for kind in ("base", "gen") for gen in (number - 1, number)), kept
    finally:
        rig.instance(name + "-1", state="absent")
        rig.template(name, None, state="absent")
        server_pool.__exit__(None, None, None)
    assert not [path for path in rig.subvolumes() if path.startswith("templates/%s/" % name)]
