"""Physical backups taken by each engine's own tool from a live production-like server of the tests' own.

MariaDB and MySQL run as mysql_source.SourceServer (the official image and
entrypoint, binary log on); PostgreSQL as the official image with
wal_level=replica. Each server gets the personal dump, then some of
production's life (updates and deletes, so that old row versions and freed
space exist in its files), and is backed up while it runs:

- MariaDB: ``mariadb-backup --backup --stream=xbstream``, compressed with zstd;
- PostgreSQL: ``pg_basebackup -Ft -X stream -z`` (base.tar.gz, pg_wal.tar.gz, backup_manifest);
- MySQL: ``CLONE LOCAL DATA DIRECTORY``, packed as a tar.
"""

import os
import shutil
import subprocess
import time
import uuid

from mysql_source import SourceServer
from personal_dump import write

# Production's life before the backup, in both dialects.
HISTORY = "UPDATE customer SET city = 'Hamburg' WHERE id % 5 = 0; DELETE FROM orders WHERE id % 7 = 0;"


def _sh(*argv, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False, **kwargs)
    if proc.returncode:
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv[:5]), proc.returncode,
                                                     proc.stderr.decode("utf-8", "replace")[-2000:]))
    return proc.stdout.decode("utf-8", "replace")


def mysql_family(engine, image, workdir, customers):
    """(backup path, {table: rows}, source server version) of a MariaDB or MySQL server holding the dump."""
    dump = write(os.path.join(workdir, "personal-%s.sql" % engine), "mysql", customers)
    with SourceServer(image, engine=engine) as source:
        source.query("CREATE DATABASE shop")
        source.load(dump, "shop")
        source.query(HISTORY, "shop")
        counts = source.row_counts(["shop"])
        version = source.query("SELECT VERSION()")[0][0]
        if engine == "mariadb":
            path = os.path.join(workdir, "shop-%s.xbstream.zst" % engine)
            with open(path, "wb") as out:
                backup = subprocess.Popen(["docker", "exec", source.name, "mariadb-backup", "--backup",
                                           "--stream=xbstream", "--user=root", "--target-dir=/tmp"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                zstd = subprocess.run(["zstd", "--quiet", "-c"], stdin=backup.stdout, stdout=out, check=True)
                backup.stdout.close()
                assert backup.wait() == 0 and zstd.returncode == 0, backup.stderr.read()[-2000:]
        else:
            source.query("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
            source.query("CLONE LOCAL DATA DIRECTORY = '/tmp/clone'")
            path = os.path.join(workdir, "shop-mysql-clone.tar")
            with open(path, "wb") as out:
                subprocess.run(["docker", "exec", source.name, "tar", "-C", "/tmp/clone", "-cf", "-", "."],
                               stdout=out, check=True)
    return path, counts, version


def postgresql(image, workdir, customers):
    """(backup folder, {schema.table: rows}, server version) of a PostgreSQL server holding the dump."""
    dump = write(os.path.join(workdir, "personal-pg.sql"), "postgresql", customers)
    name = "myaas-test-pg-source-%s" % uuid.uuid4().hex[:8]
    _sh("docker", "run", "--detach", "--name", name, "--label", "org.myaas.test=pg-source", "--network", "none",
        "--env", "POSTGRES_PASSWORD=production-secret", image, "-c", "wal_level=replica")
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["docker", "exec", name, "pg_isready", "-U", "postgres", "-h", "/var/run/postgresql"],
                             stdout=subprocess.DEVNULL, check=False).returncode != 0 or \
                "PostgreSQL init process complete" not in subprocess.run(
                    ["docker", "logs", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    check=False).stdout.decode("utf-8", "replace"):
            assert time.monotonic() < deadline, "the PostgreSQL source did not start"
            time.sleep(0.5)
        psql = ["docker", "exec", "--interactive", name, "psql", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
        _sh(*psql, "-c", "CREATE DATABASE shop")
        with open(dump, "rb") as handle:
            _sh(*(psql + ["-d", "shop"]), stdin=handle)
        _sh(*(psql + ["-d", "shop", "-c", HISTORY]))
        counts = {}
        for table in ("audit_log", "customer", "orders", "product"):
            out = _sh(*(psql + ["-d", "shop", "-At", "-c", "SELECT count(*) FROM %s" % table]))
            counts["public.%s" % table] = int(out.strip())
        version = _sh(*(psql + ["-At", "-c", "SHOW server_version"])).strip()
        _sh("docker", "exec", name, "pg_basebackup", "-U", "postgres", "-D", "/tmp/backup", "-Ft", "-X", "stream",
            "-z", "--checkpoint=fast")
        path = os.path.join(workdir, "shop-pg-basebackup")
        shutil.rmtree(path, ignore_errors=True)
        _sh("docker", "cp", "%s:/tmp/backup" % name, path)
    finally:
        subprocess.run(["docker", "rm", "--force", "--volumes", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return path, counts, version
