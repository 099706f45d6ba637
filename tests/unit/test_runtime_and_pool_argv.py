import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool, parse_du
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import Docker, create_args, labels


POOL = "/var/lib/myaas"


def test_create_args_are_complete():
    spec = {
        "name": "myaas-a1", "image": "myaas/mariadb:10.11",
        "labels": labels(role="instance", instance="a1"),
        "mounts": [{"type": "volume", "source": "myaas-a1", "target": "/var/lib/mysql"}],
        "publish": [("127.0.0.1", 13306, 3306)], "restart": "unless-stopped",
        "memory": "1g", "cpus": "1.5", "args": ["--innodb-buffer-pool-size=64M"],
        "user": "999:999", "entrypoint": "/bin/sh", "stop_signal": "SIGINT", "stop_timeout": 60,
    }
    create, host = create_args(spec)
    assert create == {
        "image": "myaas/mariadb:10.11", "name": "myaas-a1", "command": ["--innodb-buffer-pool-size=64M"],
        "labels": {"org.myaas.instance": "a1", "org.myaas.role": "instance"}, "ports": [3306], "environment": {},
        "user": "999:999", "entrypoint": "/bin/sh", "stop_signal": "SIGINT", "stop_timeout": 60,
    }
    assert host == {
        "mounts": [{"type": "volume", "source": "myaas-a1", "target": "/var/lib/mysql", "read_only": False}],
        "port_bindings": {3306: ("127.0.0.1", 13306)}, "restart_policy": {"Name": "unless-stopped"},
        "mem_limit": "1g", "memswap_limit": -1, "cpu_period": 100000, "cpu_quota": 150000,
    }


def test_import_container_has_no_network_and_no_port():
    _create, host = create_args({"name": "i", "image": "img", "network": "none",
                                 "mounts": [{"type": "bind", "source": "/p/t", "target": "/d"}]})
    assert host["network_mode"] == "none" and "port_bindings" not in host


def test_ipv6_bind_address_is_passed_as_it_is():
    _create, host = create_args({"name": "c", "image": "i", "publish": [("::1", 13306, 3306)]})
    assert host["port_bindings"] == {3306: ("::1", 13306)}


def test_a_bad_cpus_value_is_a_clear_error():
    with pytest.raises(MyaasError, match="not a number of CPUs"):
        create_args({"name": "c", "image": "i", "cpus": "lots"})


def test_account_ids_are_read_from_the_image(make_runner, make_api):
    api = make_api(answers={"create_container": {"Id": "tmp"}, "wait": {"StatusCode": 0},
                            "logs": b"uid=999(mysql) gid=999(mysql) groups=999(mysql)\n"})
    assert Docker(make_runner(), api).account_ids("mariadb:10.11", "mysql") == (999, 999)
    create = [kwargs for method, _args, kwargs in api.calls if method == "create_container"][0]
    assert create["entrypoint"] == "id" and create["command"] == ["mysql"] and create["user"] == "0"
    # Removed with its anonymous volumes: official images declare one for the datadir.
    assert [kwargs for method, _args, kwargs in api.calls if method == "remove_container"] == [{"force": True, "v": True}]
    missing = make_api(answers={"create_container": {"Id": "tmp"}, "wait": {"StatusCode": 1},
                                "logs": b"id: 'mysql': no such user\n"})
    with pytest.raises(MyaasError, match="has no OS account 'mysql'"):
        Docker(make_runner(), missing).account_ids("busybox", "mysql")


def test_names_filter_by_labels(make_runner, make_api):
    api = make_api(answers={"containers": [{"Names": ["/myaas-import-x-shop"], "Labels": {}}]})
    assert Docker(make_runner(), api).names(role="import", template="shop") == ["myaas-import-x-shop"]
    assert api.calls[0][2]["filters"] == {"label": ["org.myaas.role=import", "org.myaas.template=shop"]}


def test_held_ports_are_every_myaas_containers_of_any_pool_running_or_not(make_runner, make_api):
    api = make_api(answers={"containers": [
        {"Names": ["/myaas-a1"], "Labels": {"org.myaas.port": "13306", "org.myaas.pool": "/srv/a"}, "State": "exited"},
        {"Names": ["/myaas-b1"], "Labels": {"org.myaas.port": "13307", "org.myaas.pool": "/srv/b"}},
        {"Names": ["/odd"], "Labels": {"org.myaas.port": ""}}]})
    assert Docker(make_runner(), api).held_ports() == {13306: "myaas-a1", 13307: "myaas-b1"}
    assert api.calls[0][2] == {"all": True, "filters": {"label": ["org.myaas.port"]}}


def test_remove_tolerates_a_missing_container_and_refuses_another_pools(make_runner, make_api):
    other = {"Config": {"Labels": {"org.myaas.pool": "/tmp/test-pool"}}}
    api = make_api(containers={"ours": {"Config": {"Labels": {"org.myaas.pool": POOL}}}, "theirs": other})
    docker = Docker(make_runner(), api)
    docker.remove("missing", POOL)
    docker.remove("ours", POOL)
    with pytest.raises(MyaasError, match="does not belong to pool"):
        docker.remove("theirs", POOL)
    assert [args[0] for method, args, _kw in api.calls if method == "remove_container"] == ["ours"]


def test_volumes_of_another_pool_are_left_alone(make_runner, make_api):
    api = make_api(volumes={"v": {"Labels": {"org.myaas.pool": "/elsewhere"}}})
    with pytest.raises(MyaasError, match="does not belong to pool"):
        Docker(make_runner(), api).remove_volume("v", POOL)
    Docker(make_runner(), api).remove_volume("gone", POOL)
    assert "remove_volume" not in api.names_called()


def test_an_engine_that_does_not_answer_is_not_a_missing_container(make_runner, make_api):
    from requests.exceptions import ConnectionError as RequestsConnectionError

    def refuse(*_args, **_kwargs):
        raise RequestsConnectionError("Connection refused")
    api = make_api()
    api.inspect_container = refuse
    with pytest.raises(MyaasError, match="Docker engine does not answer"):
        Docker(make_runner(), api).state("myaas-a1")


def test_pool_layout(make_runner):
    pool = Pool("/var/lib/myaas", make_runner())
    assert pool.generation_path("shop", 3) == "/var/lib/myaas/templates/shop/gen-3"
    assert pool.staging_path("shop", 4) == "/var/lib/myaas/templates/shop/.importing-gen-4"
    assert pool.instance_dir("a1") == "/var/lib/myaas/instances/a1"
    assert pool.lock_path("template", "shop") == "/var/lib/myaas/locks/template-shop.lock"


def test_snapshot_argv(make_runner):
    runner = make_runner()
    pool = Pool("/p", runner)
    pool.snapshot("/p/templates/shop/gen-1", "/p/instances/a/data")
    pool.snapshot("/p/a", "/p/b", readonly=True)
    assert runner.calls == [["btrfs", "subvolume", "snapshot", "/p/templates/shop/gen-1", "/p/instances/a/data"],
                            ["btrfs", "subvolume", "snapshot", "-r", "/p/a", "/p/b"]]


def test_delete_of_a_frozen_subvolume_unfreezes_it_first(tmp_path, make_runner):
    frozen = tmp_path / "gen-1"
    frozen.mkdir()
    runner = make_runner([(["btrfs", "property", "get"], (0, "ro=true\n", ""))])
    Pool(str(tmp_path), runner).delete_subvolume(str(frozen))
    assert [call[:4] for call in runner.calls] == [
        ["btrfs", "property", "get", "-ts"], ["btrfs", "property", "set", "-f"], ["btrfs", "subvolume", "delete", str(frozen)]]


def test_parse_du():
    out = "     Total   Exclusive  Set shared  Filename\n 316571648    12591104           -  /p/instances/a/data\n"
    assert parse_du(out) == (316571648, 12591104)


def test_wait_until_answers_returns_once_the_probe_prints_1(make_runner, make_api):
    api = make_api(answers={"exec_create": {"Id": "e1"}, "exec_start": (b"1\n", b""), "exec_inspect": {"ExitCode": 0}})
    Docker(make_runner(), api).wait_until_answers("c", ["probe"], "postgres", ("start_timeout", 5), "The server", 0)
    assert api.calls[0] == ("exec_create", ("c", ["probe"]), {"user": "postgres"})


def test_wait_until_answers_says_when_the_server_exited(make_runner, make_api):
    api = make_api(containers={"c": {"State": {"Running": False, "ExitCode": 7}}},
                   answers={"exec_create": {"Id": "e1"}, "exec_start": (None, b"no socket"),
                            "exec_inspect": {"ExitCode": 1}, "logs": b"InnoDB: fatal\n"})
    with pytest.raises(MyaasError, match=r"The server exited during start-up \(exit code 7\)") as err:
        Docker(make_runner(), api).wait_until_answers("c", ["probe"], None, ("start_timeout", 5), "The server", 0)
    assert err.value.details["server_log"] == ["InnoDB: fatal"]


def test_sql_for_a_client_goes_through_docker_exec_on_stdin(make_runner, make_api):
    runner = make_runner()
    Docker(runner, make_api()).exec("c", ["mariadb"], data="SELECT 1;", user="root")
    assert runner.calls == [["docker", "exec", "--interactive", "--user", "root", "c", "mariadb"]]
