# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB: MyAAS's offline-built image and the official `mariadb` image."""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.engine import (
    Engine, quote_identifier, quote_sql_string, share_of)


class MariaDB(Engine):
    name = "mariadb"
    default_image = "mariadb:10.11"
    datadir = "/var/lib/mysql"
    port = 3306
    dsn_scheme = "mysql"
    client = "mariadb"
    common_args = ("--innodb-log-file-size=256M",)
    # Loading a dump needs none of the durability a live server needs: the
    # import is repeated if anything fails, and ends with a full clean shutdown.
    bulk_args = (
        "--skip-log-bin",
        "--innodb-flush-log-at-trx-commit=0",
        "--innodb-doublewrite=0",
        "--innodb-adaptive-hash-index=0",
        "--skip-innodb-stats-persistent",
        "--max-allowed-packet=1G",
    )

    def bulk_load_args(self, tuning, memory_bytes):
        # A quarter of the host's memory: imports run at night, next to idle clones.
        settings = {"innodb-buffer-pool-size": share_of(memory_bytes, 0.25, 256, 8192)}
        settings.update(dict((key.replace("_", "-"), value) for key, value in (tuning or {}).items()))
        return (list(self.common_args) + list(self.bulk_args)
                + ["--%s=%s" % (key, settings[key]) for key in sorted(settings)])

    def clone_args(self):
        # Small buffers: a developer's clone serves a few queries, and ten of
        # them share one host.
        return list(self.common_args) + ["--innodb-buffer-pool-size=64M", "--performance-schema=0",
                                         "--innodb-buffer-pool-load-at-startup=0"]

    def import_env(self):
        # Only the official image reads these; it refuses to initialise an
        # empty datadir without a root password decision. Local root keeps
        # unix_socket login in both images, which is all an import needs.
        return {"MARIADB_RANDOM_ROOT_PASSWORD": "1"}

    def local_client(self, database=None):
        argv = [self.client, "--batch", "--skip-column-names", "--default-character-set=utf8mb4"]
        return argv + ([database] if database else [])

    def create_database_sql(self, database):
        return "CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;" % quote_identifier(database)

    def before_shutdown_sql(self):
        # A slow shutdown merges the change buffer and purges undo logs, so a
        # frozen template needs no background work in its clones.
        return "SET GLOBAL innodb_fast_shutdown = 0;"

    def clean_shutdown(self, log_text):
        # InnoDB reports its own shutdown (with the final LSN) before the
        # server's last line; both must be there, in that order.
        innodb = log_text.find("Shutdown completed; log sequence number")
        return innodb >= 0 and re.search(r"mariadbd: Shutdown complete\s*$", log_text[innodb:]) is not None

    def crash_recovery(self, log_text):
        return "crash recovery" in log_text.lower()

    def init_sql(self, user, password, database):
        account = "%s@'%%'" % quote_sql_string(user)
        return "\n".join([
            "CREATE USER IF NOT EXISTS %s IDENTIFIED BY %s;" % (account, quote_sql_string(password)),
            "ALTER USER %s IDENTIFIED BY %s;" % (account, quote_sql_string(password)),
            "GRANT ALL PRIVILEGES ON *.* TO %s WITH GRANT OPTION;" % account,
            "CREATE DATABASE IF NOT EXISTS %s;" % quote_identifier(database) if database else "",
            "",
        ])

    def connect(self, host, port, user, password, database, timeout):
        import pymysql  # pylint: disable=import-outside-toplevel
        return pymysql.connect(host=host, port=port, user=user, password=password,
                               database=database or None, connect_timeout=timeout)
