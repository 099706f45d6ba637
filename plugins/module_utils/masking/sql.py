# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL that classifies, masks and counts inside an import server, per engine.

Every transform is a function of a keyed hash of the original value: SHA-256
of the pool's 256-bit key followed by the value's UTF-8 bytes, in both
engines, so one original value gets one replacement everywhere in a pool
and in every later import. The key reaches the server only as a session
variable on the client's stdin. The helper functions live in a scratch schema
(``myaas_masking``) that is dropped before the template is frozen; they hold
no value and no key.
"""

from __future__ import annotations

from ansible_collections.myaas.myaas.plugins.module_utils.engines.base import quote_identifier, quote_sql_string
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

SCHEMA = "myaas_masking"
SAMPLE_ROWS = 1000
FIRST_NAMES = ("Alex", "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Karla",
               "Liam", "Mara", "Noah", "Olga", "Paul", "Rosa", "Sami", "Tara", "Umar", "Vera", "Will", "Yara")
LAST_NAMES = ("Adler", "Berg", "Costa", "Dahl", "Engel", "Fischer", "Garcia", "Hansen", "Ito", "Jansen", "Kova",
              "Lind", "Moreau", "Novak", "Olsen", "Park", "Quinn", "Rossi", "Silva", "Tanaka", "Ueda", "Vogel")
LOREM = ("dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna "
         "aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo.")
# What the classifier looks for in values, also inside free text. No
# backslashes: the patterns are SQL literals in both dialects.
PATTERNS = {
    "email": "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*[.][A-Za-z]{2,}",
    "phone": "([+][0-9]{1,3}[ .-]?)?[(]?[0-9]{2,4}[)]?[ .-][0-9]{3,4}[ .-]?[0-9]{3,4}",
    "card": "[0-9](?:[ -]?[0-9]){12,18}",
    "iban": "(AT|BE|CH|CZ|DE|DK|ES|FI|FR|GB|IE|IT|LU|NL|NO|PL|PT|SE)[0-9]{2}( ?[A-Z0-9]{4}){3,7}",
    "ip": "(^|[^0-9.])((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
          "([^0-9.]|$)",
}
# Kinds of column: those values are sampled from, and those the date transform takes.
TEXT, DATE, OTHER = "text", "date", "other"
# MySQL's JSON type: its values are sampled as text, but only null and
# fixed:VALUE may replace them (a text transform would not be a JSON document).
JSON = "json"
# Transforms that write text, so they need a text column.
TEXT_TRANSFORMS = ("email", "name", "phone", "credit_card", "ip", "text", "hash")
# Storage engines whose files and logs masking scrubs: a rebuild writes new
# data files (InnoDB, Aria, MyISAM), their logs are scrubbed (InnoDB's redo
# and undo, Aria's log), or they keep nothing on disk. Any other (ARCHIVE,
# CSV, CONNECT, ROCKSDB, MRG_MyISAM...) keeps old values in files of its own.
SCRUBBED_ENGINES = ("innodb", "aria", "myisam", "memory", "blackhole")
# TRUNCATE empties these engines' own files too; others hold data elsewhere.
TRUNCATED_ENGINES = SCRUBBED_ENGINES + ("archive", "csv")
# Aria's smallest log file: the scrub fills more than one, so the log files
# that saw the original rows are given up (and deleted at shutdown).
ARIA_LOG_BYTES = 8 * 2 ** 20


def sql_list(values):
    return ", ".join(quote_sql_string(value) for value in values)


def luhn_check_digit(payload, length):
    """SQL for the Luhn check digit of a ``length``-digit string held in ``payload`` (a user variable)."""
    terms = []
    for index in range(length):   # index 0 is the rightmost digit, and it is doubled
        digit = "SUBSTR(%s, %d, 1)" % (payload, length - index)
        terms.append("(2 * %s - 9 * (2 * %s > 9))" % (digit, digit) if index % 2 == 0 else "%s" % digit)
    return "(10 - (%s) %% 10) %% 10" % " + ".join(terms)


class Column:
    """A column of the template as the classifier and the masker see it."""

    def __init__(self, database, schema, table, name, sql_type, kind, max_length, auto_update=False,
                 storage_engine=None):
        self.database, self.schema, self.table, self.name = database, schema, table, name
        self.sql_type, self.kind, self.max_length = sql_type, kind, max_length
        # MariaDB's and MySQL's table engine (ENGINE=...); None where there is one (PostgreSQL).
        self.storage_engine = storage_engine
        # MariaDB's ON UPDATE CURRENT_TIMESTAMP: an UPDATE must name it to keep its value.
        self.auto_update = auto_update

    @property
    def key(self):
        """How rules name it: database.table.column (MariaDB), schema.table.column (PostgreSQL)."""
        return "%s.%s.%s" % (self.schema, self.table, self.name)

    @property
    def table_key(self):
        return "%s.%s" % (self.schema, self.table)


def declared_length(text):
    """A column's maximum length as the catalog prints it; 0 when it has none."""
    return int(text) if text.isdigit() else 0


class MaskingDialect:
    """What both engines' masking SQL shares; the subclasses differ in quoting and in their catalogs."""

    @staticmethod
    def quote(name):
        """An identifier, quoted."""
        raise NotImplementedError

    @staticmethod
    def literal(value):
        """A string literal."""
        raise NotImplementedError

    def table(self, column):
        return "%s.%s" % (self.quote(column.schema), self.quote(column.table))

    # What to do about statistics that value_statistics_sql finds.
    value_statistics_advice = ""

    def value_statistics_sql(self, table_keys):
        """A query listing (schema.table.column) the statistics that hold column values of ``table_keys``,
        kept where masking cannot scrub them (None: the engine keeps none, or masking rewrites them)."""
        return None

    def sample_expr(self, column):
        """The column as the value sampling reads it."""
        return self.quote(column.name)

    def expression(self, column, transform):
        raise NotImplementedError

    def update_sql(self, table_columns, auto_update=()):
        """One UPDATE for a table's masked columns; ``auto_update`` columns are set to themselves."""
        column = table_columns[0][0]
        masked = set(col.name for col, _transform in table_columns)
        keep = ["%s = %s" % (self.quote(col.name), self.quote(col.name)) for col in auto_update if col.name not in masked]
        return "UPDATE %s SET %s;\n" % (self.table(column), ", ".join(keep + [
            "%s = %s" % (self.quote(col.name), self.expression(col, transform)) for col, transform in table_columns]))

    def truncate_sql(self, column):
        return "TRUNCATE TABLE %s;\n" % self.table(column)

    def count_sql(self, tables):
        return " UNION ALL ".join("SELECT %s, COUNT(*) FROM %s" % (self.literal(key), self.table(column))
                                  for key, column in tables)


class MariaDBMasking(MaskingDialect):
    quote = staticmethod(quote_identifier)
    literal = staticmethod(quote_sql_string)
    per_database = False   # one server-wide session covers every database

    def columns_sql(self, databases):
        return ("SELECT c.TABLE_SCHEMA, c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, "
                "COALESCE(c.CHARACTER_MAXIMUM_LENGTH, 0), c.EXTRA LIKE '%%on update%%', COALESCE(t.ENGINE, '') "
                "FROM information_schema.COLUMNS c "
                "JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME "
                "WHERE t.TABLE_TYPE = 'BASE TABLE' AND c.TABLE_SCHEMA IN (%s) "
                # Generated columns cannot be set: they follow the masked columns they are computed from.
                "AND COALESCE(c.GENERATION_EXPRESSION, '') = '' "
                "ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION" % sql_list(databases))

    def column(self, database, fields):
        schema, table, name, data_type, max_length, auto_update = fields[:6]
        storage_engine = fields[6] if len(fields) > 6 else None
        kind = TEXT if data_type in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext") else (
            DATE if data_type in ("date", "datetime", "timestamp") else JSON if data_type == "json" else OTHER)
        return Column(database, schema, table, name, data_type, kind, declared_length(max_length), auto_update == "1",
                      storage_engine)

    def sample_expr(self, column):
        # MySQL's REGEXP takes no JSON document; its text does.
        quoted = self.quote(column.name)
        # At most 64 KiB of a document: REGEXP has time and stack limits.
        return "LEFT(CAST(%s AS CHAR), 65535)" % quoted if column.kind == JSON else quoted

    @staticmethod
    def refuse_unscrubbed(column, what, engines):
        """Raise MyaasError unless masking can scrub the files of ``column``'s table after ``what`` it."""
        if column.storage_engine is not None and column.storage_engine.lower() not in engines:
            raise MyaasError(
                "Table %s uses the storage engine %s, whose files masking cannot scrub: the original values would "
                "stay in them after it %s the table. Convert the table in post_import_sql (ALTER TABLE %s "
                "ENGINE=InnoDB;), or keep its columns with a reason (masking: keep)." % (
                    column.table_key, column.storage_engine, what, quote_identifier(column.table)),
                table=column.table_key, storage_engine=column.storage_engine)

    def update_sql(self, table_columns, auto_update=()):
        self.refuse_unscrubbed(table_columns[0][0], "masks", SCRUBBED_ENGINES)
        return MaskingDialect.update_sql(self, table_columns, auto_update)

    def truncate_sql(self, column):
        self.refuse_unscrubbed(column, "truncates", TRUNCATED_ENGINES)
        return MaskingDialect.truncate_sql(self, column)

    def matches(self, expr, kind):
        # (?-i): MariaDB's REGEXP follows the column's collation, mostly case-insensitive.
        return "%s REGEXP %s" % (expr, quote_sql_string(("(?-i)" if kind == "iban" else "") + PATTERNS[kind]))

    def card_digits(self, expr):
        return "REGEXP_REPLACE(REGEXP_SUBSTR(%s, %s), '[^0-9]', '')" % (expr, quote_sql_string(PATTERNS["card"]))

    def setup_sql(self):
        s = self.quote(SCHEMA)
        return "\n".join([
            "DROP DATABASE IF EXISTS %s;" % s, "CREATE DATABASE %s;" % s, "DELIMITER //",
            "CREATE FUNCTION %s.h(v LONGTEXT) RETURNS CHAR(64) CHARSET ascii DETERMINISTIC "
            "RETURN SHA2(CONCAT(@myaas_key, v), 256)//" % s,
            "CREATE FUNCTION %s.num(x CHAR(64), pos INT, len INT) RETURNS BIGINT UNSIGNED DETERMINISTIC "
            "RETURN CONV(SUBSTR(x, pos, len), 16, 10)//" % s,
            "CREATE FUNCTION %s.luhn_digit(p VARCHAR(40)) RETURNS CHAR(1) DETERMINISTIC BEGIN "
            "DECLARE total INT DEFAULT 0; DECLARE i INT DEFAULT 0; DECLARE d INT; "
            "WHILE i < CHAR_LENGTH(p) DO SET d = ASCII(SUBSTR(p, CHAR_LENGTH(p) - i, 1)) - 48; "
            "IF i %% 2 = 0 THEN SET d = d * 2; IF d > 9 THEN SET d = d - 9; END IF; END IF; "
            "SET total = total + d; SET i = i + 1; END WHILE; "
            "RETURN CAST((10 - total %% 10) %% 10 AS CHAR); END//" % s,
            "CREATE FUNCTION %s.luhn_ok(d VARCHAR(40)) RETURNS INT DETERMINISTIC "
            "RETURN CHAR_LENGTH(d) BETWEEN 13 AND 19 AND %s.luhn_digit(LEFT(d, CHAR_LENGTH(d) - 1)) = RIGHT(d, 1)//"
            % (s, s),
            "CREATE FUNCTION %s.email(v LONGTEXT) RETURNS VARCHAR(64) DETERMINISTIC "
            "RETURN CONCAT('user.', LEFT(%s.h(v), 16), '@example.com')//" % (s, s),
            "CREATE FUNCTION %s.name(v LONGTEXT) RETURNS VARCHAR(64) DETERMINISTIC BEGIN "
            "DECLARE x CHAR(64) DEFAULT %s.h(v); IF v IS NULL THEN RETURN NULL; END IF; "
            "RETURN CONCAT(ELT(1 + %s.num(x, 1, 4) %% %d, %s), ' ', ELT(1 + %s.num(x, 5, 4) %% %d, %s)); END//"
            % (s, s, s, len(FIRST_NAMES), sql_list(FIRST_NAMES), s, len(LAST_NAMES), sql_list(LAST_NAMES)),
            "CREATE FUNCTION %s.phone(v LONGTEXT) RETURNS VARCHAR(20) DETERMINISTIC "
            "RETURN CONCAT('+1 555 ', LPAD(%s.num(%s.h(v), 1, 8) %% 10000000, 7, '0'))//" % (s, s, s),
            "CREATE FUNCTION %s.credit_card(v LONGTEXT) RETURNS VARCHAR(16) DETERMINISTIC BEGIN "
            "DECLARE p VARCHAR(15); IF v IS NULL THEN RETURN NULL; END IF; "
            "SET p = CONCAT('4', LPAD(%s.num(%s.h(v), 1, 13) %% 100000000000000, 14, '0')); "
            "RETURN CONCAT(p, %s.luhn_digit(p)); END//" % (s, s, s, s),
            "CREATE FUNCTION %s.ip(v LONGTEXT) RETURNS VARCHAR(15) DETERMINISTIC BEGIN "
            "DECLARE x CHAR(64) DEFAULT %s.h(v); IF v IS NULL THEN RETURN NULL; END IF; "
            "RETURN CONCAT('10.', %s.num(x, 1, 2), '.', %s.num(x, 3, 2), '.', %s.num(x, 5, 2)); END//"
            % (s, s, s, s, s),
            "CREATE FUNCTION %s.text(v LONGTEXT) RETURNS LONGTEXT DETERMINISTIC "
            "RETURN LEFT(CONCAT('Lorem ipsum ', LEFT(%s.h(v), 8), ' ', %s), GREATEST(CHAR_LENGTH(v), 8))//"
            % (s, s, quote_sql_string(LOREM)),
            "DELIMITER ;", ""])

    def session_sql(self, key):
        # Masking must not fire the tables' foreign keys (both sides of a join
        # are masked alike, one after the other).
        return "SET @myaas_key = %s;\nSET FOREIGN_KEY_CHECKS = 0;\n" % quote_sql_string(key)

    def expression(self, column, transform):
        # Inline SQL, not the helper functions: a stored function call costs
        # MariaDB several times the SHA-256 it wraps. @h (and @p) hold the
        # row's hash while one column's expression is evaluated; IF evaluates
        # its condition first, so each is set before it is read.
        c = self.quote(column.name)
        keyed = "SHA2(CONCAT(@myaas_key, %s), 256)" % c
        num = "CONV(SUBSTR(@h, %d, %d), 16, 10)"
        if transform == "null":
            return "NULL"
        if transform.startswith("fixed:"):
            return "IF(%s IS NULL, NULL, %s)" % (c, quote_sql_string(transform[len("fixed:"):]))
        if transform == "date":
            return "DATE_ADD(%s, INTERVAL CAST(CONV(SUBSTR(%s, 1, 4), 16, 10) %% 365 AS SIGNED) - 182 DAY)" % (c, keyed)
        body = {
            "email": "CONCAT('user.', LEFT(@h, 16), '@example.com')",
            "hash": "@h",
            "phone": "CONCAT('+1 555 ', LPAD(%s %% 10000000, 7, '0'))" % (num % (1, 8)),
            "ip": "CONCAT('10.', %s, '.', %s, '.', %s)" % (num % (1, 2), num % (3, 2), num % (5, 2)),
            "name": "CONCAT(ELT(1 + %s %% %d, %s), ' ', ELT(1 + %s %% %d, %s))" % (
                num % (1, 4), len(FIRST_NAMES), sql_list(FIRST_NAMES), num % (5, 4), len(LAST_NAMES),
                sql_list(LAST_NAMES)),
            "text": "LEFT(CONCAT('Lorem ipsum ', LEFT(@h, 8), ' ', %s), GREATEST(CHAR_LENGTH(%s), 8))" % (
                quote_sql_string(LOREM), c),
            "credit_card": "IF((@p := CONCAT('4', LPAD(%s %% 100000000000000, 14, '0'))) IS NULL, NULL, "
                           "CONCAT(@p, %s))" % (num % (1, 13), luhn_check_digit("@p", 15)),
        }[transform]
        expr = "IF((@h := %s) IS NULL, NULL, %s)" % (keyed, body)
        if transform in ("hash", "text") and column.max_length:
            expr = "LEFT(%s, %d)" % (expr, column.max_length)
        return expr

    def rebuild_sql(self, column):
        # A new tablespace file: old row versions and index entries go with the old file.
        return "ALTER TABLE %s FORCE;\n" % self.table(column)

    value_statistics_advice = ("Take the dump without them (mariadb-dump --ignore-table=mysql.column_stats), or "
                               "delete their rows in production.")

    def value_statistics_sql(self, table_keys):
        # Engine-independent statistics (min, max, histograms) that a dump of
        # the mysql schema brings; imports collect none themselves.
        return ("SELECT CONCAT(db_name, '.', table_name, '.', column_name) FROM mysql.column_stats "
                "WHERE CONCAT(db_name, '.', table_name) IN (%s) ORDER BY 1" % sql_list(table_keys))

    def update_triggers_sql(self, table_keys):
        return ("SELECT CONCAT(EVENT_OBJECT_SCHEMA, '.', EVENT_OBJECT_TABLE, '.', TRIGGER_NAME) "
                "FROM information_schema.TRIGGERS WHERE EVENT_MANIPULATION = 'UPDATE' AND "
                "CONCAT(EVENT_OBJECT_SCHEMA, '.', EVENT_OBJECT_TABLE) IN (%s)" % sql_list(table_keys))

    def import_args(self):
        # Freed pages and purged records are overwritten with zeros, so old row
        # versions and undo records of masked values do not stay in the files;
        # no column statistics (which hold values) are collected.
        return ["--innodb-immediate-scrub-data-uncompressed=ON", "--use-stat-tables=never"]

    def after_shutdown_script(self):
        # The clean shutdown deletes the Aria log files the scrub gave up;
        # one left behind would still hold original rows.
        return ('set -- "$1"/aria_log.[0-9]*; if [ $# -gt 1 ]; then echo "Aria log files that saw the original '
                'rows are still there after the clean shutdown: $*" >&2; exit 1; fi')

    def drop_sql(self):
        return "DROP DATABASE IF EXISTS %s;\n" % self.quote(SCHEMA)

    def scrub_sql(self):
        # Wait until purge removed every old row version (freed pages are
        # zero-filled by innodb_immediate_scrub_data_uncompressed), then give
        # InnoDB a new redo log twice over, so the log file that saw the
        # original rows is deleted and the final one has the usual size.
        return (self.aria_scrub_sql() + "DROP DATABASE IF EXISTS %s;\nSET GLOBAL innodb_max_purge_lag_wait = 0;\n"
                "SET GLOBAL innodb_log_file_size = @@innodb_log_file_size + 1048576;\n"
                "SET GLOBAL innodb_log_file_size = @@innodb_log_file_size - 1048576;\n" % self.quote(SCHEMA))

    def aria_scrub_sql(self):
        """SQL that moves Aria's log on to new files (MariaDB only: MySQL has no Aria).

        Aria logs every row it stores (the dump's originals, the UPDATE's
        before-images) in aria_log.NNNNNNNN until the file is full (1 GiB).
        With the smallest file size and more than one file's worth of new log
        records, the files that saw the originals are no longer needed, and
        the clean shutdown deletes them.
        """
        fill = "%s.%s" % (self.quote(SCHEMA), self.quote("aria_fill"))
        return ("SET GLOBAL aria_log_file_size = %d;\n"
                "CREATE TABLE %s (b LONGBLOB) ENGINE=Aria TRANSACTIONAL=1;\n"
                "INSERT INTO %s VALUES (REPEAT('0', 1048576));\n" % (ARIA_LOG_BYTES, fill, fill)
                + "INSERT INTO %s SELECT b FROM %s;\n" % (fill, fill) * 4)
