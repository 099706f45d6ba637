import json
import os

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances.manager import InstanceManager
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso
from fakes import FakeApi

TEMPLATE = {"name": "shop", "generation": 3, "engine": "mariadb", "image": "myaas/mariadb:10.11",
            "path": "/p/templates/shop/gen-3", "options": {"database": "shop"}}


def params(**overrides):
    values = dict(name="a1", template="shop", state="present", ttl=3600, protected=False, owner="alice",
                  bind_address="127.0.0.1", public_host="db1", port=None, port_range=(13306, 13999),
                  user="dev", password=None, database=None, memory=None, cpus=None, wait_timeout=5,
                  lock_timeout=5)
    values.update(overrides)
    return values


@pytest.fixture
def pool_dir(tmp_path):
    os.makedirs(tmp_path / "templates" / "shop")
    (tmp_path / "templates" / "shop" / "template.json").write_text(json.dumps(TEMPLATE))
    return tmp_path


def manager(pool_dir, runner, check_mode=True, api=None, **overrides):
    return InstanceManager(Pool(str(pool_dir), runner), Docker(runner, api or FakeApi()), get_engine,
                           params(**overrides), check_mode, now=lambda: 1000.0)


def test_check_mode_plans_a_create_and_runs_nothing(pool_dir, make_runner):
    runner = make_runner([(["stat"], (0, "btrfs\n", ""))])
    result = manager(pool_dir, runner).apply()
    assert result["changed"] and result["operation"] == "create"
    planned = result["instance"]
    assert (planned["template"], planned["generation"], planned["database"]) == ("shop", 3, "shop")
    assert planned["expires_at"] == iso(4600.0) and planned["cow"] == "btrfs-snapshot"
    assert "password" not in planned
    assert [call for call in runner.calls if call[0] in ("btrfs", "docker")] == []
    assert not os.path.exists(pool_dir / "instances" / "a1")


def test_an_existing_instance_of_another_template_is_an_error(pool_dir, make_runner):
    os.makedirs(pool_dir / "instances" / "a1")
    (pool_dir / "instances" / "a1" / "instance.json").write_text(json.dumps(dict(TEMPLATE, name="a1", template="crm")))
    runner = make_runner([(["stat"], (0, "btrfs\n", ""))])
    with pytest.raises(MyaasError, match="use state=reset"):
        manager(pool_dir, runner).apply()


def test_a_missing_template_is_named(pool_dir, make_runner):
    runner = make_runner([(["stat"], (0, "btrfs\n", ""))])
    with pytest.raises(MyaasError, match="Template nope does not exist"):
        manager(pool_dir, runner, template="nope").apply()


def test_a_pool_that_is_not_btrfs_is_refused(pool_dir, make_runner):
    runner = make_runner([(["stat"], (0, "ext2/ext3\n", ""))])
    with pytest.raises(MyaasError, match="not btrfs"):
        manager(pool_dir, runner).apply()


@pytest.mark.parametrize("engine,options,databases,expected", [
    ("mariadb", {"database": None}, ["sales", "hr"], "sales"),
    ("mariadb", {"database": "shop"}, ["shop", "hr"], "shop"),
    ("mariadb", {"database": None}, [], None),
    ("postgresql", {"database": None}, [], "postgres"),
    ("postgresql", {"database": None}, ["crm"], "crm"),
])
def test_an_instance_lands_in_the_dumps_own_database(pool_dir, make_runner, engine, options, databases, expected):
    template = dict(TEMPLATE, engine=engine, options=options, databases=databases)
    (pool_dir / "templates" / "shop" / "template.json").write_text(json.dumps(template))
    runner = make_runner([(["stat"], (0, "btrfs\n", ""))])
    assert manager(pool_dir, runner).apply()["instance"]["database"] == expected


EXISTING = dict(TEMPLATE, name="a1", template="shop", port=13306, created_at=iso(1000.0), expires_at=iso(4600.0),
                owner="alice", protected=False, memory=None, cpus=None, container="myaas-a1")


def test_settings_left_out_stay_and_the_same_ones_change_nothing():
    from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import planned_settings
    assert planned_settings(EXISTING, dict(ttl=None, protected=None, owner=None, memory=None, cpus=None)) == {}
    assert planned_settings(EXISTING, dict(ttl=3600, protected=False, owner="alice", port=13306)) == {}


def test_changed_settings_are_planned():
    from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import planned_settings
    changes = planned_settings(EXISTING, dict(ttl=0, protected=True, owner="bob", memory="1g", cpus="1.5"))
    assert changes == {"expires_at": None, "protected": True, "owner": "bob", "memory": "1g", "cpus": "1.5"}
    assert planned_settings(EXISTING, dict(ttl=7200))["expires_at"] == iso(8200.0)


def test_a_new_port_for_an_existing_instance_is_refused():
    from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import planned_settings
    with pytest.raises(MyaasError, match="cannot change.*Drop it and create it again"):
        planned_settings(EXISTING, dict(port=14000))


def test_check_mode_shows_changed_settings_and_writes_nothing(pool_dir, make_runner):
    os.makedirs(pool_dir / "instances" / "a1")
    path = pool_dir / "instances" / "a1" / "instance.json"
    path.write_text(json.dumps(EXISTING))
    runner = make_runner([(["stat"], (0, "btrfs\n", ""))])
    api = FakeApi(containers={"myaas-a1": {"State": {"Running": True}}})
    result = manager(pool_dir, runner, api=api, protected=True, ttl=None, owner=None).apply()
    assert result["changed"] and result["operation"] == "update"
    assert result["diff"]["before"]["protected"] is False and result["diff"]["after"]["protected"] is True
    assert json.loads(path.read_text())["protected"] is False
    assert "update_container" not in api.names_called()


def test_a_protection_lease_counts_from_its_grant_and_the_same_lease_changes_nothing():
    from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import planned_settings
    leased = planned_settings(EXISTING, dict(protected=True, protection_lease=7 * 86400), now=5000.0)
    assert leased == {"protected": True, "protection_lease": 604800, "protected_until": iso(5000.0 + 604800)}
    meta = dict(EXISTING, **leased)
    assert planned_settings(meta, dict(protected=True, protection_lease=604800), now=90000.0) == {}
    # Once it has ended, the same lease asked again is a new one.
    assert planned_settings(meta, dict(protected=True, protection_lease=604800), now=700000.0) == {
        "protected_until": iso(700000.0 + 604800)}
    # Another duration is a new lease from now; true is protection with no end; false lifts it.
    assert planned_settings(meta, dict(protected=True, protection_lease=3600), now=90000.0)["protected_until"] \
        == iso(93600.0)
    assert planned_settings(meta, dict(protected=True, protection_lease=None), now=90000.0) == {
        "protection_lease": None, "protected_until": None}
    assert planned_settings(meta, dict(protected=False, protection_lease=None), now=90000.0) == {
        "protected": False, "protection_lease": None, "protected_until": None}


def test_the_reaper_keeps_an_expired_instance_inside_its_lease_only():
    from ansible_collections.myaas.myaas.plugins.module_utils.instances.reaper import verdict
    meta = dict(EXISTING, protected=True, protected_until=iso(9000.0))
    running = {"Status": "running"}
    assert verdict(meta, True, running, 8999.0) == ("keep", "protected until %s" % iso(9000.0))
    action, why = verdict(meta, True, running, 9000.0)
    assert action == "remove" and why == "expired at %s; its protection ended at %s" % (iso(4600.0), iso(9000.0))
    # A lease that ended on an instance that has not expired leaves it to its expiry.
    assert verdict(dict(meta, expires_at=iso(20000.0)), True, running, 9500.0) == ("keep", "not expired")
    assert verdict(dict(meta, protected_until=None), True, running, 10 ** 9) == ("keep", "protected")
