# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL 8 with the official `mysql` image.

Not run on MyAAS's own test machines (no MySQL 8 packages, no registry there);
its argv and SQL are unit-tested against the same interface as MariaDB's.
"""

from __future__ import annotations

from ansible_collections.myaas.myaas.plugins.module_utils.engine_mariadb import MariaDB


class MySQL(MariaDB):
    name = "mysql"
    default_image = "mysql:8.0"
    client = "mysql"
    common_args = ("--innodb-redo-log-capacity=268435456",)
    bulk_args = (
        "--disable-log-bin",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=OFF",
        "--innodb-adaptive-hash-index=OFF",
        "--innodb-stats-persistent=OFF",
        "--max-allowed-packet=1G",
    )

    def clone_args(self):
        return list(self.common_args) + ["--innodb-buffer-pool-size=67108864", "--performance-schema=OFF"]

    def import_env(self):
        # The official image's local root logs in through the socket without a
        # password only when it was created without one; nothing listens on TCP
        # in an import container (it has no network).
        return {"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}

    def local_client(self, database=None):
        argv = [self.client, "--user=root", "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        return argv + ([database] if database else [])

    def clean_shutdown(self, log_text):
        return "Shutdown complete" in log_text

    def crash_recovery(self, log_text):
        return "Starting crash recovery" in log_text or "crash recovery" in log_text.lower()
