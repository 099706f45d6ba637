import bz2
import gzip
import lzma
import shutil
import subprocess

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.templates import dumps
from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates.statements import KEEP_BYTES

SQL = b"-- dump\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n"
OWN = b"CREATE DATABASE IF NOT EXISTS a;\nUSE a;\nCREATE TABLE t (id int);\n"
PG_OWN = b"--\n-- PostgreSQL database dump\n--\nCREATE DATABASE shop WITH TEMPLATE = template0;\n\\connect shop\n"
MARIADB = get_engine("mariadb")
POSTGRESQL = get_engine("postgresql")


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("compress,fmt", [
    (lambda d: d, "plain"), (gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz")])
def test_format_is_read_from_content_not_suffix(tmp_path, compress, fmt):
    path = write(tmp_path, "misleading.sql.zst", compress(SQL))
    assert dumps.inspect_dump(path, MARIADB) == (fmt, False)


@pytest.mark.skipif(not shutil.which("zstd"), reason="zstd is installed by the host role")
def test_zstd(tmp_path):
    path = write(tmp_path, "d.sql.zst", subprocess.run(["zstd", "-c"], input=SQL, stdout=subprocess.PIPE,
                                                       check=True).stdout)
    assert dumps.inspect_dump(path, MARIADB) == ("zstd", False)


@pytest.mark.parametrize("script", [b"UPDATE customers SET email = NULL;\n", b"DELETE FROM t;\n",
                                    b"GRANT SELECT ON *.* TO 'r'@'%';\n", b"TRUNCATE t;\n"])
def test_post_import_scripts_pass_as_sql(tmp_path, script):
    assert dumps.inspect_dump(write(tmp_path, "post.sql", script), MARIADB) == ("plain", False)


def test_dump_that_names_its_schemas(tmp_path):
    assert dumps.inspect_dump(write(tmp_path, "d.sql.gz", gzip.compress(OWN)), MARIADB) == ("gzip", True)
    assert dumps.inspect_dump(write(tmp_path, "p.sql", PG_OWN), POSTGRESQL) == ("plain", True)
    assert dumps.inspect_dump(write(tmp_path, "p.sql", PG_OWN), MARIADB) == ("plain", True)
    assert dumps.inspect_dump(write(tmp_path, "q.sql", SQL), POSTGRESQL) == ("plain", False)


def test_pg_custom_archive_is_an_archive_for_postgresql_only(tmp_path):
    path = write(tmp_path, "shop.dump", b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01\x00\x00\x00")
    assert dumps.inspect_dump(path, POSTGRESQL) == ("pg_custom", False)
    with pytest.raises(MyaasError, match="is not an SQL dump"):
        dumps.inspect_dump(path, MARIADB)


@pytest.mark.parametrize("data,message", [
    (b"", "is empty"),
    (gzip.compress(b""), "holds no SQL"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not an SQL dump"),
    (b"hello, this is a letter\n", "is not an SQL dump"),
])
def test_what_is_not_a_dump_is_refused(tmp_path, data, message):
    with pytest.raises(MyaasError, match=message):
        dumps.inspect_dump(write(tmp_path, "x.sql", data), MARIADB)


def test_missing_dump(tmp_path):
    with pytest.raises(MyaasError, match="does not exist"):
        dumps.inspect_dump(str(tmp_path / "nope.sql"), MARIADB)


def test_stream_into_reports_a_truncated_archive(tmp_path):
    data = gzip.compress(SQL * 1000)
    path = write(tmp_path, "cut.sql.gz", data[: len(data) // 2])
    with pytest.raises(MyaasError, match="damaged"):
        dumps.stream_into(path, "gzip", ["cat"], timeout=30)


def test_stream_into_reports_the_clients_error(tmp_path):
    path = write(tmp_path, "d.sql.gz", gzip.compress(SQL))
    with pytest.raises(MyaasError, match="ERROR 1064 at line 2"):
        dumps.stream_into(path, "gzip", ["sh", "-c", "cat >/dev/null; echo 'ERROR 1064 at line 2' >&2; exit 1"],
                          timeout=30)


def test_stream_into_finds_psqls_error_line_among_other_output(tmp_path):
    path = write(tmp_path, "d.sql", SQL)
    script = "cat >/dev/null; echo SET; echo 'psql:<stdin>:7: ERROR:  syntax error at or near \"(\"'; echo x; exit 3"
    with pytest.raises(MyaasError, match=r"psql:<stdin>:7: ERROR:  syntax error"):
        dumps.stream_into(path, "plain", ["sh", "-c", script], timeout=30, error_re=POSTGRESQL.error_re)


def test_stream_into_streams_everything(tmp_path):
    path = write(tmp_path, "d.sql.xz", lzma.compress(SQL * 100))
    out = tmp_path / "out"
    dumps.stream_into(path, "xz", ["sh", "-c", "tee %s" % out], timeout=30)
    assert out.read_bytes() == SQL * 100 + dumps.END_SQL


def test_stream_into_times_out(tmp_path):
    path = write(tmp_path, "d.sql", SQL)
    with pytest.raises(MyaasError, match="import_timeout"):
        dumps.stream_into(path, "plain", ["sleep", "30"], timeout=1)


def test_schemas_a_dump_switches_to_come_in_its_order(tmp_path):
    mysqldump = (b"-- MariaDB dump\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `sales`;\nUSE `sales`;\n"
                 b"CREATE TABLE t (id INT);\nUSE `hr`;\nUSE sales;\n")
    assert dumps.switched_schemas(write(tmp_path, "m.sql", mysqldump), "plain", MARIADB) == ["sales", "hr"]
    pg_dump = b"CREATE DATABASE shop;\n\\connect shop\nCREATE DATABASE crm;\n\\connect -reuse-previous=on \"dbname='crm'\"\n"
    assert dumps.switched_schemas(write(tmp_path, "p.sql", pg_dump), "plain", POSTGRESQL) == ["shop", "crm"]
    assert dumps.switched_schemas(write(tmp_path, "q.sql", SQL), "plain", MARIADB) == []


def test_a_dump_tool_without_its_closing_line_was_cut_short():
    mysqldump = b"-- MySQL dump 10.13  Distrib 8.0.40, for Linux (x86_64)\n--\nCREATE TABLE t (id int);\n"
    assert dumps.cut_short(mysqldump, mysqldump) == ("mysqldump", "-- Dump completed")
    assert dumps.cut_short(mysqldump, b"INSERT ...;\n-- Dump completed on 2026-11-24 23:00:01\n") is None
    pg = b"--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n"
    assert dumps.cut_short(pg, b"COPY public.t (id) FROM stdin;\n1\n") == \
        ("pg_dump", "-- PostgreSQL database dump complete")
    assert dumps.cut_short(pg, b"--\n-- PostgreSQL database dump complete\n--\n\n") is None
    assert dumps.cut_short(SQL, SQL) is None        # no tool named: nothing to check


def test_a_pzstd_dump_starts_with_a_skippable_frame(tmp_path):
    frame = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"\x00" * 4
    assert dumps.detect_format(write(tmp_path, "p.sql.zst", frame + b"\x28\xb5\x2f\xfd...")) == "zstd"


def test_the_client_reading_less_than_the_dump_is_an_error(tmp_path):
    path = write(tmp_path, "quit.sql", SQL * 20000)
    with pytest.raises(MyaasError, match="stopped reading after"):
        dumps.stream_into(path, "plain", ["head", "-c", "10"], 30)
    # A client that reads everything, and prints what the last SELECT returns, is fine.
    dumps.stream_into(path, "plain", ["cat"], 30)
    # One that read it all but never ran the closing SELECT quit early (the dump's \q).
    with pytest.raises(MyaasError, match="ends the session early"):
        dumps.stream_into(path, "plain", ["sh", "-c", "cat >/dev/null"], 30)


# -- a dump's own schema, from its statements ------------------------------------------------------------------------
ROUTINE_COMMENT = (b"-- MariaDB dump 10.19\nCREATE TABLE invoice (id INT);\nDELIMITER ;;\n"
                   b"CREATE PROCEDURE close_period()\nBEGIN\n  /* Closes the period.\n"
                   b"     use it only once the period was exported. */\n  UPDATE invoice SET id = id;\nEND ;;\n"
                   b"DELIMITER ;\n")


@pytest.mark.parametrize("sql", [
    ROUTINE_COMMENT,
    b"CREATE TABLE t (id INT);\n-- USE other;\n# use other;\n",
    b"CREATE TABLE t (id INT);\n/* a note:\nUSE other;\nCREATE DATABASE other;\n*/\n",
    b"INSERT INTO note VALUES (1, 'line one\nuse the side door;\ncreate database x;');\n",
    b"INSERT INTO note VALUES (1, 'it''s\\'\nUSE x;');\nINSERT INTO note VALUES (2, \"USE\n\");\n",
    b"DELIMITER $$\nCREATE FUNCTION f() RETURNS INT\nBEGIN\nRETURN 1;\nEND$$\nDELIMITER ;\n",
    b"CREATE TABLE `use` (`create database` INT);\nSELECT 1 AS `\nUSE x;`;\n",
])
def test_text_in_comments_strings_and_routine_bodies_does_not_select_a_schema(tmp_path, sql):
    path = write(tmp_path, "d.sql", sql)
    assert dumps.inspect_dump(path, MARIADB) == ("plain", False)
    assert dumps.switched_schemas(path, "plain", MARIADB) == []


@pytest.mark.parametrize("sql,switched", [
    (b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `legacy` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
     b"\nUSE `legacy`;\n", ["legacy"]),
    (b"/*!40000 CREATE DATABASE IF NOT EXISTS a */;\n", []),
    (b"/*M!100101 CREATE DATABASE a */;\n", []),
    (b"SET NAMES utf8mb4;\n  use shop\nCREATE TABLE t (id INT);\n", ["shop"]),
    (ROUTINE_COMMENT + b"USE `sales`;\n", ["sales"]),
    (b"DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; END//\nDELIMITER ;\nUSE hr;\n", ["hr"]),
])
def test_a_statement_that_creates_or_selects_a_schema_is_found(tmp_path, sql, switched):
    path = write(tmp_path, "d.sql", sql)
    assert dumps.inspect_dump(path, MARIADB) == ("plain", True)
    assert dumps.switched_schemas(path, "plain", MARIADB) == switched


@pytest.mark.parametrize("sql", [
    b"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n\\connect x\nCREATE DATABASE y;\nEND $$;\n",
    b"CREATE FUNCTION f() RETURNS int AS $body$\nCREATE DATABASE y;\n$body$ LANGUAGE sql;\n",
    b"COPY public.note (id, body) FROM stdin;\n1\tit's\n2\t\\\\connect x\n\\.\nCREATE TABLE t (id int);\n",
    b"/* outer /* inner */\nCREATE DATABASE y;\n*/ CREATE TABLE t (id int);\n",
    b"COMMENT ON TABLE t IS 'a\nCREATE DATABASE y;\n\\connect y';\n",
    b"SELECT E'it\\'s\n\\connect y';\n",
])
def test_postgresql_bodies_copy_data_and_comments_do_not_select_a_database(tmp_path, sql):
    path = write(tmp_path, "p.sql", sql)
    assert dumps.inspect_dump(path, POSTGRESQL) == ("plain", False)
    assert dumps.switched_schemas(path, "plain", POSTGRESQL) == []


def test_postgresql_statements_after_copy_data_and_dollar_quotes_are_read():
    sql = (b"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n"
           b"COPY t (id) FROM stdin;\n1\n\\.\nCREATE DATABASE crm;\n\\connect crm\n")
    found = dumps.dump_statements(sql, POSTGRESQL)
    assert found[-2:] == [b"CREATE DATABASE crm;", b"\\connect crm"]
    assert len(found) == 4


def test_a_statement_cut_by_the_peek_is_still_read():
    found = dumps.dump_statements(b"USE a;\nINSERT INTO t VALUES (1,'abc", MARIADB)
    assert found == [b"USE a;", b"INSERT INTO t VALUES (1,'abc"]


def test_a_peek_that_ends_inside_an_escape_is_read_at_once():
    cut = b"INSERT INTO t VALUES ('" + b"a" * 200000 + b"\\"
    for engine in (MARIADB, POSTGRESQL):
        assert dumps.dump_statements(cut, engine) == [cut[:KEEP_BYTES]]
