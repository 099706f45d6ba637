"""The real rig for integration tests: a loop-file btrfs pool of its own, dockerd
and the offline-built MariaDB image, all made by the host role itself.

Tests run on pytest-xdist workers (``-n``), each with a rig of its own on the
one dockerd; a test that restarts dockerd runs alone (host_turns.py).

What a worker creates is removed at its end: containers and volumes labelled
with its pool, the pool's mount (its loop device goes with it) and files. A
dockerd that was not running before the session is stopped again once every
worker is done.
"""

import json
import os
import subprocess
import time

import pytest

import host_turns
from mysql_source import FEATURES_SQL, SOURCE_IMAGE, SourceServer
from rig import ENV, PG_CUSTOMERS, ROOT, docker_is_up, ensure_official_images, provision, sh, teardown


def _is_worker(config):
    return hasattr(config, "workerinput")


def pytest_configure(config):
    if not _is_worker(config):
        config.myaas_dockerd_was_up = docker_is_up()


def pytest_unconfigure(config):
    # In the controller, after every worker has ended (or in the only process).
    if not _is_worker(config) and not getattr(config, "myaas_dockerd_was_up", True):
        subprocess.run([os.path.join(ROOT, "tests", "stop_dockerd.sh")], check=False)


# The modules that take longest, longest first (seconds of setup, calls and
# teardown on two workers, measured 2026-12-07): workers take a module at a
# time and the session ends when the last one does, so the long ones start
# first and the short ones fill in.
LONGEST_FIRST = ["test_images",             # 750
                 "test_template",           # 630
                 "test_branches",           # 530
                 "test_cases_postgresql",   # 470
                 "test_instance",           # 450
                 "test_masking",            # 450
                 "test_physical",           # 410
                 "test_faults",             # 360
                 "test_postgresql",         # 300
                 "test_incremental",        # 300
                 "test_upgrade",            # 290, more with Sakila and Pagila
                 "test_cases_mariadb",      # 290
                 "test_several_hosts",      # 260
                 "test_mysql",              # 250
                 "test_warm",               # 160
                 "test_host_role",          # 130
                 "test_shipping"]           # 130


def pytest_collection_modifyitems(items):
    def rank(item):
        module = item.module.__name__ if item.module else ""
        if module in LONGEST_FIRST:
            return LONGEST_FIRST.index(module)
        return len(LONGEST_FIRST) + (1 if "tests/unit" in str(item.path) else 0)
    items.sort(key=rank)      # stable: a module's own order is kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item):
    # Around setup, call and teardown: module fixtures are made and removed
    # within a test's turn too. (xdist calls this hook for unit tests as well.)
    if "tests/integration" not in str(item.path):
        yield
        return
    with host_turns.turn(whole_host=item.get_closest_marker("dockerd_restart") is not None) as before:
        item.myaas_running_before = before
        yield


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    # After the test's own fixtures: a failure here is the test's teardown error.
    before = getattr(item, "myaas_running_before", None)
    if before is not None:
        host_turns.bring_back(before)


def _port_range(worker_id):
    """This worker's slice of the default port range, so that workers never pick the same port.

    Ports are also kept apart across pools by MyAAS itself, but an instance
    being reset holds its port only in its own pool's metadata while its
    container is gone.
    """
    if not worker_id.startswith("gw"):
        return None
    count, index = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), int(worker_id[2:])
    low, high = 13306, 13999
    width = (high - low + 1) // count
    return "%d-%d" % (low + index * width, low + (index + 1) * width - 1)


@pytest.fixture(scope="session")
def rig(worker_id):
    ports = _port_range(worker_id)
    if ports:
        # Every module run of this worker (through `ansible`, on this host) takes it.
        ENV["MYAAS_PORT_RANGE"] = ports
    with host_turns.provisioning():
        the_rig, _dockerd_was_up = provision()
        try:
            assert the_rig.provision.returncode == 0, the_rig.provision.stdout[-5000:]
            ensure_official_images()
        except BaseException:
            teardown(the_rig, dockerd_was_up=True)
            raise
    try:
        yield the_rig
    finally:
        # dockerd is stopped by the controller, once every worker is done.
        teardown(the_rig, dockerd_was_up=True)


@pytest.fixture(scope="session")
def shop_sql(rig):
    """The bundled sample, decompressed once."""
    path = os.path.join(rig.base, "shop.sql")
    with open(path, "wb") as out:
        subprocess.run(["gzip", "-dc", os.path.join(ROOT, "samples", "shop.sql.gz")], stdout=out, check=True)
    return path


@pytest.fixture(scope="session")
def pg_sql(rig):
    """A PostgreSQL dump of the sample shop, made by the sample generator."""
    path = os.path.join(rig.base, "shop-pg.sql")
    sh(os.path.join(ROOT, ".venv", "bin", "python"), os.path.join(ROOT, "tools", "make_sample_dump.py"),
       "--dialect", "postgresql", "--customers", str(PG_CUSTOMERS), "-o", path)
    return path


@pytest.fixture(scope="session")
def mysql_dump(rig, shop_sql, tmp_path_factory, request):  # pylint: disable=unused-argument
    """The sample shop and MySQL-only features, dumped by mysqldump from a GTID server of its own.

    Returns (path, {db.table: rows} as the source counted them, source emails of app.member).
    Made once per session: the first worker that needs it makes it in the
    folder all workers share, the others read it there.
    """
    shared = tmp_path_factory.getbasetemp()
    if _is_worker(request.config):
        shared = shared.parent
    with host_turns.locked(str(shared / "mysql-shop.lock")):
        made = shared / "mysql-shop.json"
        if not made.exists():
            made.write_text(json.dumps(_dump_mysql_shop(shop_sql, str(shared / "mysql-shop.sql"))))
        path, counts, emails = json.loads(made.read_text())
    return path, counts, emails


def _dump_mysql_shop(shop_sql, path):
    with SourceServer(SOURCE_IMAGE) as source:
        source.load(FEATURES_SQL)
        source.query("CREATE DATABASE shop")
        source.load(shop_sql, "shop")
        # Production's event has fired before the backup: its table is not empty.
        deadline = time.monotonic() + 30
        while int(source.query("SELECT COUNT(*) FROM app.event_log")[0][0]) == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        # Stopped so that the counts below are the dump's; the event itself stays enabled.
        source.query("SET GLOBAL event_scheduler = OFF")
        path = source.dump(path, ["shop", "app"])
        counts = source.row_counts(["shop", "app"])
        emails = [row[0] for row in source.query("SELECT email FROM app.member ORDER BY id")]
    return path, counts, emails


@pytest.fixture
def workdir(rig, request):
    test = "%s-%s" % (request.module.__name__, request.node.name)
    path = os.path.join(rig.base, "work", test.replace("[", "-").replace("]", ""))
    os.makedirs(path)
    return path
