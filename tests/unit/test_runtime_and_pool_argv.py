import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.pool import Pool, parse_du
from ansible_collections.myaas.myaas.plugins.module_utils.runtime import Docker, bind_volume_argv, labels, run_argv


def test_run_argv_is_complete_and_ordered():
    spec = {
        "name": "myaas-a1", "image": "myaas/mariadb:10.11",
        "labels": labels(role="instance", instance="a1"),
        "mounts": [{"type": "volume", "source": "myaas-a1", "target": "/var/lib/mysql"}],
        "publish": [("127.0.0.1", 13306, 3306)], "restart": "unless-stopped",
        "memory": "1g", "cpus": "1.5", "args": ["--innodb-buffer-pool-size=64M"],
    }
    assert run_argv(spec) == [
        "docker", "run", "--detach", "--name", "myaas-a1",
        "--label", "org.myaas.instance=a1", "--label", "org.myaas.role=instance",
        "--mount", "type=volume,source=myaas-a1,target=/var/lib/mysql",
        "--publish", "127.0.0.1:13306:3306", "--restart", "unless-stopped",
        "--memory", "1g", "--cpus", "1.5",
        "myaas/mariadb:10.11", "--innodb-buffer-pool-size=64M",
    ]


def test_run_argv_import_container_has_no_network_and_no_port():
    argv = run_argv({"name": "myaas-import-shop", "image": "img", "network": "none",
                     "mounts": [{"type": "bind", "source": "/p/t", "target": "/d"}], "env": {"A": "1"}})
    assert argv[argv.index("--network") + 1] == "none"
    assert "--publish" not in argv
    assert argv[argv.index("--env") + 1] == "A=1"


def test_run_argv_overrides_the_entrypoint_and_runs_as_the_servers_account():
    argv = run_argv({"name": "c", "image": "mariadb:10.11", "user": "999:999", "entrypoint": "/bin/sh",
                     "args": ["-c", "exec mariadbd \"$@\"", "myaas-server", "--no-defaults"]})
    assert argv[argv.index("--user") + 1] == "999:999"
    assert argv[argv.index("--entrypoint") + 1] == "/bin/sh"
    # Options come before the image, the command after it.
    assert argv.index("--entrypoint") < argv.index("mariadb:10.11") < argv.index("-c")
    assert argv[-1] == "--no-defaults"


def test_account_ids_are_read_from_the_image(make_runner):
    runner = make_runner([(["docker", "run"], (0, "uid=999(mysql) gid=999(mysql) groups=999(mysql)\n", ""))])
    assert Docker(runner).account_ids("mariadb:10.11", "mysql") == (999, 999)
    assert runner.calls[0][-2:] == ["mariadb:10.11", "mysql"] and "--rm" in runner.calls[0]
    missing = make_runner([(["docker", "run"], (1, "", "id: 'mysql': no such user"))])
    with pytest.raises(MyaasError, match="has no OS account 'mysql'"):
        Docker(missing).account_ids("busybox", "mysql")


def test_volume_is_a_local_bind_volume():
    assert bind_volume_argv("v", "/pool/instances/a/data", {"org.myaas.role": "instance"}) == [
        "docker", "volume", "create", "--driver", "local", "--opt", "type=none", "--opt", "o=bind",
        "--opt", "device=/pool/instances/a/data", "--label", "org.myaas.role=instance", "v"]


def test_names_filters_by_labels(make_runner):
    runner = make_runner([(["docker", "ps"], (0, "myaas-import-shop\n", ""))])
    assert Docker(runner).names(role="import", template="shop") == ["myaas-import-shop"]
    assert runner.calls[0][-4:] == ["--filter", "label=org.myaas.role=import",
                                    "--filter", "label=org.myaas.template=shop"]


def test_remove_tolerates_a_missing_container(make_runner):
    runner = make_runner([(["docker", "rm"], (1, "", "Error: No such container: x"))])
    Docker(runner).remove("x")
    assert runner.calls == [["docker", "rm", "--force", "--volumes", "x"]]


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
        ["btrfs", "property", "get", "-ts"], ["btrfs", "property", "set", "-ts"], ["btrfs", "subvolume", "delete", str(frozen)]]


def test_parse_du():
    out = "     Total   Exclusive  Set shared  Filename\n 316571648    12591104           -  /p/instances/a/data\n"
    assert parse_du(out) == (316571648, 12591104)


def test_wait_until_answers_returns_once_the_probe_prints_1(make_runner):
    runner = make_runner([(["docker", "exec"], (0, "1\n", ""))])
    Docker(runner).wait_until_answers("c", ["probe"], "postgres", ("start_timeout", 5), "The server", 0)
    assert runner.calls == [["docker", "exec", "--user", "postgres", "c", "probe"]]


def test_wait_until_answers_says_when_the_server_exited(make_runner):
    runner = make_runner([(["docker", "exec"], (1, "", "no socket")),
                          (["docker", "container", "inspect"], (0, '[{"State": {"Running": false, "ExitCode": 7}}]', "")),
                          (["docker", "logs"], (0, "InnoDB: fatal\n", ""))])
    with pytest.raises(MyaasError, match=r"The server exited during start-up \(exit code 7\)") as err:
        Docker(runner).wait_until_answers("c", ["probe"], None, ("start_timeout", 5), "The server", 0)
    assert err.value.details["server_log"] == ["InnoDB: fatal"]
