"""Dealing a mysqldump's rows to several connections: what each connection runs, and in which order.

The clients are a model of the mysql client (one line, one statement; a
SELECT of a string prints it), so that the order of what they ran can be read
from their log. Real servers load real dumps in tests/integration/test_parallel_load.py.
"""

import gzip
import json
import sys
import textwrap

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.templates import dumps, parallel
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

CLIENT = textwrap.dedent("""
    import fcntl, json, re, sys, time
    log, fail_on = sys.argv[1], sys.argv[2]
    for line in sys.stdin:
        text = line.strip()
        if text.startswith("INSERT"):
            time.sleep(0.005)           # slow rows: a missing mark would let what follows overtake them
        with open(log, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(json.dumps([__import__("os").getpid(), time.monotonic(), text]) + "\\n")
        if fail_on and fail_on in text:
            print("ERROR 1062 (23000) at line 9: Duplicate entry", file=sys.stderr)
            sys.exit(1)
        match = re.match(r"^SELECT '(.*)';$", text)
        if match:
            print(match.group(1), flush=True)
""")

HEADER = (b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n"
          b"/*M!999999\\- enable the sandbox mode */ \n"
          b"/*!40101 SET NAMES utf8mb4 */;\n"
          b"/*!40103 SET TIME_ZONE='+00:00' */;\n"
          b"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;\n"
          b"SET @@GLOBAL.GTID_PURGED='0-1-5';\n\n")


def table(name, rows):
    return (b"DROP TABLE IF EXISTS `%s`;\nCREATE TABLE `%s` (id int);\nLOCK TABLES `%s` WRITE;\n"
            b"/*!40000 ALTER TABLE `%s` DISABLE KEYS */;\n" % (name, name, name, name)
            + b"".join(b"INSERT INTO `%s` VALUES (%d);\n" % (name, i) for i in range(rows))
            + b"/*!40000 ALTER TABLE `%s` ENABLE KEYS */;\nUNLOCK TABLES;\n" % name)


TRIGGER = (b"DELIMITER ;;\n/*!50003 CREATE TRIGGER t_bi BEFORE INSERT ON `a` FOR EACH ROW SET NEW.id = 1 */;;\n"
           b"CREATE PROCEDURE p()\nBEGIN\nINSERT INTO `a` VALUES (99);\nEND ;;\nDELIMITER ;\n")
DUMP = (HEADER + b"CREATE DATABASE `shop`;\nUSE `shop`;\n" + table(b"a", 40) + TRIGGER + table(b"b", 30)
        + b"-- Dump completed on 2026-11-30 10:00:00\n")


@pytest.fixture(autouse=True)
def row_batches(monkeypatch):
    # Rows are dealt in batches of about a MiB: a row a batch, so that these few rows reach every connection.
    monkeypatch.setattr(parallel, "BATCH_BYTES", 1)


def run(tmp_path, dump, connections, fail_on="", name="d.sql.gz"):
    path = tmp_path / name
    path.write_bytes(gzip.compress(dump))
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    log = tmp_path / "log"
    used = dumps.stream_into(str(path), "gzip", [sys.executable, str(client), str(log), fail_on], timeout=60,
                             connections=connections)
    return used, [json.loads(line) for line in log.read_text().splitlines()]


def by_client(entries):
    clients = {}
    for pid, _moment, text in entries:
        clients.setdefault(pid, []).append(text)
    return clients


def when(entries, text):
    return [moment for _pid, moment, line in entries if line == text]


def test_rows_go_to_every_connection_and_nothing_else_leaves_the_first(tmp_path):
    used, entries = run(tmp_path, DUMP, 3)
    assert used == 3
    clients = by_client(entries)
    assert len(clients) == 3
    first = [pid for pid, lines in clients.items() if "CREATE TABLE `a` (id int);" in lines]
    assert len(first) == 1
    rows = [text for _pid, _moment, text in entries if text.startswith("INSERT INTO `")]
    assert sorted(rows) == sorted(line.decode() for line in DUMP.splitlines() if line.startswith(b"INSERT INTO `"))
    for pid, lines in clients.items():
        assert any(line.startswith("INSERT INTO `a`") for line in lines), "connection %d loaded no rows" % pid
        if pid != first[0]:
            statements = [line for line in lines if line and not line.startswith(("--", "/*", "SELECT 'myaas-mark"))]
            assert all(line.startswith(("INSERT INTO", "USE `shop`", "SELECT 'MYAAS-END")) for line in statements), \
                statements
            # The dump's session settings before its first row; the global GTID setting only once, on the first.
            assert lines.index("/*!40101 SET NAMES utf8mb4 */;") < lines.index("USE `shop`;") < \
                min(index for index, line in enumerate(lines) if line.startswith("INSERT"))
            assert "SET @@GLOBAL.GTID_PURGED='0-1-5';" not in lines
    assert not [text for _pid, _moment, text in entries if text.startswith(("LOCK TABLES", "UNLOCK TABLES"))]
    # The procedure's body is not a row: it stays whole on the first connection.
    assert clients[first[0]].count("INSERT INTO `a` VALUES (99);") == 1


def test_rows_load_after_their_table_and_before_what_follows_them(tmp_path):
    entries = run(tmp_path, DUMP, 2)[1]
    rows_a = [moment for _pid, moment, text in entries if text.startswith("INSERT INTO `a` VALUES (") and "(99)" not in text]
    rows_b = [moment for _pid, moment, text in entries if text.startswith("INSERT INTO `b`")]
    assert min(rows_a) > when(entries, "CREATE TABLE `a` (id int);")[0]
    assert max(rows_a) < when(entries, "/*!40000 ALTER TABLE `a` ENABLE KEYS */;")[0]
    assert max(rows_a) < when(entries, "DELIMITER ;;")[0]
    assert min(rows_b) > when(entries, "CREATE TABLE `b` (id int);")[0]
    assert max(rows_b) < when(entries, "-- Dump completed on 2026-11-30 10:00:00")[0]


def test_mariadb_dumps_row_a_line_statements_are_dealt_whole(tmp_path):
    rows = b"".join(b"INSERT INTO `c` VALUES\n" + b",\n".join(b"(%d)" % (i * 10 + j) for j in range(10)) + b";\n"
                    for i in range(6))
    dump = DUMP.replace(b"-- Dump completed", b"CREATE TABLE `c` (id int);\n" + rows + b"SELECT 'c loaded';\n"
                        b"-- Dump completed")
    used, entries = run(tmp_path, dump, 2)
    assert used == 2
    clients = by_client(entries)
    # Every connection got whole statements: its lines of table c, read in order, parse as INSERTs.
    for lines in clients.values():
        statements = "\n".join(line for line in lines if line.startswith(("INSERT INTO `c`", "(")))
        assert statements.count("INSERT INTO `c` VALUES") == statements.count(";")
    got = sorted(int(text.strip("(),;")) for _pid, _moment, text in entries if text.startswith("("))
    assert got == list(range(60))
    assert max(moment for _pid, moment, text in entries if text.startswith("(")) < when(entries, "SELECT 'c loaded';")[0]
    assert all(sum(1 for line in lines if line.startswith("INSERT INTO `c`")) for lines in clients.values())


def test_a_failing_row_on_another_connection_fails_the_import_with_its_error(tmp_path):
    with pytest.raises(MyaasError, match="Duplicate entry"):
        run(tmp_path, DUMP, 2, fail_on="VALUES (7);")


def test_one_connection_or_another_tools_dump_loads_as_before(tmp_path):
    used, entries = run(tmp_path, DUMP, 1)
    assert used == 1 and len(by_client(entries)) == 1
    assert [text for _pid, _moment, text in entries if text.startswith("LOCK TABLES")]
    handwritten = DUMP.replace(b"-- MariaDB dump 10.19", b"-- exported by hand")
    used, entries = run(tmp_path / "..", handwritten, 3, name="h.sql.gz")
    assert used == 1 and len(by_client(entries)) == 1


def test_a_dump_cut_short_is_refused_on_several_connections_too(tmp_path):
    with pytest.raises(MyaasError, match="was cut short"):
        run(tmp_path, DUMP.rsplit(b"-- Dump completed", 1)[0], 2)


def test_other_tool_options_are_dealt_and_autocommit_stays_on_the_first(tmp_path):
    # --no-create-info --no-autocommit --insert-ignore --skip-quote-names: the first statement after the
    # header settings is the first table's autocommit switch, which only the first connection may run.
    dump = (HEADER + b"set autocommit=0;\nUSE shop;\n"
            + b"".join(b"INSERT  IGNORE INTO a VALUES (%d);\n" % i for i in range(20))
            + b"commit;\n-- Dump completed on 2026-11-30 10:00:00\n")
    used, entries = run(tmp_path, dump, 2)
    assert used == 2
    clients = by_client(entries)
    first = [pid for pid, lines in clients.items() if "set autocommit=0;" in lines]
    assert len(first) == 1
    for pid, lines in clients.items():
        if pid != first[0]:
            assert "USE shop;" in lines and any(line.startswith("INSERT  IGNORE") for line in lines)
