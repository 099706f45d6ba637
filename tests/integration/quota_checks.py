"""A runaway write against an instance's disk quota, the same on every engine."""

import json

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from rig import sh

MAX_BYTES = 128 * 2 ** 20
# What each engine's client is told when the quota stops a write (the server's own words).
QUOTA_ERRORS = {"mariadb": ("is full", "Disk quota exceeded", "errno: 122"),
                "mysql": ("is full", "Disk quota exceeded", "errno: 122"),
                "postgresql": ("Disk quota exceeded",)}


def _fill(rig, instance):
    """Double a table of 1 KB rows until the server refuses; (rows committed, the error's text)."""
    pg = instance["engine"] == "postgresql"
    rig.query(instance, "CREATE TABLE filler (pad varchar(1000))")
    rig.query(instance, "INSERT INTO filler SELECT repeat('x', 1000) FROM "
              + ("generate_series(1, 1024)" if pg else "(SELECT 1 FROM customers LIMIT 1024) AS rows_"))
    for _doubling in range(30):
        try:
            rig.query(instance, "INSERT INTO filler SELECT pad FROM filler")
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return rig.query(instance, "SELECT COUNT(*) FROM filler")[0][0], str(exc)
    raise AssertionError("%s wrote 2^30 KB past a quota of %d bytes" % (instance["name"], MAX_BYTES))


def _started(container):
    state = json.loads(sh("docker", "inspect", "--format", "{{json .State}}", container).stdout)
    return state["StartedAt"], state["Running"], json.loads(
        sh("docker", "inspect", "--format", "{{.RestartCount}}", container).stdout)


def runaway_write_is_stopped(rig, template, count_sql, rows):
    """An instance with max_bytes and a neighbour without: the write stops at the quota, nothing else does."""
    prefix = "quota-%s" % template
    limited = rig.instance(prefix + "-a", template=template, max_bytes="128M")
    assert not limited.get("failed"), limited
    limited = limited["instance"]
    neighbour = rig.instance(prefix + "-b", template=template)["instance"]
    engine = get_engine(limited["engine"])
    try:
        assert limited["max_bytes"] == MAX_BYTES
        started = _started(limited["container"])
        committed, error = _fill(rig, limited)
        assert any(text in error for text in QUOTA_ERRORS[limited["engine"]]), error
        # The server goes on answering, with the template's data and what was committed before the limit.
        assert _started(limited["container"]) == started
        assert rig.query(limited, count_sql)[0][0] == rows
        assert rig.query(limited, "SELECT COUNT(*) FROM filler")[0][0] == committed >= 1024
        log = sh("docker", "logs", limited["container"]).stdout
        assert not engine.crash_recovery(log), log[-3000:]
        # The neighbour writes as before.
        rig.query(neighbour, "CREATE TABLE spare (pad varchar(1000))")
        rig.query(neighbour, "INSERT INTO spare SELECT pad FROM (SELECT repeat('y', 1000) AS pad) AS one")
        assert rig.query(neighbour, count_sql)[0][0] == rows
        # Used and allowed, as myaas_info shows them.
        listed = dict((entry["name"], entry) for entry in rig.info()["instances"])
        assert listed[limited["name"]]["max_bytes"] == MAX_BYTES
        assert MAX_BYTES // 2 < listed[limited["name"]]["exclusive_bytes"] <= MAX_BYTES, listed[limited["name"]]
        assert listed[neighbour["name"]]["max_bytes"] is None
    finally:
        rig.instance(limited["name"], state="absent")
        rig.instance(neighbour["name"], state="absent")
