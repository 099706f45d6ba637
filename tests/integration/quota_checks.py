"""A runaway write against an instance's disk quota, the same on every engine."""

import json
import time

import pymysql

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from rig import sh

MAX_BYTES = 64 * 2 ** 20


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


def cap_argument(container):
    """The MiB a container's server caps its system tablespace at (innodb_data_file_path's max); None: no cap."""
    args = json.loads(sh("docker", "inspect", "--format", "{{json .Args}}", container).stdout)
    paths = [arg for arg in args if arg.startswith("--innodb-data-file-path=")]
    return paths[0].rsplit(":max:", 1)[1].rstrip("M") if paths else None


def _qgroup(rig, path):
    """(exclusive bytes, exclusive limit) of the pool's subvolume at ``path``, as btrfs shows them."""
    for line in sh("btrfs", "qgroup", "show", "-re", "--raw", rig.pool).stdout.splitlines():
        fields = line.split()
        if fields and fields[-1] == path:
            return int(fields[2]), int(fields[4])
    raise AssertionError("no quota group for %s" % path)


def quotas_off(rig):
    """Turn the shared pool's quota groups off again: btrfs counts every extent while they are on, which
    slows the imports of the tests that share the pool after this one."""
    sh("btrfs", "quota", "disable", rig.pool)


SYSTEM_TABLESPACE = {"innodb_file_per_table": "0"}


def _rewrite_and_roll_back(rig, instance, table):
    connection = rig.connect(instance)
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                cursor.execute("UPDATE %s SET full_name = REVERSE(full_name), city = REVERSE(city)" % table)
                print("rewrite at the cap: done")
            except pymysql.err.OperationalError as exc:
                assert "is full" in str(exc), exc
                print("rewrite at the cap: %s" % exc)
            cursor.execute("ROLLBACK")
    finally:
        connection.close()


def runaway_write_is_stopped(rig, template, table, rows):
    """An instance with max_bytes and a neighbour without: the write stops at the quota, nothing else does.

    The server refuses the write itself (its system tablespace is capped), so
    it answers afterwards, stops and starts again cleanly, and the template's
    rows and every committed row are there.
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
        assert "is full" in error, error
        # The server's count of the growth is the quota; btrfs's limit behind it was not met.
        listed = dict((entry["name"], entry) for entry in rig.info()["instances"])
        entry = listed[limited["name"]]
        assert entry["max_bytes"] == MAX_BYTES
        assert MAX_BYTES * 3 // 4 < entry["used_bytes"] <= MAX_BYTES + 2 ** 20, entry
        exclusive, limit = _qgroup(rig, "instances/%s/data" % limited["name"])
        assert exclusive < limit, (exclusive, limit)
        # Refused with the server's own error, and the server went on as it was.
        assert _settled(rig, limited)
        assert _started(limited["container"]) == started
        assert rig.query(limited, "SELECT COUNT(*) FROM " + table)[0][0] == rows
        # Every row of the template rewritten at the cap (redo, undo, pages: what aborted a server that
        # only a btrfs limit held), then rolled back: refused or done, the server goes on.
        _rewrite_and_roll_back(rig, limited, table)
        assert _settled(rig, limited) and _started(limited["container"]) == started
        assert rig.query(limited, "CHECKSUM TABLE " + table)[0][1] == rig.query(neighbour, "CHECKSUM TABLE " + table)[0][1]
        assert rig.query(limited, "SELECT COUNT(*) FROM filler")[0][0] == committed
        # Room made by the developer is room again.
        rig.query(limited, "DELETE FROM filler WHERE pad LIKE 'x%'")
        rig.query(limited, "INSERT INTO filler SELECT repeat('z', 1000) FROM (SELECT 1 FROM customers LIMIT 512) AS r")
        # A clean stop and start: no crash recovery, every committed row back.
        for state in ("stopped", "started"):
            assert not rig.instance(limited["name"], state=state).get("failed")
        log = sh("docker", "logs", limited["container"]).stdout
        assert not engine.crash_recovery(log), log[-3000:]
        assert rig.query(limited, "SELECT COUNT(*) FROM " + table)[0][0] == rows
        assert rig.query(limited, "SELECT COUNT(*) FROM filler")[0][0] == 512
        print("%s at its quota: %s" % (limited["engine"], error[:200]))
        # The neighbour writes as before.
        rig.query(neighbour, "CREATE TABLE spare (pad varchar(1000))")
        rig.query(neighbour, "INSERT INTO spare SELECT pad FROM (SELECT repeat('y', 1000) AS pad) AS one")
        assert rig.query(neighbour, "SELECT COUNT(*) FROM " + table)[0][0] == rows
        assert listed[neighbour["name"]]["max_bytes"] is None and listed[neighbour["name"]]["used_bytes"] is None
        # A first quota, given after the clone, counts from what its data holds then.
        given = rig.instance(neighbour["name"], max_bytes="64M")
        assert given["changed"] and not given.get("failed"), given
        assert cap_argument(neighbour["container"]) is not None
        assert rig.info(name=neighbour["name"])["instances"][0]["used_bytes"] == 0
    finally:
        rig.instance(limited["name"], state="absent")
        rig.instance(neighbour["name"], state="absent")
        quotas_off(rig)


def file_per_table_is_refused(rig, template, name):
    """A template whose tables have files of their own gives no quota: refused before anything is made."""
    refused = rig.instance(name, template=template, max_bytes="1G")
    assert refused["failed"] and "tables in files of their own (innodb_file_per_table" in refused["msg"], refused
    assert "tuning: {innodb_file_per_table: 0}" in refused["msg"], refused["msg"]
    assert rig.gone(name)
    # An inventory's default quota is for templates that take one: this one's instance is made without.
    made = rig.instance(name, template=template, default_max_bytes="1G")
    try:
        assert not made.get("failed") and made["instance"]["max_bytes"] is None, made
    finally:
        rig.instance(name, state="absent")
