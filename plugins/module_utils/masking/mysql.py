# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MySQL's side of masking: MariaDB's transforms and catalog, MySQL's scrub.

The transforms are the same SQL (SHA2, CONV, REGEXP and ELT behave alike), so
one original gets one replacement in MariaDB, MySQL and PostgreSQL templates
of a pool. What differs is how the original values are made to leave the
files: MySQL has no immediate scrub of freed pages and no purge wait, so

- every masked table is rebuilt (``ALTER TABLE ... FORCE``: a new .ibd file);
- the undo tablespaces that saw the masking UPDATEs are emptied and truncated
  (set inactive while two new ones take the undo; truncation re-creates
  their files), and the new ones are dropped again;
- after the clean shutdown the redo log files (spare ones too, which InnoDB
  recycles without overwriting) are deleted and written anew: the engine does
  that after every MySQL import (``MySQL.after_import_script``).
Generated columns are left out (as in MariaDB): they are computed from the
masked columns. MySQL has no Aria; MyISAM tables are rebuilt like InnoDB's.
"""

from __future__ import annotations

from ansible_collections.myaas.myaas.plugins.module_utils.masking.sql import SCHEMA, MariaDBMasking

# The undo tablespaces every MySQL 8.0.14+ datadir has, and the two that take
# the undo while those are truncated (InnoDB needs two active ones at all times).
DEFAULT_UNDO = ("innodb_undo_001", "innodb_undo_002")
SPARE_UNDO = ("myaas_undo_1", "myaas_undo_2")
# Seconds the scrub waits for purge to empty an inactive undo tablespace.
UNDO_WAIT_SECONDS = 600


class MySQLMasking(MariaDBMasking):

    def import_args(self):
        # MySQL collects no column statistics by itself (histograms only on
        # ANALYZE ... UPDATE HISTOGRAM), and has no scrub of freed pages.
        return []

    value_statistics_advice = ("Take the dump without them (mysqldump --column-statistics=0), or drop the "
                               "histograms in production.")

    def value_statistics_sql(self, table_keys):
        # Histograms (ANALYZE TABLE ... UPDATE HISTOGRAM; mysqldump carries them) hold sampled values in the
        # data dictionary, a tablespace no rebuild or truncation rewrites.
        return ("SELECT CONCAT(SCHEMA_NAME, '.', TABLE_NAME, '.', COLUMN_NAME) FROM information_schema.COLUMN_STATISTICS "
                "WHERE CONCAT(SCHEMA_NAME, '.', TABLE_NAME) IN (%s) ORDER BY 1"
                % ", ".join(self.literal(key) for key in table_keys))

    def _wait_procedure(self):
        s = self.quote(SCHEMA)
        return "\n".join([
            "DELIMITER //",
            "CREATE PROCEDURE %s.wait_undo_empty(IN names TEXT) BEGIN "
            "DECLARE waited INT DEFAULT 0; "
            "WHILE (SELECT COUNT(*) FROM information_schema.INNODB_TABLESPACES WHERE SPACE_TYPE = 'Undo' "
            "AND FIND_IN_SET(NAME, names) AND STATE <> 'empty') > 0 DO "
            "IF waited >= %d THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = "
            "'Purge did not empty the undo tablespaces in time: their old row versions hold original values'; "
            "END IF; DO SLEEP(0.2); SET waited = waited + 1; END WHILE; END//" % (s, UNDO_WAIT_SECONDS * 5),
            "DELIMITER ;", ""])

    def _truncate_undo(self, names):
        s = self.quote(SCHEMA)
        return "".join("ALTER UNDO TABLESPACE %s SET INACTIVE;\n" % name for name in names) + \
            "CALL %s.wait_undo_empty(%s);\n" % (s, self.literal(",".join(names)))

    def scrub_sql(self):
        lines = [self._wait_procedure()]
        lines += ["CREATE UNDO TABLESPACE %s ADD DATAFILE '%s.ibu';\n" % (name, name) for name in SPARE_UNDO]
        lines.append(self._truncate_undo(DEFAULT_UNDO))
        lines += ["ALTER UNDO TABLESPACE %s SET ACTIVE;\n" % name for name in DEFAULT_UNDO]
        lines.append(self._truncate_undo(SPARE_UNDO))
        lines += ["DROP UNDO TABLESPACE %s;\n" % name for name in SPARE_UNDO]
        lines.append("DROP DATABASE IF EXISTS %s;\n" % self.quote(SCHEMA))
        return "".join(lines)

    def after_shutdown_script(self):
        # The engine renews the redo log after every MySQL import (engines/mysql.py), which also
        # deletes the files that saw the original values.
        return None
