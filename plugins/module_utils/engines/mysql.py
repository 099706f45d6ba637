# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL 8 with the official `mysql` image.

Not run on MyAAS's own test machines (no MySQL 8 packages, no registry there);
its argv and SQL are unit-tested against the same interface as MariaDB's.
"""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.mariadb import MariaDB


class MySQL(MariaDB):
    name = "mysql"
    default_image = "mysql:8.0"
    client = "mysql"
    common_args = ("--innodb-redo-log-capacity=268435456",)
    # --initialize-insecure leaves root@localhost without a password for the
    # import's local client; it is locked before the template is frozen.
    launcher = """set -eu
datadir=$1; shift
if [ ! -d "$datadir/mysql" ]; then
    mysqld --no-defaults --initialize-insecure --datadir="$datadir" >&2
fi
if [ -f "$datadir/myaas-init.sql" ]; then
    set -- "$@" --init-file="$datadir/myaas-init.sql"
fi
exec mysqld "$@"
"""
    bulk_args = (
        "--disable-log-bin",
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
        return ["--innodb-buffer-pool-size=67108864", "--performance-schema=OFF"]

    def before_shutdown_sql(self):
        # No clone may offer a password-less root, even on its local socket.
        return "SET GLOBAL innodb_fast_shutdown = 0;\nALTER USER 'root'@'localhost' ACCOUNT LOCK;\n"

    def clean_shutdown(self, log_text):
        # The last line: an instance's log holds every run since it was made.
        return re.search(r"Shutdown complete.*\s*$", log_text) is not None

    def crash_recovery(self, log_text):
        return "Starting crash recovery" in log_text or "crash recovery" in log_text.lower()
