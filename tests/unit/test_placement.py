"""Where new_db puts an instance among several servers, and how the ship play reaches each host."""

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils import placement

GIB = 2 ** 30


def report(generations=(1,), instances=(), memory=8 * GIB, pool=50 * GIB, count=None, template="shop"):
    templates = [{"name": template, "status": "ready", "generation": max(generations),
                  "generations": [{"generation": number} for number in generations]}] if generations else []
    return {"templates": templates, "instances": [{"name": name} for name in instances],
            "room": {"memory_available": memory, "pool_free": pool,
                     "instances": len(instances) if count is None else count}}


def test_an_existing_instance_stays_where_it_is_even_on_the_fullest_server():
    seen = {"a": report(count=1), "b": report(instances=["shop-alice"], count=9, memory=GIB)}
    assert placement.place(seen, "shop-alice", "shop") == "b"


def test_a_name_on_two_servers_is_refused_with_both_named():
    seen = {"a": report(instances=["x"]), "b": report(instances=["x"])}
    with pytest.raises(MyaasError, match="exists on a and b"):
        placement.place(seen, "x", "shop")


def test_fewest_instances_wins_then_most_memory_then_most_pool():
    assert placement.place({"a": report(count=3), "b": report(count=2, memory=GIB)}, "n", "shop") == "b"
    assert placement.place({"a": report(count=2, memory=4 * GIB), "b": report(count=2, memory=6 * GIB)},
                           "n", "shop") == "b"
    assert placement.place({"a": report(count=2, pool=90 * GIB), "b": report(count=2, pool=10 * GIB)},
                           "n", "shop") == "a"


def test_only_servers_with_the_newest_generation_are_candidates():
    seen = {"a": report(generations=(1,)), "b": report(generations=(1, 2), count=5)}
    assert placement.place(seen, "n", "shop") == "b"
    # An older generation asked for by number can go where it is kept.
    assert placement.place(seen, "n", "shop", generation=1) == "a"
    with pytest.raises(MyaasError, match="generation 7"):
        placement.place(seen, "n", "shop", generation=7)


def test_a_full_server_is_passed_over_and_all_full_is_an_error_with_figures():
    seen = {"a": report(count=0, memory=100 * 2 ** 20), "b": report(count=4)}
    assert placement.place(seen, "n", "shop") == "b"
    seen["b"] = report(count=4, pool=100 * 2 ** 20)
    with pytest.raises(MyaasError, match=r"is full .*a: 100 MiB memory"):
        placement.place(seen, "n", "shop")


def test_a_template_no_server_holds_says_to_import_it():
    with pytest.raises(MyaasError, match="No server holds template billing. Import it"):
        placement.place({"a": report(), "b": report(generations=())}, "n", "billing")


def test_holders_lists_hosts_with_the_instance():
    assert placement.holders({"a": report(instances=["x"]), "b": report(), "c": None}, "x") == ["a"]


def test_ssh_command_follows_ansible_connection_variables():
    assert placement.ssh_command({"ansible_connection": "local"}) == []
    argv = placement.ssh_command({"inventory_hostname": "db2", "ansible_host": "10.0.0.2", "ansible_port": 2222,
                                  "ansible_user": "deploy", "ansible_ssh_private_key_file": "/keys/id",
                                  "ansible_ssh_common_args": "-o ProxyJump=bastion"})
    assert argv == ["ssh", "-o", "BatchMode=yes", "-p", "2222", "-i", "/keys/id", "-o", "ProxyJump=bastion",
                    "deploy@10.0.0.2", "sudo", "-n"]
    assert placement.ssh_command({"inventory_hostname": "db3", "ansible_user": "root"})[-1] == "root@db3"
    assert placement.ssh_command({"inventory_hostname": "db3", "ansible_user": "deploy"}, become=False)[-1] == \
        "deploy@db3"


def test_ssh_command_asks_sudo_only_when_it_can_and_must(monkeypatch):
    monkeypatch.setattr(placement.getpass, "getuser", lambda: "ci")
    # No ansible_user: ssh logs in as the controller's user, here not root.
    assert placement.ssh_command({"inventory_hostname": "db3"})[-3:] == ["db3", "sudo", "-n"]
    assert placement.ssh_command({"inventory_hostname": "db3", "ansible_user": "deploy",
                                  "ansible_become": False})[-1] == "deploy@db3"
    with pytest.raises(MyaasError, match="needs a become password"):
        placement.ssh_command({"inventory_hostname": "db3", "ansible_user": "deploy",
                               "ansible_become_password": "secret"})
    lax = placement.ssh_command({"inventory_hostname": "db3", "ansible_user": "root"}, host_key_checking=False)
    assert lax[:7] == ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                       "UserKnownHostsFile=/dev/null"]


def test_room_reads_available_memory_and_the_pools_free_space(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    2048 kB\n")
    found = placement.room(str(tmp_path), 3, meminfo=str(meminfo))
    assert found["memory_available"] == 2048 * 1024 and found["instances"] == 3 and found["pool_free"] > 0
