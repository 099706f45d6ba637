# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every view and routine of a template, tried on the upgraded server.

An upgrade keeps table data, but views and stored routines are kept as text
(MySQL, MariaDB) or restored without checking their bodies (pg_upgrade sets
check_function_bodies off), so a new reserved word, a removed system variable
or a dropped catalog column breaks them only when somebody uses them. Here
each one is compiled now:

- views: ``SELECT ... LIMIT 0`` from each (the server parses, resolves and
  plans the view, and reads no row); a materialized view created WITH NO
  DATA cannot be read on any version and is left out;
- routines: MySQL and MariaDB re-create each under a probe name and drop it
  (their parser is the check; MariaDB's SHOW CREATE already parses the body);
  PostgreSQL runs each function's own ``CREATE OR REPLACE`` with
  check_function_bodies on, in a subtransaction that is always rolled back.

Each returns (objects tried, [{kind, name, problem}]).
"""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.base import quote_identifier, quote_sql_string

PROBE = "myaas_compile_probe"
DELIMITER = "$$myaas$$"
_ERROR_RE = re.compile(r"^ERROR \d+ \([0-9A-Z]+\) at line (\d+)(?: in file: '[^']*')?: (.*)$")
_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}
_NAME_RE = re.compile(r"^(CREATE\b.*?\b(?:PROCEDURE|FUNCTION)\s+)(`(?:[^`]|``)+`|\S+?)(\s*\()", re.S)


def unescape_batch(field):
    """A field of the MySQL client's --batch output, its escapes undone."""
    return re.sub(r"\\(.)", lambda found: _ESCAPES.get(found.group(1), found.group(1)), field)


def _failures(err, objects_by_line):
    """{object index: message} from the client's ``ERROR ... at line N`` lines (run with --force)."""
    failed = {}
    starts = sorted(objects_by_line)
    for line in err.splitlines():
        found = _ERROR_RE.match(line.strip())
        if not found:
            continue
        before = [start for start in starts if start <= int(found.group(1))]
        if before:
            failed.setdefault(objects_by_line[max(before)], found.group(2))
    return failed


class MySQLObjects:
    def __init__(self, docker, engine, container):
        self.docker, self.engine, self.container = docker, engine, container

    def _client(self, script):
        argv = self.engine.local_client() + ["--force"]
        return self.docker.exec(self.container, argv, check=False, data=script, user=self.engine.exec_user)

    def _rows(self, sql):
        out = self.docker.exec(self.container, self.engine.query_argv(sql), user=self.engine.exec_user)[1]
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def check(self, databases):
        if not databases:
            return 0, []
        schemas = ", ".join(quote_sql_string(name) for name in databases)
        views = self._rows("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN "
                           "(%s) ORDER BY 1, 2" % schemas)
        routines = self._rows("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES "
                              "WHERE ROUTINE_SCHEMA IN (%s) ORDER BY 1, 2, 3" % schemas)
        objects = [("view", schema, name) for schema, name in views] + \
            [(kind.lower(), schema, name) for schema, name, kind in routines]
        problems = {}
        # One line per object: views are selected from, routines shown (the
        # marker row before each tells whose definition follows).
        lines = []
        for index, (kind, schema, name) in enumerate(objects):
            qualified = "%s.%s" % (quote_identifier(schema), quote_identifier(name))
            if kind == "view":
                lines.append("SELECT 1 FROM %s LIMIT 0;" % qualified)
            else:
                lines.append("SELECT 'myaas-object-%d'; SHOW CREATE %s %s;" % (index, kind.upper(), qualified))
        _rc, out, err = self._client("\n".join(lines) + "\n")
        problems.update(_failures(err, dict((index + 1, index) for index in range(len(lines)))))
        definitions = {}
        marker = None
        for row in out.splitlines():
            if row.startswith("myaas-object-"):
                marker = int(row[len("myaas-object-"):])
            elif marker is not None and "\t" in row:
                fields = row.split("\t")
                if len(fields) >= 3:
                    definitions[marker] = (unescape_batch(fields[1]), unescape_batch(fields[2]))
                marker = None
        problems.update((index, message) for index, message in self._probe(objects, definitions).items()
                        if index not in problems)
        return len(objects), [{"kind": objects[index][0], "name": "%s.%s" % objects[index][1:],
                               "problem": message} for index, message in sorted(problems.items())]

    def _probe(self, objects, definitions):
        """Re-create each shown routine under the probe name; {object index: error}."""
        lines, starts = [], {}
        for index, (sql_mode, create) in sorted(definitions.items()):
            kind, schema, _name = objects[index]
            renamed, count = _NAME_RE.subn(lambda found: found.group(1) + quote_identifier(PROBE) + found.group(3), create, count=1)
            if not count:
                continue
            # From USE to DROP, an error is this routine's (a sql_mode the new
            # version no longer has fails the SET).
            starts[len(lines) + 1] = index
            lines += ["USE %s;" % quote_identifier(schema), "SET SESSION sql_mode = %s;" % quote_sql_string(sql_mode),
                      "DELIMITER %s" % DELIMITER]
            lines += renamed.split("\n")
            lines[-1] += DELIMITER
            lines += ["DELIMITER ;", "DROP %s IF EXISTS %s;" % (kind.upper(), quote_identifier(PROBE))]
        if not lines:
            return {}
        _rc, _out, err = self._client("\n".join(lines) + "\n")
        return _failures(err, starts)


# A temporary function: it lives in the session's pg_temp schema and goes with it.
_PG_CHECK = r"""
CREATE FUNCTION pg_temp.myaas_compile() RETURNS TABLE (kind text, name text, problem text)
LANGUAGE plpgsql AS $myaas$
DECLARE
    item record;
BEGIN
    PERFORM set_config('check_function_bodies', 'on', true);
    FOR item IN
        SELECT c.oid::regclass::text AS object FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (c.relkind = 'v' OR (c.relkind = 'm' AND c.relispopulated))
          AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                          AND d.deptype = 'e')
        ORDER BY 1
    LOOP
        kind := 'view'; name := item.object; problem := NULL;
        BEGIN
            EXECUTE format('SELECT 1 FROM %s LIMIT 0', item.object);
        EXCEPTION WHEN others THEN
            problem := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
    FOR item IN
        SELECT p.oid, p.oid::regprocedure::text AS object FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prokind IN ('f', 'p') AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                          AND d.deptype = 'e')
        ORDER BY 2
    LOOP
        kind := 'routine'; name := item.object; problem := NULL;
        BEGIN
            EXECUTE pg_get_functiondef(item.oid);
            -- Compiled: undo the replacement all the same.
            RAISE EXCEPTION USING ERRCODE = 'MYAAS';
        EXCEPTION
            WHEN SQLSTATE 'MYAAS' THEN NULL;
            WHEN others THEN problem := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END
$myaas$;
SELECT kind, name, coalesce(problem, '') FROM pg_temp.myaas_compile();
"""


class PostgreSQLObjects(MySQLObjects):
    def check(self, databases):
        tried, problems = 0, []
        for database in databases or [self.engine.default_database]:
            out = self.docker.exec(self.container, self.engine.local_client(database) + [
                "--tuples-only", "--no-align", "--field-separator", "\t"], data=_PG_CHECK,
                user=self.engine.exec_user)[1]
            prefix = "" if database == (databases or [None])[0] else database + "/"
            for line in out.splitlines():
                fields = line.split("\t")
                if len(fields) < 3:
                    continue
                tried += 1
                if fields[2]:
                    problems.append({"kind": fields[0], "name": prefix + fields[1], "problem": fields[2]})
        return tried, problems


def objects_checker(docker, engine, container):
    return (PostgreSQLObjects if engine.name == "postgresql" else MySQLObjects)(docker, engine, container)
