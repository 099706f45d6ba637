# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an engine is: everything that differs between database servers.

An engine adapter states a few properties and builds argv lists and SQL; it
runs nothing itself. The template importer and the instance manager ask it
how to start, probe, feed and stop a server, so a new engine is one new file
plus one line in ``engines.py``.
"""

from __future__ import annotations

import re


class Engine:
    name = ""
    default_image = ""
    datadir = ""            # inside the container
    port = 0                # inside the container
    dsn_scheme = ""
    # Settings used by both import servers and clones (e.g. a redo log size
    # kept equal, so a clone never rewrites its log when it starts).
    common_args = ()
    # The OS user `docker exec` runs local clients as (None: the image's default).
    exec_user = None
    # The signal that makes the server shut down cleanly and completely.
    stop_signal = None
    # How an instance's account is made: "init_file" (a file in the datadir
    # that the server or the image's entrypoint reads at start) or
    # "local_client" (SQL on the local client's stdin once the server answers).
    credentials_via = "init_file"
    init_file = "myaas-init.sql"
    # A dump that matches this (in its first bytes) selects its own schemas and
    # loads as it is; any other is loaded into the template's database.
    own_schema_re = re.compile(rb"^\s*(CREATE\s+DATABASE|USE\s)", re.IGNORECASE | re.MULTILINE)
    # Archive formats the engine restores itself: magic bytes -> format name.
    archive_magic = {}
    # Lines of client output that carry the error (they name the dump's line).
    error_re = re.compile(r"^ERROR")

    def restore_argv(self, fmt, database, path, jobs):
        """argv, run in the container, that restores an archive at ``path``."""
        raise NotImplementedError

    def bulk_load_args(self, tuning, memory_bytes):
        """Server arguments for an import: fast and unsafe, never used by clones.

        ``memory_bytes`` is the host's memory; buffers are sized from it unless
        ``tuning`` says otherwise.
        """
        raise NotImplementedError

    def clone_args(self):
        """Server arguments for an instance."""
        return list(self.common_args)

    def import_env(self):
        """Environment of an import container (no secret)."""
        return {}

    def local_client(self, database=None):
        """argv, run in the container, of a client logged in as the local superuser."""
        raise NotImplementedError

    def ready_probe(self):
        """argv, run in the container, that prints 1 once the real server takes queries.

        Official images initialise a datadir with a temporary server that has
        networking off; it must not be mistaken for the server we started.
        """
        return self.local_client() + ["--execute", "SELECT 1 FROM DUAL WHERE @@skip_networking = 0"]

    def create_database_sql(self, database):
        raise NotImplementedError

    def before_shutdown_sql(self):
        """SQL run before stopping an import server, to make its shutdown complete."""
        return ""

    def clean_shutdown(self, log_text):
        """True if the server log shows a complete, clean shutdown."""
        raise NotImplementedError

    def crash_recovery(self, log_text):
        """True if the server log shows it recovered from an unclean stop."""
        raise NotImplementedError

    def init_sql(self, user, password, database):
        """SQL that creates (or re-keys) an instance's account at server start."""
        raise NotImplementedError

    def connect(self, host, port, user, password, database, timeout):
        """A DB-API connection over TCP as the instance's user (the driver is imported here)."""
        raise NotImplementedError

    def probe_login(self, host, port, user, password, database, timeout):
        """Log in over TCP as the instance's user and run SELECT 1. Raises on failure."""
        connection = self.connect(host, port, user, password, database, timeout)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            return cursor.fetchone()[0] == 1
        finally:
            connection.close()

    def dsn(self, user, password, host, port, database):
        return "%s://%s:%s@%s:%d/%s" % (self.dsn_scheme, user, password, host, port, database)


def quote_sql_string(value):
    """A SQL string literal; backslashes and quotes escaped (MySQL dialect)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_identifier(value):
    return "`" + value.replace("`", "``") + "`"


def share_of(memory_bytes, fraction, low, high):
    """A fraction of the host's memory, in whole MiB, kept within [low, high] MiB: '1024M'."""
    mib = int(memory_bytes * fraction) // 2 ** 20
    return "%dM" % max(low, min(high, mib))
