"""PostgreSQL dumps from real restore failures (tests/data/cases), on the official image and MyAAS's offline one.

Each case is imported as a template, cloned, and its expectations checked in
the clone as the instance's user: the first value of each ``check_sql`` query,
and for masked cases that no original value is in any file of the template.
A dump made by a real `pg_dumpall` loads too, and its login role's production
password opens no clone.
"""

import json
import os
import subprocess
import time

import pytest

from rig import PG_IMAGE, ROOT, files_holding, sh

CASES_DIR = os.path.join(ROOT, "tests", "data", "cases")
with open(os.path.join(CASES_DIR, "postgresql.json"), encoding="utf-8") as _handle:
    CASES = dict((case["id"], case) for case in json.load(_handle))
IMAGES = ["postgres:15", PG_IMAGE]


def short(image):
    return ("off" if image.startswith("myaas/") else "std") + image.rsplit(":", 1)[1]


def first_value(rig, instance, sql, database=None):
    rows = rig.query(instance, sql, database)
    value = rows[0][0] if rows else "(none)"
    return "NULL" if value is None else ("true" if value is True else "false" if value is False else str(value))


@pytest.fixture
def case_run(rig):
    """Import a case as a template and clone it; both are removed afterwards."""
    made = []

    def run(case_id, image):
        case = CASES[case_id]
        name = "pgcase%s-%s" % (case_id, short(image))
        options = {"engine": "postgresql", "image": image}
        if case.get("masking"):
            options["masking"] = case["masking"]
        made.append(name)
        result = rig.template(name, os.path.join(CASES_DIR, case["file"]), **options)
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        instance = rig.instance(name, template=name)
        assert not instance.get("failed"), instance.get("msg", instance)
        return case, result["template"], instance["instance"]
    yield run
    for name in made:
        rig.instance(name, state="absent")
        rig.template(name, None, state="absent")


def check_case(rig, case, instance):
    for sql, want in case["check_sql"]:
        assert first_value(rig, instance, sql, case.get("database")) == want, sql


@pytest.mark.parametrize("image", IMAGES)
def test_a_role_the_dump_names_but_the_server_lacks_is_made_nologin(rig, case_run, image):
    case, template, instance = case_run("07", image)
    assert template["roles_created"] == ["ledger_owner"]
    check_case(rig, case, instance)
    # The objects keep their owner, and the role it made cannot log in.
    assert first_value(rig, instance, "SELECT tableowner FROM pg_tables WHERE tablename = 'account'") == "ledger_owner"
    assert first_value(rig, instance, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ledger_owner'") == "false"
    assert first_value(rig, instance, "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'ledger_owner'") \
        == "true"


@pytest.mark.parametrize("image", IMAGES + ["postgres:17"])
def test_the_dumps_event_trigger_sees_none_of_myaas_own_ddl(rig, case_run, image):
    # Classification makes helper functions in the import server (this dump
    # has text columns); the trigger logged each of them before.
    case, template, instance = case_run("12", image)
    assert template["roles_created"] == [] and template["passwords_removed"] == []
    check_case(rig, case, instance)
    assert first_value(rig, instance, "SELECT count(*) FROM pg_namespace WHERE nspname = 'myaas_masking'") == "0"


@pytest.mark.parametrize("image", IMAGES)
def test_a_database_with_the_dumps_locale_is_made(rig, case_run, image):
    # On the offline image this needs the en_US.UTF-8 locale in the image.
    case, template, instance = case_run("13", image)
    assert template["databases"] == ["bookings"] and instance["database"] == "bookings"
    check_case(rig, case, instance)


@pytest.mark.parametrize("image", IMAGES + ["postgres:17"])
def test_a_materialized_view_is_rebuilt_from_the_masked_table(rig, case_run, image):
    case, template, instance = case_run("16", image)
    personal = [finding["column"] for finding in template["personal_columns"]]
    # Classified like the table it reads, and rebuilt, not reported as uncovered.
    assert "public.person.email" in personal and "public.person_domains.email" in personal
    assert template["masking"]["rebuilt"] == ["public.person_domains"]
    assert files_holding(template["path"], case["absent_from_files"]) == []
    check_case(rig, case, instance)
    # The index on the view was rebuilt too: an index scan finds masked values only.
    assert first_value(rig, instance, "SET enable_seqscan = off; SELECT count(*) FROM public.person_domains "
                                      "WHERE email >= 'user.' AND email < 'user/'") == "2500"


def test_the_unmasked_import_finds_the_view_column_and_the_search_finds_originals(rig, case_run):
    """The control: without rules the view's column is reported, and the file search finds originals."""
    case = CASES["16"]
    result = rig.template("pgcase16-plain", os.path.join(CASES_DIR, case["file"]), engine="postgresql",
                          image="postgres:15")
    try:
        assert not result.get("failed"), result.get("msg")
        personal = [finding["column"] for finding in result["template"]["personal_columns"]]
        assert "public.person_domains.email" in personal
        assert "public.person_domains.email" in " ".join(result.get("warnings", []))
        assert files_holding(result["template"]["path"], case["absent_from_files"][:5])
    finally:
        rig.template("pgcase16-plain", None, state="absent")


def test_rules_that_name_a_materialized_view_are_refused_with_what_to_do(rig):
    case = CASES["16"]
    result = rig.template("pgcase16-bad", os.path.join(CASES_DIR, case["file"]), engine="postgresql",
                          image="postgres:15", masking={"columns": {"public.person.email": "email",
                                                                    "public.person_domains.email": "email"}})
    assert result.get("failed") and "materialized views: public.person_domains.email" in result["msg"], result
    assert "mask (or truncate) the table columns they read" in result["msg"]
    assert not os.path.exists(os.path.join(rig.pool, "templates", "pgcase16-bad", "template.json"))


@pytest.fixture(scope="module")
def source_server(rig):
    """A production-like server (the official image, its own entrypoint): run SQL in it, then dump it."""
    name = "myaas-it-source-%d" % os.getpid()
    sh("docker", "run", "--detach", "--name", name, "--label", "org.myaas.pool=" + rig.pool,
       "--env", "POSTGRES_PASSWORD=bootstrap-secret", "postgres:15")
    # The entrypoint first runs a server on the socket only, for its init scripts, then stops it: only the
    # final server listens on TCP. Before it does, a statement may meet the first one shutting down.
    deadline = time.monotonic() + 120
    while subprocess.run(["docker", "exec", name, "pg_isready", "--quiet", "--host", "127.0.0.1"],
                         check=False).returncode != 0:
        assert time.monotonic() < deadline, "the source server did not start"
        time.sleep(0.5)

    def psql(sql, database="postgres"):
        deadline = time.monotonic() + 60
        while True:
            done = subprocess.run(["docker", "exec", "-i", "--user", "postgres", name, "psql", "-v", "ON_ERROR_STOP=1",
                                   "-q", "--dbname", database], input=sql, text=True, capture_output=True, check=False)
            if done.returncode == 0:
                return
            assert time.monotonic() < deadline and "connect" in done.stderr, done.stderr
            time.sleep(0.5)
    try:
        yield name, psql
    finally:
        sh("docker", "rm", "--force", "--volumes", name, check=False)


@pytest.fixture(scope="module")
def dumpall(rig, source_server):
    """A dump made by a real pg_dumpall of a server with a login role `app` whose password is known."""
    name, psql = source_server
    psql("CREATE ROLE app LOGIN PASSWORD 'prod-secret';\nCREATE ROLE reporting;\n"
         "CREATE DATABASE appdb OWNER app;\n\\connect appdb\n"
         "CREATE TABLE note (id int PRIMARY KEY, body text);\nINSERT INTO note VALUES (1, 'a'), (2, 'b');\n"
         "ALTER TABLE note OWNER TO app;\nGRANT SELECT ON note TO reporting;\n")
    path = os.path.join(rig.base, "dumpall.sql")
    with open(path, "wb") as out:
        subprocess.run(["docker", "exec", "--user", "postgres", name, "pg_dumpall"], stdout=out, check=True)
    return path


def test_an_archive_keeps_its_owners_and_the_roles_it_names_are_made(rig, source_server, workdir):
    name, psql = source_server
    psql("CREATE ROLE ledger_owner;\nCREATE ROLE auditor;\nCREATE DATABASE ledger;\n")
    with open(os.path.join(CASES_DIR, CASES["07"]["file"]), encoding="utf-8") as handle:
        psql(handle.read() + "\nGRANT SELECT ON public.transfer TO auditor;\n"
             "ALTER TABLE public.account ENABLE ROW LEVEL SECURITY;\n"
             "CREATE POLICY own ON public.account TO auditor USING (balance > 100);\n", "ledger")
    archive = os.path.join(workdir, "ledger.dump")
    with open(archive, "wb") as out:
        subprocess.run(["docker", "exec", "--user", "postgres", name, "pg_dump", "--format=custom", "--dbname",
                        "ledger"], stdout=out, check=True)
    result = rig.template("pgarchive", archive, engine="postgresql", image="postgres:15")
    try:
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        assert sorted(result["template"]["roles_created"]) == ["auditor", "ledger_owner"]
        made = rig.instance("pgarchive", template="pgarchive")
        assert not made.get("failed"), made.get("msg")
        instance = made["instance"]
        check_case(rig, CASES["07"], instance)
        assert first_value(rig, instance, "SELECT tableowner FROM pg_tables WHERE tablename = 'account'") == \
            "ledger_owner"
        assert first_value(rig, instance, "SELECT string_agg(polname || ':' || array_to_string(polroles::regrole[], "
                                          "','), ';') FROM pg_policy") == "own:auditor"
    finally:
        rig.instance("pgarchive", state="absent")
        rig.template("pgarchive", None, state="absent")


def test_a_pg_dumpall_dump_loads_and_its_login_roles_keep_no_password(rig, dumpall):
    import psycopg2  # pylint: disable=import-outside-toplevel
    with open(dumpall, encoding="utf-8") as handle:
        text = handle.read()
    assert "CREATE ROLE postgres;" in text and "\\connect appdb" in text and "PASSWORD 'SCRAM-SHA-256$" in text
    result = rig.template("pgdumpall", dumpall, engine="postgresql", image="postgres:15")
    try:
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        template = result["template"]
        assert "appdb" in template["databases"] and template["roles_created"] == []
        assert sorted(template["passwords_removed"]) == ["app", "postgres"]
        secret = b"SCRAM-SHA-256$4096:"
        assert files_holding(template["path"], [secret]) == []
        made = rig.instance("pgdumpall", template="pgdumpall")
        assert not made.get("failed"), made.get("msg")
        instance = made["instance"]
        assert first_value(rig, instance, "SELECT count(*) FROM note", "appdb") == "2"
        assert first_value(rig, instance, "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'") == "true"
        for user, password in (("app", "prod-secret"), ("postgres", "bootstrap-secret")):
            with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
                psycopg2.connect(host="127.0.0.1", port=instance["port"], user=user, password=password,
                                 dbname="appdb", connect_timeout=5)
    finally:
        rig.instance("pgdumpall", state="absent")
        rig.template("pgdumpall", None, state="absent")


def test_an_event_trigger_enabled_always_stays_so_and_still_sees_nothing(rig, workdir):
    """session_replication_role = replica would not quiet it: MyAAS turns it off and back on, ALWAYS."""
    with open(os.path.join(CASES_DIR, CASES["12"]["file"]), encoding="utf-8") as handle:
        dump = handle.read().replace("ALTER EVENT TRIGGER log_ddl OWNER TO postgres;",
                                     "ALTER EVENT TRIGGER log_ddl OWNER TO postgres;\n"
                                     "ALTER EVENT TRIGGER log_ddl ENABLE ALWAYS;")
    path = os.path.join(workdir, "always.sql")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(dump)
    result = rig.template("pgalways", path, engine="postgresql", image="postgres:15",
                          masking={"columns": {"public.widget.label": "text"}, "keep": {}})
    try:
        assert not result.get("failed"), result.get("msg")
        made = rig.instance("pgalways", template="pgalways")
        assert not made.get("failed"), made.get("msg")
        instance = made["instance"]
        assert first_value(rig, instance, "SELECT count(*) FROM public.ddl_log") == "2"
        assert first_value(rig, instance, "SELECT evtenabled FROM pg_event_trigger") == "A"
    finally:
        rig.instance("pgalways", state="absent")
        rig.template("pgalways", None, state="absent")


def test_a_table_to_mask_with_an_update_trigger_enabled_always_fails_with_its_name(rig, workdir):
    path = os.path.join(workdir, "trigger.sql")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("CREATE TABLE public.person (id int PRIMARY KEY, email text);\n"
                     "CREATE TABLE public.audit (note text);\n"
                     "CREATE FUNCTION public.audit_it() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                     "INSERT INTO public.audit VALUES (OLD.email); RETURN NEW; END $$;\n"
                     "CREATE TRIGGER audit_person AFTER UPDATE ON public.person FOR EACH ROW "
                     "EXECUTE FUNCTION public.audit_it();\n"
                     "ALTER TABLE public.person ENABLE ALWAYS TRIGGER audit_person;\n"
                     "INSERT INTO public.person VALUES (1, 'ann.original@corp.example');\n")
    result = rig.template("pgtrigger", path, engine="postgresql", image="postgres:15",
                          masking={"columns": {"public.person.email": "email"}, "keep": {"public.audit.note": "x"}})
    try:
        assert result.get("failed") and "audit_person (person)" in result["msg"], result
        assert "UPDATE triggers" in result["msg"]
    finally:
        rig.template("pgtrigger", None, state="absent")
