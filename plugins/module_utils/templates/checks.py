# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an import must pass before its data may go live, run inside the import server.

In order, after the dump and the post-import SQL:
1. classify every column: personal by its name, or by a sample of its values;
2. with masking rules: fail on any personal column no rule covers, then mask
   (set-based, in the server), truncate, rebuild what was masked and scrub;
3. count every table's rows exactly, and fail on a table that shrank by more
   than max_shrink since the current generation;
4. run the ``checks`` queries, each of which must return one true value.
Any failure raises MyaasError, and the importer discards the new generation.
"""

from __future__ import annotations

import json
import time

from ansible_collections.myaas.myaas.plugins.module_utils.masking import rules as masking_rules
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.masking.mysql import MySQLMasking
from ansible_collections.myaas.myaas.plugins.module_utils.masking.postgresql import PostgreSQLMasking
from ansible_collections.myaas.myaas.plugins.module_utils.masking.sql import (
    DATE, JSON, SAMPLE_ROWS, SCHEMA, TEXT, TEXT_TRANSFORMS, MariaDBMasking)

TRUE_VALUES = ("1", "t", "true")


def dialect(engine):
    """The engine's masking SQL."""
    if engine.name == "mysql":
        return MySQLMasking()
    if engine.name == "mariadb":
        return MariaDBMasking()
    if engine.name == "postgresql":
        return PostgreSQLMasking()
    return None


def is_json(text):
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def value_kinds(counts):
    """Kinds of personal data a column's sample showed: counts of email, phone, card, valid card, iban, ip."""
    email, phone, card, valid, iban, ip = counts
    found = [kind for kind, count in (("email", email), ("phone", phone), ("iban", iban), ("ip", ip)) if count]
    # Long digit runs are common (ids, barcodes); one in ten passes Luhn by chance.
    if valid and 2 * valid >= card:
        found.append("credit_card")
    return found


def shrunk_tables(old, new, max_shrink, truncated):
    """Tables that lost more than max_shrink of their rows: [(table, old count, new count)]."""
    lost = []
    for table, count in sorted((old or {}).items()):
        now = new.get(table, 0)
        if table not in truncated and count > 0 and now < count * (1 - max_shrink):
            lost.append((table, count, now))
    return lost


class TemplateChecks:
    def __init__(self, docker, engine, container, databases, params):
        self.docker, self.engine, self.container = docker, engine, container
        self.databases, self.params = databases, params
        self.sql = dialect(engine)
        self._helpers = set()   # the scopes the helper functions were made in

    def run(self, rules, key, current_counts, max_shrink, checks, database):
        """Classify, mask (with rules), count and check; the report that goes into the metadata."""
        columns = self.columns()
        findings = self.classify(columns)
        report = {"personal_columns": findings, "masking": None}
        if rules is None:
            for scope in self._helpers:
                self._run(scope, self.sql.drop_sql())
        else:
            self.check_coverage(rules, columns, findings)
            report["masking"] = self.mask(rules, columns, key)
        counts = self.row_counts(columns)
        lost = shrunk_tables(current_counts, counts, max_shrink, set(rules["truncate"]) if rules else set())
        if lost:
            raise MyaasError("%s since the current generation, more than max_shrink (%g%%) allows; a broken or "
                             "partial dump is the usual cause. If the change is real, import once with max_shrink: "
                             "1.0." % ("; ".join("table %s went from %d to %d rows" % item for item in lost),
                                       100 * max_shrink), shrunk_tables=[item[0] for item in lost])
        report["row_counts"] = counts
        report["checks"] = self.run_checks(checks, database)
        return report

    # -- talking to the import server ------------------------------------
    def _run(self, database, script, secret=None):
        try:
            return self.docker.exec(self.container, self.engine.local_client(database), data=script,
                                    user=self.engine.exec_user)[1]
        except MyaasError as exc:
            if not secret:
                raise
            # A new exception, not the old one with its message changed: the
            # traceback prints the original's arguments.
            raise MyaasError(exc.msg.replace(secret, "********")) from None

    def _rows(self, database, sql):
        out = self.docker.exec(self.container, self.engine.query_argv(sql, database), user=self.engine.exec_user)[1]
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def _setup_helpers(self, database):
        """The helper functions, made once per scope: classification and masking share them."""
        if database not in self._helpers:
            self._run(database, self.sql.setup_sql())
            self._helpers.add(database)

    def _scopes(self):
        """Where the dialect works: each database (PostgreSQL), or one session for all (MariaDB)."""
        return self.databases if self.sql.per_database else [None]

    # -- 1. classify --------------------------------------------------------
    def columns(self):
        found = []
        for database in self._scopes():
            for fields in self._rows(database, self.sql.columns_sql(self.databases)):
                found.append(self.sql.column(database, fields))
        return found

    def classify(self, columns):
        """[{column, why, suggest}] for every column that looks personal."""
        by_values = self._sample(columns)
        findings = []
        for column in columns:
            why, suggest = [], None
            by_name = masking_rules.personal_by_name(column.name)
            if by_name:
                why.append("its name")
                # What fits the column's type: text transforms need text, date a date.
                suggest = by_name if (by_name == "date") == (column.kind == DATE) else "text"
                suggest = suggest if column.kind == TEXT or by_name == suggest == "date" else "null"
            kinds = by_values.get(column, [])
            if kinds:
                why.append("values like %s" % ", ".join(kinds))
                suggest = suggest or masking_rules.VALUE_KINDS.get(kinds[0], "text")
                suggest = "null" if column.kind == JSON else suggest
            if why:
                findings.append({"column": column.key, "why": why, "suggest": suggest})
        return findings

    def _sample(self, columns):
        tables = {}
        for column in columns:
            if column.kind in (TEXT, JSON):
                tables.setdefault((column.database, column.table_key), []).append(column)
        if not tables:
            return {}
        for database in self._scopes():
            self._setup_helpers(database)
        found = {}
        for (database, _key), table_columns in sorted(tables.items(), key=lambda item: str(item[0])):
            picks = []
            for column in table_columns:
                quoted = self.sql.sample_expr(column)
                picks += ["SUM(%s)" % self.sql.matches(quoted, kind) for kind in ("email", "phone", "card")]
                picks.append("SUM(%s.luhn_ok(%s))" % (self.sql.quote(SCHEMA), self.sql.card_digits(quoted)))
                picks += ["SUM(%s)" % self.sql.matches(quoted, kind) for kind in ("iban", "ip")]
            sample = "SELECT %s FROM (SELECT %s FROM %s LIMIT %d) AS sample" % (
                ", ".join(picks), ", ".join(self.sql.quote(column.name) for column in table_columns),
                self.sql.table(table_columns[0]), SAMPLE_ROWS)
            rows = self._rows(database, sample)
            # An empty table: every SUM is NULL, and the line of tabs is no row.
            counts = [int(value) if value.strip().isdigit() else 0 for value in (rows[0] if rows else [])]
            counts += [0] * (len(picks) - len(counts))
            for index, column in enumerate(table_columns):
                kinds = value_kinds(counts[6 * index:6 * index + 6])
                if kinds:
                    found[column] = kinds
        return found

    # -- 2. mask ---------------------------------------------------------------
    def check_coverage(self, rules, columns, findings):
        masking_rules.check_names(rules, set(column.key for column in columns))
        derived = set(column.table_key for column in columns if getattr(column, "derived", False))
        named = [name for name in list(rules["columns"]) + list(rules["truncate"])
                 if name in derived or name.rsplit(".", 1)[0] in derived]
        if named:
            raise MyaasError("The masking rules name materialized views: %s. Their rows are rebuilt from the masked "
                             "tables after masking: mask (or truncate) the table columns they read instead."
                             % ", ".join(sorted(named)))
        wrong = []
        for column in columns:
            transform = rules["columns"].get(column.key, "")
            if (transform == "date" and column.kind != DATE) or (transform in TEXT_TRANSFORMS and column.kind != TEXT):
                wrong.append("%s is a %s column; %s needs %s" % (column.key, column.sql_type, transform, (
                    "a date or time column" if transform == "date" else "text")))
            elif column.kind == JSON and transform.startswith("fixed:") and not is_json(transform[len("fixed:"):]):
                wrong.append("%s is a json column; fixed:%s is no JSON document (write fixed:\"%s\" or fixed:{})"
                             % (column.key, transform[len("fixed:"):], transform[len("fixed:"):]))
        if wrong:
            raise MyaasError("The masking rules do not fit the columns: %s. Choose another transform "
                             "(null or fixed:VALUE fit any column)." % "; ".join(wrong))
        # A materialized view's column is rebuilt from the tables' masked data
        # (mask() refreshes every one): the tables' columns are what must be
        # covered, and a personal one there fails here on its own.
        uncovered = [finding for finding in findings if not masking_rules.covered(rules, finding["column"])
                     and finding["column"].rsplit(".", 1)[0] not in derived]
        if uncovered:
            raise MyaasError(
                "%d column(s) look personal and no masking rule covers them: %s. Masking fails closed: mask them, "
                "truncate their tables, or keep them with a reason. Rules to review and paste:\n%s"
                % (len(uncovered), ", ".join("%s (%s)" % (finding["column"], ", ".join(finding["why"]))
                                             for finding in uncovered), masking_rules.snippet(uncovered)),
                uncovered=[finding["column"] for finding in uncovered], rules_snippet=masking_rules.snippet(uncovered))

    def mask(self, rules, columns, key):
        """Mask, truncate, rebuild and scrub in the server; returns what was done to each column."""
        started, scrubbing, rebuilt = time.monotonic(), 0.0, []
        for database in self._scopes():
            self._setup_helpers(database)
            tables = {}
            # A PostgreSQL template's databases may share a schema.table.column: a rule masks it in each.
            for column in columns:
                transform = rules["columns"].get(column.key)
                if transform and column.database == database and column.table_key not in rules["truncate"]:
                    tables.setdefault(column.table_key, []).append((column, transform))
            truncate = [column for column in columns
                        if column.table_key in rules["truncate"] and column.database == database]
            truncate = list(dict((column.table_key, column) for column in truncate).values())
            triggers_sql = self.sql.update_triggers_sql(sorted(tables))
            triggers = self._rows(database, triggers_sql) if tables and triggers_sql else []
            if triggers:
                raise MyaasError("Tables to mask have UPDATE triggers, which would fire while masking: %s. Drop them "
                                 "in post_import_sql, or truncate the tables they write." % ", ".join(
                                     row[0] for row in triggers))
            self._refuse_value_statistics(database, tables, truncate)
            script = self.sql.session_sql(key)
            script += "".join(self.sql.update_sql(table_columns, [
                column for column in columns if column.database == database and column.table_key == table
                and column.auto_update]) for table, table_columns in sorted(tables.items()))
            script += "".join(self.sql.truncate_sql(column) for column in truncate)
            script += "".join(self.sql.rebuild_sql(table_columns[0][0]) for _table, table_columns in
                              sorted(tables.items()))
            self._run(database, script, secret=key)
            rebuilt += self._refresh_views(database)
            scrub_started = time.monotonic()
            self._run(database, self.sql.scrub_sql())
            scrubbing += time.monotonic() - scrub_started
        return {
            "columns": dict(sorted(rules["columns"].items())),
            "truncated": rules["truncate"],
            "kept": rules["keep"],
            "rebuilt": rebuilt,
            "rules_sha256": masking_rules.rules_hash(rules),
            # Masking and rebuilding grow with the rows; the scrub (purge, new redo log) hardly does.
            "seconds": round(time.monotonic() - started - scrubbing, 3),
            "scrub_seconds": round(scrubbing, 3),
        }

    def _refresh_views(self, database):
        """Refresh every populated materialized view from the masked tables, in dependency order."""
        if not hasattr(self.sql, "matviews_sql"):
            return []
        names = self.sql.refresh_order_of(self._rows(database, self.sql.matviews_sql()))
        if names:
            self._run(database, self.sql.refresh_sql(names))
        prefix = "" if database in (None, self.databases[0]) else database + "/"
        return [prefix + name for name in names]

    def _refuse_value_statistics(self, database, tables, truncate):
        """Fail on column statistics that hold values of masked columns (or of truncated tables), kept where
        no rebuild reaches (MySQL's histograms in the data dictionary, MariaDB's mysql.column_stats)."""
        statistics_sql = self.sql.value_statistics_sql(sorted(tables) + [column.table_key for column in truncate])
        if not statistics_sql or not (tables or truncate):
            return
        masked = set(column.key for table_columns in tables.values() for column, _transform in table_columns)
        emptied = set(column.table_key for column in truncate)
        found = [row[0] for row in self._rows(database, statistics_sql)
                 if row[0] in masked or row[0].rsplit(".", 1)[0] in emptied]
        if found:
            raise MyaasError("Column statistics hold values of columns to mask or of tables to truncate (%s), and "
                             "dropping them would leave the values in files no rebuild rewrites. %s"
                             % (", ".join(found), self.sql.value_statistics_advice), histograms=found)

    # -- 3. count, 4. check ------------------------------------------------------
    def row_counts(self, columns):
        counts = {}
        for database in self._scopes():
            tables = {}
            for column in columns:
                if column.database == database:
                    tables.setdefault(column.table_key, column)
            names = sorted(tables.items())
            for start in range(0, len(names), 200):
                for key, count in self._rows(database, self.sql.count_sql(names[start:start + 200])):
                    prefix = "" if database in (None, self.databases[0]) else database + "/"
                    counts[prefix + key] = int(count)
        return counts

    def run_checks(self, queries, database):
        report = []
        for query in queries:
            rc, out, err = self.docker.exec(self.container, self.engine.query_argv(query, database), check=False,
                                            user=self.engine.exec_user)
            lines = [line for line in out.splitlines() if line.strip()]
            passed = rc == 0 and len(lines) == 1 and lines[0].strip().lower() in TRUE_VALUES
            returned = (err.strip() or out.strip())[-500:] if rc else out.strip()[-500:]
            if not passed:
                raise MyaasError("The check %r %s, not one true value: %s" % (
                    query, "failed" if rc else "returned", returned or "no rows"), failed_check=query)
            report.append({"sql": query, "returned": returned, "passed": True})
        return report
