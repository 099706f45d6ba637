"""MariaDB dumps from real restore failures (tests/data/cases/mariadb.json), and their kinds.

Each case is imported as a template, cloned, and checked with its own
queries in the clone; a masked case's originals must be in no file of the
template. Beside each case, a test of the fault's kind: other storage engines,
other rows, other dumps.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from rig import ROOT, files_holding, sh

CASES_DIR = os.path.join(ROOT, "tests", "data", "cases")
with open(os.path.join(CASES_DIR, "mariadb.json"), encoding="utf-8") as _handle:
    CASES = dict((case["id"], case) for case in json.load(_handle))
OFFICIAL_MARIADB_11 = "mariadb:11.8"


def first_value(rig, instance, sql, database=None):
    """The first value ``sql`` returns in the instance, as run_cases.sh compares it ("(none)": no result set)."""
    connection = rig.connect(instance, database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            if cursor.description is None:
                return "(none)"
            row = cursor.fetchone()
            value = None if row is None else row[0]
            while cursor.nextset():
                pass
    finally:
        connection.close()
    if value is None:
        return "NULL" if row else "(none)"
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def import_and_clone(rig, name, src, **options):
    """(template, instance) of ``src``; both must succeed."""
    result = rig.template(name, src, **options)
    assert result.get("changed") and not result.get("failed"), result.get("msg", result)
    clone = rig.instance(name + "-db", template=name)
    assert not clone.get("failed"), clone.get("msg", clone)
    return result["template"], clone["instance"]


def drop(rig, name, src):
    rig.instance(name + "-db", state="absent")
    rig.template(name, src, state="absent")


def run_case(rig, case_id, src):
    case = CASES[case_id]
    name = "case-" + case_id
    try:
        options = {"masking": case["masking"]} if case.get("masking") else {}
        template, instance = import_and_clone(rig, name, src, **options)
        if case.get("database"):
            assert instance["database"] == case["database"]
        for sql, want in case["check_sql"]:
            assert first_value(rig, instance, sql) == want, sql
        return template
    finally:
        drop(rig, name, src)


# -- 04: a row larger than 16 MiB ------------------------------------------------------------------------------------
def test_case_04_a_17_mb_row_is_read_and_rewritten_in_a_clone(rig, workdir):
    src = os.path.join(workdir, CASES["04"]["file"])
    subprocess.run([sys.executable, os.path.join(CASES_DIR, "make_04_large_row.py"), src], check=True,
                   stdout=subprocess.DEVNULL)
    run_case(rig, "04", src)


def test_a_clone_stores_a_new_row_as_large_as_the_template_may_hold(rig, workdir):
    src = os.path.join(workdir, "blob.sql")
    with open(src, "w", encoding="utf-8") as out:
        out.write("CREATE TABLE blob_store (id INT PRIMARY KEY, body LONGBLOB);\n")
    try:
        _template, instance = import_and_clone(rig, "bigrow", src)
        # Values the server makes itself are limited by max_allowed_packet too (NULL beyond it).
        rig.query(instance, "INSERT INTO blob_store VALUES (1, REPEAT('x', 40000000))")
        assert rig.query(instance, "SELECT LENGTH(body), LENGTH(CONCAT(body, body)) FROM blob_store") == \
            ((40000000, 80000000),)
    finally:
        drop(rig, "bigrow", src)


# -- 05: text that reads like USE in a routine -----------------------------------------------------------------------
def test_case_05_a_use_line_in_a_routine_comment_does_not_make_the_dump_select_its_database(rig):
    run_case(rig, "05", os.path.join(CASES_DIR, CASES["05"]["file"]))


def test_a_dump_that_does_create_and_use_its_database_still_lands_there(rig, workdir):
    src = os.path.join(workdir, "own.sql")
    with open(src, "w", encoding="utf-8") as out:
        out.write("-- use nothing here\n/* USE `wrong`; */\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `right_db`;\n"
                  "USE `right_db`;\nCREATE TABLE t (note TEXT);\nINSERT INTO t VALUES ('line\\nuse wrong;');\n")
    try:
        template, instance = import_and_clone(rig, "owndb", src)
        assert template["databases"] == ["right_db"] and instance["database"] == "right_db"
        assert first_value(rig, instance, "SELECT COUNT(*) FROM t") == "1"
    finally:
        drop(rig, "owndb", src)


# -- 15: masking tables of other storage engines ---------------------------------------------------------------------
def test_case_15_masking_an_aria_table_leaves_no_original_in_any_file_of_the_template(rig):
    case = CASES["15"]
    src = os.path.join(CASES_DIR, case["file"])
    # The search finds the originals where they are: in the unmasked import's files.
    control = rig.template("case-15-control", src)
    try:
        assert control.get("changed") and not control.get("failed"), control.get("msg", control)
        assert files_holding(control["template"]["path"], case["absent_from_files"])
    finally:
        rig.template("case-15-control", src, state="absent")
    name = "case-15"
    try:
        template, instance = import_and_clone(rig, name, src, masking=case["masking"])
        assert files_holding(template["path"], case["absent_from_files"]) == []
        assert instance["database"] == case["database"]
        for sql, want in case["check_sql"]:
            assert first_value(rig, instance, sql) == want, sql
        # The clone's Aria tables (its own and the system's) are whole and writable.
        rows = rig.query(instance, "CHECK TABLE legacy.member_log, mysql.global_priv, mysql.proc")
        assert [row[3] for row in rows] == ["OK", "OK", "OK"], rows
        rig.query(instance, "INSERT INTO member_log VALUES (9999, 'new@example.com', NOW())")
    finally:
        drop(rig, name, src)


MIXED = """CREATE DATABASE shop_files;
USE shop_files;
CREATE TABLE by_myisam (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL) ENGINE=MyISAM;
CREATE TABLE by_aria_plain (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL) ENGINE=Aria TRANSACTIONAL=0;
CREATE TABLE by_aria (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL) ENGINE=Aria;
CREATE TABLE by_innodb (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL) ENGINE=InnoDB;
CREATE TABLE audit_memory (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL) ENGINE=MEMORY;
"""


def test_myisam_aria_and_innodb_tables_are_masked_without_a_trace_in_the_files(rig, workdir):
    src = os.path.join(workdir, "mixed.sql")
    needles = ["person%04d@files-corp.example" % number for number in range(1, 301)]
    with open(src, "w", encoding="utf-8") as out:
        out.write(MIXED)
        for table in ("by_myisam", "by_aria_plain", "by_aria", "by_innodb", "audit_memory"):
            out.write("INSERT INTO %s VALUES %s;\n" % (table, ",".join(
                "(%d,'%s')" % (number, email) for number, email in enumerate(needles, 1))))
    rules = {"columns": dict(("shop_files.%s.email" % table, "email") for table in (
        "by_myisam", "by_aria_plain", "by_aria", "by_innodb")), "truncate": ["shop_files.audit_memory"]}
    try:
        template, instance = import_and_clone(rig, "mixed", src, masking=rules)
        assert files_holding(template["path"], needles) == []
        for table in ("by_myisam", "by_aria_plain", "by_aria", "by_innodb"):
            assert first_value(rig, instance, "SELECT COUNT(*) FROM %s WHERE email LIKE 'user.%%@example.com'"
                               % table) == "300"
    finally:
        drop(rig, "mixed", src)


def test_a_masked_column_in_a_table_whose_files_cannot_be_scrubbed_is_refused_with_what_to_do(rig, workdir):
    src = os.path.join(workdir, "csv.sql")
    with open(src, "w", encoding="utf-8") as out:
        out.write("CREATE DATABASE exports;\nUSE exports;\n"
                  "CREATE TABLE mailing (id INT NOT NULL, email VARCHAR(100) NOT NULL) ENGINE=CSV;\n"
                  "INSERT INTO mailing VALUES (1, 'someone@csv-corp.example');\n")
    result = rig.template("csvmask", src, masking={"columns": {"exports.mailing.email": "email"}})
    try:
        assert result.get("failed"), result
        for words in ("exports.mailing", "storage engine CSV", "ENGINE=InnoDB", "keep"):
            assert words in result["msg"], result["msg"]
    finally:
        rig.template("csvmask", src, state="absent")


# -- events ------------------------------------------------------------------------------------------------------------
def test_events_do_not_run_in_a_clone_until_its_user_turns_the_scheduler_on(rig, workdir):
    src = os.path.join(workdir, "events.sql")
    with open(src, "w", encoding="utf-8") as out:
        out.write("CREATE TABLE tick (at DATETIME(6));\n"
                  "CREATE EVENT ticker ON SCHEDULE EVERY 1 SECOND DO INSERT INTO tick VALUES (NOW(6));\n"
                  "DO SLEEP(2);\n")
    try:
        _template, instance = import_and_clone(rig, "events", src)
        assert first_value(rig, instance, "SELECT COUNT(*) FROM tick") == "0"   # none ran during the import
        assert first_value(rig, instance, "SELECT @@event_scheduler") == "OFF"
        time.sleep(2.5)
        assert first_value(rig, instance, "SELECT COUNT(*) FROM tick") == "0"
        rig.query(instance, "SET GLOBAL event_scheduler = ON")   # as the instance's own user
        rig.wait_for(lambda: int(first_value(rig, instance, "SELECT COUNT(*) FROM tick")) > 0, timeout=15,
                     what="the event to run once the scheduler is on")
    finally:
        drop(rig, "events", src)


# -- a MySQL 8 dump into MariaDB ----------------------------------------------------------------------------------
MYSQL8 = """-- MySQL dump 10.13  Distrib 8.0.40, for Linux (x86_64)
CREATE TABLE `city` (
  `id` int NOT NULL AUTO_INCREMENT,
  `name` varchar(80) COLLATE utf8mb4_0900_ai_ci NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
INSERT INTO `city` VALUES (1,'Zürich'),(2,'zurich');
-- Dump completed on 2026-11-29 23:00:01
"""


def test_a_mysql_8_collation_fails_with_what_to_do(rig, workdir):
    src = os.path.join(workdir, "mysql8.sql")
    with open(src, "w", encoding="utf-8") as out:
        out.write(MYSQL8)
    result = rig.template("mysql8", src)
    try:
        assert result.get("failed"), result
        for words in ("utf8mb4_0900_ai_ci", "engine: mysql", "image: mariadb:11.8"):
            assert words in result["msg"], result["msg"]
    finally:
        rig.template("mysql8", src, state="absent")
    if sh("docker", "image", "inspect", OFFICIAL_MARIADB_11, check=False).returncode != 0:
        pytest.fail("%s is not on this host: the advice could not be proven" % OFFICIAL_MARIADB_11)
    # The advice holds: MariaDB 11.8 takes the dump.
    result = rig.template("mysql8", src, image=OFFICIAL_MARIADB_11)
    try:
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        assert list(result["template"]["row_counts"].values()) == [2]
    finally:
        rig.template("mysql8", src, state="absent")
