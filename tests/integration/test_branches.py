"""Bookmarks, branches and generations on the real rig, for every engine.

Every clone, bookmark and branch here is checked for crash recovery in its
server's log; the detector itself is shown to see a real one (a server killed
with SIGKILL) before it is trusted.
"""

import json
import os
import time

import pymysql
import psycopg2
import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso, parse_iso
from rig import PG_IMAGE, SAMPLE, run_module, sh

ENGINES = ["mariadb", "mysql", "postgresql"]
MYSQL_IMAGE = "mysql:9.7"
LOGIN_ERRORS = (pymysql.err.OperationalError, psycopg2.OperationalError)


@pytest.fixture(scope="module")
def origins(rig, pg_sql, mysql_dump):
    """The sample shop imported once per engine, on first use."""
    made = {}
    dumps = {"mariadb": (SAMPLE, rig.image), "mysql": (mysql_dump[0], MYSQL_IMAGE), "postgresql": (pg_sql, PG_IMAGE)}

    def get(engine):
        if engine not in made:
            name = "br-" + engine
            result = rig.template(name, dumps[engine][0], engine=engine, image=dumps[engine][1])
            assert result.get("changed") and not result.get("failed"), result
            made[engine] = result["template"]
        return made[engine]
    return get


def branch(rig, name, **options):
    return run_module("myaas_template", dict(options, name=name, pool=rig.pool), diff=True)


def server_log(container):
    return sh("docker", "logs", container).stdout


def starts(log):
    """How many times the server in a container became ready (MariaDB's and PostgreSQL's words)."""
    return log.count("ready for connections") + log.count("ready to accept connections")


def assert_no_crash_recovery(engine, container):
    log = server_log(container)
    assert starts(log) >= 1, log[-2000:]
    assert not get_engine(engine).crash_recovery(log), log[-3000:]


def write_rows(rig, db, table, count):
    rig.query(db, "CREATE TABLE %s (id INT PRIMARY KEY, body VARCHAR(100))" % table)
    rig.query(db, "INSERT INTO %s (id, body) VALUES %s" % (
        table, ", ".join("(%d, 'row %d')" % (number, number) for number in range(1, count + 1))))


def count(rig, db, table):
    return rig.query(db, "SELECT COUNT(*) FROM %s" % table)[0][0]


def exclusive_and_total(path):
    fields = sh("btrfs", "filesystem", "du", "-s", "--raw", path).stdout.strip().splitlines()[-1].split()
    return int(fields[1]), int(fields[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_reset_to_a_bookmark_brings_the_rows_back_on_the_same_port_and_password(rig, origins, engine):
    name = "bm-" + engine
    db = rig.instance(name, template=origins(engine)["name"])
    assert not db.get("failed"), db
    db = db["instance"]
    try:
        write_rows(rig, db, "notes", 1000)
        saved = rig.instance(name, state="saved", bookmark="before")
        assert saved["changed"] and saved["operation"] == "save", saved
        mark = saved["instance"]["bookmarks"]["before"]
        assert mark["generation"] == db["generation"] and mark["template"] == db["template"]
        path = os.path.join(rig.pool, "instances", name, "bookmarks", "before")
        assert sh("btrfs", "property", "get", "-ts", path, "ro").stdout.strip() == "ro=true"
        # Started again after the snapshot, as it was: same port, same password.
        assert (saved["instance"]["port"], saved["instance"]["password"]) == (db["port"], db["password"])
        assert count(rig, db, "notes") == 1000
        # Stopped and started again in the same container, with no recovery.
        assert starts(server_log(db["container"])) == 2
        assert_no_crash_recovery(engine, db["container"])
        assert not rig.instance(name, state="saved", bookmark="before")["changed"]

        rig.query(db, "DROP TABLE notes")
        started = time.monotonic()
        reset = rig.instance(name, state="reset", bookmark="before")
        seconds = time.monotonic() - started
        assert reset["changed"] and not reset.get("failed"), reset
        back = reset["instance"]
        assert back["bookmark"] == "before" and back["generation"] == db["generation"]
        assert (back["port"], back["password"]) == (db["port"], db["password"])
        assert count(rig, dict(db), "notes") == 1000   # the first instance's own connection data
        assert_no_crash_recovery(engine, db["container"])
        print("reset to a bookmark (%s): %.2f s for the whole module run, %.2f s from snapshot to login"
              % (engine, seconds, back["ready_seconds"]))

        listed = rig.info(name=name)["instances"][0]
        assert set(listed["bookmarks"]) == {"before"} and listed["bookmark"] == "before"

        missing = rig.instance(name, state="reset", bookmark="nope")
        assert missing.get("failed") and "has no bookmark nope; it has before" in missing["msg"], missing

        dropped = rig.instance(name, state="absent", bookmark="before")
        assert dropped["changed"] and dropped["instance"]["bookmarks"] == {}, dropped
        assert not os.path.lexists(path)
        assert count(rig, db, "notes") == 1000   # the instance stays
        assert not rig.instance(name, state="absent", bookmark="before")["changed"]

        rig.instance(name, state="saved", bookmark="again")
    finally:
        rig.instance(name, state="absent")
    assert not os.path.lexists(os.path.join(rig.pool, "instances", name))
    assert not any(line.startswith("instances/%s/" % name) for line in rig.subvolumes())


@pytest.mark.parametrize("engine", ENGINES)
def test_a_bookmark_of_a_killed_server_is_recovered_first_and_frozen_clean(rig, origins, engine):
    name = "killed-" + engine
    db = rig.instance(name, template=origins(engine)["name"])["instance"]
    try:
        write_rows(rig, db, "kept", 50)
        # Stop it the way a power cut would: SIGKILL, no shutdown at all.
        sh("docker", "update", "--restart", "no", db["container"])
        sh("docker", "kill", "--signal", "KILL", db["container"])
        saved = rig.instance(name, state="saved", bookmark="after-crash")
        assert saved["changed"], (saved.get("msg"), saved.get("server_log"))
        # The detector sees the recovery this instance's server had to run...
        assert get_engine(engine).crash_recovery(server_log(db["container"])), server_log(db["container"])[-3000:]
        # ...and the bookmark, taken after a clean stop, needs none.
        reset = rig.instance(name, state="reset", bookmark="after-crash")
        assert not reset.get("failed"), (reset.get("msg"), (reset.get("server_log") or [])[-15:])
        assert count(rig, db, "kept") == 50
        assert_no_crash_recovery(engine, db["container"])
    finally:
        rig.instance(name, state="absent")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_branch_shares_its_bytes_and_a_colleague_sees_the_rows(rig, origins, engine):
    alice, bob, name = "alice-" + engine, "bob-" + engine, "branch-" + engine
    first = rig.instance(alice, template=origins(engine)["name"], owner="alice")["instance"]
    try:
        write_rows(rig, first, "feature", 500)
        refused = branch(rig, name, from_instance=alice, requester="mallory")
        assert refused.get("failed") and "belongs to alice" in refused["msg"], refused
        made = branch(rig, name, from_instance=alice, requester="alice")
        assert made["changed"] and not made.get("failed"), made
        template = made["template"]
        sh("sync")   # what the restarted origin wrote is on disk, so btrfs counts what the branch no longer shares
        exclusive, _total = exclusive_and_total(template["path"])
        _alice_exclusive, origin_total = exclusive_and_total(os.path.join(rig.pool, "instances", alice, "data"))
        print("branch (%s): %d bytes of its own, origin %d bytes (%.3f%%)"
              % (engine, exclusive, origin_total, 100.0 * exclusive / origin_total))
        # MySQL writes its spare redo files anew at every start: the restarted origin's are its own, so the
        # branch keeps the old ones (the clones' redo capacity, 16 MiB).
        redo = 16 * 2 ** 20 if engine == "mysql" else 0
        assert exclusive <= origin_total // 100 + redo, (exclusive, origin_total)
        assert template["source"]["instance"] == alice and template["generation"] == 1
        # Alice's server was started again, with her data and her password.
        assert count(rig, first, "feature") == 500
        assert_no_crash_recovery(engine, first["container"])

        colleague = rig.instance(bob, template=name, user="bob", owner="bob")
        assert not colleague.get("failed"), colleague
        colleague = colleague["instance"]
        assert count(rig, colleague, "feature") == 500
        assert colleague["database"] == first["database"]
        assert_no_crash_recovery(engine, colleague["container"])
        # Alice's account is in the branch's data, but her password opens nothing there.
        with pytest.raises(LOGIN_ERRORS):
            rig.query(dict(colleague, user=first["user"], password=first["password"]), "SELECT 1")

        listed = [entry for entry in rig.info()["templates"] if entry["name"] == name][0]
        assert listed["origin"]["instance"] == alice and listed["owner"] == "alice"
        assert [record["generation"] for record in listed["generations"]] == [1]

        # From a bookmark: the instance is not touched, and a second run changes nothing.
        rig.instance(alice, state="saved", bookmark="b1")
        rig.query(first, "DELETE FROM feature WHERE id > 100")
        again = branch(rig, name, from_instance=alice, from_bookmark="b1", requester="alice", keep_generations=2)
        assert again["changed"] and again["template"]["generation"] == 2, again
        assert not branch(rig, name, from_instance=alice, from_bookmark="b1", requester="alice",
                          keep_generations=2)["changed"]
        assert count(rig, first, "feature") == 100
        # Bob's reset takes the branch's new generation: the bookmark, taken before the 400 rows went.
        moved = rig.instance(bob, state="reset")
        assert moved["instance"]["generation"] == 2, moved
        assert count(rig, colleague, "feature") == 500
    finally:
        rig.instance(bob, state="absent")
        rig.instance(alice, state="absent")
        branch(rig, name, state="absent")


def small_dump(path, marker):
    with open(path, "w", encoding="utf-8") as out:
        out.write("CREATE TABLE marker (n INT PRIMARY KEY);\nINSERT INTO marker VALUES (%d);\n" % marker)


@pytest.mark.parametrize("engine", ["mariadb", "mysql"])
def test_three_generations_side_by_side_and_as_of(rig, workdir, engine):
    dump = os.path.join(workdir, "gens.sql")
    image = {"mariadb": rig.image, "mysql": MYSQL_IMAGE}[engine]
    made = []
    for marker in (1, 2, 3):
        small_dump(dump, marker)
        result = rig.template("three-gens", dump, keep_generations=3, engine=engine, image=image)
        assert result["changed"] and result["template"]["generation"] == marker, result
        made.append(result["template"])
        time.sleep(1.1)   # import times are recorded to the second
    assert [record["generation"] for record in made[-1]["generations"]] == [1, 2, 3]
    listed = [entry for entry in rig.info()["templates"] if entry["name"] == "three-gens"][0]
    assert [(record["generation"], record["imported_at"]) for record in listed["generations"]] == \
        [(template["generation"], template["imported_at"]) for template in made]
    assert len(set(record["source"]["sha256"] for record in listed["generations"])) == 3
    names = ["gen-one", "gen-now", "gen-asof", "gen-reset"]
    try:
        one = rig.instance("gen-one", template="three-gens", generation=1)["instance"]
        now = rig.instance("gen-now", template="three-gens")["instance"]
        assert (one["generation"], now["generation"]) == (1, 3)
        assert rig.query(one, "SELECT n FROM marker")[0][0] == 1
        assert rig.query(now, "SELECT n FROM marker")[0][0] == 3

        between = iso(parse_iso(made[1]["imported_at"]) + 0.5)
        asof = rig.instance("gen-asof", template="three-gens", as_of=between)["instance"]
        assert asof["generation"] == 2 and rig.query(asof, "SELECT n FROM marker")[0][0] == 2
        too_early = rig.instance("gen-never", template="three-gens", as_of="2001-01-01")
        assert too_early.get("failed") and "no generation imported at or before 2001-01-01" in too_early["msg"]
        assert not os.path.lexists(os.path.join(rig.pool, "instances", "gen-never"))

        clash = rig.instance("gen-one", template="three-gens", generation=3)
        assert clash.get("failed") and "holds generation 1" in clash["msg"], clash
        moved = rig.instance("gen-one", state="reset", as_of=made[1]["imported_at"])
        assert moved["instance"]["generation"] == 2 and rig.query(one, "SELECT n FROM marker")[0][0] == 2
        latest = rig.instance("gen-one", state="reset")
        assert latest["instance"]["generation"] == 3

        small_dump(dump, 4)
        fourth = rig.template("three-gens", dump, keep_generations=3, engine=engine, image=image)
        assert [record["generation"] for record in fourth["template"]["generations"]] == [2, 3, 4]
        assert not os.path.lexists(made[0]["path"])
        pruned = rig.instance("gen-reset", template="three-gens", generation=1)
        assert pruned.get("failed") and "it keeps 2 (" in pruned["msg"], pruned
        # An instance of a pruned generation keeps its data.
        assert rig.query(asof, "SELECT n FROM marker")[0][0] == 2
    finally:
        for name in names:
            rig.instance(name, state="absent")
        rig.template("three-gens", dump, state="absent")


def test_playbooks_save_reset_and_clone_older_data(rig, workdir):
    dump = os.path.join(workdir, "pb.sql")
    small_dump(dump, 1)
    first = rig.template("pbgens", dump, keep_generations=2)["template"]
    time.sleep(1.1)
    small_dump(dump, 2)
    rig.template("pbgens", dump, keep_generations=2)
    try:
        new = rig.playbook("playbooks/new_db.yml", "-e", "template=pbgens", "-e", "instance=pb-old",
                           "-e", "as_of=" + first["imported_at"])
        assert new.returncode == 0, new.stdout[-3000:]
        assert "Instance pb-old of template pbgens (generation 1)" in new.stdout
        meta = json.load(open(os.path.join(rig.pool, "instances", "pb-old", "instance.json"), encoding="utf-8"))
        secret = json.load(open(os.path.join(rig.pool, "instances", "pb-old", "secret.json"), encoding="utf-8"))
        db = dict(meta, **secret)
        rig.query(db, "INSERT INTO marker VALUES (10)")
        saved = rig.playbook("playbooks/save_db.yml", "-e", "instance=pb-old", "-e", "bookmark=ten")
        assert saved.returncode == 0 and "Bookmark ten of pb-old saved" in saved.stdout, saved.stdout[-3000:]
        rig.query(db, "DELETE FROM marker")
        reset = rig.playbook("playbooks/reset_db.yml", "-e", "instance=pb-old", "-e", "bookmark=ten")
        assert reset.returncode == 0 and "pb-old now holds bookmark ten" in reset.stdout, reset.stdout[-3000:]
        assert sorted(row[0] for row in rig.query(db, "SELECT n FROM marker")) == [1, 10]
        shared = rig.playbook("playbooks/save_db.yml", "-e", "instance=pb-old", "-e", "branch=pb-shared")
        assert shared.returncode == 0 and "Template pb-shared (generation 1)" in shared.stdout, shared.stdout[-3000:]
        listing = rig.playbook("playbooks/list_dbs.yml")
        assert "(branch of pb-old)" in listing.stdout and "bookmarks: ten" in listing.stdout, listing.stdout[-3000:]
        dropped = rig.playbook("playbooks/drop_db.yml", "-e", "instance=pb-old", "-e", "bookmark=ten")
        assert dropped.returncode == 0, dropped.stdout[-3000:]
        assert not os.path.lexists(os.path.join(rig.pool, "instances", "pb-old", "bookmarks", "ten"))
        assert os.path.exists(os.path.join(rig.pool, "instances", "pb-old", "instance.json"))
    finally:
        rig.instance("pb-old", state="absent")
        branch(rig, "pb-shared", state="absent")
        rig.template("pbgens", dump, state="absent")
