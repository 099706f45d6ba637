"""Warm clones (myaas_template warm: N): taken by one request each, replaced by a new generation, refilled."""

import json
import os
import threading

import pytest

from rig import PG_CUSTOMERS, PG_IMAGE, SAMPLE, SAMPLE_CUSTOMERS, login_refused, run_module, sh, warm_slots


def slots(rig, template):
    """{slot: its warm.json} of the ready warm clones of ``template``."""
    return warm_slots(rig.pool, template)


def wait_for_slots(rig, template, count, exclude=()):
    rig.wait_for(lambda: len(set(slots(rig, template)) - set(exclude)) >= count, timeout=60,
                 what="%d warm clone(s) of %s" % (count, template))
    return slots(rig, template)


def names_of_containers():
    return sh("docker", "ps", "--all", "--format", "{{.Names}}").stdout.split()


def answers(rig, made):
    try:
        return rig.query(made, "SELECT 1")[0][0] == 1
    except Exception:  # pylint: disable=broad-exception-caught
        return False      # still starting


def ok(result):
    assert not result.get("failed"), (result.get("msg"), result.get("module_stderr"))
    return result


@pytest.fixture(scope="module")
def warm_shop(rig):
    planned = ok(rig.template("wshop", SAMPLE, warm=1, check_mode=True))
    assert planned["changed"] and planned["warm"]["planned"] and not slots(rig, "wshop")
    made = ok(rig.template("wshop", SAMPLE, warm=1))
    assert made["warm"]["made"] == 1 and made["warm"]["ready"] == 1
    # Asked again: nothing to do.
    again = ok(rig.template("wshop", SAMPLE, warm=1))
    assert not again["changed"] and again["warm"]["ready"] == 1
    # Operators see them in myaas_info.
    [listed] = [entry for entry in ok(rig.info(sizes=False))["templates"] if entry["name"] == "wshop"]
    assert listed["warm"] == {"count": 1, "ready": 1, "generations": [1], "error": None}
    yield "wshop"
    ok(rig.template("wshop", SAMPLE, warm=0))


def test_a_warm_clone_holds_the_data_and_only_its_own_password_opens_it(rig, warm_shop):
    [(slot, record)] = slots(rig, warm_shop).items()
    # Waiting, root does not log in over TCP, and the account it started with
    # has a password only root can read, beside its data.
    assert login_refused(record["port"], "root", "")
    secret = os.stat(os.path.join(rig.pool, "warm", warm_shop, slot, "secret.json"))
    assert secret.st_uid == 0 and secret.st_mode & 0o777 == 0o600
    made = ok(rig.instance("w-alice", template=warm_shop))["instance"]
    assert made["warm_clone"].endswith("/" + slot) and made["port"] == record["port"]
    assert made["container"] == record["container"] and set(made["timings"]) >= {"take", "account", "login"}
    assert rig.query(made, "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
    assert login_refused(made["port"], "dev", "not-" + made["password"])
    assert login_refused(made["port"], "root", "")
    # Its replacement starts after the module returned.
    refilled = wait_for_slots(rig, warm_shop, 1, exclude=[slot])
    assert slot not in refilled
    # Docker binds the volume again on a restart: the instance keeps its data.
    rig.query(made, "CREATE TABLE kept (id INT)")
    sh("docker", "restart", made["container"])
    rig.wait_for(lambda: answers(rig, made), what="the restarted server")
    assert rig.query(made, "SELECT COUNT(*) FROM kept")[0][0] == 0
    ok(rig.instance("w-alice", state="absent"))
    assert made["container"] not in names_of_containers()
    assert not os.path.lexists(made["warm_clone"]) and not os.path.exists(os.path.join(rig.pool, "instances",
                                                                                       "w-alice"))


def test_two_requests_at_once_never_get_the_same_warm_clone(rig, warm_shop):
    wait_for_slots(rig, warm_shop, 1)
    results = {}

    def ask(name):
        results[name] = rig.instance(name, template=warm_shop)

    threads = [threading.Thread(target=ask, args=(name,)) for name in ("w-bob", "w-carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bob, carol = ok(results["w-bob"])["instance"], ok(results["w-carol"])["instance"]
    assert [bool(made.get("warm_clone")) for made in (bob, carol)].count(True) == 1
    assert bob["container"] != carol["container"] and bob["port"] != carol["port"]
    for made, other in ((bob, carol), (carol, bob)):
        assert rig.query(made, "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
        assert login_refused(made["port"], made["user"], other["password"])
    for name in ("w-bob", "w-carol"):
        ok(rig.instance(name, state="absent"))


def test_a_new_generation_replaces_the_warm_clones_and_the_reaper_refills(rig, warm_shop):
    before = wait_for_slots(rig, warm_shop, 1)
    old_containers = [record["container"] for record in before.values()]
    imported = ok(rig.template(warm_shop, SAMPLE, force=True))
    assert imported["template"]["generation"] == 2 and imported["warm"]["removed"] >= 1
    after = slots(rig, warm_shop)
    assert len(after) == 1 and [record["generation"] for record in after.values()] == [2]
    assert not set(old_containers) & set(names_of_containers())
    made = ok(rig.instance("w-dave", template=warm_shop))["instance"]
    assert made["generation"] == 2 and made.get("warm_clone")
    ok(rig.instance("w-dave", state="absent"))
    # A warm server that died is replaced by the reaper.
    [(slot, record)] = wait_for_slots(rig, warm_shop, 1).items()
    sh("docker", "rm", "--force", record["container"])
    reaped = ok(run_module("myaas_reap", {"pool": rig.pool}))
    assert reaped["warm"][warm_shop]["removed"] == 1 and reaped["warm"][warm_shop]["made"] == 1
    assert slot not in slots(rig, warm_shop) and len(slots(rig, warm_shop)) == 1
    # warm: 0 removes them, and leaves no container, volume or subvolume of theirs.
    ok(rig.template(warm_shop, SAMPLE, warm=0))
    assert not slots(rig, warm_shop) and not rig.containers(role="warm") and not rig.volumes(role="warm")
    assert not [path for path in rig.subvolumes() if path.startswith("warm/")]


def test_another_account_takes_a_warm_clone_and_the_one_it_started_with_is_locked(rig, warm_shop):
    ok(rig.template(warm_shop, SAMPLE, warm=1))      # the test before ended with warm: 0
    [(slot, _record)] = wait_for_slots(rig, warm_shop, 1).items()
    with open(os.path.join(rig.pool, "warm", warm_shop, slot, "secret.json"), encoding="utf-8") as handle:
        started_with = json.load(handle)
    made = ok(rig.instance("w-erin", template=warm_shop, user="erin", password="Erin-own-1"))["instance"]
    assert made["warm_clone"].endswith("/" + slot) and made["user"] == "erin"
    made["password"] = "Erin-own-1"       # Ansible masks a no_log option's value in the result
    assert rig.query(made, "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
    # The account the clone waited with no longer opens it, with the password it had.
    assert login_refused(made["port"], started_with["user"], started_with["password"])
    ok(rig.instance("w-erin", state="absent"))


def test_a_postgresql_warm_clone_is_taken_with_its_data(rig, pg_sql):
    made = ok(rig.template("wpg", pg_sql, engine="postgresql", image=PG_IMAGE, warm=1))
    assert made["warm"]["ready"] == 1
    try:
        taken = ok(rig.instance("w-pg", template="wpg"))["instance"]
        assert taken.get("warm_clone") and taken["engine"] == "postgresql"
        assert rig.query(taken, "SELECT COUNT(*) FROM customers")[0][0] == PG_CUSTOMERS
        with pytest.raises(Exception, match="password authentication failed"):
            rig.connect_pg(taken, password=taken["password"] + "x")
        ok(rig.instance("w-pg", state="absent"))
    finally:
        ok(rig.template("wpg", pg_sql, engine="postgresql", image=PG_IMAGE, warm=0))


def test_a_warm_clone_whose_server_stopped_is_removed_and_the_request_cloned_afresh(rig, warm_shop):
    ok(rig.template(warm_shop, SAMPLE, warm=1))
    [(slot, record)] = wait_for_slots(rig, warm_shop, 1).items()
    sh("docker", "stop", "--time", "1", record["container"])
    made = ok(rig.instance("w-fred", template=warm_shop))["instance"]
    assert not made.get("warm_clone") and "snapshot" in made["timings"]
    assert rig.query(made, "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
    # Nothing of the stopped one is left, and the pool was refilled.
    assert record["container"] not in names_of_containers()
    assert not os.path.lexists(os.path.join(rig.pool, "warm", warm_shop, slot))
    wait_for_slots(rig, warm_shop, 1)
    ok(rig.instance("w-fred", state="absent"))


def test_the_reaper_removes_a_warm_clone_whose_take_was_killed_before_its_record(rig, warm_shop):
    ok(rig.template(warm_shop, SAMPLE, warm=1))
    [(slot, record)] = wait_for_slots(rig, warm_shop, 1).items()
    # What a request killed between taking the slot and writing the
    # instance's record leaves: the slot renamed to the instance, its link.
    path = os.path.join(rig.pool, "warm", warm_shop, slot)
    instance = os.path.join(rig.pool, "instances", "w-gina")
    os.rename(path, instance)
    os.symlink(instance, path)
    reaped = ok(run_module("myaas_reap", {"pool": rig.pool}))
    assert "w-gina" in reaped["removed"] and "take ended" in reaped["reasons"]["w-gina"]
    assert record["container"] not in names_of_containers()
    assert record["container"] not in rig.volumes()
    assert not os.path.lexists(instance) and not os.path.lexists(path)
    assert not [sub for sub in rig.subvolumes() if sub.startswith("instances/w-gina")]
    # The same, asked for again by its name before any reaper ran: the
    # request removes what the killed one left and clones afresh.
    [(slot, record)] = wait_for_slots(rig, warm_shop, 1).items()
    path = os.path.join(rig.pool, "warm", warm_shop, slot)
    instance = os.path.join(rig.pool, "instances", "w-hana")
    os.rename(path, instance)
    os.symlink(instance, path)
    made = ok(rig.instance("w-hana", template=warm_shop))["instance"]
    assert not made.get("warm_clone") and made["container"] != record["container"]
    assert rig.query(made, "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
    assert record["container"] not in names_of_containers() and record["container"] not in rig.volumes()
    assert not os.path.exists(os.path.join(instance, "warm.json")) and not os.path.lexists(path)
    ok(rig.instance("w-hana", state="absent"))
    assert rig.gone("w-hana")
    # And the reaper gives the template its warm clone again.
    assert ok(run_module("myaas_reap", {"pool": rig.pool}))["warm"][warm_shop]["made"] == 1
    assert len(slots(rig, warm_shop)) == 1


def test_mysql_hands_out_its_own_account_and_clones_afresh_for_another(rig, mysql_dump):
    made = ok(rig.template("wmy", mysql_dump[0], engine="mysql", image="myaas/mysql:9.7", warm=1))
    assert made["warm"]["ready"] == 1
    try:
        own = ok(rig.instance("w-my", template="wmy"))["instance"]
        assert own.get("warm_clone") and rig.query(own, "SELECT 1")[0][0] == 1
        # MySQL's clones lock root: another account is made at a server's start, never on a warm one.
        other = ok(rig.instance("w-my-gina", template="wmy", user="gina"))["instance"]
        assert not other.get("warm_clone") and rig.query(other, "SELECT 1")[0][0] == 1
        for name in ("w-my", "w-my-gina"):
            ok(rig.instance(name, state="absent"))
    finally:
        ok(rig.template("wmy", mysql_dump[0], engine="mysql", image="myaas/mysql:9.7", warm=0))
