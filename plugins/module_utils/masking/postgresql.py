# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL's side of masking/sql.py: the same transforms, hash and patterns.

PostgreSQL keeps a template's databases apart, so the classifier, the masker
and the row counts run once per database; rules name ``schema.table.column``.
"""

from __future__ import annotations

from ansible_collections.myaas.myaas.plugins.module_utils.engines.postgresql import quote_ident, quote_literal
from ansible_collections.myaas.myaas.plugins.module_utils.masking.sql import (
    DATE, FIRST_NAMES, LAST_NAMES, LOREM, OTHER, PATTERNS, SCHEMA, TEXT, Column, MaskingDialect, declared_length)


# Event triggers in a dump (an audit of DDL into the application's tables)
# would fire on MyAAS's own helper DDL. Each script that runs such DDL turns
# every enabled one off first and back on, in the same mode, at its end;
# statements on event triggers fire none. In one session: the modes wait in a
# session setting.
QUIET_BEGIN = (
    "DO $q$ DECLARE r record; BEGIN "
    "PERFORM set_config('myaas.event_triggers', coalesce((SELECT json_object_agg(evtname, evtenabled)::text "
    "FROM pg_event_trigger WHERE evtenabled <> 'D'), '{}'), false); "
    "FOR r IN SELECT evtname FROM pg_event_trigger WHERE evtenabled <> 'D' LOOP "
    "EXECUTE format('ALTER EVENT TRIGGER %I DISABLE', r.evtname); END LOOP; END $q$;\n")
QUIET_END = (
    "DO $q$ DECLARE r record; BEGIN "
    "FOR r IN SELECT key, value FROM json_each_text(current_setting('myaas.event_triggers')::json) LOOP "
    "EXECUTE format('ALTER EVENT TRIGGER %I ENABLE %s', r.key, "
    "CASE r.value WHEN 'A' THEN 'ALWAYS' WHEN 'R' THEN 'REPLICA' ELSE '' END); END LOOP; END $q$;\n")


def quiet(script):
    """``script`` with the dump's event triggers off while it runs."""
    return QUIET_BEGIN + script + QUIET_END


def refresh_order(rows):
    """Materialized views to refresh, those they read first: names from rows of ``matviews_sql``.

    Views are followed (a view between two materialized views orders them too),
    but only populated materialized views are refreshed: one the dump left
    WITH NO DATA holds none.
    """
    nodes = dict((oid, (name, kind, populated, [dep for dep in deps.split(",") if dep]))
                 for oid, name, kind, populated, deps in rows)
    order, seen = [], set()

    def visit(oid):
        if oid in seen or oid not in nodes:
            return
        seen.add(oid)
        name, kind, populated, deps = nodes[oid]
        for dep in deps:
            visit(dep)
        if kind == "m" and populated == "t":
            order.append(name)
    for oid in sorted(nodes, key=int):
        visit(oid)
    return order


def _array(values):
    return "ARRAY[%s]" % ", ".join(quote_literal(value) for value in values)


class PostgreSQLMasking(MaskingDialect):
    quote = staticmethod(quote_ident)
    literal = staticmethod(quote_literal)
    per_database = True

    def columns_sql(self, databases):
        del databases   # one database at a time
        # Every relation that stores rows: tables (a partitioned one reads its
        # partitions) and populated materialized views. Indexes and TOAST are
        # rebuilt with their relation; sequences hold numbers.
        return ("SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory, "
                "CASE WHEN a.atttypmod > 4 AND t.typcategory = 'S' THEN a.atttypmod - 4 ELSE 0 END, c.relkind "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE (c.relkind IN ('r', 'p') OR c.relkind = 'm' AND c.relispopulated) AND NOT c.relispartition "
                "AND a.attnum > 0 AND NOT a.attisdropped "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema', %s) AND n.nspname NOT LIKE 'pg\\_%%' "
                "ORDER BY 1, 2, a.attnum" % quote_literal(SCHEMA))

    def column(self, database, fields):
        schema, table, name, sql_type, category, max_length, relkind = fields
        kind = TEXT if category in ("S", "I") or sql_type in ("json", "jsonb") else (DATE if category == "D" else OTHER)
        column = Column(database, schema, table, name, sql_type, kind, declared_length(max_length))
        # A materialized view's rows are derived: rebuilt from the masked tables, not masked themselves.
        column.derived = relkind == "m"
        return column

    def matviews_sql(self):
        """Rows (oid, quoted name, relkind, populated, oids it reads) of every view and materialized view."""
        return ("SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relkind, c.relispopulated, "
                "coalesce(string_agg(DISTINCT d.refobjid::text, ','), '') FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_rewrite r ON r.ev_class = c.oid "
                "LEFT JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid "
                "AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid "
                "WHERE c.relkind IN ('m', 'v') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "GROUP BY 1, 2, 3, 4")

    refresh_order_of = staticmethod(refresh_order)

    def refresh_sql(self, names):
        # New files for each view and its indexes, computed from the masked
        # tables; the old ones go at the next checkpoint, like VACUUM FULL's.
        return quiet("".join("REFRESH MATERIALIZED VIEW %s;\nANALYZE %s;\n" % (name, name) for name in names))

    def matches(self, expr, kind):
        return "(%s::text ~ %s)::int" % (expr, quote_literal(PATTERNS[kind]))

    def card_digits(self, expr):
        return "regexp_replace(substring(%s::text from %s), '[^0-9]', '', 'g')" % (
            expr, quote_literal(PATTERNS["card"]))

    def setup_sql(self):
        s = quote_ident(SCHEMA)

        def fn(signature, returns, body, language="sql", strict=False):
            # SQL functions that are one expression, not STRICT, are inlined by
            # the planner: no call per row. NULL in gives NULL out all the same.
            return "CREATE FUNCTION %s.%s RETURNS %s LANGUAGE %s STABLE%s AS $f$ %s $f$;" % (
                s, signature, returns, language, " STRICT" if strict else "", body)
        h = "%s.h(v)" % s
        return quiet("\n".join([
            "DROP SCHEMA IF EXISTS %s CASCADE;" % s, "CREATE SCHEMA %s;" % s,
            fn("h(v text)", "text",
               "SELECT encode(sha256(convert_to(current_setting('myaas.key') || v, 'UTF8')), 'hex')"),
            fn("num(x text, pos int, len int)", "bigint",
               "SELECT ('x' || lpad(substr(x, pos, len), 16, '0'))::bit(64)::bigint"),
            fn("luhn_digit(p text)", "text",
               "DECLARE total int := 0; d int; BEGIN FOR i IN 0 .. length(p) - 1 LOOP "
               "d := ascii(substr(p, length(p) - i, 1)) - 48; IF i % 2 = 0 THEN d := d * 2; "
               "IF d > 9 THEN d := d - 9; END IF; END IF; total := total + d; END LOOP; "
               "RETURN ((10 - total % 10) % 10)::text; END", language="plpgsql", strict=True),
            fn("luhn_ok(d text)", "int",
               "SELECT (length(d) BETWEEN 13 AND 19 AND %s.luhn_digit(left(d, length(d) - 1)) = right(d, 1))::int" % s,
               strict=True),
            fn("email(v text)", "text", "SELECT 'user.' || left(%s, 16) || '@example.com'" % h),
            fn("name(v text)", "text", "SELECT (%s)[1 + %s.num(%s, 1, 4) %% %d] || ' ' || (%s)[1 + %s.num(%s, 5, 4) %% %d]"
               % (_array(FIRST_NAMES), s, h, len(FIRST_NAMES), _array(LAST_NAMES), s, h, len(LAST_NAMES))),
            fn("phone(v text)", "text", "SELECT '+1 555 ' || lpad((%s.num(%s, 1, 8) %% 10000000)::text, 7, '0')" % (s, h)),
            fn("card_payload(v text)", "text",
               "SELECT '4' || lpad((%s.num(%s, 1, 13) %% 100000000000000)::text, 14, '0')" % (s, h)),
            fn("credit_card(v text)", "text",
               "SELECT %s.card_payload(v) || %s.luhn_digit(%s.card_payload(v))" % (s, s, s)),
            fn("ip(v text)", "text", "SELECT '10.' || %s.num(%s, 1, 2) || '.' || %s.num(%s, 3, 2) || '.' || %s.num(%s, 5, 2)"
               % (s, h, s, h, s, h)),
            fn("text(v text)", "text", "SELECT left('Lorem ipsum ' || left(%s, 8) || ' ' || %s, greatest(char_length(v), 8))"
               % (h, quote_literal(LOREM))),
            ""]))

    def session_sql(self, key):
        # replica: neither foreign keys nor the tables' own triggers fire while masking.
        return "SET myaas.key = %s;\nSET session_replication_role = replica;\n" % quote_literal(key)

    def expression(self, column, transform):
        s, c = quote_ident(SCHEMA), quote_ident(column.name)
        if transform == "null":
            return "NULL"
        if transform.startswith("fixed:"):
            return "CASE WHEN %s IS NULL THEN NULL ELSE %s END::%s" % (
                c, quote_literal(transform[len("fixed:"):]), column.sql_type)
        if transform == "date":
            return "(%s + ((%s.num(%s.h(%s::text), 1, 4) %% 365) - 182) * interval '1 day')::%s" % (
                c, s, s, c, column.sql_type)
        expr = "%s.%s(%s::text)" % (s, "h" if transform == "hash" else transform, c)
        if transform in ("hash", "text") and column.max_length:
            expr = "left(%s, %d)" % (expr, column.max_length)
        return "%s::%s" % (expr, column.sql_type)

    def rebuild_sql(self, column):
        # New files for the table, its TOAST table and indexes; the old ones
        # are emptied at commit and unlinked at the next checkpoint.
        return "VACUUM FULL %s;\nANALYZE %s;\n" % (self.table(column), self.table(column))

    def update_triggers_sql(self, table_keys):
        # session_replication_role = replica quiets the tables' own triggers,
        # but not those enabled ALWAYS or REPLICA (bit 16 of tgtype: UPDATE).
        return ("SELECT format('%%s (%%s)', tgname, tgrelid::regclass) FROM pg_trigger t JOIN pg_class c ON c.oid = "
                "t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT tgisinternal AND tgenabled IN "
                "('A', 'R') AND tgtype & 16 <> 0 AND n.nspname || '.' || c.relname IN (%s) ORDER BY 1"
                % ", ".join(quote_literal(key) for key in table_keys))

    def import_args(self):
        return []

    def after_shutdown_script(self):
        # After the clean shutdown: a new, empty WAL; the segments that saw the
        # original rows (recycled ones too) are deleted.
        return ('for bin in /usr/lib/postgresql/*/bin; do [ -x "$bin/pg_resetwal" ] && PATH=$bin:$PATH; done; '
                'exec pg_resetwal --pgdata="$1"')

    def drop_sql(self):
        return quiet("DROP SCHEMA IF EXISTS %s CASCADE;\n" % quote_ident(SCHEMA))

    def scrub_sql(self):
        # Column statistics may hold sampled values: the tables were analysed
        # again after masking, and the catalog is rewritten without the old rows.
        return quiet("DROP SCHEMA IF EXISTS %s CASCADE;\n" % quote_ident(SCHEMA)) + \
            "VACUUM FULL pg_catalog.pg_statistic;\nCHECKPOINT;\n"
