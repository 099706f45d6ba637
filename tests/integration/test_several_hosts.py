"""Several hosts: import on the importer, ship to two servers, place instances by room.

Three hosts of the rig in several_hosts.py (network namespaces with their own
address, Docker engine, btrfs pool and sshd), reached by the playbooks over
real SSH with the inventory groups users write: myaas_importers and
myaas_servers, both inside myaas.
"""

import gzip
import json
import os
import re
import signal
import subprocess
import time

import pymysql
import pytest

from rig import ENV, ROOT, SAMPLE, SAMPLE_CUSTOMERS, descendants, sh
from several_hosts import SeveralHosts

SERVERS = ("server-a", "server-b")
SHIP_TASK = "Receive each template's current generation from the host that holds it"
RECEIVE_TASK = "Count each received generation's rows on this host, then make it current"


@pytest.fixture(scope="module")
def hosts(rig, tmp_path_factory):
    the_hosts = SeveralHosts(["importer"] + list(SERVERS), [rig.image])
    try:
        the_hosts.up()
        folder = tmp_path_factory.mktemp("several-hosts")
        the_hosts.inventory_path = the_hosts.inventory(str(folder / "hosts.yml"), {
            "myaas_importers": ["importer"], "myaas_servers": list(SERVERS)})
        dumps = os.path.join(the_hosts["importer"].pool, "dumps")
        os.makedirs(dumps)
        sh("cp", SAMPLE, os.path.join(dumps, "hshop.sql.gz"))
        yield the_hosts
    finally:
        the_hosts.down()


def playbook(inventory, name, *args, background=False):
    """Run a playbook with the JSON callback; returns (rc, report), or the process when ``background``."""
    argv = ["ansible-playbook", "-i", inventory, os.path.join(ROOT, "playbooks", name)] + list(args)
    env = dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_HOST_KEY_CHECKING="False")
    if background:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=False)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc %d): %s %s" % (
            proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))


def results(report, task):
    """{host: result} of the task named ``task`` (the last run of it)."""
    found = {}
    for play in report["plays"]:
        for entry in play["tasks"]:
            if entry["task"]["name"] == task:
                found.update(entry["hosts"])
    return found


def failures(report):
    """{host: message} of the failed tasks, with each failed loop item's own message."""
    found = {}
    for play in report["plays"]:
        for entry in play["tasks"]:
            for host, result in entry["hosts"].items():
                if result.get("failed") and not result.get("ignore_errors"):
                    items = [item.get("msg") for item in result.get("results") or [] if item.get("failed")]
                    found[host] = "%s %s" % (result.get("msg"), items) if items else result.get("msg")
    return found


def template_json(host, name):
    with open(os.path.join(host.pool, "templates", name, "template.json"), encoding="utf-8") as handle:
        return json.load(handle)


def subvolume(path):
    shown = sh("btrfs", "subvolume", "show", path).stdout
    return {"uuid": re.search(r"^\s*UUID:\s*(\S+)", shown, re.M).group(1),
            "received": re.search(r"Received UUID:\s*(\S+)", shown).group(1),
            "ro": sh("btrfs", "property", "get", "-ts", path, "ro").stdout.strip()}


def count(instance, sql="SELECT COUNT(*) FROM customers"):
    connection = pymysql.connect(host=instance["host"], port=instance["port"], user=instance["user"],
                                 password=instance["password"], database=instance["database"], connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()[0]
    finally:
        connection.close()


def new_db(hosts, *args):
    rc, report = playbook(hosts.inventory_path, "new_db.yml", *args)
    assert rc == 0, failures(report)
    made = [result for result in results(report, "Create the instance, or return the existing one").values()
            if not result.get("skipped")]
    assert len(made) == 1, made
    return made[0]["instance"], [host for host, result in
                                 results(report, "Create the instance, or return the existing one").items()
                                 if not result.get("skipped")][0]


def test_a_run_without_the_hosts_it_needs_names_the_group_to_fill(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("myaas:\n  children:\n    myaas_importers:\n      hosts:\n        importer1:\n")
    rc, report = playbook(str(inventory), "new_db.yml", "-e", "template=shop")
    assert rc != 0
    assert "put one in group myaas_servers" in " ".join(str(msg) for msg in failures(report).values())
    rc, report = playbook("db1,", "new_db.yml", "-e", "template=shop")
    assert rc != 0 and "is in group myaas" in " ".join(str(msg) for msg in failures(report).values())


def test_the_nightly_import_ships_to_both_servers(hosts):
    rc, report = playbook(hosts.inventory_path, "import_templates.yml")
    assert rc == 0, failures(report)
    imported = results(report, "Import each dump or backup into its template")
    assert list(imported) == ["importer"]      # the servers import nothing
    shipped = results(report, SHIP_TASK)
    assert sorted(shipped) == sorted(SERVERS)
    hosts.full_bytes = 0
    sent = subvolume(os.path.join(hosts["importer"].pool, "templates", "hshop", "gen-1"))
    for server in SERVERS:
        run = shipped[server]["results"][0]
        assert run["changed"] and run["mode"] == "full" and run["bytes_sent"] > 0, run
        hosts.full_bytes = run["bytes_sent"]
        assert template_json(hosts[server], "hshop")["generation"] == 1
        received = subvolume(os.path.join(hosts[server].pool, "templates", "hshop", "gen-1"))
        # Made by btrfs receive from the importer's generation, read-only.
        assert received["received"] == sent["uuid"] and received["ro"] == "ro=true", received
    # Each server counted the received rows on a throw-away server of its own before making it current.
    assert sorted(results(report, RECEIVE_TASK)) == sorted(SERVERS)
    for server, run in results(report, RECEIVE_TASK).items():
        counted = run["results"][0]["row_counts"]
        table = [key for key in counted if key.split(".")[-1] == "customers"][0]
        assert counted[table] == {"before": SAMPLE_CUSTOMERS, "after": SAMPLE_CUSTOMERS}, (server, counted)
        assert all(table["before"] == table["after"] for table in counted.values())
    for server, name in zip(SERVERS, ("ha", "hb")):
        instance, where = new_db(hosts, "-e", "template=hshop", "-e", "instance=" + name, "-e", "host=" + server)
        assert where == server and instance["host"] == hosts[server].address
        assert count(instance) == SAMPLE_CUSTOMERS
        # Served by that host's own engine.
        assert hosts[server].docker("ps", "-q", "--filter", "label=org.myaas.instance=" + name).stdout.strip()


def test_an_unchanged_run_ships_nothing(hosts):
    rc, report = playbook(hosts.inventory_path, "import_templates.yml")
    assert rc == 0, failures(report)
    shipped = results(report, SHIP_TASK)
    for server in SERVERS:
        run = shipped[server]["results"][0]
        assert not run["changed"] and run["mode"] == "none" and run["bytes_sent"] == 0, run
    assert report["stats"][SERVERS[0]]["changed"] == 0 and report["stats"][SERVERS[1]]["changed"] == 0


def _new_dump(hosts):
    """The sample with one more customer: a new generation to ship."""
    dump = os.path.join(hosts["importer"].pool, "dumps", "hshop.sql.gz")
    with gzip.open(SAMPLE, "rb") as sample, gzip.open(dump + ".tmp", "wb") as out:
        out.write(sample.read())
        out.write(b"\nINSERT INTO customers (id, email, full_name, city, created_at) VALUES "
                  b"(999999, 'late@example.com', 'Late', 'Nowhere', '2026-11-30 00:00:00');\n")
    os.rename(dump + ".tmp", dump)


def test_a_killed_transfer_leaves_the_old_generation_serving_and_the_next_run_completes(hosts):
    _new_dump(hosts)
    slow = hosts["server-b"]
    partial = os.path.join(slow.pool, "templates", "hshop", "gen-2")
    # Slow enough that the stream takes about 20 s to reach server-b.
    rate = "%dkbit" % max(64, hosts.full_bytes * 8 // 1000 // 20)
    with hosts.slow_link("server-b", rate):
        job = playbook(hosts.inventory_path, "import_templates.yml", background=True)
        try:
            deadline = time.monotonic() + 300
            while not os.path.exists(partial) and job.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert os.path.exists(partial), "the transfer to server-b never started"
            time.sleep(3)          # halfway through
            assert job.poll() is None, "the run ended before it could be killed"
            # Still arriving: btrfs receive sets the Received UUID only once the whole stream is in.
            assert subvolume(partial)["received"] == "-", "the transfer ended before the kill"
        finally:
            # As AWX cancels a job: the whole run at once.
            below = descendants(job.pid)
            os.killpg(job.pid, signal.SIGKILL)
            for pid in below:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            job.wait()
    # server-b still serves generation 1: a new instance there gets it, whole.
    assert template_json(slow, "hshop")["generation"] == 1
    instance, _where = new_db(hosts, "-e", "template=hshop", "-e", "instance=hb-old", "-e", "host=server-b")
    assert instance["generation"] == 1 and count(instance) == SAMPLE_CUSTOMERS
    rc, report = playbook(hosts.inventory_path, "import_templates.yml")
    assert rc == 0, failures(report)
    sent = subvolume(os.path.join(hosts["importer"].pool, "templates", "hshop", "gen-2"))
    for server in SERVERS:
        assert template_json(hosts[server], "hshop")["generation"] == 2
        assert subvolume(os.path.join(hosts[server].pool, "templates", "hshop", "gen-2"))["received"] == sent["uuid"]
    run = results(report, SHIP_TASK)["server-b"]["results"][0]
    assert run["changed"] and run["generation"] == 2, run
    instance, _where = new_db(hosts, "-e", "template=hshop", "-e", "instance=hb-new", "-e", "host=server-b")
    assert count(instance) == SAMPLE_CUSTOMERS + 1
    assert count(instance, "SELECT email FROM customers WHERE id = 999999") == "late@example.com"


def test_new_instances_spread_across_servers_by_room_and_are_found_again(hosts):
    # server-a holds ha, server-b holds hb, hb-old and hb-new: server-a has room for the next one.
    first, first_host = new_db(hosts, "-e", "template=hshop", "-e", "instance=hx1")
    assert first_host == "server-a" and first["host"] == hosts["server-a"].address
    second, second_host = new_db(hosts, "-e", "template=hshop", "-e", "instance=hx2")
    assert second_host == "server-a"                          # 2 against 3
    third, third_host = new_db(hosts, "-e", "template=hshop", "-e", "instance=hx3")
    assert third_host in SERVERS and count(third) == SAMPLE_CUSTOMERS + 1
    # Asked again, each is found where it is, with its own data.
    again, again_host = new_db(hosts, "-e", "template=hshop", "-e", "instance=hx1")
    assert again_host == "server-a" and again["port"] == first["port"] and again["password"] == first["password"]
    assert count(second) == SAMPLE_CUSTOMERS + 1
    # reset, list, drop and reap work across the hosts.
    rc, report = playbook(hosts.inventory_path, "reset_db.yml", "-e", "instance=hb")
    assert rc == 0, failures(report)
    reset = [result for result in results(
        report, "Replace the instance's data with the template's, or a bookmark's").values() if not result.get("skipped")]
    assert len(reset) == 1 and reset[0]["instance"]["generation"] == 2
    rc, report = playbook(hosts.inventory_path, "list_dbs.yml")
    assert rc == 0, failures(report)
    listed = dict((host, sorted(instance["name"] for instance in result["instances"]))
                  for host, result in results(report, "Read the pool").items())
    assert "hx1" in listed["server-a"] and "hb" in listed["server-b"] and listed["importer"] == []
    rc, report = playbook(hosts.inventory_path, "drop_db.yml", "-e", "instance=hx1")
    assert rc == 0, failures(report)
    assert not hosts["server-a"].docker("ps", "-aq", "--filter", "label=org.myaas.instance=hx1").stdout.strip()
    rc, report = playbook(hosts.inventory_path, "reset_db.yml", "-e", "instance=nowhere")
    assert rc != 0 and "holds instance nowhere" in " ".join(str(msg) for msg in failures(report).values())
    rc, report = playbook(hosts.inventory_path, "reap.yml")
    # On the importer too: upgrade rehearsals leave instances there.
    assert rc == 0 and sorted(results(report, "Remove what expired or was left half-made, repair what lost its "
                                              "container")) == sorted(("importer",) + SERVERS), failures(report)


def test_a_branch_ships_to_the_other_servers_against_the_generation_they_share(hosts):
    instance, _where = new_db(hosts, "-e", "template=hshop", "-e", "instance=hbase", "-e", "host=server-a")
    connection = pymysql.connect(host=instance["host"], port=instance["port"], user=instance["user"],
                                 password=instance["password"], database=instance["database"], autocommit=True)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO customers (email, full_name, city, created_at) "
                       "SELECT CONCAT('branch-', id, '@example.com'), full_name, city, created_at FROM customers "
                       "WHERE id <= 5")
    connection.close()
    rc, report = playbook(hosts.inventory_path, "save_db.yml", "-e", "instance=hbase", "-e", "branch=hbranch")
    assert rc == 0, failures(report)
    run = results(report, SHIP_TASK)["server-b"]["results"][0]
    # server-b holds hshop's generation 2, which the branch's instance was cloned from: only the change crosses.
    assert run["changed"] and run["mode"] == "incremental", run
    assert run["parent_template"] == "hshop" and run["parent"] == 2, run
    assert 0 < run["bytes_sent"] < hosts.full_bytes * 0.2, (run["bytes_sent"], hosts.full_bytes)
    assert subvolume(os.path.join(hosts["server-b"].pool, "templates", "hbranch", "gen-1"))["ro"] == "ro=true"
    branch, where = new_db(hosts, "-e", "template=hbranch", "-e", "instance=hbr", "-e", "host=server-b")
    assert where == "server-b" and count(branch) == SAMPLE_CUSTOMERS + 1 + 5
