"""The SQL and argv behind PostgreSQL's restore cases: roles a dump names, event triggers, materialized views."""

import os
import subprocess

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.postgresql import (
    ROLE_LINES_ERE, PostgreSQL, roles_in_statement)
from ansible_collections.myaas.myaas.plugins.module_utils.masking.postgresql import (
    PostgreSQLMasking, QUIET_BEGIN, QUIET_END, refresh_order)
from ansible_collections.myaas.myaas.plugins.module_utils.templates.roles import matching_lines

CASES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "cases")


@pytest.mark.parametrize("line, named", [
    ("ALTER TABLE public.account OWNER TO ledger_owner;", ["ledger_owner"]),
    ('ALTER FUNCTION public.f(a integer, b text) OWNER TO "Mixed Case";', ["Mixed Case"]),
    ("ALTER SCHEMA app OWNER TO App_Owner;", ["app_owner"]),
    ("GRANT SELECT ON TABLE public.t TO app_ro;", ["app_ro"]),
    ("GRANT ALL ON SCHEMA public TO a, GROUP b WITH GRANT OPTION;", ["a", "b"]),
    ('GRANT ALL ON TABLE public."a TO b" TO z;', ["z"]),
    ("GRANT SELECT(a, b) ON TABLE t TO c;", ["c"]),
    ("GRANT admin TO alice GRANTED BY postgres;", ["alice", "admin", "postgres"]),
    ("REVOKE ALL ON SCHEMA public FROM PUBLIC;", []),
    ("REVOKE ADMIN OPTION FOR r1 FROM u1;", ["u1", "r1"]),
    ("ALTER DEFAULT PRIVILEGES FOR ROLE owner1 IN SCHEMA public GRANT SELECT ON TABLES TO reader;",
     ["owner1", "reader"]),
    ("CREATE POLICY p ON public.t FOR SELECT TO tenant_a, tenant_b USING ((owner = CURRENT_USER));",
     ["tenant_a", "tenant_b"]),
    ("CREATE POLICY p ON public.t USING (true);", []),
    ("CREATE SCHEMA s AUTHORIZATION owner2;", ["owner2"]),
    ("SET SESSION AUTHORIZATION 'legacy';", ["legacy"]),
    ("SET ROLE x;", ["x"]),
    ("SET ROLE NONE;", []),
    ("GRANT CONNECT ON DATABASE app TO CURRENT_USER, SESSION_USER;", []),
])
def test_the_roles_a_statement_names(line, named):
    assert roles_in_statement(line) == (named, [])


def test_roles_a_dump_creates_are_not_named_and_the_grep_finds_each_statement():
    assert roles_in_statement("CREATE ROLE postgres;") == ([], ["postgres"])
    with open(os.path.join(CASES, "07-pg-missing-owner.sql"), "rb") as handle:
        lines = [line.decode() for line in handle if subprocess.run(
            ["grep", "-qE", ROLE_LINES_ERE], input=line, check=False).returncode == 0]
    assert len(lines) == 5 and all(" OWNER TO ledger_owner;" in line for line in lines)
    assert PostgreSQL.dump_roles(lines) == (["ledger_owner"], [])


def test_the_pre_pass_reads_compressed_dumps_and_only_lines_that_start_a_statement(tmp_path):
    dump = tmp_path / "d.sql"
    dump.write_text("CREATE TABLE t (v text);\nCOPY t (v) FROM stdin;\nGRANT in a value TO nobody\n\\.\n"
                    "ALTER TABLE t OWNER TO owner_a;\nGRANT SELECT ON t TO reader;\n  GRANT indented TO x;\n")
    subprocess.run(["gzip", "--keep", str(dump)], check=True)
    for path, fmt in ((str(dump), "plain"), (str(dump) + ".gz", "gzip")):
        lines = matching_lines(path, fmt, ROLE_LINES_ERE)
        # A data line of a COPY block that reads like a GRANT is data, not a statement.
        assert PostgreSQL.dump_roles(lines)[0] == ["owner_a", "reader"]


def test_a_create_role_of_an_existing_role_is_commented_out_line_for_line():
    client = ["psql", "--dbname", "x y"]
    argv = PostgreSQL().skip_create_role_argv(["postgres"], client)
    assert argv[:2] == ["sh", "-c"] and argv[2].endswith("| exec psql --dbname 'x y'")
    script = argv[2].split(" | exec ", maxsplit=1)[0]
    out = subprocess.run(["sh", "-c", script], input="CREATE ROLE postgres;\nCREATE ROLE postgres2;\n",
                         capture_output=True, text=True, check=True).stdout
    assert out == "-- exists already: CREATE ROLE postgres;\nCREATE ROLE postgres2;\n"
    assert PostgreSQL().skip_create_role_argv(["we'ird"], client) == client


def test_created_roles_cannot_log_in_and_passwords_are_removed_with_their_old_rows():
    engine = PostgreSQL()
    assert engine.create_roles_sql(["a", 'b"c']) == 'CREATE ROLE "a" NOLOGIN;\nCREATE ROLE "b""c" NOLOGIN;\n'
    sql = engine.remove_passwords_sql(["app"])
    assert sql.startswith('ALTER ROLE "app" PASSWORD NULL;\n') and "VACUUM FULL pg_catalog.pg_authid" in sql
    assert engine.remove_passwords_sql([]) == ""


def test_helper_ddl_runs_with_the_event_triggers_off_and_puts_them_back():
    dialect = PostgreSQLMasking()
    for script in (dialect.setup_sql(), dialect.drop_sql(), dialect.refresh_sql(["public.v"])):
        assert script.startswith(QUIET_BEGIN) and script.endswith(QUIET_END)
    assert dialect.scrub_sql().startswith(QUIET_BEGIN) and "VACUUM FULL pg_catalog.pg_statistic" in dialect.scrub_sql()
    # Each mode comes back as it was: ENABLE, ENABLE REPLICA, ENABLE ALWAYS.
    assert "WHEN 'A' THEN 'ALWAYS' WHEN 'R' THEN 'REPLICA'" in QUIET_END


def test_materialized_views_refresh_after_what_they_read_even_through_a_view():
    rows = [
        ("30", "public.top", "m", "t", "20"),        # reads a view that reads mid
        ("20", "public.v", "v", "f", "10"),
        ("10", "public.mid", "m", "t", "5"),         # 5 is a table
        ("40", "public.empty", "m", "f", "5"),       # WITH NO DATA: stays empty
        ("50", "public.other", "m", "t", ""),
    ]
    assert refresh_order(rows) == ["public.mid", "public.top", "public.other"]
    assert refresh_order(list(reversed(rows))) == ["public.mid", "public.top", "public.other"]
    assert PostgreSQLMasking().refresh_sql(["public.mid"]).count("REFRESH MATERIALIZED VIEW public.mid;") == 1


def test_materialized_view_columns_are_classified_and_marked_derived():
    dialect = PostgreSQLMasking()
    assert "c.relkind = 'm' AND c.relispopulated" in dialect.columns_sql([])
    view = dialect.column("shop", ["public", "v", "email", "text", "S", "0", "m"])
    table = dialect.column("shop", ["public", "t", "email", "text", "S", "0", "r"])
    assert view.derived and not table.derived and view.key == "public.v.email"


def test_update_triggers_that_replica_mode_does_not_quiet_are_listed():
    sql = PostgreSQLMasking().update_triggers_sql(["public.person", "o'k.t"])
    assert "tgenabled IN ('A', 'R')" in sql and "tgtype & 16 <> 0" in sql and "NOT tgisinternal" in sql
    assert "IN ('public.person', 'o''k.t')" in sql and "format('%s (%s)'" in sql
