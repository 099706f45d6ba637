"""A template shipped with btrfs send and receive from the pool it was imported on to another pool.

The receiving pool is a second btrfs file system (a loop file of its own),
so the stream really crosses file systems. The killed transfer goes through
a command prefix that, like ssh, hands the command to a shell as one string.
"""

import json
import os
import signal
import subprocess
import time

from rig import (
    ENV, ROOT, SAMPLE, SAMPLE_CUSTOMERS, cmdline, descendants, module_argv, run_module, sh, warm_slots)

# A stand-in for ssh to the receiving host: runs its one-string command with
# bash, with the receive's stream slowed to 256 KiB/s, so that it can be
# killed halfway.
SLOW_VIA = r"""#!/bin/bash
case "$1" in
  *"btrfs receive"*)
    python3 -c '
import sys, time
while True:
    block = sys.stdin.buffer.read(16384)
    if not block:
        break
    sys.stdout.buffer.write(block)
    sys.stdout.buffer.flush()
    time.sleep(1 / 16)
' | bash -c "$1" ;;
  *) exec bash -c "$1" ;;
esac
"""


def subvolume(path):
    out = sh("btrfs", "subvolume", "show", path).stdout
    fields = dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)
    return dict((key, value.strip()) for key, value in fields.items())


def receivers(target):
    return [pid for pid in (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
            if "btrfs" in cmdline(pid) and target in cmdline(pid)]


def served(target):
    return served_as(target, "ship-shop")


def served_as(target, template):
    with open(os.path.join(target, "templates", template, "template.json"), encoding="utf-8") as handle:
        return json.load(handle)["generation"]


def customers_on(rig, target, name, template="ship-shop"):
    made = run_module("myaas_instance", {"name": name, "template": template, "pool": target})
    assert not made.get("failed"), made.get("msg")
    try:
        return rig.query(made["instance"], "SELECT COUNT(*) FROM customers")[0][0]
    finally:
        run_module("myaas_instance", {"name": name, "pool": target, "state": "absent"})


def test_a_template_ships_to_another_pool_once_and_a_killed_transfer_leaves_the_old_one_serving(rig, workdir):
    rig.sample_template("ship-shop")
    with rig.small_pool(workdir, "2G") as target:
        def ship(**options):
            return run_module("myaas_ship", dict({"name": "ship-shop", "source_pool": rig.pool,
                                                  "target_pool": target}, **options))

        checked = run_module("myaas_ship", {"name": "ship-shop", "source_pool": rig.pool, "target_pool": target},
                             check_mode=True)
        assert checked["changed"] and checked["mode"] == "full" and checked["bytes_sent"] == 0, checked.get("msg", checked)
        assert not os.path.exists(os.path.join(target, "templates", "ship-shop", "template.json"))

        first = ship()
        assert first["changed"] and first["mode"] == "full" and first["bytes_sent"] > 0, first.get("msg", first)
        sent = subvolume(os.path.join(rig.pool, "templates", "ship-shop", "gen-1"))
        got = subvolume(os.path.join(target, "templates", "ship-shop", "gen-1"))
        # Made by btrfs receive from the sender's generation, and read-only.
        assert got["Received UUID"] == sent["UUID"] and "readonly" in got["Flags"], got
        assert customers_on(rig, target, "ship-clone-1") == SAMPLE_CUSTOMERS

        again = ship()
        assert not again["changed"] and again["mode"] == "none" and again["bytes_sent"] == 0, again.get("msg", again)

        # A new import ships its generation; the sender keeps one, so the receiver's old one goes.
        assert rig.template("ship-shop", SAMPLE, force=True)["template"]["generation"] == 2
        second = ship()
        assert second["changed"] and second["generation"] == 2 and second["pruned"] == [1], second.get("msg", second)
        assert served(target) == 2
        assert not os.path.exists(os.path.join(target, "templates", "ship-shop", "gen-1"))

        # A transfer killed halfway: the receiver keeps serving generation 2, and the next run completes.
        assert rig.template("ship-shop", SAMPLE, force=True)["template"]["generation"] == 3
        via = os.path.join(workdir, "slow-via")
        with open(via, "w", encoding="utf-8") as handle:
            handle.write(SLOW_VIA)
        os.chmod(via, 0o755)
        argv = module_argv("myaas_ship", {"name": "ship-shop", "source_pool": rig.pool, "target_pool": target,
                                          "target_via": [via]})
        with subprocess.Popen(argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
            receiving = os.path.join(target, "templates", "ship-shop", "gen-3")
            deadline = time.monotonic() + 60
            while not os.path.exists(receiving) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert os.path.exists(receiving), "the transfer did not start"
            time.sleep(1)
            module_pids = [pid for pid in descendants(proc.pid) if "AnsiballZ_myaas_ship" in cmdline(pid)]
            assert module_pids
            for pid in module_pids:
                os.kill(pid, signal.SIGKILL)
            proc.communicate(timeout=120)
        # The killed module's receive ends once its stream does (it is no child of ours: only looked at).
        deadline = time.monotonic() + 60
        while receivers(target) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not receivers(target)
        assert served(target) == 2
        # The killed transfer's partial generation: not named by template.json, not marked received.
        assert subvolume(receiving)["Received UUID"] == "-"
        assert customers_on(rig, target, "ship-clone-2") == SAMPLE_CUSTOMERS

        third = ship()
        assert third["changed"] and third["generation"] == 3, third.get("msg", third)
        assert served(target) == 3
        sent = subvolume(os.path.join(rig.pool, "templates", "ship-shop", "gen-3"))
        assert subvolume(receiving)["Received UUID"] == sent["UUID"]
        assert customers_on(rig, target, "ship-clone-3") == SAMPLE_CUSTOMERS
    rig.template("ship-shop", None, state="absent")


def test_a_received_generation_becomes_current_only_when_its_row_counts_are_the_importers(rig, workdir):
    rig.sample_template("ship-rows")
    with rig.small_pool(workdir, "2G") as target:
        folder = os.path.join(target, "templates", "ship-rows")
        ship = {"name": "ship-rows", "source_pool": rig.pool, "target_pool": target, "swap": False}
        staged = run_module("myaas_ship", ship)
        assert staged["changed"] and staged["staged"], staged.get("msg", staged)
        # Delivered, but not current: nothing names it yet.
        assert os.path.isdir(os.path.join(folder, "gen-1")) and not os.path.exists(os.path.join(folder, "template.json"))
        # The importer recorded one row more in a table than the generation holds: as if the data arrived short.
        delivery_path = os.path.join(folder, ".ship-gen-1.json")
        with open(delivery_path, encoding="utf-8") as handle:
            delivery = json.load(handle)
        table = [key for key in delivery["template"]["row_counts"] if key.split(".")[-1] == "customers"][0]
        assert delivery["template"]["row_counts"][table] == SAMPLE_CUSTOMERS
        delivery["template"]["row_counts"][table] += 1
        with open(delivery_path, "w", encoding="utf-8") as handle:
            json.dump(delivery, handle)
        refused = run_module("myaas_receive", {"name": "ship-rows", "pool": target})
        assert refused.get("failed") and "%s: %d rows recorded, %d received" % (
            table, SAMPLE_CUSTOMERS + 1, SAMPLE_CUSTOMERS) in refused["msg"], refused.get("msg", refused)
        assert not os.path.exists(os.path.join(folder, "gen-1")) and not os.path.exists(delivery_path)
        assert not os.path.exists(os.path.join(folder, "template.json"))
        assert not rig.containers(role="verify", pool=target)
        # Shipped again and left as it came, it is counted, found whole, and made current.
        assert run_module("myaas_ship", ship)["staged"]
        received = run_module("myaas_receive", {"name": "ship-rows", "pool": target})
        assert received["changed"] and received["generation"] == 1, received.get("msg", received)
        assert received["row_counts"][table] == {"before": SAMPLE_CUSTOMERS, "after": SAMPLE_CUSTOMERS}
        assert served_as(target, "ship-rows") == 1
        assert not run_module("myaas_receive", {"name": "ship-rows", "pool": target})["changed"]
        assert not run_module("myaas_ship", dict(ship, swap=True))["changed"]
        assert customers_on(rig, target, "ship-rows-clone", template="ship-rows") == SAMPLE_CUSTOMERS


def test_a_receiving_server_keeps_warm_clones_of_the_generation_it_made_current(rig, workdir):
    rig.sample_template("ship-warm")
    with rig.small_pool(workdir, "2G") as target:
        ship = {"name": "ship-warm", "source_pool": rig.pool, "target_pool": target, "swap": False}
        try:
            assert run_module("myaas_ship", ship)["staged"]
            received = run_module("myaas_receive", {"name": "ship-warm", "pool": target, "warm": 1})
            assert received["changed"] and received["warm"]["made"] == 1, received.get("msg", received)
            assert [record["generation"] for record in warm_slots(target, "ship-warm").values()] == [1]
            # The importer makes generation 2; its receipt replaces the clone in the same run.
            assert rig.template("ship-warm", SAMPLE, force=True)["template"]["generation"] == 2
            assert run_module("myaas_ship", ship)["staged"]
            received = run_module("myaas_receive", {"name": "ship-warm", "pool": target})
            assert received["generation"] == 2 and received["warm"]["removed"] == 1, received.get("msg", received)
            assert [record["generation"] for record in warm_slots(target, "ship-warm").values()] == [2]
            made = run_module("myaas_instance", {"name": "ship-warm-taken", "template": "ship-warm", "pool": target})
            assert made["instance"]["generation"] == 2 and made["instance"].get("warm_clone"), made.get("msg", made)
            assert rig.query(made["instance"], "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
            assert not run_module("myaas_instance", {"name": "ship-warm-taken", "pool": target,
                                                     "state": "absent"}).get("failed")
        finally:
            removed = run_module("myaas_receive", {"name": "ship-warm", "pool": target, "warm": 0})
        assert not removed.get("failed"), removed.get("msg")
        assert not sh("docker", "ps", "--all", "--quiet", "--filter", "label=org.myaas.pool=" + target,
                      "--filter", "label=org.myaas.role=warm").stdout.split()
