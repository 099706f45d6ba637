"""Upgrade rehearsal logic without a server: versions, reports, pg_upgrade's failures, the compile scripts.

The upgrades themselves run on the real rig (tests/integration/test_upgrade.py).
"""

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.mariadb import MariaDB
from ansible_collections.myaas.myaas.plugins.module_utils.engines.mysql import MySQL
from ansible_collections.myaas.myaas.plugins.module_utils.engines.postgresql import PostgreSQL
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_image
from ansible_collections.myaas.myaas.plugins.module_utils.upgrades import postgresql as pg_upgrade
from ansible_collections.myaas.myaas.plugins.module_utils.upgrades.objects import MySQLObjects, unescape_batch
from ansible_collections.myaas.myaas.plugins.module_utils.engines.versions import major, parse_version, version_key
from ansible_collections.myaas.myaas.plugins.module_utils.upgrades.rehearsal import compare_counts, report_path


@pytest.mark.parametrize("text, version", [
    ("mariadbd  Ver 10.11.19-MariaDB-deb12 for debian-linux-gnu on x86_64 (Debian 12)", "10.11.19"),
    ("/usr/sbin/mysqld  Ver 9.7.4 for Linux on x86_64 (MySQL Community Server - GPL)", "9.7.4"),
    ("postgres (PostgreSQL) 17.12 (Debian 17.12-0+deb13u1)", "17.12"),
    ("sh: 1: exec: mysqld: not found", None),
])
def test_versions_are_read_from_the_servers_own_words(text, version):
    assert parse_version(text) == version


def test_versions_compare_as_numbers_not_text():
    assert version_key("10.11.19") > version_key("10.6.4")
    assert version_key("11.8.9") > version_key("10.11.19")


def test_a_major_version_is_what_each_engine_calls_one():
    assert major(MariaDB(), "10.11.19-MariaDB") == "10.11" and major(MySQL(), "9.7.4") == "9.7"
    assert major(PostgreSQL(), "17.12") == "17" and major(PostgreSQL(), "9.6.24") == "9.6"


def test_row_counts_that_differ_or_vanish_are_problems():
    tables, problems = compare_counts({"a": 3, "b": 5, "gone": 1}, {"a": 3, "b": 4, "new": 0})
    assert tables["a"] == {"before": 3, "after": 3} and tables["gone"] == {"before": 1, "after": None}
    assert [problem["name"] for problem in problems] == ["b", "gone", "new"]


def test_a_report_file_is_named_by_generation_and_image(tmp_path):
    class Pool:
        @staticmethod
        def template_dir(name):
            return str(tmp_path / name)
    path = report_path(Pool, "shop", 4, "registry.example.org:5000/db/mariadb:11.8")
    assert path == str(tmp_path / "shop" / "rehearsals" / "gen-4-registry.example.org_5000_db_mariadb_11.8.json")


@pytest.mark.parametrize("image", ["mariadb:11.8", "postgres:17", "registry.example.org:5000/db/mysql:9.7",
                                   "myaas/postgresql:17"])
def test_image_references_are_taken(image):
    assert check_image(image) == image


@pytest.mark.parametrize("image", ["", "Mariadb:11", "mariadb:11.8; rm -rf /", "a//b", "-x", "mariadb 11"])
def test_other_text_is_not_an_image(image):
    with pytest.raises(MyaasError, match="Invalid image"):
        check_image(image)


def test_pg_upgrade_naming_a_missing_library_becomes_an_extension_problem():
    output = ('Checking for presence of required libraries                   fatal\n'
              '== loadable_libraries.txt\n'
              'could not load library "$libdir/adminpack": ERROR:  could not access file "$libdir/adminpack": '
              'No such file or directory\nIn database: shop\n')
    [problem] = pg_upgrade.failure_problems(output, "postgres:17")
    assert problem["kind"] == "extension" and problem["name"] == "adminpack"
    assert "database shop" in problem["problem"] and "DROP EXTENSION adminpack;" in problem["problem"]
    assert pg_upgrade.failure_problems("Failure, exiting", "postgres:17") == []


def test_pg_upgrade_runs_in_the_new_image_with_the_old_tree_where_pg_upgrade_looks():
    spec = pg_upgrade.upgrade_spec("postgres:17", "/var/lib/postgresql/data", "/pool/instances/a/data",
                                   "/pool/cache/postgresql-bundles/abc", "15")
    targets = dict((mount["target"], mount) for mount in spec["mounts"])
    assert targets["/usr/lib/postgresql/15"]["source"] == "/pool/cache/postgresql-bundles/abc/home"
    assert targets["/usr/lib/postgresql/15"]["readonly"] and targets["/usr/share/postgresql/15"]["readonly"]
    assert not targets["/var/lib/postgresql/data"].get("readonly")
    assert spec["network"] == "none" and spec["args"][-2:] == ["/var/lib/postgresql/data", "15"]
    assert "--link" in spec["args"][1]


def test_every_engine_says_how_to_upgrade_it():
    assert PostgreSQL().upgrade_method == "pg_upgrade" and MariaDB().upgrade_method == "server"
    assert [step for step, _argv in MariaDB().upgrade_commands()] == ["mariadb_upgrade"]
    assert MySQL().upgrade_commands() == [] and "ACCOUNT UNLOCK" in MySQL().upgrade_init_sql()
    assert [step for step, _argv in PostgreSQL().upgrade_commands()] == ["analyze"]


def test_startup_findings_leave_out_what_every_myaas_server_logs():
    log = "\n".join([
        "2026-11-30  8:58:33 0 [Warning] failed to retrieve the MAC address",
        "2026-11-30  8:58:33 0 [Warning] 'proxies_priv' entry '@% root@525cc49bfb26' ignored in --skip-name-resolve",
        "2026-11-30  8:58:33 0 [Warning] InnoDB: innodb_log_file_size is deprecated",
        "2026-11-30  8:58:34 0 [ERROR] Incorrect definition of table mysql.event",
    ])
    warnings, errors = MariaDB().startup_findings(log)
    assert [line[-40:] for line in warnings] == ["[Warning] InnoDB: innodb_log_file_size is deprecated"[-40:]]
    assert errors == ["2026-11-30  8:58:34 0 [ERROR] Incorrect definition of table mysql.event"]
    warnings, errors = PostgreSQL().startup_findings("LOG:  ok\nWARNING:  x\nFATAL:  y\n")
    assert warnings == ["WARNING:  x"] and errors == ["FATAL:  y"]


def test_batch_escapes_are_undone():
    assert unescape_batch(r"BEGIN\n\tSELECT 'a\\b';\nEND") == "BEGIN\n\tSELECT 'a\\b';\nEND"


class ScriptedDocker:
    """docker.exec answering from a list of (stdout, stderr), recording what each client was given."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.scripts = []

    def exec(self, container, argv, check=True, data=None, user=None):
        del container, check, user
        self.scripts.append((argv, data))
        out, err = self.answers.pop(0)
        return (0 if not err else 1), out, err


def test_mysql_objects_are_compiled_and_errors_land_on_the_right_object():
    create = ("CREATE DEFINER=`app`@`%` FUNCTION `bad`() RETURNS int\\n    DETERMINISTIC\\nRETURN @@gone_variable")
    docker = ScriptedDocker([
        ("shop\tfilm_list\nshop\tbroken_view\n", ""),                     # views
        ("shop\tbad\tFUNCTION\nshop\tgood\tPROCEDURE\n", ""),             # routines
        # Views selected, routines shown: the second view fails, both routines show.
        ("myaas-object-2\nbad\tSTRICT_TRANS_TABLES\t%s\tutf8mb4\tx\ty\nmyaas-object-3\n"
         "good\t\tCREATE DEFINER=`app`@`%%` PROCEDURE `good`()\\nSELECT 1\tutf8mb4\tx\ty\n" % create,
         "ERROR 1356 (HY000) at line 2: View 'shop.broken_view' references invalid table(s)\n"),
        # Re-created under the probe name: the function fails.
        ("", "ERROR 1193 (HY000) at line 4: Unknown system variable 'gone_variable'\n"),
    ])
    tried, problems = MySQLObjects(docker, MySQL(), "c").check(["shop"])
    assert tried == 4
    assert problems == [
        {"kind": "view", "name": "shop.broken_view", "problem": "View 'shop.broken_view' references invalid table(s)"},
        {"kind": "function", "name": "shop.bad", "problem": "Unknown system variable 'gone_variable'"},
    ]
    probe = docker.scripts[3][1]
    assert "FUNCTION `myaas_compile_probe`()" in probe and "PROCEDURE `myaas_compile_probe`()" in probe
    assert "`bad`" not in probe and "RETURN @@gone_variable$$myaas$$" in probe
    assert "SET SESSION sql_mode = 'STRICT_TRANS_TABLES';" in probe and "DROP FUNCTION IF EXISTS" in probe
    assert "--force" in docker.scripts[2][0]


def test_no_databases_nothing_to_compile():
    assert MySQLObjects(ScriptedDocker([]), MySQL(), "c").check([]) == (0, [])


def test_mysql_reports_its_own_upgrade_in_its_log():
    log = ("2026-11-30T09:00:00Z 0 [System] [MY-013381] [Server] Server upgrade from '80400' to '90700' started.\n"
           "2026-11-30T09:00:01Z 0 [Note] [MY-010000] [Server] something else\n"
           "2026-11-30T09:00:09Z 0 [System] [MY-013381] [Server] Server upgrade from '80400' to '90700' completed.\n")
    assert [line.rsplit(" ", 1)[1] for line in MySQL().upgrade_log(log)] == ["started.", "completed."]
    assert MariaDB().upgrade_log(log) == []
