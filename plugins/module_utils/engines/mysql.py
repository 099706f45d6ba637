# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL 8.4 and 9.x: the official `mysql` image, MyAAS's offline image, any image with mysqld.

Tested on MySQL 9.7 (the official image and the offline one); 8.4 shares
every option and statement used here. MySQL differs from MariaDB where a
MyAAS server meets it: no unix_socket authentication (root is made without a
password and locked before the template is frozen), the event scheduler is
on by default, binary logging is on by default, GTIDs in dumps, and the
server's last log line after its shutdown is "MySQL Server - end.".
"""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.mariadb import MariaDB

# The redo log of clones (and of the frozen template): what a clone writes
# anew at each start, and a checkpoint every few MiB is no cost to a
# developer's copy.
CLONE_REDO_CAPACITY = "--innodb-redo-log-capacity=16777216"
# "$1" is the stopped datadir.
_RENEW_REDO = r"""set -eu
datadir=$1
rm -f "$datadir"/#innodb_redo/*
log=$(mktemp)
mysqld --no-defaults --datadir="$datadir" --socket=/tmp/myaas-redo.sock --skip-networking --mysqlx=OFF \
    --disable-log-bin --event-scheduler=OFF --innodb-fast-shutdown=0 --log-error="$log" %s &
pid=$!
tries=0
until grep -q "ready for connections" "$log"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 1200 ] || ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid" || { cat "$log" >&2; exit 1; }
grep -q "Shutdown complete" "$log" || { cat "$log" >&2; exit 1; }
rm -f "$log"
"""
# What follows "Shutdown complete" in a cleanly stopped server's log.
_CLEAN_END_RE = re.compile(r"mysqld: Shutdown complete \(mysqld [^)]*\)[^\n]*(\n[^\n]*MySQL Server - end\.)?\s*$")


class MySQL(MariaDB):
    name = "mysql"
    # root@localhost is locked before a template is frozen (before_shutdown_sql).
    local_superuser_in_clones = False
    # Tables of engines that write beside the datadir's capped system
    # tablespace (MySQL has no enforce_storage_engine). Temporary tables,
    # and internal ones too large for memory, go to session temporary
    # tablespaces that nothing caps: out of the datadir, into the container.
    quota_engine_args = ("--disabled-storage-engines=MyISAM,MRG_MYISAM,CSV,ARCHIVE",
                         "--innodb-temp-tablespaces-dir=/tmp")
    default_image = "mysql:9.7"
    client = "mysql"
    # Debian's builds interleave the buffer pool over NUMA nodes by default,
    # which a container may not do (mbind fails, once per buffer pool chunk).
    # InnoDB reports a crash recovery only as a note: verbosity 3 logs notes.
    common_args = ("--skip-innodb-numa-interleave", "--log-error-verbosity=3")
    # --initialize-insecure leaves root@localhost without a password for the
    # import's local client; it is locked before the template is frozen.
    launcher = """set -eu
datadir=$1; shift
if [ ! -d "$datadir/mysql" ]; then
    mysqld --no-defaults --initialize-insecure --datadir="$datadir" --skip-innodb-numa-interleave >&2
fi
if [ -f "$datadir/myaas-init.sql" ]; then
    set -- "$@" --init-file="$datadir/myaas-init.sql"
fi
exec mysqld "$@"
"""
    # Events are production's jobs: none fires while a dump loads (MySQL's
    # scheduler is on by default) and none in a developer's clone.
    bulk_args = (
        "--innodb-redo-log-capacity=268435456",
        "--disable-log-bin",
        "--event-scheduler=OFF",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=OFF",
        "--innodb-adaptive-hash-index=OFF",
        "--innodb-stats-persistent=OFF",
        "--max-allowed-packet=1G",
    )

    def server_args(self):
        return [arg for arg in MariaDB.server_args(self) if not arg.startswith("--collation-server")] \
            + ["--collation-server=utf8mb4_0900_ai_ci", "--mysqlx=OFF"]

    def clone_args(self):
        # No binary log: a clone is nobody's replication source, and its
        # writes would be written twice. Rows as large as the template holds
        # (the import took up to 1G) must be rewritable in a clone.
        return ["--innodb-buffer-pool-size=67108864", "--performance-schema=OFF", "--disable-log-bin",
                "--event-scheduler=OFF", self.max_packet, CLONE_REDO_CAPACITY]

    def after_import_script(self):
        # MySQL (8.0.30+) writes its spare redo files anew at every start:
        # every clone, bookmark and branch would own a copy of the whole redo
        # capacity (256 MiB after a bulk load). So the template is frozen with
        # the clones' small capacity: the import's redo files are deleted
        # (mysqld makes new ones when it finds none after a clean stop; this
        # also takes away any that saw masked values), then one start and slow
        # shutdown writes them at the clones' size.
        return _RENEW_REDO % " ".join(list(self.common_args) + [CLONE_REDO_CAPACITY])

    def physical_login_sql(self):
        # Local root with no password, as --initialize-insecure makes it; it
        # is locked again before the template is frozen (before_shutdown_sql).
        return ("CREATE USER IF NOT EXISTS 'root'@'localhost' IDENTIFIED WITH caching_sha2_password BY '';\n"
                "ALTER USER 'root'@'localhost' IDENTIFIED WITH caching_sha2_password BY '' ACCOUNT UNLOCK;\n"
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost' WITH GRANT OPTION;\n")

    # Its own certificates and MyAAS's pid file in /tmp, at every start.
    startup_noise = re.compile(r"CA certificate .* is self signed|Insecure configuration for --pid-file")

    def version_argv(self):
        return ["mysqld", "--version"]

    def upgrade_init_sql(self):
        # The template's root is locked (before_shutdown_sql); the upgrade's
        # checks log in as local root, and the shutdown locks it again.
        return "ALTER USER 'root'@'localhost' ACCOUNT UNLOCK;\n"

    def upgrade_log(self, log_text):
        # "Server upgrade from '80400' to '90700' started." ... "completed.",
        # and the data dictionary's own lines; none when the version is the same.
        return [line.strip() for line in log_text.splitlines() if "[System]" in line and "pgrad" in line]

    def upgrade_commands(self):
        # MySQL 8.0.16 and later upgrade the data dictionary and the system
        # tables at start (--upgrade=AUTO); mysql_upgrade is gone.
        return []

    # MySQL's grant tables are tables (MariaDB's mysql.user is a view over
    # global_priv). Local root without a password is --initialize-insecure's,
    # the import's own; mysql.sys, mysql.session and mysql.infoschema are
    # the server's, locked with a hash that is no password.
    _dump_accounts = (
        "(account_locked = 'N' OR authentication_string <> '') "
        "AND NOT (user = 'root' AND host = 'localhost' AND authentication_string = '') "
        "AND NOT (user IN ('mysql.sys', 'mysql.session', 'mysql.infoschema') AND host = 'localhost')")

    def login_passwords_sql(self):
        return "SELECT CONCAT(user, '@', host) FROM mysql.user WHERE %s ORDER BY 1" % self._dump_accounts

    def remove_passwords_sql(self, accounts):
        if not accounts:
            return ""
        return ("UPDATE mysql.user SET account_locked = 'Y', authentication_string = '' WHERE %s;\n"
                % self._dump_accounts)

    def before_shutdown_sql(self):
        # No clone may offer a password-less root, even on its local socket.
        return "SET GLOBAL innodb_fast_shutdown = 0;\nALTER USER 'root'@'localhost' ACCOUNT LOCK;\n"

    def clean_shutdown(self, log_text):
        # The last lines: an instance's log holds every run since it was made.
        # With innodb_fast_shutdown=0 the server reports completion only after
        # InnoDB's full shutdown.
        return _CLEAN_END_RE.search(log_text) is not None

    def crash_recovery(self, log_text):
        # Every start notes "Crash recovery finished in InnoDB engine"; only
        # a datadir that was not shut down cleanly gets these two.
        return "Database was not shutdown normally" in log_text or "Starting crash recovery" in log_text
