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
        _wait_pg(name)
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


# A database of ~100 MB that changes a little between a full and an incremental backup.
BIG_ROWS = 400000
CHANGE = "INSERT INTO big VALUES (%d, 'new row'); UPDATE big SET pad = 'changed' WHERE id <= 20" % (BIG_ROWS + 1)
SECOND_CHANGE = "INSERT INTO big VALUES (%d, 'second night'); DELETE FROM big WHERE id = 1" % (BIG_ROWS + 2)


def mariadb_incremental(workdir):
    """(full backup folder, [two nights' incremental xbstream files], [{table: rows} after each night])."""
    with SourceServer("mariadb:10.11", engine="mariadb") as source:
        source.query("CREATE DATABASE shop")
        source.query("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200)); INSERT INTO big "
                     "SELECT seq, REPEAT('x', 200) FROM seq_1_to_%d; SET GLOBAL innodb_max_purge_lag_wait = 0"
                     % BIG_ROWS, "shop")
        # As on a server that has been running a while: the bulk load is behind a checkpoint, so backups carry
        # only the redo log written since (a backup copies the log from the last checkpoint on).
        source.restart()
        _sh("docker", "exec", source.name, "mariadb-backup", "--backup", "--user=root", "--target-dir=/tmp/full")
        full = os.path.join(workdir, "mariadb-full")
        shutil.rmtree(full, ignore_errors=True)
        _sh("docker", "cp", "%s:/tmp/full" % source.name, full)
        incrementals, counts, basedir = [], [], "/tmp/full"
        for night, change in enumerate((CHANGE, SECOND_CHANGE)):
            source.query(change, "shop")
            path = os.path.join(workdir, "mariadb-incremental-%d.xbstream" % night)
            with open(path, "wb") as out:
                subprocess.run(["docker", "exec", source.name, "mariadb-backup", "--backup", "--user=root",
                                "--stream=xbstream", "--extra-lsndir=/tmp/inc%d" % night,
                                "--target-dir=/tmp/inc%d" % night, "--incremental-basedir=" + basedir],
                               stdout=out, stderr=subprocess.DEVNULL, check=True)
            basedir = "/tmp/inc%d" % night
            incrementals.append(path)
            counts.append(source.row_counts(["shop"]))
    return full, incrementals, counts


def postgresql_incremental(workdir):
    """(full backup folder, [two nights' incremental backup folders], [{table: rows} after each night])."""
    name = "myaas-test-pg-source-%s" % uuid.uuid4().hex[:8]
    _sh("docker", "run", "--detach", "--name", name, "--label", "org.myaas.test=pg-source", "--network", "none",
        "--env", "POSTGRES_PASSWORD=production-secret", "postgres:17", "-c", "wal_level=replica",
        "-c", "summarize_wal=on")
    try:
        _wait_pg(name)
        psql = ["docker", "exec", name, "psql", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-d", "shop"]
        _sh("docker", "exec", name, "psql", "-U", "postgres", "-q", "-c", "CREATE DATABASE shop")
        # Vacuumed, as production's tables are by autovacuum: the template's
        # first reads set no hint bits, so they rewrite no page.
        _sh(*(psql + ["-c", "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, %d) g"
                      % BIG_ROWS, "-c", "ALTER TABLE big ADD PRIMARY KEY (id)", "-c", "VACUUM (FREEZE, ANALYZE)"]))
        _sh("docker", "exec", name, "pg_basebackup", "-U", "postgres", "-D", "/tmp/full", "-Ft", "-X", "stream",
            "-z", "--checkpoint=fast")
        backups, counts, previous = ["full"], [], "/tmp/full"
        for night, change in enumerate((CHANGE, SECOND_CHANGE)):
            _sh(*(psql + sum((["-c", statement] for statement in change.split("; ")), []) + ["-c", "VACUUM"]))
            _sh("docker", "exec", name, "pg_basebackup", "-U", "postgres", "-D", "/tmp/inc%d" % night, "-Ft", "-X",
                "stream", "-z", "--checkpoint=fast", "--incremental=%s/backup_manifest" % previous)
            previous = "/tmp/inc%d" % night
            backups.append("inc%d" % night)
            counts.append({"public.big": int(_sh(*(psql + ["-At", "-c", "SELECT count(*) FROM big"])).strip())})
        paths = []
        for backup in backups:
            path = os.path.join(workdir, "pg-%s" % backup)
            shutil.rmtree(path, ignore_errors=True)
            _sh("docker", "cp", "%s:/tmp/%s" % (name, backup), path)
            paths.append(path)
    finally:
        subprocess.run(["docker", "rm", "--force", "--volumes", name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
    return paths[0], paths[1:], counts


def _wait_pg(name):
    deadline = time.monotonic() + 120
    while "PostgreSQL init process complete" not in subprocess.run(
            ["docker", "logs", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            check=False).stdout.decode("utf-8", "replace") or subprocess.run(
            ["docker", "exec", name, "pg_isready", "-U", "postgres", "-h", "/var/run/postgresql"],
            stdout=subprocess.DEVNULL, check=False).returncode != 0:
        assert time.monotonic() < deadline, "the PostgreSQL source did not start"
        time.sleep(0.5)
