"""A runaway write against an instance's disk quota, the same on every engine."""

import json
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from rig import sh

MAX_BYTES = 64 * 2 ** 20
# What each engine's client is told when the quota stops a write (the server's own words).
QUOTA_ERRORS = {"mariadb": ("is full", "Disk quota exceeded", "errno: 122"),
                "mysql": ("is full", "Disk quota exceeded", "errno: 122"),
                "postgresql": ("Disk quota exceeded",)}


def _fill(rig, instance):
    """Double a table of 1 KB rows until the server refuses; (rows committed before, the error's text)."""
    pg = instance["engine"] == "postgresql"
    rig.query(instance, "CREATE TABLE filler (pad varchar(1000))")
    rig.query(instance, "INSERT INTO filler SELECT repeat('x', 1000) FROM "
              + ("generate_series(1, 1024)" if pg else "(SELECT 1 FROM customers LIMIT 1024) AS rows_"))
    committed = 1024
    for _doubling in range(30):
        try:
            rig.query(instance, "INSERT INTO filler SELECT pad FROM filler")
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return committed, str(exc)
        committed *= 2
    raise AssertionError("%s wrote 2^30 KB past a quota of %d bytes" % (instance["name"], MAX_BYTES))


def _settled(rig, instance):
    """True once the server answers after the refused write, False once its container has stopped."""
    for _attempt in range(90):
        try:
            rig.query(instance, "SELECT 1")
            return True
        except Exception:  # pylint: disable=broad-exception-caught
            if not _started(instance["container"])[1]:
                return False
        time.sleep(0.5)
    raise AssertionError("%s neither answers nor stopped after its quota refused a write: %s" % (
        instance["name"], sh("docker", "logs", "--tail", "40", instance["container"]).stdout[-4000:]))


def _started(container):
    state = json.loads(sh("docker", "inspect", "--format", "{{json .State}}", container).stdout)
    return state["StartedAt"], state["Running"], json.loads(
        sh("docker", "inspect", "--format", "{{.RestartCount}}", container).stdout)


def quotas_off(rig):
    """Turn the shared pool's quota groups off again: btrfs counts every extent while they are on, which
    slows the imports of the tests that share the pool after this one."""
    sh("btrfs", "quota", "disable", rig.pool)


def runaway_write_is_stopped(rig, template, count_sql, rows):
    """An instance with max_bytes and a neighbour without: the write stops at the quota, nothing else does.

    Whether the server goes on answering depends on where the limit meets it
    (a table's file growing is refused cleanly; InnoDB's own page or log write
    is fatal): both outcomes are checked, the first one by its log.
    """
    prefix = "quota-%s" % template
    limited = rig.instance(prefix + "-a", template=template, max_bytes="64M")
    assert not limited.get("failed"), limited
    limited = limited["instance"]
    neighbour = rig.instance(prefix + "-b", template=template)["instance"]
    engine = get_engine(limited["engine"])
    try:
        assert limited["max_bytes"] == MAX_BYTES
        started = _started(limited["container"])
        committed, error = _fill(rig, limited)
        assert any(text in error for text in QUOTA_ERRORS[limited["engine"]]) or "Lost connection" in error, error
        # Nothing more than the quota was written (what btrfs counted, as myaas_info shows it).
        listed = dict((entry["name"], entry) for entry in rig.info()["instances"])
        assert listed[limited["name"]]["max_bytes"] == MAX_BYTES
        assert MAX_BYTES // 2 < listed[limited["name"]]["exclusive_bytes"] <= MAX_BYTES, listed[limited["name"]]
        survived = _settled(rig, limited)
        if survived:
            # Refused with the server's own error, and the server went on as it was.
            assert _started(limited["container"]) == started
            log = sh("docker", "logs", limited["container"]).stdout
            assert not engine.crash_recovery(log), log[-3000:]
        else:
            # The server could not write its own pages and stopped: a larger quota brings it back,
            # by crash recovery, with every committed row.
            back = rig.instance(limited["name"], max_bytes="1G")
            assert back["changed"] and not back.get("failed"), back
        print("%s at its quota: %s; %s" % (limited["engine"], error[:200],
                                           "went on answering" if survived else "stopped, back with a larger one"))
        assert rig.query(limited, count_sql)[0][0] == rows
        assert rig.query(limited, "SELECT COUNT(*) FROM filler")[0][0] == committed
        # The neighbour writes as before.
        rig.query(neighbour, "CREATE TABLE spare (pad varchar(1000))")
        rig.query(neighbour, "INSERT INTO spare SELECT pad FROM (SELECT repeat('y', 1000) AS pad) AS one")
        assert rig.query(neighbour, count_sql)[0][0] == rows
        assert listed[neighbour["name"]]["max_bytes"] is None
    finally:
        rig.instance(limited["name"], state="absent")
        rig.instance(neighbour["name"], state="absent")
        quotas_off(rig)
