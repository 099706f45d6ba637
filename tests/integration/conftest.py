"""The real rig for integration tests: a loop-file btrfs pool of its own, dockerd
and the offline-built MariaDB image, all made by the host role itself.

What the session creates is removed at its end: containers and volumes labelled
with its pool, the pool's mount (its loop device goes with it) and files. A
dockerd that was not running before the session is stopped again.
"""

import os
import subprocess
import time

import pytest

from mysql_source import FEATURES_SQL, SOURCE_IMAGE, SourceServer
from rig import PG_CUSTOMERS, ROOT, ensure_official_images, provision, sh, teardown


@pytest.fixture(scope="session")
def rig():
    the_rig, dockerd_was_up = provision()
    try:
        assert the_rig.provision.returncode == 0, the_rig.provision.stdout[-5000:]
        ensure_official_images()
        yield the_rig
    finally:
        teardown(the_rig, dockerd_was_up)


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
def mysql_dump(rig, shop_sql):
    """The sample shop and MySQL-only features, dumped by mysqldump from a GTID server of its own.

    Returns (path, {db.table: rows} as the source counted them, source emails of app.member).
    """
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
        path = source.dump(os.path.join(rig.base, "mysql-shop.sql"), ["shop", "app"])
        counts = source.row_counts(["shop", "app"])
        emails = [row[0] for row in source.query("SELECT email FROM app.member ORDER BY id")]
    return path, counts, emails


@pytest.fixture
def workdir(rig, request):
    test = "%s-%s" % (request.module.__name__, request.node.name)
    path = os.path.join(rig.base, "work", test.replace("[", "-").replace("]", ""))
    os.makedirs(path)
    return path
