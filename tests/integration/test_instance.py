"""myaas_instance, myaas_info and the playbooks people run, on the real rig."""

import hashlib
import json
import os
import subprocess
import threading
import time

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_iso
from quota_checks import (SYSTEM_TABLESPACE, cap_argument, file_per_table_is_refused, quotas_off,
                          runaway_write_is_stopped)
from rig import ENV, ROOT, SAMPLE, SAMPLE_CUSTOMERS as CUSTOMERS, module_argv, run_module, sh


@pytest.fixture(scope="module")
def shop(rig):
    return rig.sample_template("shop")


def test_new_db_playbook_hands_out_a_loaded_database(rig, shop):
    run = rig.playbook("playbooks/new_db.yml", "-e", "template=shop", "-e", "name=nd-alice", "-e", "ttl=8h")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "DEPRECATED: -e name=NAME" in run.stdout          # the old name works for one more release
    port = rig.info(name="nd-alice")["instances"][0]["port"]
    assert "ssh -N -L %d:127.0.0.1:%d" % (port, port) in run.stdout and "@127.0.0.1:%d/shop" % port in run.stdout
    assert "DSN: mysql://dev:" in run.stdout and "Client: mariadb --protocol=TCP " in run.stdout
    info = rig.info(name="nd-alice", show_password=True)
    [instance] = info["instances"]
    assert instance["status"] == "running" and instance["expires_at"] and not instance["expired"]
    instance.update(user="dev", password=info["password"])
    assert rig.query(instance, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
    assert "password" not in rig.info()["instances"][0]
    assert rig.playbook("playbooks/drop_db.yml", "-e", "instance=nd-alice").returncode == 0
    assert rig.gone("nd-alice")


def test_default_name_comes_from_template_and_requester_without_collisions(rig, shop):
    dotted = rig.playbook("playbooks/new_db.yml", "-e", "template=shop", "-e", "awx_user_name=Bob.Smith")
    dashed = rig.playbook("playbooks/new_db.yml", "-e", "template=shop", "-e", "awx_user_name=bob-smith")
    tagged = "shop-bob-smith-" + hashlib.sha1(b"Bob.Smith").hexdigest()[:6]
    try:
        assert dotted.returncode == 0 and dashed.returncode == 0, (dotted.stdout[-3000:], dashed.stdout[-3000:])
        assert "Instance %s of template shop" % tagged in dotted.stdout
        assert "Instance shop-bob-smith of template shop" in dashed.stdout
    finally:
        for name in (tagged, "shop-bob-smith"):
            rig.instance(name, state="absent")


def test_an_instance_is_its_owners_unless_an_admin_asks(rig, shop):
    def as_user(playbook, user, *extra):
        return rig.playbook(playbook, "-e", "instance=owned", "-e", "awx_user_name=" + user, *extra)
    created = as_user("playbooks/new_db.yml", "alice", "-e", "template=shop")
    assert created.returncode == 0, created.stdout[-3000:]
    password = rig.info(name="owned", show_password=True)["password"]
    try:
        asked = as_user("playbooks/new_db.yml", "bob", "-e", "template=shop")
        assert asked.returncode != 0 and "belongs to alice, not to bob" in asked.stdout
        assert password not in asked.stdout
        for playbook in ("playbooks/reset_db.yml", "playbooks/drop_db.yml"):
            refused = as_user(playbook, "bob")
            assert refused.returncode != 0 and "only its owner or an admin" in refused.stdout, playbook
        assert rig.info(name="owned")["instances"][0]["owner"] == "alice"
        again = as_user("playbooks/new_db.yml", "alice", "-e", "template=shop")
        assert again.returncode == 0 and password in again.stdout
        dropped = as_user("playbooks/drop_db.yml", "bob", "-e", "myaas_admin=true")
        assert dropped.returncode == 0, dropped.stdout[-3000:]
        assert rig.gone("owned")
    finally:
        rig.instance("owned", state="absent")


def test_new_db_in_check_mode_creates_nothing(rig, shop):
    run = rig.playbook("playbooks/new_db.yml", "--check", "-e", "template=shop", "-e", "instance=dry-nd")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Would create instance dry-nd of template shop." in run.stdout
    assert rig.gone("dry-nd")


def test_clones_are_isolated_from_each_other_and_the_template(rig, shop):
    first = rig.instance("iso-a", template="shop")["instance"]
    second = rig.instance("iso-b", template="shop")["instance"]
    try:
        assert first["port"] != second["port"] and first["password"] != second["password"]
        assert first["cow"] == "btrfs-snapshot" and first["ready_seconds"] < 10
        rig.query(first, "DELETE FROM reviews")
        rig.query(first, "INSERT INTO categories (name) VALUES ('only in a')")
        assert rig.query(first, "SELECT COUNT(*) FROM reviews")[0][0] == 0
        assert rig.query(second, "SELECT COUNT(*) FROM reviews")[0][0] > 0
        assert rig.query(second, "SELECT COUNT(*) FROM categories WHERE name = 'only in a'")[0][0] == 0
        third = rig.instance("iso-c", template="shop")["instance"]
        for db in (first, second, third):
            assert not get_engine("mariadb").crash_recovery(sh("docker", "logs", db["container"]).stdout)
        assert rig.query(third, "SELECT COUNT(*) FROM reviews")[0][0] > 0
        assert sh("btrfs", "property", "get", "-ts", shop["path"], "ro").stdout.strip() == "ro=true"
        # Another user's password does not open this instance.
        with pytest.raises(Exception):
            rig.connect(first, password=second["password"])
    finally:
        for name in ("iso-a", "iso-b", "iso-c"):
            rig.instance(name, state="absent")


def test_second_call_is_unchanged_and_reset_discards_writes(rig, shop):
    created = rig.instance("idem", template="shop")
    assert created["changed"] and created["operation"] == "create"
    again = rig.instance("idem", template="shop")
    assert again["changed"] is False and again["operation"] == "none"
    for key in ("port", "password", "user", "dsn", "created_at"):
        assert again["instance"][key] == created["instance"][key]
    db = created["instance"]
    rig.query(db, "DELETE FROM order_items")
    reset = rig.instance("idem", state="reset")
    assert reset["changed"] and reset["operation"] == "reset"
    assert (reset["instance"]["port"], reset["instance"]["password"]) == (db["port"], db["password"])
    assert rig.query(db, "SELECT COUNT(*) FROM order_items")[0][0] > 0
    stopped = rig.instance("idem", state="stopped")
    # A stop changes the status only, and that is all its diff shows.
    assert stopped["diff"] == {"before": {"status": "running"}, "after": {"status": "exited"}}
    assert stopped["changed"] and not rig.containers(instance="idem", status="running")
    started = rig.instance("idem", template="shop")
    assert started["changed"] and started["operation"] == "start"
    assert rig.query(db, "SELECT 1")[0][0] == 1
    other = rig.instance("idem", template="multi-does-not-matter")
    assert other["failed"] and "use state=reset" in other["msg"]
    removed = rig.instance("idem", state="absent")
    assert removed["changed"] and rig.gone("idem")
    assert rig.instance("idem", state="absent")["changed"] is False


def test_check_mode_creates_nothing(rig, shop):
    planned = rig.instance("dry", template="shop", check_mode=True)
    assert planned["changed"] and planned["operation"] == "create"
    assert planned["diff"]["after"]["template"] == "shop"
    assert rig.gone("dry")


def test_ten_instances_at_once_get_distinct_ports(rig, shop, workdir):
    run, elapsed, instances = rig.parallel_instances(workdir, "shop", 10)
    try:
        assert run.returncode == 0, run.stdout[-5000:]
        assert len(instances) == 10 and len(set(instance["port"] for instance in instances)) == 10
        for instance in instances:
            assert rig.query(instance, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
        print("10 instances at once: %.1f s" % elapsed)
    finally:
        for i in range(10):
            rig.instance("many-%d" % i, state="absent")


def test_same_name_twice_at_once_makes_one_instance(rig, shop):
    argv = module_argv("myaas_instance", dict(name="twin", template="shop", pool=rig.pool))
    procs = [subprocess.Popen(argv + ["-o"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _twin in range(2)]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    try:
        assert all(proc.returncode == 0 for proc in procs), outputs
        assert sorted("CHANGED" in out for out in outputs) == [False, True]
        assert rig.containers(instance="twin") == [rig.info(name="twin")["instances"][0]["container"]]
    finally:
        rig.instance("twin", state="absent")


def test_clones_during_a_reimport_are_whole(rig, workdir):
    assert rig.template("busy", SAMPLE)["changed"]
    bigger = os.path.join(workdir, "bigger.sql.gz")
    sh(os.path.join(ROOT, ".venv", "bin", "python"), os.path.join(ROOT, "tools", "make_sample_dump.py"),
       "--customers", "30000", "-o", bigger)
    proc = rig.template_in_background("busy", bigger)
    rig.wait_for(lambda: rig.containers(role="import", template="busy"), timeout=60, what="the import")
    made, overlapped = [], 0
    try:
        while proc.poll() is None or len(made) < 2:
            name = "busy-%d" % len(made)
            importing = bool(rig.containers(role="import", template="busy"))
            result = rig.instance(name, template="busy")
            assert not result.get("failed"), result
            made.append(name)
            count = rig.query(result["instance"], "SELECT COUNT(*) FROM customers")[0][0]
            if importing and rig.containers(role="import", template="busy"):
                # Made while the new generation was being loaded: the old one, whole.
                overlapped += 1
                assert result["instance"]["generation"] == 1 and count == CUSTOMERS
            else:
                assert count in (CUSTOMERS, 30000)
        out = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, out
        assert overlapped >= 1, "no clone was made while the import ran"
    finally:
        for name in made:
            rig.instance(name, state="absent")


@pytest.mark.dockerd_restart
def test_instances_survive_a_docker_daemon_restart(rig, shop):
    dbs = [rig.instance(name, template="shop")["instance"] for name in ("survivor-1", "survivor-2")]
    try:
        rig.restart_dockerd()
        for db in dbs:
            rig.wait_for(lambda db=db: _answers(rig, db), timeout=60, what="instance %s" % db["name"])
            again = rig.instance(db["name"], template="shop")
            assert again["changed"] is False
            assert (again["instance"]["port"], again["instance"]["password"]) == (db["port"], db["password"])
    finally:
        for db in dbs:
            rig.instance(db["name"], state="absent")


def _answers(rig, db):
    try:
        return rig.query(db, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
    except Exception:  # pylint: disable=broad-exception-caught
        return False


def test_reap_removes_the_expired_and_repairs_a_lost_container(rig, shop):
    rig.instance("reap-expired", template="shop", ttl="1s")
    rig.instance("reap-protected", template="shop", ttl="1s", protected=True)
    rig.instance("reap-fresh", template="shop", ttl="8h")
    rig.instance("reap-forever", template="shop")
    lost = rig.instance("reap-lost", template="shop", ttl="8h")["instance"]
    sh("docker", "rm", "--force", lost["container"])            # data without a container
    time.sleep(1.5)
    listing = rig.playbook("playbooks/list_dbs.yml")
    assert listing.returncode == 0 and "(EXPIRED)" in listing.stdout and "reap-lost: missing" in listing.stdout
    check = rig.playbook("playbooks/reap.yml", "--check")
    assert check.returncode == 0, check.stdout[-3000:]
    assert "Would remove: ['reap-expired']" in check.stdout and "Would repair: ['reap-lost']" in check.stdout
    assert rig.containers(instance="reap-expired") and not rig.containers(instance="reap-lost")
    run = rig.playbook("playbooks/reap.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "Removed: ['reap-expired']" in run.stdout and "Repaired: ['reap-lost']" in run.stdout
    assert rig.gone("reap-expired")
    # Back on the same port with the same password.
    assert rig.query(lost, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
    names = sorted(instance["name"] for instance in rig.info()["instances"] if instance["name"].startswith("reap-"))
    assert names == ["reap-forever", "reap-fresh", "reap-lost", "reap-protected"]
    for name in names:
        rig.instance(name, state="absent")


@pytest.mark.parametrize("bad", ["../x", "a b", "x;rm", "x" * 64, "UPPER", "$(touch /tmp/pwned)"])
def test_bad_names_are_refused_before_anything_is_made(rig, shop, bad):
    before = (rig.containers(), rig.volumes(), sorted(os.listdir(os.path.join(rig.pool, "instances"))))
    result = rig.instance(bad, template="shop")
    assert result["failed"] and "Invalid instance name" in result["msg"]
    also = rig.instance("fine-name", template=bad)
    assert also["failed"] and "Invalid template name" in also["msg"]
    assert (rig.containers(), rig.volumes(), sorted(os.listdir(os.path.join(rig.pool, "instances")))) == before
    assert not os.path.exists("/tmp/pwned")


def run_with_secret_vars(rig, workdir, label, args, *options):
    """Run myaas_instance from a playbook whose arguments come from a file, as a
    user keeps a password out of argv (e.g. from a vault)."""
    vars_file = os.path.join(workdir, label + ".json")
    with open(os.open(vars_file, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="utf-8") as handle:
        json.dump({"instance_args": dict(args, pool=rig.pool)}, handle)
    playbook = os.path.join(workdir, label + ".yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                     "    - myaas.myaas.myaas_instance: '{{ instance_args }}'\n")
    return subprocess.run(["ansible-playbook", playbook, "-e", "@" + vars_file] + list(options), cwd=ROOT, env=ENV,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


def test_password_is_in_no_failure_output_and_no_process_list(rig, shop, workdir):
    secret = "Sup3rSecretPassw0rdXYZ"
    # A template whose dump makes the account instances use require TLS,
    # which clones do not offer (MyAAS sets the password and unlocks the
    # account, but leaves its REQUIRE clause): every login attempt with the
    # secret is refused, until the failure is reported.
    locked = os.path.join(workdir, "locked.sql")
    with open(locked, "w", encoding="utf-8") as handle:
        handle.write("CREATE TABLE t (id INT);\nCREATE USER 'dev'@'%' IDENTIFIED BY 'unknown' REQUIRE SSL;\n")
    assert rig.template("locked-dev", locked)["changed"]
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(sh("ps", "-eo", "args", "ww", check=False).stdout)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ok = run_with_secret_vars(rig, workdir, "ok", dict(name="secretive", template="shop", password=secret))
        failing = run_with_secret_vars(rig, workdir, "failing", dict(name="secretive-2", template="locked-dev",
                                                                     password=secret, wait_timeout=5), "-vvv")
    finally:
        stop.set()
        watcher.join()
    try:
        assert ok.returncode == 0, ok.stdout[-3000:]
        db = rig.info(name="secretive")["instances"][0]
        assert rig.query(dict(db, user="dev", password=secret), "SELECT 1")[0][0] == 1
        assert failing.returncode != 0 and "did not accept a login" in failing.stdout
        assert "Access denied for user 'dev'" in failing.stdout      # the logins really were attempted
        assert secret not in failing.stdout
        assert len(seen) > 10
        assert not [line for snapshot in seen for line in snapshot.splitlines() if secret in line]
        assert rig.gone("secretive-2")
        secret_file = os.path.join(rig.pool, "instances", "secretive", "secret.json")
        assert oct(os.stat(secret_file).st_mode & 0o777) == "0o600"
        assert secret not in sh("docker", "inspect", db["container"]).stdout
        assert not os.path.exists(os.path.join(rig.pool, "instances", "secretive", "data", "myaas-init.sql"))
    finally:
        rig.instance("secretive", state="absent")
        rig.template("locked-dev", locked, state="absent")


def test_missing_template_is_a_clear_error(rig):
    result = rig.instance("no-template", template="nosuchthing")
    assert result["failed"] and "Template nosuchthing does not exist" in result["msg"]
    assert rig.gone("no-template")


def test_template_imported_for_the_first_time_is_a_clear_error(rig, workdir):
    big = os.path.join(workdir, "big.sql.gz")
    sh(os.path.join(ROOT, ".venv", "bin", "python"), os.path.join(ROOT, "tools", "make_sample_dump.py"),
       "--customers", "40000", "-o", big)
    proc = rig.template_in_background("first", big)
    try:
        rig.wait_for(lambda: rig.containers(role="import", template="first"), timeout=60, what="the import")
        result = rig.instance("too-early", template="first")
        assert result["failed"] and "being imported for the first time" in result["msg"]
        assert rig.gone("too-early")
    finally:
        out = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, out


def test_full_pool_is_a_clear_error(rig, workdir):
    with rig.small_pool(workdir) as pool:
        assert rig.template("tiny", SAMPLE, pool=pool)["changed"]
        free = os.statvfs(pool).f_bavail * os.statvfs(pool).f_frsize
        sh("fallocate", "--length", str(max(free - 20 * 2 ** 20, 2 ** 20)), os.path.join(pool, "filler"))
        result = rig.instance("crowded", template="tiny", pool=pool)
        assert result["failed"] and "is full" in result["msg"], result
        assert not os.path.exists(os.path.join(pool, "instances", "crowded"))
        assert not sh("docker", "ps", "-aq", "--filter", "label=org.myaas.pool=" + pool).stdout.strip()


def _metrics(rig):
    """The pool's metrics file, parsed by prometheus_client's own parser: {(name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families  # pylint: disable=import-outside-toplevel
    files = [name for name in os.listdir(os.path.join(rig.pool, "metrics")) if name.endswith(".prom")]
    assert len(files) == 1, files
    with open(os.path.join(rig.pool, "metrics", files[0]), encoding="utf-8") as handle:
        families = list(text_string_to_metric_families(handle.read()))
    return dict(((sample.name, tuple(sorted((key, value) for key, value in sample.labels.items()
                                            if key != "pool"))), sample.value)
                for family in families for sample in family.samples)


def test_metrics_match_what_myaas_info_says(rig, shop, workdir):
    events = os.path.join(rig.pool, "metrics.json")

    def ready_count():
        with open(events, encoding="utf-8") as handle:
            return json.load(handle).get("ready_seconds", {}).get("count", 0)

    assert not run_module("myaas_reap", {"pool": rig.pool}).get("failed")
    before = _metrics(rig)
    failures = before.get(("myaas_template_import_failures_total", (("template", "shop"),)), 0)
    ready_before = ready_count()
    try:
        made = rig.instance("metrics-a", template="shop", owner="alice")
        assert not made.get("failed"), made
        # Recorded after the module returned, by the process it left behind.
        rig.wait_for(lambda: ready_count() == ready_before + 1, what="the instance's ready time in metrics.json")
        rig.instance("metrics-a", state="stopped")          # its size holds still while both are read
        broken = os.path.join(str(workdir), "broken.sql")
        with open(broken, "w", encoding="utf-8") as handle:
            handle.write("CREATE TABLE broken (;\n")
        assert rig.template("shop", broken)["failed"]
        reaped = run_module("myaas_reap", {"pool": rig.pool})
        assert not reaped.get("failed") and not reaped.get("warnings"), reaped
        metrics, info, now = _metrics(rig), rig.info(), time.time()
    finally:
        rig.instance("metrics-a", state="absent")
    mine = [instance for instance in info["instances"] if instance["name"] == "metrics-a"][0]
    assert mine["status"] == "exited" and mine["exclusive_bytes"] > 0
    labels = (("instance_name", "metrics-a"), ("owner", "alice"), ("template", "shop"))
    assert metrics[("myaas_instance_exclusive_bytes", labels)] == mine["exclusive_bytes"]
    counted = {}
    for instance in info["instances"]:
        key = (("owner", instance["owner"]), ("status", instance["status"]), ("template", instance["template"]))
        counted[key] = counted.get(key, 0) + 1
    assert dict((labels, value) for (name, labels), value in metrics.items() if name == "myaas_instances") == counted
    # The failed import counted once; the template still serves the generation whose age and duration are shown.
    assert metrics[("myaas_template_import_failures_total", (("template", "shop"),))] == failures + 1
    template = [entry for entry in info["templates"] if entry["name"] == "shop"][0]
    meta = json.loads(rig.template_json("shop"))
    assert template["generation"] == shop["generation"]
    age = metrics[("myaas_template_generation_age_seconds", (("template", "shop"),))]
    assert abs(age - (now - parse_iso(template["imported_at"]))) < 120
    assert metrics[("myaas_template_import_duration_seconds", (("template", "shop"),))] == meta["import_seconds"]
    assert metrics[("myaas_template_import_last_success_timestamp_seconds", (("template", "shop"),))] \
        >= parse_iso(template["imported_at"])
    assert metrics[("myaas_instance_ready_seconds_count", ())] == ready_before + 1
    assert metrics[("myaas_instance_ready_seconds_bucket", (("le", "+Inf"),))] == ready_before + 1
    assert metrics[("myaas_instance_ready_seconds_sum", ())] >= made["instance"]["ready_seconds"]
    stat = os.statvfs(rig.pool)
    assert metrics[("myaas_pool_size_bytes", ())] == stat.f_blocks * stat.f_frsize
    assert 0 < metrics[("myaas_pool_free_bytes", ())] <= stat.f_blocks * stat.f_frsize


@pytest.fixture(scope="module")
def shop_quota(rig):
    """The sample with its tables in the system tablespace: the layout whose clones take quotas."""
    made = rig.template("shop-quota", SAMPLE, tuning=SYSTEM_TABLESPACE)
    assert made["changed"] and not made.get("failed"), made
    return made["template"]


def test_a_runaway_write_stops_at_the_instance_quota(rig, shop, shop_quota):
    file_per_table_is_refused(rig, "shop", "quota-refused")
    runaway_write_is_stopped(rig, "shop-quota", "customers", CUSTOMERS)


def test_an_owners_budget_holds_the_sum_of_their_quotas(rig, shop_quota):
    budget = dict(template="shop-quota", owner="bob", owner_max_bytes="200M")
    try:
        assert not rig.instance("budget-1", max_bytes="128M", **budget).get("failed")
        refused = rig.instance("budget-2", max_bytes="128M", **budget)
        assert refused["failed"] and "bob's disk budget of 200.00 MB" in refused["msg"], refused
        assert "72.00 MB left, the rest held by budget-1 (128.00 MB)" in refused["msg"], refused["msg"]
        assert rig.gone("budget-2")
        unsized = rig.instance("budget-2", **budget)
        assert unsized["failed"] and "give the instance a quota, max_bytes, of at most 72.00 MB" in unsized["msg"]
        assert not rig.instance("budget-2", max_bytes="64M", **budget).get("failed")
        # A quota that grows into what another instance holds is refused too.
        grown = rig.instance("budget-2", max_bytes="100M", owner_max_bytes="200M")
        assert grown["failed"] and "disk budget" in grown["msg"], grown
        listed = dict((entry["name"], entry["max_bytes"]) for entry in rig.info()["instances"])
        assert (listed["budget-1"], listed["budget-2"]) == (128 * 2 ** 20, 64 * 2 ** 20)
        # The server caps the data itself: a new quota is a clean restart with the new cap.
        container = rig.info(name="budget-1")["instances"][0]["container"]
        before = cap_argument(container)
        lowered = rig.instance("budget-1", max_bytes="96M", owner_max_bytes="200M")
        assert lowered["changed"] and not lowered.get("failed"), lowered
        assert int(cap_argument(container)) == int(before) - 32
        assert not get_engine("mariadb").crash_recovery(sh("docker", "logs", container).stdout)
        assert rig.query(dict(lowered["instance"], password=lowered["instance"]["password"]),
                         "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
        # A stopped instance gets its new cap too, and stays stopped until it is started.
        stopped = rig.info(name="budget-2")["instances"][0]["container"]
        assert rig.instance("budget-2", state="stopped")["changed"]
        raised = rig.instance("budget-2", state="stopped", max_bytes="72M", owner_max_bytes="200M")
        assert raised["changed"] and not raised.get("failed"), raised
        assert rig.info(name="budget-2")["instances"][0]["status"] in ("created", "exited")   # not running
        assert int(cap_argument(stopped)) - int(before) == 72 - 128
        assert not rig.instance("budget-2", state="started").get("failed")
        # Lifted (no budget asked for here): the server runs with no cap.
        lifted = rig.instance("budget-2", max_bytes="0")
        assert lifted["changed"] and lifted["instance"]["max_bytes"] is None, lifted
        assert cap_argument(stopped) is None
        # A bookmark would share its data and let it write its quota again.
        saved = rig.instance("budget-1", state="saved", bookmark="before")
        assert saved["failed"] and "would share its data" in saved["msg"], saved
    finally:
        rig.instance("budget-1", state="absent")
        rig.instance("budget-2", state="absent")
        quotas_off(rig)
