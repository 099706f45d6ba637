# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB: the official `mariadb` image, MyAAS's offline image, any image with mariadbd."""

from __future__ import annotations

import glob
import os
import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.base import (
    Engine, quote_identifier, quote_sql_string, shell_join, share_of)

SOCKET = "/tmp/mysqld.sock"
SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
# What a clone with a quota may put in its temporary tablespace (ibtmp1): its
# temporary tables, which are not the developer's data.
QUOTA_TEMP_MIB = 256
_UNKNOWN_COLLATION_RE = re.compile(r"Unknown collation:? '?([A-Za-z0-9_]+)")


class MariaDB(Engine):
    name = "mariadb"
    default_image = "mariadb:10.11"
    datadir = "/var/lib/mysql"
    port = 3306
    dsn_scheme = "mysql"
    account = "mysql"
    client = "mariadb"
    # A mysqldump or mariadb-dump loads on several connections (templates/parallel.py).
    deals_rows = True
    # Local root logs in through the socket (unix_socket authentication), as
    # the OS user root of the container; it has no password and no TCP login.
    exec_user = "root"
    # The redo log: large while a dump loads; a template is frozen with the
    # clones' small one (before_shutdown_sql), so that no clone rewrites it at
    # start and a generation costs the pool only what changed in its data.
    bulk_redo_log = "--innodb-log-file-size=256M"
    clone_redo_log = "--innodb-log-file-size=16M"
    clone_redo_log_bytes = 16 * 2 ** 20
    # mariadb-install-db makes root@localhost and mysql@localhost with socket
    # login only (no password works over TCP), and no anonymous or test accounts.
    launcher = """set -eu
datadir=$1; shift
if [ ! -d "$datadir/mysql" ]; then
    install_db=mariadb-install-db
    command -v "$install_db" >/dev/null || install_db=mysql_install_db
    "$install_db" --no-defaults --datadir="$datadir" --skip-test-db --skip-name-resolve \\
        --auth-root-authentication-method=socket >&2
fi
if [ -f "$datadir/myaas-init.sql" ]; then
    set -- "$@" --init-file="$datadir/myaas-init.sql"
fi
server=mariadbd
command -v "$server" >/dev/null || server=mysqld
exec "$server" "$@"
"""
    # Loading a dump needs none of the durability a live server needs: the
    # import is repeated if anything fails, and ends with a full clean shutdown.
    bulk_args = (
        "--skip-log-bin",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        "--innodb-adaptive-hash-index=0",
        "--skip-innodb-stats-persistent",
        "--max-allowed-packet=1G",
        # Events are production's jobs: none fires while the dump loads.
        "--event-scheduler=OFF",
        bulk_redo_log,
    )
    # What every server MyAAS starts with no network, in a container, logs:
    # about how it runs, not about the data an upgrade report is for.
    # mariadb-install-db's proxy grant names the host it ran on, which
    # --skip-name-resolve ignores in every template.
    startup_noise = re.compile(r"failed to retrieve the MAC address|WSREP: (Failed to guess|Guessing address)|"
                               r"max_open_files|'proxies_priv' entry '@% root@")
    # The largest statement or row a server and its local client take: a
    # limit, not an allocation. Clones get the import's, so that every row a
    # template holds can be read and rewritten in them.
    max_packet = "--max-allowed-packet=1G"

    def server_args(self):
        # --no-defaults first: the image's option files (bind addresses, log
        # files, users) never decide how a MyAAS server runs.
        return ["--no-defaults", "--datadir=" + self.datadir, "--socket=" + SOCKET, "--pid-file=/tmp/mysqld.pid",
                "--port=%d" % self.port, "--bind-address=0.0.0.0", "--skip-name-resolve",
                "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"] + list(self.common_args)

    def bulk_load_args(self, tuning, memory_bytes):
        # A quarter of the host's memory: imports run at night, next to idle clones.
        settings = {"innodb-buffer-pool-size": share_of(memory_bytes, 0.25, 256, 8192)}
        settings.update(dict((key.replace("_", "-"), value) for key, value in (tuning or {}).items()))
        return list(self.bulk_args) + ["--%s=%s" % (key, settings[key]) for key in sorted(settings)]

    def clone_args(self):
        # Small buffers: a developer's clone serves a few queries, and ten of
        # them share one host.
        # Events stay off (production's jobs must not fire in every copy); the
        # instance's user turns them on with SET GLOBAL event_scheduler = ON.
        return ["--innodb-buffer-pool-size=64M", "--performance-schema=0", "--innodb-buffer-pool-load-at-startup=0",
                self.max_packet, "--event-scheduler=OFF", self.clone_redo_log]

    # InnoDB caps one file, the system tablespace (":max:" of its last data
    # file); a table in a file of its own grows without a cap. At a btrfs
    # limit the server's own redo or page writes failed instead of the
    # developer's (measured on 10.11: an abort, or a hang). So max_bytes is the
    # server's own: a clone of a template whose tables are in ibdata1 runs
    # with ibdata1 capped at its size plus max_bytes, and a write past it gets
    # "The table ... is full" while the server goes on.
    quota_engine_args = ("--enforce-storage-engine=InnoDB",)
    system_tablespace = "ibdata1"

    def quota_refusal(self, datadir):
        # Tables of other engines (MyISAM, Aria, CSV) have files of their own
        # too. One listing of the schemas' folders: every clone reads it.
        own = [path for path in glob.glob(os.path.join(glob.escape(datadir), "*", "*.*"))
               if path.rsplit(".", 1)[1] in ("ibd", "MYD", "MAD", "CSV")
               and os.path.basename(os.path.dirname(path)) not in SYSTEM_SCHEMAS]
        if not own:
            return None
        return ("its data keeps %d tables in files of their own (innodb_file_per_table, or another engine than "
                "InnoDB), which the server cannot cap: import the template with tuning: {innodb_file_per_table: 0} "
                "and InnoDB tables, so that they live in the system tablespace, which it can" % len(own))

    def capped_layout_args(self):
        return ["--innodb-file-per-table=0"]

    def quota_base(self, datadir):
        return os.stat(os.path.join(datadir, self.system_tablespace)).st_size

    def quota_args(self, max_bytes, base_bytes):
        # New tables go to the capped file too; the stated first size is
        # InnoDB's minimum for a larger existing file that autoextends.
        cap_mib = -(-(base_bytes + max_bytes) // 2 ** 20)
        return ["--innodb-file-per-table=0",
                "--innodb-data-file-path=%s:12M:autoextend:max:%dM" % (self.system_tablespace, cap_mib),
                "--innodb-temp-data-file-path=ibtmp1:12M:autoextend:max:%dM" % QUOTA_TEMP_MIB] \
            + list(self.quota_engine_args)

    def quota_used(self, datadir, base_bytes):
        if base_bytes is None:
            return None
        try:
            return max(os.stat(os.path.join(datadir, self.system_tablespace)).st_size - base_bytes, 0)
        except OSError:
            return None

    def local_client(self, database=None):
        # --unbuffered: what a statement prints is written when it ends, which
        # is how a dump loaded on several connections knows where each one is.
        argv = [self.client, "--no-defaults", "--socket=" + SOCKET, "--user=root", "--batch", "--skip-column-names",
                "--unbuffered", "--default-character-set=utf8mb4", self.max_packet]
        return argv + ([database] if database else [])

    def query_argv(self, sql, database=None):
        return self.local_client(database) + ["--execute", sql]

    def create_database_sql(self, database):
        return "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;" % quote_identifier(database)

    def list_databases_sql(self):
        return ("SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN (%s) "
                "ORDER BY schema_name" % ", ".join(quote_sql_string(name) for name in SYSTEM_SCHEMAS))

    def missing_definers_sql(self):
        # Production dumps name accounts (DEFINER=`app`@`10.0.0.%`) that a
        # template does not have; their views, routines and triggers then fail
        # with error 1449 until the account exists.
        return ("SELECT DISTINCT d.definer FROM ("
                "SELECT DEFINER AS definer FROM information_schema.VIEWS "
                "UNION SELECT DEFINER FROM information_schema.ROUTINES "
                "UNION SELECT DEFINER FROM information_schema.TRIGGERS "
                "UNION SELECT DEFINER FROM information_schema.EVENTS) AS d "
                "WHERE d.definer LIKE '%@%' AND BINARY d.definer NOT IN "
                "(SELECT BINARY CONCAT(user, '@', host) FROM mysql.user) ORDER BY 1")

    def create_definers_sql(self, definers, databases, password):
        lines = []
        for definer in definers:
            user, host = definer.rsplit("@", 1)
            account = "%s@%s" % (quote_sql_string(user), quote_sql_string(host))
            # Locked, with a password nobody was told: it only lends its rights
            # to the objects it defines.
            lines.append("CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s ACCOUNT LOCK;"
                         % (account, quote_sql_string(password)))
            lines += ["GRANT ALL PRIVILEGES ON %s.* TO %s;" % (quote_identifier(database), account)
                      for database in databases]
        return "\n".join(lines) + "\n"

    def before_shutdown_sql(self):
        # A slow shutdown merges the change buffer and purges undo logs, so a
        # frozen template needs no background work in its clones.
        return ("SET GLOBAL innodb_log_file_size = %d;\nSET GLOBAL innodb_fast_shutdown = 0;\n"
                % self.clone_redo_log_bytes)

    def clean_shutdown(self, log_text):
        # InnoDB reports its own shutdown (with the final LSN) before the
        # server's last line; both must be there, in that order.
        innodb = log_text.find("Shutdown completed; log sequence number")
        return innodb >= 0 and re.search(r"(mariadbd|mysqld): Shutdown complete\s*$", log_text[innodb:]) is not None

    def crash_recovery(self, log_text):
        return "crash recovery" in log_text.lower()

    def load_error_advice(self, message):
        unknown = _UNKNOWN_COLLATION_RE.search(message)
        if not unknown:
            return ""
        collation = unknown.group(1)
        if "_0900_" in collation and self.name == "mariadb":
            return (" The dump was written by MySQL 8 or later: collation %s is MySQL's, and this MariaDB server "
                    "does not know it. Import it with engine: mysql, or, where this image is older than MariaDB "
                    "11.8 (which maps MySQL 8's utf8mb4_0900 collations), with image: mariadb:11.8." % collation)
        if "uca1400" in collation and self.name != "mariadb":
            return (" The dump was written by MariaDB: collation %s is MariaDB's, and %s does not know it. Import it "
                    "with engine: mariadb." % (collation, self.name))
        return (" The server of this image does not know collation %s: import the dump with an image (or engine) "
                "of the server that wrote it." % collation)

    def physical_login_sql(self):
        # Local root by the unix socket, as mariadb-install-db makes it; any
        # password production gave it goes (the template keeps no hash).
        return ("CREATE USER IF NOT EXISTS 'root'@'localhost' IDENTIFIED VIA unix_socket;\n"
                "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket ACCOUNT UNLOCK;\n"
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'localhost' WITH GRANT OPTION;\n")

    # -- upgrade rehearsal ---------------------------------------------------------
    def version_argv(self):
        return ["sh", "-c", "command -v mariadbd >/dev/null && exec mariadbd --version; exec mysqld --version"]

    def upgrade_commands(self):
        # What a DBA runs after starting the new major on the old datadir: it
        # checks every table, rebuilds what the new version needs rebuilt and
        # fixes the system tables. --silent: only what needs attention.
        client = ["--no-defaults", "--socket=" + SOCKET, "--user=root", "--silent"]
        return [("mariadb_upgrade", ["sh", "-c", "command -v mariadb-upgrade >/dev/null && exec mariadb-upgrade %s; "
                                     "exec mysql_upgrade %s" % (" ".join(client), " ".join(client))])]

    def startup_findings(self, log_text):
        warnings, errors = [], []
        for line in log_text.splitlines():
            if self.startup_noise.search(line):
                continue
            if "[ERROR]" in line:
                errors.append(line.strip())
            elif "[Warning]" in line:
                warnings.append(line.strip())
        return warnings, errors

    def init_sql(self, user, password, database):
        account = "%s@'%%'" % quote_sql_string(user)
        return "\n".join([
            "CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;" % (account, quote_sql_string(password)),
            "ALTER USER %s IDENTIFIED BY %s ACCOUNT UNLOCK;" % (account, quote_sql_string(password)),
            "GRANT ALL PRIVILEGES ON *.* TO %s WITH GRANT OPTION;" % account,
            "CREATE DATABASE IF NOT EXISTS %s;" % quote_identifier(database) if database else "",
            "",
        ])

    # Accounts that a whole-server dump (--all-databases: the mysql schema)
    # brought: every one that may log in or holds a password hash. Local root
    # and mysql without a password are mariadb-install-db's socket logins,
    # the import's own. JSON_VALUE gives a JSON true as '1' (10.11) or 'true'.
    _dump_accounts = (
        "COALESCE(JSON_VALUE(priv, '$.is_role'), '0') NOT IN ('1', 'true') "
        "AND (COALESCE(JSON_VALUE(priv, '$.account_locked'), '0') NOT IN ('1', 'true') "
        "OR COALESCE(JSON_VALUE(priv, '$.authentication_string'), '') NOT IN ('', 'invalid') "
        "OR JSON_EXISTS(priv, '$.auth_or')) "
        "AND NOT (User IN ('root', 'mysql') AND Host = 'localhost' "
        "AND COALESCE(JSON_VALUE(priv, '$.authentication_string'), '') IN ('', 'invalid'))")

    def login_passwords_sql(self):
        """A query listing (user@host) the accounts a whole-server dump brought that log in or hold a
        password hash."""
        return "SELECT CONCAT(User, '@', Host) FROM mysql.global_priv WHERE %s ORDER BY 1" % self._dump_accounts

    def remove_passwords_sql(self, accounts):
        # In the grant tables on disk, which the clones' servers read at start,
        # and by the query's own condition (names need no round trip through
        # the client's escaping): locked, and the hashes wiped, because the
        # instance's user may read the tables. The import server's accounts in
        # memory stay as they are (a FLUSH PRIVILEGES would give its local root
        # production's password).
        if not accounts:
            return ""
        return ("UPDATE mysql.global_priv SET priv = JSON_SET(JSON_REMOVE(priv, '$.auth_or'), "
                "'$.plugin', 'mysql_native_password', '$.authentication_string', 'invalid', "
                "'$.account_locked', true) WHERE %s;\n" % self._dump_accounts)

    def lock_accounts_sql(self, users):
        # A branch's data holds the account of the instance it was made from;
        # its password must not open the branch's clones.
        return "".join("ALTER USER IF EXISTS %s@'%%' ACCOUNT LOCK;\n" % quote_sql_string(user) for user in users)

    def connect(self, host, port, user, password, database, timeout):
        import pymysql  # pylint: disable=import-outside-toplevel
        return pymysql.connect(host=host, port=port, user=user, password=password,
                               database=database or None, connect_timeout=timeout)

    def client_command(self, user, password, host, port, database):
        # The client's own limit (16 MiB by default) would refuse reading rows the clone holds.
        return shell_join([self.client, "--protocol=TCP", self.max_packet, "-h", host, "-P", port, "-u", user,
                           "-p" + password] + ([database] if database else []))
