"""Bookmarks, branches and generations: planning and the order of steps, with fakes.

That the data comes back, that branches share their bytes and that no clone
runs crash recovery is proved on the real rig (tests/integration/test_branches.py).
"""

import json
import os

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.templates.branches import make_branch
from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates.generations import add_generation, kept, pick
from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker
from ansible_collections.myaas.myaas.plugins.module_utils.templates.importer import TemplateManager
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_moment
from fakes import FakeApi
from test_steps import CLEAN_LOG, btrfs_runner, instance_manager, make_template

NOW = 1764000000.0   # 2025-11-24T16:00:00+00:00


def generation_record(tmp_path, number, imported_at):
    path = tmp_path / ("gen-%d" % number)
    path.mkdir(exist_ok=True)
    return {"name": "shop", "generation": number, "path": str(path), "imported_at": imported_at,
            "source": {"sha256": "s%d" % number}}


def three_generations(tmp_path):
    template = None
    for number, moment in ((1, "2025-11-22T02:00:00+00:00"), (2, "2025-11-23T02:00:00+00:00"),
                           (3, "2025-11-24T02:00:00+00:00")):
        template = add_generation(template, generation_record(tmp_path, number, moment), keep=3)
    return template


def test_keep_generations_keeps_the_newest_and_the_list_names_only_what_is_on_disk(tmp_path):
    template = three_generations(tmp_path)
    assert [record["generation"] for record in template["generations"]] == [1, 2, 3]
    fourth = add_generation(template, generation_record(tmp_path, 4, "2025-11-25T02:00:00+00:00"), keep=2)
    assert [record["generation"] for record in fourth["generations"]] == [3, 4]
    os.rmdir(tmp_path / "gen-3")
    assert [record["generation"] for record in kept(fourth)] == [4]


def test_pick_by_number_as_of_a_moment_or_the_current_one(tmp_path):
    template = three_generations(tmp_path)
    assert pick(template)["generation"] == 3
    assert pick(template, generation=1)["path"] == str(tmp_path / "gen-1")
    assert pick(template, as_of="2025-11-23T02:00:00Z", now=NOW)["generation"] == 2     # at: included
    assert pick(template, as_of="2025-11-23T01:59:59", now=NOW)["generation"] == 1
    assert pick(template, as_of="2025-11-23", now=NOW)["generation"] == 1               # midnight, UTC
    assert pick(template, as_of="2025-11-23T03:00:00+02:00", now=NOW)["generation"] == 1  # 01:00 UTC
    assert pick(template, as_of="12h", now=NOW)["generation"] == 3    # 2025-11-24T04:00
    assert pick(template, as_of="1d", now=NOW)["generation"] == 2     # 2025-11-23T16:00
    assert pick(template, as_of="2d", now=NOW)["generation"] == 1
    with pytest.raises(MyaasError, match=r"no generation 7 on the pool; it keeps 1 \(2025-11-22T02:00:00\+00:00\), 2"):
        pick(template, generation=7)
    with pytest.raises(MyaasError, match="no generation imported at or before 2025-01-01"):
        pick(template, as_of="2025-01-01", now=NOW)


@pytest.mark.parametrize("value", ["yesterday", "2025-13-01", "1 week", "-1d", "2025-11-23T25:00", "2025", "86400"])
def test_a_moment_that_is_not_one_says_what_to_give(value):
    with pytest.raises(MyaasError, match="ISO 8601 date"):
        parse_moment(value, NOW)


def test_a_templates_without_a_generation_list_have_their_current_generation(tmp_path):
    old = generation_record(tmp_path, 5, "2025-11-24T02:00:00+00:00")
    assert [record["generation"] for record in kept(old)] == [5]
    assert pick(old, generation=5)["generation"] == 5


def test_clones_of_a_branch_lock_the_origins_accounts_and_unlock_their_own():
    mariadb, postgresql = get_engine("mariadb"), get_engine("postgresql")
    assert mariadb.lock_accounts_sql(["dev", "o'brien"]) == (
        "ALTER USER IF EXISTS 'dev'@'%' ACCOUNT LOCK;\nALTER USER IF EXISTS 'o\\'brien'@'%' ACCOUNT LOCK;\n")
    assert "ACCOUNT UNLOCK" in mariadb.init_sql("dev", "pw", "shop")
    assert postgresql.lock_accounts_sql(["dev"]) == (
        "SELECT format('ALTER ROLE %I NOLOGIN PASSWORD NULL', rolname) FROM pg_roles WHERE rolname IN ('dev')\\gexec\n")
    assert mariadb.lock_accounts_sql([]) == postgresql.lock_accounts_sql([]) == ""


def test_postgresql_clean_shutdown_is_the_last_line_of_the_log():
    engine = get_engine("postgresql")
    clean = "LOG:  database system is ready to accept connections\nLOG:  database system is shut down\n"
    assert engine.clean_shutdown(clean)
    # An earlier run's clean stop does not vouch for a later kill.
    assert not engine.clean_shutdown(clean + "LOG:  database system is ready to accept connections\n")


def lifecycle_api(pool_dir, exit_code=None):
    """A fake engine whose stop and start change the container's state, as dockerd would."""
    name = container_name(pool_dir, "a1")
    running = exit_code is None
    api = FakeApi(containers={name: {"State": {"Running": running, "ExitCode": 0 if running else exit_code},
                                     "Config": {"Labels": {"org.myaas.pool": pool_dir}}}},
                  answers={"create_container": {"Id": "c1"}, "containers": [],
                           "logs": CLEAN_LOG if running else b"killed\n"})

    def stop(container, **_kwargs):
        api.containers_[container]["State"] = {"Running": False, "ExitCode": 0}
        api.answers["logs"] = CLEAN_LOG

    def start(container):
        # run() starts the new container by id; the fake has it under its name.
        api.containers_.setdefault(name, {"Config": {"Labels": {"org.myaas.pool": pool_dir}}})
        api.containers_[name]["State"] = {"Running": True, "ExitCode": 0}
        del container
    api.answers.update(stop=stop, start=start)
    return api


def events(api, runner, start=0):
    """Container stops and starts, and snapshots, in the order they happened."""
    out = [method for method, _args, _kwargs in api.calls if method in ("stop", "start")]
    return out, [call[3:] for call in runner.calls[start:] if call[:3] == ["btrfs", "subvolume", "snapshot"]]


def test_save_stops_cleanly_snapshots_read_only_and_starts_again(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), lifecycle_api(pool_dir)
    instance_manager(pool_dir, runner, api)[0].apply()
    calls, api.calls[:] = len(runner.calls), []
    planned = instance_manager(pool_dir, runner, api, check_mode=True, state="saved", bookmark="b1")[0].apply()
    assert planned["changed"] and "b1" in planned["instance"]["bookmarks"] and not api.calls
    assert not os.path.exists(os.path.join(pool_dir, "instances", "a1", "bookmarks"))

    saved = instance_manager(pool_dir, runner, api, state="saved", bookmark="b1")[0].apply()
    data = os.path.join(pool_dir, "instances", "a1", "data")
    bookmark = os.path.join(pool_dir, "instances", "a1", "bookmarks", "b1")
    assert saved["operation"] == "save" and saved["instance"]["bookmarks"]["b1"]["generation"] == 1
    assert events(api, runner, calls) == (["stop", "start"], [["-r", data, bookmark]])
    with open(os.path.join(pool_dir, "instances", "a1", "instance.json"), encoding="utf-8") as handle:
        assert "b1" in json.load(handle)["bookmarks"]
    again = instance_manager(pool_dir, runner, api, state="saved", bookmark="b1")[0].apply()
    assert not again["changed"]


def test_a_killed_server_is_started_and_stopped_cleanly_before_its_bookmark(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), lifecycle_api(pool_dir)
    instance_manager(pool_dir, runner, api)[0].apply()
    api.containers_[container_name(pool_dir, "a1")]["State"] = {"Running": False, "ExitCode": 137}
    api.answers["logs"] = b"killed\n"
    api.calls[:] = []
    calls = len(runner.calls)
    instance_manager(pool_dir, runner, api, state="saved", bookmark="b1")[0].apply()
    # Recovered by a start, stopped cleanly, frozen, and left stopped as it was.
    bookmark = os.path.join(pool_dir, "instances", "a1", "bookmarks", "b1")
    assert events(api, runner, calls) == (["start", "stop"],
                                          [["-r", os.path.join(pool_dir, "instances", "a1", "data"), bookmark]])
    assert not api.containers_[container_name(pool_dir, "a1")]["State"]["Running"]


def test_a_failed_stop_before_a_bookmark_starts_the_server_again(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), lifecycle_api(pool_dir)
    instance_manager(pool_dir, runner, api)[0].apply()
    name = container_name(pool_dir, "a1")

    def killed_on_stop(container, **_kwargs):
        api.containers_[container]["State"] = {"Running": False, "ExitCode": 137}
        api.answers["logs"] = b"killed\n"
    api.answers["stop"] = killed_on_stop
    with pytest.raises(MyaasError, match="did not shut down cleanly"):
        instance_manager(pool_dir, runner, api, state="saved", bookmark="b1")[0].apply()
    assert api.containers_[name]["State"]["Running"]   # running again, as it was
    assert not os.path.exists(os.path.join(pool_dir, "instances", "a1", "bookmarks", "b1"))


def test_once_masked_older_unmasked_generations_are_not_cloned(tmp_path):
    template = three_generations(tmp_path)
    template["generations"][-1]["masking"] = template["masking"] = {"rules_sha256": "x"}
    assert pick(template, generation=3)["generation"] == 3
    with pytest.raises(MyaasError, match="imported without masking"):
        pick(template, generation=2)


def test_reset_to_a_bookmark_snapshots_it_and_an_unknown_one_lists_the_others(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), lifecycle_api(pool_dir)
    created = instance_manager(pool_dir, runner, api)[0].apply()["instance"]
    instance_manager(pool_dir, runner, api, state="saved", bookmark="b1")[0].apply()
    make_template(pool_dir, generation=2)
    calls = len(runner.calls)
    reset = instance_manager(pool_dir, runner, api, state="reset", bookmark="b1")[0].apply()["instance"]
    data = os.path.join(pool_dir, "instances", "a1", "data")
    assert events(api, runner, calls)[1] == [[os.path.join(pool_dir, "instances", "a1", "bookmarks", "b1"), data]]
    assert reset["generation"] == 1 and reset["bookmark"] == "b1" and reset["port"] == created["port"]
    with pytest.raises(MyaasError, match="has no bookmark b2; it has b1"):
        instance_manager(pool_dir, runner, api, state="reset", bookmark="b2")[0].apply()
    plain = instance_manager(pool_dir, runner, api, state="reset")[0].apply()["instance"]
    assert plain["generation"] == 2 and plain["bookmark"] is None


def test_a_branch_records_its_origin_and_its_clones_lock_the_origins_account(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), lifecycle_api(pool_dir)
    instance_manager(pool_dir, runner, api, owner="alice")[0].apply()
    pool, docker = Pool(pool_dir, runner), Docker(runner, api)
    params = dict(name="feature", keep_generations=1, lock_timeout=5, requester="bob", admin=False)
    source = instance_manager(pool_dir, runner, api, name="a1", requester="bob", admin=False)[0]
    with pytest.raises(MyaasError, match="belongs to alice"):
        make_branch(TemplateManager(pool, docker, None, params, False), source)
    params["requester"] = source.params["requester"] = "alice"
    made = make_branch(TemplateManager(pool, docker, None, params, False), source)["template"]
    assert made["source"]["instance"] == "a1" and made["source"]["accounts"] == ["dev"] and made["owner"] == "alice"
    assert [record["generation"] for record in made["generations"]] == [1]
    assert os.path.isdir(os.path.join(pool_dir, "templates", "feature", "gen-1"))

    seen = {}
    clone, _engines = instance_manager(pool_dir, runner, lifecycle_api(pool_dir, exit_code=0), name="b1",
                                       template="feature", user="bob")
    real_run = clone.docker.run

    def run(spec):
        with open(os.path.join(pool_dir, "instances", "b1", "data", "myaas-init.sql"), encoding="utf-8") as handle:
            seen["init"] = handle.read()
        return real_run(spec)
    clone.docker.run = run
    clone.apply()
    assert seen["init"].startswith("ALTER USER IF EXISTS 'dev'@'%' ACCOUNT LOCK;\n")
    assert "CREATE USER IF NOT EXISTS 'bob'@'%'" in seen["init"]
