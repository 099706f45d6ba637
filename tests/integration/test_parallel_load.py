"""A dump written by mysqldump or mariadb-dump loads on several connections and gives what the source held.

The source is a production-like server on the official image; its dump is
taken by its own tool. A trigger made after the rows (it rewrites every row
it sees) shows a row loaded after the dump's trigger, and NO_AUTO_VALUE_ON_ZERO
and SET NAMES, which the dump sets once in its header, show a connection
that missed them.
"""

import pytest

from mysql_source import SourceServer

# (engine, production's image, the template's image: None is the rig's offline MariaDB)
SOURCES = [("mysql", "mysql:9.7", "mysql:9.7"), ("mariadb", "mariadb:10.11", None)]
ROWS = 40000
DATA_SQL = """
SET NAMES utf8mb4;
CREATE DATABASE big;
CREATE TABLE big.digit (v INT PRIMARY KEY);
INSERT INTO big.digit VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
CREATE TABLE big.item (id INT PRIMARY KEY AUTO_INCREMENT, at DATETIME NOT NULL, label VARCHAR(120) NOT NULL,
                       price DECIMAL(10, 2) NOT NULL, KEY by_label (label))
  DEFAULT CHARSET = utf8mb4;
INSERT INTO big.item (id, at, label, price)
  SELECT a.v + 10 * b.v + 100 * c.v + 1000 * d.v + 10000 * e.v + 1,
         TIMESTAMP('2026-01-01') + INTERVAL (a.v + 10 * b.v + 100 * c.v) MINUTE,
         CONCAT('item ', a.v, b.v, c.v, d.v, e.v, ' ', REPEAT('\u00e9\U0001f600', 20)),
         (a.v + 10 * b.v) / 7
  FROM big.digit a, big.digit b, big.digit c, big.digit d, big.digit e WHERE e.v < 4;
SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
INSERT INTO big.item (id, at, label, price) VALUES (0, '2026-01-01', 'the zero row', 0);
CREATE TABLE big.line (id INT PRIMARY KEY, item INT NOT NULL, FOREIGN KEY (item) REFERENCES big.item (id));
INSERT INTO big.line SELECT id, id FROM big.item;
CREATE TRIGGER big.item_bi BEFORE INSERT ON big.item FOR EACH ROW SET NEW.label = 'loaded after the trigger';
CREATE VIEW big.dear AS SELECT id, price FROM big.item WHERE price > 10;
"""
# What a table holds, in one row, the same on any server version.
FINGERPRINT = {
    "item": "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, at, label, price))) FROM big.item",
    "line": "SELECT COUNT(*), SUM(CRC32(CONCAT_WS('|', id, item))) FROM big.line",
    "dear": "SELECT COUNT(*), SUM(price) FROM big.dear",
}


@pytest.mark.parametrize("engine,source_image,image", SOURCES, ids=[engine for engine, _s, _i in SOURCES])
def test_a_dump_loaded_on_two_connections_holds_what_the_source_held(rig, workdir, engine, source_image, image):
    sql, path = workdir + "/data.sql", workdir + "/big.sql"
    with open(sql, "w", encoding="utf-8") as handle:
        handle.write(DATA_SQL)
    with SourceServer(source_image, engine) as source:
        source.load(sql)
        expected = dict((name, source.query(query)[0]) for name, query in FINGERPRINT.items())
        source.dump(path, ["big"])
    assert int(expected["item"][0]) == ROWS + 1
    name = "parallel-" + engine
    try:
        result = rig.template(name, path, engine=engine, image=image or rig.image, restore_jobs=2)
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        # Both connections loaded rows (the table's rows are several MiB, dealt a MiB at a time).
        assert result["template"]["load_connections"] == 2, result["template"]
        instance = rig.instance(name + "-1", template=name)
        assert not instance.get("failed"), instance.get("msg")
        db = instance["instance"]
        got = dict((name_, [str(value) for value in rig.query(db, query)[0]]) for name_, query in FINGERPRINT.items())
        assert got == expected
        assert rig.query(db, "SELECT label FROM big.item WHERE id = 0")[0][0] == "the zero row"
        assert rig.query(db, "SELECT COUNT(*) FROM big.item WHERE label = 'loaded after the trigger'")[0][0] == 0
        # The trigger itself was loaded, after the rows.
        assert rig.query(db, "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'big'")[0][0] == 1
    finally:
        rig.instance(name + "-1", state="absent")
        rig.template(name, None, state="absent")
