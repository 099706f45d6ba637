"""A production-like MySQL (or MariaDB) server of the tests' own, and dumps written by its own dump tool.

The server runs on the official image with its official entrypoint, with
the binary log (MySQL: GTIDs too) and the event scheduler on, as production
servers run; its dumps therefore carry what real ones carry (GTID_PURGED,
SQL_LOG_BIN, version comments, DEFINERs, events).
"""

import os
import subprocess
import time
import uuid

LABEL = "org.myaas.test=mysql-source"
# Production's server: the official image of the version MyAAS defaults to.
SOURCE_IMAGE = "mysql:9.7"
# What differs between the two servers where the tests meet them.
FLAVOURS = {
    "mysql": {"client": "mysql", "dump": ["mysqldump", "--set-gtid-purged=ON"],
              "env": "MYSQL_ALLOW_EMPTY_PASSWORD=yes",
              "args": ["--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--skip-innodb-numa-interleave"]},
    "mariadb": {"client": "mariadb", "dump": ["mariadb-dump"], "env": "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=yes",
                "args": []},
}
FEATURES_SQL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mysql_features.sql")


def _run(argv, stdin=None, check=True):
    proc = subprocess.run(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if check and proc.returncode:
        error = proc.stderr.decode("utf-8", "replace")[-2000:]
        raise AssertionError("%s failed (%d): %s" % (" ".join(argv[:4]), proc.returncode, error))
    return proc


class SourceServer:
    """``with SourceServer(image) as source:`` a running server, removed on exit."""

    def __init__(self, image, engine="mysql"):
        self.image = image
        self.flavour = FLAVOURS[engine]
        self.client = self.flavour["client"]
        self.name = "myaas-test-%s-source-%s" % (engine, uuid.uuid4().hex[:8])

    def __enter__(self):
        # No network: the tests talk to it through `docker exec` and the local socket.
        _run(["docker", "run", "--detach", "--name", self.name, "--label", LABEL, "--network", "none",
              "--env", self.flavour["env"], self.image, "--log-bin=binlog", "--server-id=7", "--event-scheduler=ON"]
             + self.flavour["args"])
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        subprocess.run(["docker", "rm", "--force", "--volumes", self.name], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)

    def _wait_ready(self, timeout=180):
        # The entrypoint first runs a temporary server without networking;
        # the real one logs "ready for connections" with port 3306.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = _run(["docker", "logs", self.name], check=False)
            text = (log.stdout + log.stderr).decode("utf-8", "replace")
            if "ready for connections" in text and "port: 3306" in text.split("ready for connections")[-1]:
                probe = ["docker", "exec", self.name, self.client, "-uroot", "-e", "SELECT 1"]
                if _run(probe, check=False).returncode == 0:
                    return
            time.sleep(0.5)
        raise AssertionError("the source server did not start: %s" % text[-3000:])

    def restart(self):
        """A clean restart: the server's shutdown checkpoint leaves no redo to replay before it."""
        _run(["docker", "restart", self.name])
        self._wait_ready()

    def load(self, path, database=None):
        with open(path, "rb") as handle:
            _run(["docker", "exec", "--interactive", self.name, self.client, "-uroot"]
                 + ([database] if database else []), stdin=handle)

    def query(self, sql, database=None):
        """Rows of ``sql`` as lists of strings."""
        out = _run(["docker", "exec", self.name, self.client, "-uroot", "--batch", "--skip-column-names", "-e", sql]
                   + ([database] if database else [])).stdout.decode("utf-8")
        return [line.split("\t") for line in out.splitlines()]

    def row_counts(self, databases):
        """{db.table: rows} of every base table, counted exactly."""
        counts = {}
        for database in databases:
            for (table,) in self.query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' "
                                       "AND TABLE_TYPE = 'BASE TABLE'" % database):
                rows = self.query("SELECT COUNT(*) FROM `%s`.`%s`" % (database, table))
                counts["%s.%s" % (database, table)] = int(rows[0][0])
        return counts

    def dump(self, path, databases=None):
        """A dump of ``databases`` (None: --all-databases, the mysql schema and its accounts too) as
        production backups take it (GTIDs, routines, events, triggers)."""
        which = ["--databases"] + list(databases) if databases else ["--all-databases"]
        with open(path, "wb") as out:
            proc = subprocess.run(["docker", "exec", self.name] + self.flavour["dump"] + [
                "-uroot", "--single-transaction", "--routines", "--events", "--triggers"] + which,
                stdout=out, stderr=subprocess.PIPE, check=False)
        if proc.returncode:
            raise AssertionError("the dump failed: %s" % proc.stderr.decode("utf-8", "replace")[-2000:])
        return path
