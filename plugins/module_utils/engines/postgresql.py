# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: the official `postgres` image, MyAAS's offline image, any image with postgres."""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.base import Engine, shell_join, share_of

SOCKET_DIR = "/tmp"


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def quote_ident(value):
    return '"' + value.replace('"', '""') + '"'


class PostgreSQL(Engine):
    name = "postgresql"
    default_image = "postgres:15"
    datadir = "/var/lib/postgresql/data"
    port = 5432
    dsn_scheme = "postgresql"
    account = "postgres"
    default_database = "postgres"
    # SIGINT is PostgreSQL's fast shutdown: it ends sessions, writes a
    # shutdown checkpoint and marks the cluster "shut down" in its control file.
    stop_signal = "SIGINT"
    credentials_via = "local_client"
    own_schema_re = re.compile(rb"^\s*(CREATE\s+DATABASE\s|\\connect\s)", re.IGNORECASE | re.MULTILINE)
    schema_switch_re = re.compile(rb"^\\connect\s+(?:-reuse-previous=\S+\s+)?\"?(?:dbname=')?([^\"'\s]+)",
                                  re.MULTILINE)
    archive_magic = {b"PGDMP": "pg_custom"}
    error_re = re.compile(r"(^ERROR|: ERROR: |^pg_restore: error)")
    # initdb gives the superuser no password: local logins are by OS user
    # (peer), and every TCP login needs a password (scram-sha-256), which
    # only the instance's own account has.
    launcher = """set -eu
datadir=$1; shift
for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/postgres" ]; then PATH=$bin:$PATH; fi
done
export PATH
if [ ! -s "$datadir/PG_VERSION" ]; then
    initdb --pgdata="$datadir" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \\
        --auth-local=peer --auth-host=scram-sha-256 >&2
    echo "host all all all scram-sha-256" >> "$datadir/pg_hba.conf"
fi
exec postgres -D "$datadir" "$@"
"""
    # Loading needs no crash safety: a failed import is thrown away, and the
    # import ends with a clean shutdown. Given on the command line, none of
    # this reaches postgresql.conf, so clones never see it.
    bulk_args = (
        "-c", "fsync=off",
        "-c", "full_page_writes=off",
        "-c", "synchronous_commit=off",
        "-c", "wal_level=minimal",
        "-c", "max_wal_senders=0",
        "-c", "archive_mode=off",
        "-c", "autovacuum=off",
        "-c", "checkpoint_timeout=1h",
        "-c", "max_wal_size=8GB",
    )

    def server_args(self):
        return ["-c", "listen_addresses=*", "-c", "port=%d" % self.port, "-c", "unix_socket_directories=" + SOCKET_DIR]

    def bulk_load_args(self, tuning, memory_bytes):
        # Index builds after COPY use maintenance_work_mem; shared buffers
        # hold the tables being loaded.
        settings = {"shared_buffers": share_of(memory_bytes, 0.125, 128, 4096) + "B",
                    "maintenance_work_mem": share_of(memory_bytes, 0.0625, 64, 2048) + "B"}
        settings.update(tuning or {})
        args = list(self.bulk_args)
        for key in sorted(settings):
            args += ["-c", "%s=%s" % (key, settings[key])]
        return args

    def clone_args(self):
        return ["-c", "shared_buffers=32MB", "-c", "max_connections=50"]

    def local_client(self, database=None):
        return ["psql", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--host", SOCKET_DIR,
                "--username", "postgres", "--dbname", database or "postgres"]

    def query_argv(self, sql, database=None):
        return self.local_client(database) + ["--tuples-only", "--no-align", "--field-separator", "\t",
                                              "--command", sql]

    def restore_argv(self, fmt, database, path, jobs):
        return ["pg_restore", "--exit-on-error", "--no-owner", "--host", SOCKET_DIR, "--username", "postgres",
                "--jobs", str(jobs), "--dbname", database or "postgres"] + ([] if database else ["--create"]) + [path]

    def create_database_sql(self, database):
        return "CREATE DATABASE %s;\n" % quote_ident(database)

    def list_databases_sql(self):
        # oid order is creation order: the dump's first database comes first.
        return "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY oid"

    def before_shutdown_sql(self):
        return "CHECKPOINT;\n"

    def clean_shutdown(self, log_text):
        # The last line: an instance's log holds every run since it was made.
        lines = [line for line in log_text.splitlines() if line.strip()]
        return bool(lines) and "database system is shut down" in lines[-1]

    def crash_recovery(self, log_text):
        return "not properly shut down" in log_text or "redo starts at" in log_text

    def init_sql(self, user, password, database):
        role = quote_ident(user)
        lines = [
            # Templates made before MyAAS started servers itself carry the
            # official entrypoint's superuser password; no clone keeps it.
            "ALTER ROLE postgres WITH PASSWORD NULL;",
            "SELECT 'CREATE ROLE %s' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)\\gexec"
            % (role.replace("'", "''"), quote_literal(user)),
            "ALTER ROLE %s WITH LOGIN SUPERUSER PASSWORD %s;" % (role, quote_literal(password)),
        ]
        if database:
            lines.append("SELECT 'CREATE DATABASE %s' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = %s)"
                         "\\gexec" % (quote_ident(database).replace("'", "''"), quote_literal(database)))
        return "\n".join(lines) + "\n"

    def lock_accounts_sql(self, users):
        # A branch's data holds the role of the instance it was made from: it
        # keeps what it owns, but logs in no more.
        if not users:
            return ""
        return ("SELECT format('ALTER ROLE %%I NOLOGIN PASSWORD NULL', rolname) FROM pg_roles "
                "WHERE rolname IN (%s)\\gexec\n" % ", ".join(quote_literal(user) for user in users))

    def connect(self, host, port, user, password, database, timeout):
        import psycopg2  # pylint: disable=import-outside-toplevel
        return psycopg2.connect(host=host, port=port, user=user, password=password,
                                dbname=database or "postgres", connect_timeout=max(1, int(timeout)))

    def client_command(self, user, password, host, port, database):
        return shell_join(["psql", self.dsn(user, password, host, port, database or self.default_database)])
