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

from rig import ENV, ROOT, SAMPLE, SAMPLE_CUSTOMERS, cmdline, descendants, module_argv, run_module, sh

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
    with open(os.path.join(target, "templates", "ship-shop", "template.json"), encoding="utf-8") as handle:
        return json.load(handle)["generation"]


def customers_on(rig, target, name):
    made = run_module("myaas_instance", {"name": name, "template": "ship-shop", "pool": target})
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
