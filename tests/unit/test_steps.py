"""The import, prune, orphan, clone and reset steps with a fake runner and a fake Docker SDK.

The fakes record what would be run; the file system is a temporary folder
that the fake `btrfs` commands change as the real ones would. What matters on
a real host (btrfs, servers, logins) is proved by the integration tests.
"""

import json
import os
import shutil

import pytest
from docker.errors import APIError

from ansible_collections.myaas.myaas.plugins.module_utils.templates import dumps, folder
from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances.manager import InstanceManager
from ansible_collections.myaas.myaas.plugins.module_utils.inventory import find_orphans
from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name, import_container_name
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker, PortTaken
from ansible_collections.myaas.myaas.plugins.module_utils.templates.importer import TemplateManager
from fakes import FakeApi, FakeRunner

CLEAN_LOG = (b"[Note] InnoDB: Shutdown completed; log sequence number 6495713; transaction id 216\n"
             b"[Note] mariadbd: Shutdown complete\n")


def btrfs_runner(extra=(), events=None):
    """A runner whose btrfs commands make, snapshot and delete folders (and note freezes in ``events``)."""
    def freeze(argv):
        if events is not None:
            events.append(("freeze", argv[-3]))
        return 0, "", ""

    def create(argv):
        os.makedirs(argv[-1])
        return 0, "", ""

    def snapshot(argv):
        shutil.copytree(argv[-2], argv[-1])
        return 0, "", ""

    def delete(argv):
        shutil.rmtree(argv[-1])
        return 0, "", ""
    return FakeRunner(list(extra) + [
        (["stat"], (0, "btrfs\n", "")),
        (["btrfs", "subvolume", "create"], create),
        (["btrfs", "subvolume", "snapshot"], snapshot),
        (["btrfs", "subvolume", "delete"], delete),
        (["btrfs", "property", "get"], (0, "ro=false\n", "")),
        (["btrfs", "property", "set"], freeze),
        (["btrfs", "filesystem", "du"], (0, "Total Exclusive Set Filename\n1048576 1048576 - x\n", "")),
    ])


def template_params(tmp_path, **overrides):
    dump = tmp_path / "shop.sql"
    dump.write_text("-- dump\nCREATE TABLE t (id int);\n")
    values = dict(name="shop", src=str(dump), image="myaas/mariadb:10.11", database=None, force=False,
                  post_import_sql=[], tuning={}, keep_generations=1, restore_jobs=1, import_timeout=60,
                  start_timeout=5, stop_timeout=5, lock_timeout=5, masking=None, checks=[], max_shrink=0.5)
    values.update(overrides)
    return values


def import_api(pool):
    """The SDK answers of an import that goes well."""
    return FakeApi(
        containers={import_container_name(pool, "shop"): {
            "State": {"ExitCode": 0, "Running": False}, "Config": {"Labels": {"org.myaas.pool": pool}}}},
        answers={"inspect_image": {"Id": "sha256:img"}, "create_container": {"Id": "c1"}, "wait": {"StatusCode": 0},
                 "containers": [],
                 # The image's server account: not this process's uid, so that using it would show.
                 "logs": lambda container, **kw: b"uid=4242(mysql) gid=4343(mysql)\n" if container == "c1" else CLEAN_LOG,
                 # An exec's id is its SQL here, so that each query gets its own answer.
                 "exec_create": lambda container, cmd, **kw: {"Id": cmd[-1]}, "exec_inspect": {"ExitCode": 0},
                 "exec_start": lambda sql, **kw: (QUERY_ANSWERS.get(sql.split()[1], b"1\n"), b"")})


QUERY_ANSWERS = {"schema_name": b"shop\n", "DISTINCT": b"app@10.0.0.%\n",
                 # The template's one column, and its table's row count.
                 "c.TABLE_SCHEMA,": b"shop\tt\tid\tint\t0\t0\n", "'shop.t',": b"shop.t\t3\n"}


@pytest.fixture
def no_streaming(monkeypatch):
    """Dumps are streamed by real processes into `docker exec`; here the stream is only recorded."""
    streamed = []
    monkeypatch.setattr(dumps, "stream_into", lambda path, fmt, argv, *args, **kwargs: streamed.append((path, argv)))
    return streamed


def test_import_runs_its_steps_in_order_and_swaps_last(tmp_path, pool_dir, no_streaming, monkeypatch):
    events = []
    real_rename = os.rename
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: events.append(("chown", path, uid, gid)))
    monkeypatch.setattr(os, "rename", lambda src, dst: events.append(("rename", dst)) or real_rename(src, dst))
    runner, api = btrfs_runner(events=events), import_api(pool_dir)
    result = TemplateManager(Pool(pool_dir, runner), Docker(runner, api), get_engine("mariadb"),
                             template_params(tmp_path), False).present()
    template = result["template"]
    assert result["changed"] and template["generation"] == 1 and template["image_id"] == "sha256:img"
    staging = os.path.join(pool_dir, "templates", "shop", ".importing-gen-1")
    assert runner.ran("btrfs", "subvolume", "create") == [["btrfs", "subvolume", "create", staging]]
    server = [kwargs for method, _args, kwargs in api.calls if method == "create_container"][1]
    assert server["entrypoint"] == "/bin/sh" and server["user"] == "4242:4343"
    assert ("chown", staging, 4242, 4343) in events
    assert no_streaming[0][0] == str(tmp_path / "shop.sql")
    assert template["databases"] == ["shop"] and template["definers_created"] == ["app@10.0.0.%"]
    assert template["row_counts"] == {"shop.t": 3} and template["masking"] is None
    # Frozen, then renamed into place, and only then named by template.json.
    metadata = os.path.join(pool_dir, "templates", "shop", "template.json")
    swap = [event for event in events if event[0] in ("freeze", "rename")]
    assert swap == [("freeze", staging), ("rename", template["path"]), ("rename", metadata)]
    assert os.path.isdir(template["path"]) and not os.path.exists(staging)
    with open(os.path.join(pool_dir, "templates", "shop", "template.json"), encoding="utf-8") as handle:
        assert json.load(handle)["generation"] == 1


def test_a_failed_import_removes_its_staging_and_keeps_the_old_template(tmp_path, pool_dir, monkeypatch):
    def broken(*_args, **_kwargs):
        raise MyaasError("Import of shop.sql failed: ERROR 1064 at line 2")
    monkeypatch.setattr(dumps, "stream_into", broken)
    monkeypatch.setattr(os, "chown", lambda *args: None)
    make_template(pool_dir)
    metadata = os.path.join(pool_dir, "templates", "shop", "template.json")
    with open(metadata, encoding="utf-8") as handle:
        before = handle.read()
    runner, api = btrfs_runner(), import_api(pool_dir)
    with pytest.raises(MyaasError) as failed:
        TemplateManager(Pool(pool_dir, runner), Docker(runner, api), get_engine("mariadb"),
                        template_params(tmp_path), False).present()
    assert failed.value.msg.startswith("Template shop was not changed: Import of shop.sql failed")
    assert sorted(os.listdir(os.path.join(pool_dir, "templates", "shop"))) == ["gen-1", "template.json"]
    with open(metadata, encoding="utf-8") as handle:
        assert handle.read() == before
    assert ("remove_container", (import_container_name(pool_dir, "shop"),), {"force": True, "v": True}) in api.calls


def test_check_mode_plans_an_import_and_runs_nothing(tmp_path, pool_dir, no_streaming):
    runner, api = btrfs_runner(), import_api(pool_dir)
    result = TemplateManager(Pool(pool_dir, runner), Docker(runner, api), get_engine("mariadb"),
                             template_params(tmp_path), True).present()
    assert result["changed"] and result["template"]["generation"] == 1
    assert not runner.ran("btrfs") and "create_container" not in api.names_called() and not no_streaming


def test_prune_keeps_the_newest_generations_their_bases_and_reports(pool_dir):
    runner = btrfs_runner()
    shop = os.path.join(pool_dir, "templates", "shop")
    for number in (1, 2, 3, 4):
        os.makedirs(os.path.join(shop, "gen-%d" % number))
        os.makedirs(os.path.join(shop, "base-%d" % number))
    os.makedirs(os.path.join(shop, "rehearsals"))
    for number in (2, 3):
        with open(os.path.join(shop, "rehearsals", "gen-%d-mariadb_11.8.json" % number), "w", encoding="utf-8"):
            pass
    folder.prune(Pool(pool_dir, runner), "shop", 4, 2)
    assert sorted(os.listdir(shop)) == ["base-3", "base-4", "gen-3", "gen-4", "rehearsals"]
    assert os.listdir(os.path.join(shop, "rehearsals")) == ["gen-3-mariadb_11.8.json"]


def test_a_stray_newer_generation_or_base_is_a_leftover(pool_dir):
    runner = btrfs_runner()
    for name in ("gen-2", "gen-3", "base-2", "base-3"):
        os.makedirs(os.path.join(pool_dir, "templates", "shop", name))
    found = folder.leftovers(Pool(pool_dir, runner), Docker(runner, FakeApi(answers={"containers": []})), "shop",
                             {"generation": 2})
    assert (found[0], sorted(found[1])) == ([], [os.path.join(pool_dir, "templates", "shop", name)
                                                 for name in ("base-3", "gen-3")])


def test_orphans_are_containers_without_an_instance_and_folders_without_instance_json(pool_dir):
    runner = btrfs_runner()
    os.makedirs(os.path.join(pool_dir, "instances", "half"))
    api = FakeApi(answers={"containers": [
        {"Names": ["/" + container_name(pool_dir, "gone")], "Labels": {"org.myaas.instance": "gone"}},
        {"Names": ["/" + container_name(pool_dir, "alive")], "Labels": {"org.myaas.instance": "alive"}}]})
    alive = {"name": "alive", "status": "missing"}          # lost its container: repaired, not an orphan
    orphans = find_orphans(Pool(pool_dir, runner), Docker(runner, api), [alive])
    assert [(orphan["kind"], orphan["name"]) for orphan in orphans] == [("container", "gone"), ("datadir", "half")]


def make_template(pool_dir, generation=1):
    gen = os.path.join(pool_dir, "templates", "shop", "gen-%d" % generation)
    os.makedirs(os.path.join(gen, "mysql"), exist_ok=True)
    with open(os.path.join(pool_dir, "templates", "shop", "template.json"), "w", encoding="utf-8") as handle:
        json.dump({"name": "shop", "generation": generation, "engine": "mariadb", "image": "myaas/mariadb:10.11",
                   "path": gen, "options": {"database": "shop"}, "databases": ["shop"]}, handle)


class Engines:
    """get_engine, with logins that always work (there is no server here)."""

    def __init__(self):
        self.logins = []

    def __call__(self, name):
        engine = get_engine(name)
        engine.probe_login = lambda *args, **kwargs: self.logins.append(args) or True
        return engine


def instance_manager(pool_dir, runner, api, check_mode=False, **overrides):
    params = dict(name="a1", template="shop", state="present", ttl=None, protected=None, owner="alice",
                  bind_address="127.0.0.1", public_host="db1", port=None, port_range=(23306, 23999), user="dev",
                  password=None, database=None, memory=None, cpus=None, wait_timeout=5, lock_timeout=5)
    params.update(overrides)
    engines = Engines()
    return InstanceManager(Pool(pool_dir, runner), Docker(runner, api), engines, params, check_mode), engines


def running_api(pool_dir, name="a1"):
    return FakeApi(containers={container_name(pool_dir, name): {
        "State": {"Running": True}, "Config": {"Labels": {"org.myaas.pool": pool_dir}}}},
        # Another pool's instance, stopped, holds the range's first port.
        answers={"create_container": {"Id": "c1"}, "containers": labelled([
            {"Names": ["/myaas-other-pool-b1"], "Labels": {"org.myaas.port": "23306"}, "State": "exited"}])})


def labelled(containers):
    """An SDK ``containers()`` answer: those of ``containers`` that carry every label filtered for."""
    def answer(**query):
        wanted = [item.split("=", 1) for item in (query.get("filters") or {}).get("label", [])]
        return [entry for entry in containers
                if all(key in entry["Labels"] and (len(pair) == 1 or entry["Labels"][key] == pair[1])
                       for pair in wanted for key in pair[:1])]
    return answer


def test_clone_and_start_writes_the_init_file_reserves_the_port_and_runs_as_the_datas_owner(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), running_api(pool_dir)
    manager, engines = instance_manager(pool_dir, runner, api)
    seen = {}
    real_run = manager.docker.run

    def run(spec):
        init = os.path.join(pool_dir, "instances", "a1", "data", "myaas-init.sql")
        seen["init_mode"] = oct(os.stat(init).st_mode & 0o777)
        with open(init, encoding="utf-8") as handle:
            seen["init"] = handle.read()
        with open(os.path.join(pool_dir, "instances", "a1", "instance.json"), encoding="utf-8") as handle:
            seen["reserved_port"] = json.load(handle)["port"]
        return real_run(spec)
    manager.docker.run = run
    result = manager.apply()
    db = result["instance"]
    assert result["operation"] == "create" and db["generation"] == 1 and db["database"] == "shop"
    assert seen["init_mode"] == "0o600" and db["password"] in seen["init"]
    assert seen["reserved_port"] == db["port"]                     # reserved before the container started
    assert db["port"] == 23307                                     # 23306 is another pool's instance's
    create = [kwargs for method, _args, kwargs in api.calls if method == "create_container"][0]
    data = os.stat(os.path.join(pool_dir, "instances", "a1", "data"))
    assert create["user"] == "%d:%d" % (data.st_uid, data.st_gid) and create["entrypoint"] == "/bin/sh"
    assert db["password"] not in json.dumps(create)
    assert engines.logins and not os.path.exists(os.path.join(pool_dir, "instances", "a1", "data", "myaas-init.sql"))


def port_race_api(pool_dir):
    """An engine whose first start finds the published port taken (another pool won the race for it)."""
    api = running_api(pool_dir)
    starts = []

    def start(container):
        starts.append(container)
        if len(starts) == 1:
            raise APIError("500 Server Error: driver failed programming external connectivity: Bind for "
                           "127.0.0.1:23307 failed: port is already allocated")

    def create_container(**spec):
        api.containers_[spec["name"]] = {"State": {"Running": False}, "Config": {"Labels": spec["labels"]}}
        return {"Id": spec["name"]}
    api.answers["start"] = start
    api.answers["create_container"] = create_container
    return api


def test_a_port_taken_at_start_by_another_pool_is_picked_again(pool_dir):
    make_template(pool_dir)
    api = port_race_api(pool_dir)
    db = instance_manager(pool_dir, btrfs_runner(), api)[0].apply()["instance"]
    published = [kwargs["host_config"]["port_bindings"] for method, _args, kwargs in api.calls
                 if method == "create_container"]
    assert db["port"] == 23308 and [list(ports.values())[0] for ports in published] == [
        ("127.0.0.1", 23307), ("127.0.0.1", 23308)]
    creates = [kwargs["labels"]["org.myaas.port"] for method, _args, kwargs in api.calls if method == "create_container"]
    assert creates == ["23307", "23308"]           # the label names the port each container publishes
    between = [method for method, _args, _kwargs in api.calls][
        api.names_called().index("start"):api.names_called().index("create_container", api.names_called().index("start"))]
    assert "remove_container" in between           # the refused container is gone before the next one
    with open(os.path.join(pool_dir, "instances", "a1", "instance.json"), encoding="utf-8") as handle:
        assert json.load(handle)["port"] == 23308


def test_a_port_asked_for_and_taken_is_an_error_not_another_port(pool_dir):
    make_template(pool_dir)
    with pytest.raises(PortTaken, match="23400"):
        instance_manager(pool_dir, btrfs_runner(), port_race_api(pool_dir), port=23400)[0].apply()


def test_reset_brings_the_latest_generation_on_the_same_port_and_password(pool_dir):
    make_template(pool_dir)
    runner, api = btrfs_runner(), running_api(pool_dir)
    created = instance_manager(pool_dir, runner, api)[0].apply()["instance"]
    make_template(pool_dir, generation=2)
    planned = instance_manager(pool_dir, runner, api, check_mode=True, state="reset")[0].apply()
    assert planned["changed"] and planned["instance"]["generation"] == 2
    with open(os.path.join(pool_dir, "instances", "a1", "instance.json"), encoding="utf-8") as handle:
        assert json.load(handle)["generation"] == 1               # check mode wrote nothing
    calls = len(runner.calls)
    reset = instance_manager(pool_dir, runner, api, state="reset")[0].apply()["instance"]
    assert reset["generation"] == 2 and (reset["port"], reset["password"]) == (created["port"], created["password"])
    data = os.path.join(pool_dir, "instances", "a1", "data")
    after = [call for call in runner.calls[calls:] if call[:2] == ["btrfs", "subvolume"]]
    # The old data went first, then the new generation was snapshotted in its place.
    assert after == [["btrfs", "subvolume", "delete", data],
                     ["btrfs", "subvolume", "snapshot", os.path.join(pool_dir, "templates", "shop", "gen-2"), data]]


def test_the_reaper_removes_an_older_instance_by_its_own_container_name(pool_dir):
    from ansible_collections.myaas.myaas.plugins.module_utils.instances.reaper import Reaper
    folder = os.path.join(pool_dir, "instances", "old")
    os.makedirs(os.path.join(folder, "data"))
    with open(os.path.join(folder, "instance.json"), "w", encoding="utf-8") as handle:
        # Made before names carried the pool's tag, and long expired.
        json.dump({"name": "old", "container": "myaas-old", "expires_at": "2026-01-01T00:00:00+00:00",
                   "protected": False}, handle)
    api = FakeApi(containers={"myaas-old": {"State": {"Running": True},
                                            "Config": {"Labels": {"org.myaas.pool": pool_dir}}}},
                  answers={"containers": []})
    result = Reaper(Pool(pool_dir, btrfs_runner()), Docker(FakeRunner(), api), Engines(), False, 2e9).run()
    assert result["removed"] == ["old"]
    assert [args[0] for method, args, _kw in api.calls if method == "remove_container"] == ["myaas-old"]
    assert not os.path.exists(folder)
