# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL: the official `postgres` image, MyAAS's offline image, any image with postgres."""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.base import Engine, shell_join, share_of

SOCKET_DIR = "/tmp"


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def quote_ident(value):
    return '"' + value.replace('"', '""') + '"'


# Lines of a dump that may name roles (pg_dump and pg_dumpall write each of
# these statements at the start of a line); an ERE for grep, so that a pre-pass
# over a dump of many GB costs a read and no Python per line.
ROLE_LINES_ERE = (r"^(ALTER .* OWNER TO |GRANT |REVOKE |CREATE (POLICY|ROLE|USER|GROUP|SCHEMA) |ALTER POLICY |"
                  r"ALTER DEFAULT PRIVILEGES |SET (ROLE|SESSION AUTHORIZATION) )")
_TOKEN_RE = re.compile(r'"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\'|[A-Za-z_][A-Za-z0-9_$]*|\S')
# Role specifications that are no role's name.
_NOT_ROLES = ("public", "current_user", "session_user", "current_role", "none", "default", "group", "user")


def _name(token):
    """A role name from an identifier token: quoted kept as written, plain folded to lower case."""
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    return token.lower()


def _roles_after(tokens, start):
    """The comma-separated role names from tokens[start]: ['a', 'b'] from `a, GROUP b, PUBLIC;`."""
    found = []
    index = start
    while index < len(tokens):
        token = tokens[index]
        if token.lower() == "group":
            index += 1
            continue
        if token[0] not in "\"'" and not (token[0].isalpha() or token[0] == "_"):
            break
        name = _name(token)
        if token[0] == '"' or name not in _NOT_ROLES:
            found.append(name)
        if index + 1 < len(tokens) and tokens[index + 1] == ",":
            index += 2
        else:
            break
    return found


def _top_level(tokens):
    """Upper-cased words outside parentheses, with their positions: what a statement's clauses are."""
    depth, words = 0, {}
    for index, token in enumerate(tokens):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0 and token[0].isalpha():
            words.setdefault(token.upper(), index)
    return words


def roles_in_statement(line):
    """(roles the statement names, roles it creates) for one line of a dump.

    Names come from OWNER TO, GRANT/REVOKE (grantees, granted roles, GRANTED
    BY), CREATE/ALTER POLICY ... TO, ALTER DEFAULT PRIVILEGES FOR ROLE, CREATE
    SCHEMA ... AUTHORIZATION, SET ROLE and SET SESSION AUTHORIZATION.
    """
    tokens = _TOKEN_RE.findall(line)
    words = [token.upper() for token in tokens[:4]]
    if len(words) < 2:
        return [], []
    top = _top_level(tokens)
    named = []
    if words[0] == "CREATE" and words[1] in ("ROLE", "USER", "GROUP"):
        return [], _roles_after(tokens, 2)[:1]
    if words[:2] == ["SET", "ROLE"]:
        named = _roles_after(tokens, 2)
    elif words[:3] == ["SET", "SESSION", "AUTHORIZATION"]:
        named = _roles_after(tokens, 3)
    elif words[0] == "ALTER" and "OWNER" in top and tokens[top["OWNER"] + 1:top["OWNER"] + 2] in (["TO"], ["to"]):
        named = _roles_after(tokens, top["OWNER"] + 2)
    elif words[0] in ("CREATE", "ALTER") and words[1] == "POLICY" and "TO" in top:
        named = _roles_after(tokens, top["TO"] + 1)
    elif words[:2] == ["CREATE", "SCHEMA"] and "AUTHORIZATION" in top:
        named = _roles_after(tokens, top["AUTHORIZATION"] + 1)
    else:
        if words[:3] == ["ALTER", "DEFAULT", "PRIVILEGES"]:
            if words[3:4] == ["FOR"]:
                named += _roles_after(tokens, 5)
            tokens = tokens[next((i for i, t in enumerate(tokens) if t.upper() in ("GRANT", "REVOKE")),
                                 len(tokens)):]
            top = _top_level(tokens)
        verb = tokens[0].upper() if tokens else ""
        target = "TO" if verb == "GRANT" else "FROM" if verb == "REVOKE" else None
        if target and target in top:
            named += _roles_after(tokens, top[target] + 1)
            if "ON" not in top or top["ON"] > top[target]:
                # GRANT role TO member: the granted roles are roles too.
                option_for = [token.upper() for token in tokens[2:4]] == ["OPTION", "FOR"]
                named += _roles_after(tokens, 4 if option_for else 1)
            if "GRANTED" in top:
                named += _roles_after(tokens, top["GRANTED"] + 2)
    return named, []


class PostgreSQL(Engine):
    name = "postgresql"
    default_image = "postgres:15"
    datadir = "/var/lib/postgresql/data"
    port = 5432
    dsn_scheme = "postgresql"
    account = "postgres"
    default_database = "postgres"
    # SIGINT is PostgreSQL's fast shutdown: it ends sessions, writes a
    # shutdown checkpoint and marks the cluster "shut down" in its control file.
    stop_signal = "SIGINT"
    credentials_via = "local_client"
    # Measured on PostgreSQL 15 at a btrfs quota group's limit: a WAL write
    # that fails is a PANIC, and recovery then fails on the same limit, over
    # and over; no server option keeps the WAL and the checkpoint within it.
    disk_quota_refused = ("at the limit a PostgreSQL server PANICs on its write-ahead log and cannot recover until "
                          "the limit is raised")
    upgrade_method = "pg_upgrade"
    own_schema_re = re.compile(rb"^\s*(CREATE\s+DATABASE\s|\\connect\s)", re.IGNORECASE | re.MULTILINE)
    schema_switch_re = re.compile(rb"^\\connect\s+(?:-reuse-previous=\S+\s+)?\"?(?:dbname=')?([^\"'\s]+)",
                                  re.MULTILINE)
    archive_magic = {b"PGDMP": "pg_custom"}
    error_re = re.compile(r"(^ERROR|: ERROR: |^pg_restore: error)")
    # initdb gives the superuser no password: local logins are by OS user
    # (peer), and every TCP login needs a password (scram-sha-256), which
    # only the instance's own account has.
    launcher = """set -eu
datadir=$1; shift
for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/postgres" ]; then PATH=$bin:$PATH; fi
done
export PATH
if [ ! -s "$datadir/PG_VERSION" ]; then
    initdb --pgdata="$datadir" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \\
        --auth-local=peer --auth-host=scram-sha-256 >&2
    echo "host all all all scram-sha-256" >> "$datadir/pg_hba.conf"
fi
exec postgres -D "$datadir" "$@"
"""
    # Loading needs no crash safety: a failed import is thrown away, and the
    # import ends with a clean shutdown. Given on the command line, none of
    # this reaches postgresql.conf, so clones never see it.
    bulk_args = (
        "-c", "fsync=off",
        "-c", "full_page_writes=off",
        "-c", "synchronous_commit=off",
        "-c", "wal_level=minimal",
        "-c", "max_wal_senders=0",
        "-c", "archive_mode=off",
        "-c", "autovacuum=off",
        "-c", "checkpoint_timeout=1h",
        "-c", "max_wal_size=8GB",
    )

    def server_args(self):
        return ["-c", "listen_addresses=*", "-c", "port=%d" % self.port, "-c", "unix_socket_directories=" + SOCKET_DIR]

    def bulk_load_args(self, tuning, memory_bytes):
        # Index builds after COPY use maintenance_work_mem; shared buffers
        # hold the tables being loaded.
        settings = {"shared_buffers": share_of(memory_bytes, 0.125, 128, 4096) + "B",
                    "maintenance_work_mem": share_of(memory_bytes, 0.0625, 64, 2048) + "B"}
        settings.update(tuning or {})
        args = list(self.bulk_args)
        for key in sorted(settings):
            args += ["-c", "%s=%s" % (key, settings[key])]
        return args

    def clone_args(self):
        return ["-c", "shared_buffers=32MB", "-c", "max_connections=50"]

    def local_client(self, database=None):
        return ["psql", "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--host", SOCKET_DIR,
                "--username", "postgres", "--dbname", database or "postgres"]

    def query_argv(self, sql, database=None):
        return self.local_client(database) + ["--tuples-only", "--no-align", "--field-separator", "\t",
                                              "--command", sql]

    def restore_argv(self, fmt, database, path, jobs):
        # Owners are kept, as a plain dump keeps them: the roles the archive
        # names were made first (templates/roles.py).
        return ["pg_restore", "--exit-on-error", "--host", SOCKET_DIR, "--username", "postgres",
                "--jobs", str(jobs), "--dbname", database or "postgres"] + ([] if database else ["--create"]) + [path]

    # -- roles a dump names ----------------------------------------------------
    role_lines_ere = ROLE_LINES_ERE

    def schema_only_argv(self, path):
        """argv, run in the container, that prints an archive's DDL as SQL (no table data)."""
        return ["pg_restore", "--schema-only", "--file", "-", path]

    @staticmethod
    def dump_roles(lines):
        """(roles the dump's statements name, roles it creates itself), each in the dump's order."""
        named, created = [], []
        for line in lines:
            found, made = roles_in_statement(line)
            named += [name for name in found if name not in named]
            created += [name for name in made if name not in created]
        return named, created

    def existing_roles_sql(self):
        return "SELECT rolname FROM pg_roles ORDER BY 1"

    def create_roles_sql(self, roles):
        # NOLOGIN and no password: a production dump names its owners and
        # grantees, and only what they own and may do matters in a copy.
        return "".join("CREATE ROLE %s NOLOGIN;\n" % quote_ident(role) for role in roles)

    def skip_create_role_argv(self, roles, client_argv):
        """``client_argv`` behind a filter that comments out the dump's CREATE ROLE of ``roles`` (which exist).

        pg_dumpall writes `CREATE ROLE postgres;` for the superuser, which every
        server has; under ON_ERROR_STOP it would end the load. Line for line,
        so the client's error messages still name the dump's lines.
        """
        names = [name for name in roles if re.match(r"^[a-z_][a-z0-9_]*$", name)]
        if not names:
            return client_argv
        script = "LC_ALL=C sed -E 's/^CREATE ROLE (%s);$/-- exists already: &/' | exec %s" % (
            "|".join(names), shell_join(client_argv))
        return ["sh", "-c", script]

    def login_passwords_sql(self):
        """A query listing the roles that have a password (a dump of roles brought them)."""
        return "SELECT rolname FROM pg_authid WHERE rolpassword IS NOT NULL ORDER BY 1"

    def remove_passwords_sql(self, roles):
        # LOGIN stays, so the roles keep what they may do: with no password no
        # TCP login (scram-sha-256) succeeds. The old pg_authid rows, which hold
        # the production verifiers, are rewritten away.
        if not roles:
            return ""
        return "".join("ALTER ROLE %s PASSWORD NULL;\n" % quote_ident(role) for role in roles) + \
            "VACUUM FULL pg_catalog.pg_authid;\nCHECKPOINT;\n"

    def create_database_sql(self, database):
        return "CREATE DATABASE %s;\n" % quote_ident(database)

    def list_databases_sql(self):
        # oid order is creation order: the dump's first database comes first.
        return "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY oid"

    def before_shutdown_sql(self):
        return "CHECKPOINT;\n"

    def clean_shutdown(self, log_text):
        # The last line: an instance's log holds every run since it was made.
        lines = [line for line in log_text.splitlines() if line.strip()]
        return bool(lines) and "database system is shut down" in lines[-1]

    def crash_recovery(self, log_text):
        return "not properly shut down" in log_text or "redo starts at" in log_text

    def init_sql(self, user, password, database):
        role = quote_ident(user)
        lines = [
            # Templates made before MyAAS started servers itself carry the
            # official entrypoint's superuser password; no clone keeps it.
            "ALTER ROLE postgres WITH PASSWORD NULL;",
            "SELECT 'CREATE ROLE %s' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)\\gexec"
            % (role.replace("'", "''"), quote_literal(user)),
            "ALTER ROLE %s WITH LOGIN SUPERUSER PASSWORD %s;" % (role, quote_literal(password)),
        ]
        if database:
            lines.append("SELECT 'CREATE DATABASE %s' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = %s)"
                         "\\gexec" % (quote_ident(database).replace("'", "''"), quote_literal(database)))
        return "\n".join(lines) + "\n"

    def lock_accounts_sql(self, users):
        # A branch's data holds the role of the instance it was made from: it
        # keeps what it owns, but logs in no more.
        if not users:
            return ""
        return ("SELECT format('ALTER ROLE %%I NOLOGIN PASSWORD NULL', rolname) FROM pg_roles "
                "WHERE rolname IN (%s)\\gexec\n" % ", ".join(quote_literal(user) for user in users))

    # -- upgrade rehearsal ---------------------------------------------------------
    def version_argv(self):
        return ["sh", "-c", 'for bin in /usr/lib/postgresql/*/bin/postgres; do [ -x "$bin" ] && exec "$bin" --version; '
                'done; exec postgres --version']

    def version_sql(self):
        return "SHOW server_version"

    def upgrade_commands(self):
        # pg_upgrade carries no planner statistics: production runs this
        # before it takes traffic again, and so does the rehearsal.
        return [("analyze", ["vacuumdb", "--host", SOCKET_DIR, "--username", "postgres", "--all", "--analyze-only",
                             "--quiet"])]

    def startup_findings(self, log_text):
        warnings, errors = [], []
        for line in log_text.splitlines():
            if re.search(r"\b(ERROR|FATAL|PANIC):", line):
                errors.append(line.strip())
            elif "WARNING:" in line:
                warnings.append(line.strip())
        return warnings, errors

    def connect(self, host, port, user, password, database, timeout):
        import psycopg2  # pylint: disable=import-outside-toplevel
        return psycopg2.connect(host=host, port=port, user=user, password=password,
                                dbname=database or "postgres", connect_timeout=max(1, int(timeout)))

    def client_command(self, user, password, host, port, database):
        return shell_join(["psql", self.dsn(user, password, host, port, database or self.default_database)])
