"""The playbooks run as AWX runs them: ansible-runner, a private data dir, extra vars
shaped like a survey's answers, and the MyAAS host reached over real SSH as a
non-root user with sudo."""

import json
import os
import re
import tempfile

import ansible_runner
import pytest

from rig import ENV, ROOT, SAMPLE, SAMPLE_CUSTOMERS, run_module, sh
from ssh_host import SshHost


@pytest.fixture(scope="module")
def ssh_host(rig):
    host = SshHost(rig.base)
    try:
        yield host.start()
    finally:
        host.stop()


@pytest.fixture(scope="module")
def rshop(rig):
    return rig.sample_template("rshop")


class Job:
    """One AWX-like job: its runner result, what set_stats published, and its output."""

    def __init__(self, result, stdout):
        self.rc = result.rc
        self.stdout = stdout
        stats = [event for event in result.events if event.get("event") == "playbook_on_stats"]
        self.artifacts = stats[0]["event_data"].get("artifact_data") or {} if stats else {}


def job(rig, ssh_host, workdir, playbook, **survey):
    """Run a playbook like an AWX job template with a survey (its answers are extra vars)."""
    data_dir = tempfile.mkdtemp(prefix=playbook.split(".")[0] + "-", dir=workdir)
    inventory = ssh_host.inventory(os.path.join(ROOT, ".venv", "bin", "python"), data_dir)
    # AWX adds the user who launched the job to the survey's answers.
    user = survey.pop("user")
    extravars = dict(survey, myaas_pool=rig.pool, awx_job_id=1, awx_user_name=user)
    envvars = dict((key, ENV[key]) for key in ("PATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_HOME"))
    result = ansible_runner.run(private_data_dir=data_dir, project_dir=os.path.join(ROOT, "playbooks"),
                                playbook=playbook, inventory=inventory, extravars=extravars, envvars=envvars,
                                quiet=True)
    with open(os.path.join(data_dir, "artifacts", result.config.ident, "stdout"), encoding="utf-8") as handle:
        return Job(result, handle.read())


def test_new_db_reset_list_and_drop_as_awx_jobs_over_ssh(rig, ssh_host, rshop, workdir):
    try:
        created = job(rig, ssh_host, workdir, "new_db.yml", template="rshop", ttl="8h", protected=False, user="alice")
        assert created.rc == 0, created.stdout[-3000:]
        db = created.artifacts["myaas_instance"]
        assert db["name"] == "rshop-alice" and db["owner"] == "alice" and db["expires_at"]
        assert rig.query(db, "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
        rig.query(db, "DELETE FROM reviews")
        reset = job(rig, ssh_host, workdir, "reset_db.yml", instance="rshop-alice", user="alice")
        assert reset.rc == 0, reset.stdout[-3000:]
        assert reset.artifacts["myaas_instance"]["port"] == db["port"]
        assert rig.query(db, "SELECT COUNT(*) FROM reviews")[0][0] > 0
        listed = job(rig, ssh_host, workdir, "list_dbs.yml", user="alice")
        assert listed.rc == 0, listed.stdout[-3000:]
        assert "rshop-alice" in [instance["name"] for instance in listed.artifacts["myaas_instances"]]
        assert db["password"] not in listed.stdout and db["password"] not in json.dumps(listed.artifacts)
        dropped = job(rig, ssh_host, workdir, "drop_db.yml", instance="rshop-alice", user="alice")
        assert dropped.rc == 0, dropped.stdout[-3000:]
        assert rig.gone("rshop-alice")
    finally:
        rig.instance("rshop-alice", state="absent")


def test_another_users_instance_is_refused_over_ssh_unless_admin(rig, ssh_host, rshop, workdir):
    try:
        created = job(rig, ssh_host, workdir, "new_db.yml", template="rshop", instance="shared", user="alice")
        assert created.rc == 0, created.stdout[-3000:]
        password = created.artifacts["myaas_instance"]["password"]
        asked = job(rig, ssh_host, workdir, "new_db.yml", template="rshop", instance="shared", user="bob")
        assert asked.rc != 0 and "belongs to alice, not to bob" in asked.stdout
        assert password not in asked.stdout and "myaas_instance" not in asked.artifacts
        refused = job(rig, ssh_host, workdir, "drop_db.yml", instance="shared", user="bob")
        assert refused.rc != 0 and "only its owner or an admin" in refused.stdout
        assert rig.info(name="shared")["instances"]
        admin = job(rig, ssh_host, workdir, "drop_db.yml", instance="shared", user="bob", myaas_admin=True)
        assert admin.rc == 0, admin.stdout[-3000:]
        assert rig.gone("shared")
    finally:
        rig.instance("shared", state="absent")


def test_nightly_import_and_hourly_reap_as_awx_jobs_over_ssh(rig, ssh_host, rshop, workdir):
    dumps = os.path.join(workdir, "dumps")
    os.makedirs(dumps)
    sh("cp", SAMPLE, os.path.join(dumps, "rnightly.sql.gz"))
    name = "rnightly-carol"
    try:
        imported = job(rig, ssh_host, workdir, "import_templates.yml", dumps_dir=dumps, user="scheduler")
        assert imported.rc == 0, imported.stdout[-3000:]
        assert os.path.exists(os.path.join(rig.pool, "templates", "rnightly", "template.json"))
        short = job(rig, ssh_host, workdir, "new_db.yml", template="rnightly", ttl="1s", user="carol")
        assert short.rc == 0, short.stdout[-3000:]
        assert short.artifacts["myaas_instance"]["name"] == name
        reaped = job(rig, ssh_host, workdir, "reap.yml", user="scheduler")
        assert reaped.rc == 0, reaped.stdout[-3000:]
        assert "Removed: ['%s']" % name in reaped.stdout
        assert rig.gone(name)
    finally:
        rig.instance(name, state="absent")
        rig.template("rnightly", SAMPLE, state="absent")


def test_a_template_ships_over_ssh_as_the_sudo_user(rig, ssh_host, rshop, workdir):  # pylint: disable=unused-argument
    # The receiving pool reached as Ansible reaches a host: ssh as the non-root user, then sudo.
    via = ["ssh", "-i", ssh_host.key, "-p", str(ssh_host.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
           "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "myaas-runner@127.0.0.1", "sudo", "-n"]
    with rig.small_pool(workdir, "2G") as server:
        args = {"name": "rshop", "source_pool": rig.pool, "target_pool": server, "target_via": via}
        shipped = run_module("myaas_ship", args)
        assert shipped.get("changed") and shipped["mode"] == "full" and shipped["bytes_sent"] > 0, \
            (shipped.get("msg"), shipped.get("module_stderr"))
        received = sh("btrfs", "subvolume", "show", os.path.join(server, "templates", "rshop", "gen-1")).stdout
        sent = sh("btrfs", "subvolume", "show", os.path.join(rig.pool, "templates", "rshop", "gen-1")).stdout
        # Made by btrfs receive from the importer's generation.
        assert re.search(r"Received UUID:\s*(\S+)", received).group(1) == re.search(r"^\s*UUID:\s*(\S+)", sent, re.M).group(1)
        again = run_module("myaas_ship", args)
        assert not again.get("changed") and again["bytes_sent"] == 0, again.get("msg", again)
        made = run_module("myaas_instance", {"name": "rshop-shipped", "template": "rshop", "pool": server})
        assert not made.get("failed"), made.get("msg")
        try:
            assert rig.query(made["instance"], "SELECT COUNT(*) FROM customers")[0][0] == SAMPLE_CUSTOMERS
        finally:
            run_module("myaas_instance", {"name": "rshop-shipped", "pool": server, "state": "absent"})
