"""Faults, races and bad input: each test injects its fault for real (a lock held by another
process, dockerd stopped, a leftover left behind, a dump cut short) and checks that nothing
is lost and nothing is wedged."""

import fcntl
import gzip
import json
import os
import shutil
import time

import pymysql
import pytest
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_iso

from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name
from rig import ROOT, SAMPLE, SAMPLE_CUSTOMERS as CUSTOMERS, run_module, sh


@pytest.fixture(scope="module")
def faults(rig):
    return rig.sample_template("faults")


def reap(rig, check=False):
    return run_module("myaas_reap", {"pool": rig.pool}, check_mode=check)


def hold_lock(rig, name):
    """Hold an instance's lock from this process, as a run that is making or resetting it does."""
    fd = os.open(os.path.join(rig.pool, "locks", "instance-%s.lock" % name), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def customers(rig, db):
    return rig.query(db, "SELECT COUNT(*) FROM customers")[0][0]


def test_reaper_removes_only_what_it_may_and_repairs_the_rest(rig, faults):
    half = os.path.join(rig.pool, "instances", "r-half")
    making = os.path.join(rig.pool, "instances", "r-making")
    try:
        protected = rig.instance("r-protected", template="faults", ttl="1s", protected=True)["instance"]
        sh("docker", "rm", "--force", protected["container"])          # pruned by someone
        rig.instance("r-locked", template="faults", ttl="1s")
        rig.instance("r-expired", template="faults", ttl="1s")
        # Left by a create that was killed: folder and data, no instance.json, nobody holds its lock.
        os.makedirs(half)
        sh("btrfs", "subvolume", "snapshot", faults["path"], os.path.join(half, "data"))
        # Being made right now: folder, no instance.json yet, its lock held.
        os.makedirs(making)
        # Expired in a second, but under a protection lease that outlasts the test's reaps.
        lease = rig.instance("r-lease", template="faults", ttl="1s", protected="1h")["instance"]
        assert rig.instance("r-lease", protected="1h")["changed"] is False      # the same lease keeps its end
        time.sleep(1.5)
        held = [hold_lock(rig, "r-locked"), hold_lock(rig, "r-making")]
        try:
            check = reap(rig, check=True)
            run = reap(rig)
        finally:
            for fd in held:
                os.close(fd)
        assert not run.get("failed"), run
        assert check["removed"] == run["removed"] == ["r-expired", "r-half"]
        assert check["repaired"] == run["repaired"] == ["r-protected"]
        assert sorted(run["busy"]) == ["r-locked", "r-making"]
        assert rig.gone("r-expired") and not os.path.exists(half)
        assert os.path.isdir(making) and rig.containers(instance="r-locked")
        # Repaired: on the same port, with the same password.
        assert customers(rig, protected) == CUSTOMERS
        assert rig.instance("r-protected", template="faults")["changed"] is False
        assert "r-lease" not in run["reasons"] and not rig.gone("r-lease")
        listed = [entry for entry in rig.info()["instances"] if entry["name"] == "r-lease"][0]
        assert listed["expired"] and listed["protected_until"] == lease["protected_until"]
        # A shorter lease starts anew from now; once it has ended, the instance
        # is reaped like any other expired one.
        shortened = rig.instance("r-lease", protected="2s")
        assert shortened["changed"] is True
        lease = shortened["instance"]
        time.sleep(max(0.0, parse_iso(lease["protected_until"]) - time.time()) + 0.5)
        after = reap(rig)
        assert "r-lease" in after["removed"] and "r-protected" not in after["removed"], after
        assert "protection ended at %s" % lease["protected_until"] in after["reasons"]["r-lease"]
        assert rig.gone("r-lease")
    finally:
        shutil.rmtree(making, ignore_errors=True)
        for name in ("r-protected", "r-locked", "r-expired", "r-half", "r-lease"):
            rig.instance(name, state="absent")


@pytest.mark.dockerd_restart
def test_with_dockerd_down_nothing_is_lost_and_the_errors_say_why(rig, faults):
    rig.require_own_dockerd()
    try:
        rig.instance("down-expired", template="faults", ttl="1s")
        rig.instance("down-drop", template="faults")
        time.sleep(1.5)
        try:
            rig.stop_dockerd()
            reaped = reap(rig)
            assert reaped["failed"] and "Docker engine does not answer" in reaped["msg"], reaped
            assert os.path.isdir(os.path.join(rig.pool, "instances", "down-expired", "data"))
            present = rig.instance("down-expired", template="faults")
            assert present["failed"] and "Docker engine does not answer" in present["msg"], present
            assert "not on this host" not in present["msg"]
            # Every cleanup step runs; the first error (the engine's) is the one reported.
            dropped = rig.instance("down-drop", state="absent")
            assert dropped["failed"] and "Docker engine does not answer" in dropped["msg"], dropped
            assert not os.path.exists(os.path.join(rig.pool, "instances", "down-drop"))
            assert not [path for path in rig.subvolumes() if path.startswith("instances/down-drop")]
        finally:
            rig.start_dockerd()
        # The container dockerd kept for down-drop now belongs to no instance: the reaper takes it.
        run = reap(rig)
        assert not run.get("failed"), run
        assert sorted(run["removed"]) == ["down-drop", "down-expired"], run
        assert rig.gone("down-drop") and rig.gone("down-expired")
    finally:
        for name in ("down-drop", "down-expired"):
            rig.instance(name, state="absent")


def test_a_generation_left_by_a_crashed_swap_is_removed_by_the_next_import(rig):
    first = rig.template("swap", SAMPLE)["template"]
    # What a run that died between the rename and template.json leaves: a frozen generation nothing names.
    stray = os.path.join(rig.pool, "templates", "swap", "gen-%d" % (first["generation"] + 1))
    sh("btrfs", "subvolume", "snapshot", "-r", first["path"], stray)
    again = rig.template("swap", SAMPLE, force=True)
    try:
        assert again.get("changed"), again
        assert stray in again["removed_leftovers"]
        assert again["template"]["generation"] == first["generation"] + 1
        db = rig.instance("swap-clone", template="swap")["instance"]
        assert customers(rig, db) == CUSTOMERS
    finally:
        rig.instance("swap-clone", state="absent")
        rig.template("swap", SAMPLE, state="absent")


def test_a_half_made_instance_is_replaced_and_any_leftover_can_be_dropped(rig, faults):
    half = os.path.join(rig.pool, "instances", "half")
    os.makedirs(half)
    sh("btrfs", "subvolume", "create", os.path.join(half, "data"))     # a leftover, empty datadir
    made = rig.instance("half", template="faults")
    try:
        assert not made.get("failed"), made
        # The new snapshot replaced the leftover instead of landing inside it (as data/gen-N).
        assert not os.path.exists(os.path.join(half, "data", os.path.basename(faults["path"])))
        assert customers(rig, made["instance"]) == CUSTOMERS
    finally:
        dropped = rig.instance("half", state="absent")
    assert dropped["changed"] and rig.gone("half")
    # What the old bug left: a snapshot inside a leftover datadir. It can still be dropped.
    nest = os.path.join(rig.pool, "instances", "nest")
    os.makedirs(nest)
    sh("btrfs", "subvolume", "create", os.path.join(nest, "data"))
    sh("btrfs", "subvolume", "snapshot", faults["path"], os.path.join(nest, "data", "gen-1"))
    dropped = rig.instance("nest", state="absent")
    assert dropped["changed"] and not dropped.get("failed"), dropped
    assert rig.gone("nest")


def test_changed_settings_are_applied_to_an_existing_instance(rig, faults):
    db = rig.instance("tune", template="faults", ttl="1h")["instance"]
    try:
        wanted = dict(template="faults", ttl="2h", protected=True, owner="bob", memory="256m", cpus="1")
        changed = rig.instance("tune", **wanted)
        assert changed["changed"] and changed["operation"] == "update", changed
        before, after = changed["diff"]["before"], changed["diff"]["after"]
        assert (before["protected"], after["protected"]) == (False, True)
        assert after["owner"] == "bob" and after["expires_at"] > before["expires_at"]
        host = json.loads(sh("docker", "inspect", db["container"]).stdout)[0]["HostConfig"]
        assert host["Memory"] == 256 * 2 ** 20 and host["CpuQuota"] == 100000
        assert rig.instance("tune", **wanted)["changed"] is False
        listed = rig.info(name="tune")["instances"][0]
        assert listed["protected"] and listed["owner"] == "bob"
        moved = rig.instance("tune", template="faults", port=db["port"] + 1)
        assert moved["failed"] and "cannot change" in moved["msg"] and "reset" in moved["msg"]
        assert customers(rig, db) == CUSTOMERS
    finally:
        rig.instance("tune", state="absent")


def test_missing_commands_are_named_before_anything_is_touched(rig, faults, workdir):
    # A host like this one, less the btrfs and docker commands.
    bin_dir = os.path.join(workdir, "bin")
    os.makedirs(bin_dir)
    for name in os.listdir("/usr/bin"):
        if not name.startswith(("btrfs", "docker")):
            os.symlink(os.path.join("/usr/bin", name), os.path.join(bin_dir, name))
    result = run_module("myaas_instance", dict(name="nobin", template="faults", pool=rig.pool),
                        env={"PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + bin_dir})
    assert result["failed"] and "btrfs, docker: command not found" in result["msg"], result
    assert rig.gone("nobin")


def test_input_edges(rig, faults, shop_sql, workdir):
    newline = rig.instance("edge\n", template="faults")
    assert newline["failed"] and "Invalid instance name" in newline["msg"]
    huge = rig.instance("edge", template="faults", ttl="999999999d")
    assert huge["failed"] and "more than ten years" in huge["msg"] and rig.gone("edge")
    first = rig.instance("edge-a", template="faults")["instance"]
    try:
        clash = rig.instance("edge-b", template="faults", port=first["port"])
        assert clash["failed"] and "is held by instance edge-a" in clash["msg"], clash
        assert rig.gone("edge-b")
        v6 = rig.instance("edge-v6", template="faults", bind_address="::1", public_host="::1")
        assert not v6.get("failed"), v6
        connection = pymysql.connect(host="::1", port=v6["instance"]["port"], user="dev",
                                     password=v6["instance"]["password"], database="faults")
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM customers")
            assert cursor.fetchone()[0] == CUSTOMERS
        connection.close()
        assert "[::1]" in v6["instance"]["dsn"]
    finally:
        for name in ("edge-a", "edge-v6"):
            rig.instance(name, state="absent")
    pzstd = os.path.join(workdir, "shop.sql.zst")
    sh("pzstd", "--quiet", "-p", "2", shop_sql, "-o", pzstd)
    try:
        imported = rig.template("pz", pzstd)
        assert imported.get("changed"), imported
    finally:
        rig.template("pz", pzstd, state="absent")


def test_dumps_cut_short_or_ending_the_session_early_leave_the_template(rig, faults, workdir):
    source = rig.instance("dumper", template="faults")["instance"]
    try:
        # A real mariadb-dump, run in the clone as the local root.
        dump = sh("docker", "exec", "--user", "root", source["container"], "mariadb-dump", "--no-defaults", "--user=root",
                  "--socket=/tmp/mysqld.sock", "--databases", "faults").stdout.encode()
    finally:
        rig.instance("dumper", state="absent")
    assert b"\n-- MariaDB dump " in dump[:300] and b"-- Dump completed" in dump[-200:]
    complete = os.path.join(workdir, "complete.sql.gz")
    with open(complete, "wb") as handle:
        handle.write(gzip.compress(dump))
    assert rig.template("cut", complete).get("changed")
    before = rig.template_json("cut")
    # The backup job died between two tables: every statement is whole, the end is missing.
    cut_at = dump.index(b"\n--\n-- Table structure", len(dump) // 2)
    cases = {
        "cut.sql.gz": (gzip.compress(dump[:cut_at + 1]), "was cut short: it was written by mariadb-dump"),
        "quit.sql": (dump[:cut_at] + b"\n\\q\n" + dump[cut_at:], "ends the session early"),
    }
    try:
        for name, (data, message) in cases.items():
            path = os.path.join(workdir, name)
            with open(path, "wb") as handle:
                handle.write(data)
            result = rig.template("cut", path)
            assert result["failed"] and message in result["msg"] and path in result["msg"], (name, result["msg"])
            assert rig.template_json("cut") == before, name
            assert not rig.containers(role="import", template="cut"), name
    finally:
        rig.template("cut", complete, state="absent")


def test_a_pg_dump_cut_short_leaves_the_template(rig, pg_sql, workdir):
    engine = dict(engine="postgresql", image="myaas/postgresql:15")
    cut = os.path.join(workdir, "pgcut.sql")
    try:
        assert rig.template("pgcut", pg_sql, **engine).get("changed")
        source = rig.instance("pgdumper", template="pgcut")["instance"]
        try:
            dump = sh("docker", "exec", source["container"], "pg_dump", "--host", "/tmp", "--username", "postgres",
                      "--dbname", "pgcut").stdout.encode()
        finally:
            rig.instance("pgdumper", state="absent")
        assert b"-- PostgreSQL database dump complete" in dump[-200:]
        before = rig.template_json("pgcut")
        with open(cut, "wb") as handle:
            handle.write(dump[:dump.index(b"\n\\.\n", len(dump) // 2) + 4])     # after a whole COPY block
        result = rig.template("pgcut", cut, **engine)
        assert result["failed"] and "was cut short: it was written by pg_dump" in result["msg"], result["msg"]
        assert rig.template_json("pgcut") == before
    finally:
        rig.template("pgcut", cut, state="absent")


def test_a_container_of_another_pool_is_never_removed(rig, faults):
    # A container with the very name this pool's instance would get, that belongs to another pool.
    name = container_name(rig.pool, "clash")
    sh("docker", "run", "--detach", "--name", name, "--label", "org.myaas.pool=/var/lib/myaas",
       "--entrypoint", "sleep", rig.image, "600")
    try:
        refused = rig.instance("clash", template="faults")
        assert refused["failed"] and "does not belong to pool %s" % rig.pool in refused["msg"], refused
        assert sh("docker", "inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"
        assert not os.path.exists(os.path.join(rig.pool, "instances", "clash"))
        # Names carry the pool: a test pool and production never share one.
        assert container_name(rig.pool, "shop") != container_name("/var/lib/myaas", "shop")
    finally:
        sh("docker", "rm", "--force", name)
