"""The real rig for integration tests: a loop-file btrfs pool of its own, dockerd
and the offline-built MariaDB image, all made by the host role itself.

What the session creates is removed at its end: containers and volumes labelled
with its pool, the pool's mount (its loop device goes with it) and files. A
dockerd that was not running before the session is stopped again.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from rig import ROOT, Rig, ansible_playbook, docker_is_up, sh

IMAGE = "myaas/mariadb:10.11"


@pytest.fixture(scope="session")
def rig():
    dockerd_was_up = docker_is_up()
    base = tempfile.mkdtemp(prefix="myaas-it-", dir="/tmp")
    host_vars = {
        "host_pool_path": os.path.join(base, "pool"),
        "host_pool_file": os.path.join(base, "pool.img"),
        "host_pool_size": "12G",
        "host_pool_label": "myaas-it",
        "host_pool_persist": False,
        "host_images": [{"name": IMAGE, "engine": "mariadb", "source": "build"}],
        "host_python_libs_from": "pip",
    }
    vars_file = os.path.join(base, "vars.json")
    with open(vars_file, "w", encoding="utf-8") as handle:
        json.dump(host_vars, handle)
    provision = ansible_playbook("playbooks/provision.yml", "-e", "@" + vars_file)
    the_rig = Rig(base, host_vars["host_pool_path"], IMAGE, vars_file, provision)
    try:
        assert provision.returncode == 0, provision.stdout[-5000:]
        yield the_rig
    finally:
        the_rig.remove_everything()
        if os.path.ismount(the_rig.pool):
            sh("umount", the_rig.pool)
        shutil.rmtree(base, ignore_errors=True)
        if not dockerd_was_up:
            subprocess.run([os.path.join(ROOT, "tests", "stop_dockerd.sh")], check=False)


@pytest.fixture(scope="session")
def shop_sql(rig):
    """The bundled sample, decompressed once."""
    path = os.path.join(rig.base, "shop.sql")
    with open(path, "wb") as out:
        subprocess.run(["gzip", "-dc", os.path.join(ROOT, "samples", "shop.sql.gz")], stdout=out, check=True)
    return path


@pytest.fixture
def workdir(rig, request):
    path = os.path.join(rig.base, "work", request.node.name.replace("[", "-").replace("]", ""))
    os.makedirs(path)
    return path
