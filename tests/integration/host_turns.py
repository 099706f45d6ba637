"""Who may use the host's Docker engine while a test runs: everyone, or one test that restarts it.

The integration tests run on several pytest-xdist workers, each on a pool of
its own, all on one dockerd. A test that stops or restarts dockerd (marked
``dockerd_restart``) takes the host for itself: it waits until no other test
runs, and no test starts until it is done. Its turn ends only when every
container that ran before it runs again and its server answers, so that the
instances and source servers other workers hold in fixtures are as they were.

The locks are flock(2) files in the temp folder, so two sessions on one host
(two clones, CI beside a developer) take turns the same way. A writer takes
the gate first and keeps it: new readers wait at the gate, and the writer is
not starved by readers that follow each other.
"""

import contextlib
import fcntl
import json
import os
import subprocess
import tempfile
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine

LOCKS = os.path.join(tempfile.gettempdir(), "myaas-it-host")
# The label that tells which engine a container serves, so its readiness can be probed.
ENGINE_LABEL = "org.myaas.engine"


@contextlib.contextmanager
def turn(whole_host):
    """Hold the host shared (any test) or whole (a test that restarts dockerd) for the block.

    The whole host's turn yields what ran before it ({container: engine}),
    for ``bring_back`` at the test's teardown; a shared turn yields None.
    """
    os.makedirs(LOCKS, exist_ok=True)
    with open(os.path.join(LOCKS, "gate"), "a", encoding="utf-8") as gate, \
            open(os.path.join(LOCKS, "host"), "a", encoding="utf-8") as host:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(host, fcntl.LOCK_EX if whole_host else fcntl.LOCK_SH)
        if not whole_host:
            fcntl.flock(gate, fcntl.LOCK_UN)
            yield None
            return
        yield _running()


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive flock(2) on ``path`` (made if missing) for the block."""
    with open(path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def provisioning():
    """Held while a worker provisions its rig: one host role run at a time starts dockerd or builds images."""
    os.makedirs(LOCKS, exist_ok=True)
    return locked(os.path.join(LOCKS, "provision"))


def _docker(*argv):
    return subprocess.run(("docker",) + argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          check=False)


def _running():
    """{container id: its engine label or ""} of the containers running now ("" if dockerd is down)."""
    listed = _docker("ps", "--format", "{{json .}}")
    found = {}
    for line in listed.stdout.splitlines():
        entry = json.loads(line)
        labels = dict(item.split("=", 1) for item in entry.get("Labels", "").split(",") if "=" in item)
        found[entry["ID"]] = labels.get(ENGINE_LABEL, "")
    return found


def bring_back(before, timeout=180):
    """Start what ran before and wait until each server answers its engine's own probe.

    AssertionError if dockerd is not up again, or a container does not start or answer, within ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    while _docker("info").returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError("dockerd did not come back after a test that stopped it")
        time.sleep(0.5)
    for container, engine_name in before.items():
        if _docker("inspect", container).returncode != 0:
            continue                  # removed by its test: nothing to bring back
        started = _docker("start", container)
        assert started.returncode == 0, "container %s did not start again: %s" % (container, started.stdout)
        if not engine_name:
            continue
        engine = get_engine(engine_name)
        probe = ["exec"] + (["--user", engine.exec_user] if engine.exec_user else []) + [container]
        while _docker(*(probe + engine.ready_probe())).stdout.strip() != "1":
            if time.monotonic() > deadline:
                raise AssertionError("container %s did not answer again after dockerd restarted" % container)
            time.sleep(0.2)
