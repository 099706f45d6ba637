"""Sakila, MySQL's own sample database, on MySQL: what the source server holds, the clone holds.

Sakila is not ours to ship: samples.py says where the test finds it, and the
test is skipped, saying where it looked, when it is not there.
"""

import pytest

from mysql_source import SOURCE_IMAGE, SourceServer
from samples import sakila_dump

# The same questions to the source server and to the clone: views, routines, the spatial column.
PROBES = [
    "SELECT COUNT(*) FROM customer_list",
    "SELECT COUNT(*) FROM film_list WHERE category = 'Action'",
    "SELECT COUNT(*) FROM actor_info",
    "SELECT total_sales FROM sales_by_store ORDER BY store LIMIT 1",
    "SELECT get_customer_balance(1, '2005-08-30 00:00:00')",
    "SELECT inventory_in_stock(1)",
    "SELECT inventory_held_by_customer(6)",
    "SELECT ST_GeometryType(location) FROM address WHERE address_id = 1",
    "SELECT ST_AsText(location) FROM address WHERE address_id = 7",
    "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'sakila' AND INDEX_TYPE = 'SPATIAL'",
    "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'sakila'",
    "SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'sakila'",
    "SELECT COUNT(*) FROM film_text WHERE MATCH(title, description) AGAINST ('drama')",
]


@pytest.fixture(scope="module")
def sakila(rig):
    return sakila_dump(rig.base)


def test_sakila_on_mysql_holds_the_sources_data_and_its_objects_work(rig, sakila):
    with SourceServer(SOURCE_IMAGE) as source:
        source.load(sakila)
        counts = source.row_counts(["sakila"])
        expected = [source.query(sql, "sakila")[0][0] for sql in PROBES]
        in_stock = source.query("CALL film_in_stock(1, 1, @c); SELECT @c", "sakila")[-1][0]
    assert counts["sakila.rental"] == 16044 and counts["sakila.film"] == 1000

    try:
        result = rig.template("sakila", sakila, engine="mysql", image=SOURCE_IMAGE)
        assert result.get("changed") and not result.get("failed"), result
        assert result["template"]["row_counts"] == counts
        instance = rig.instance("sakila-1", template="sakila")["instance"]
        assert instance["database"] == "sakila"
        got = [str(rig.query(instance, sql)[0][0]) for sql in PROBES]
        assert got == expected
        connection = rig.connect(instance)
        with connection.cursor() as cursor:
            cursor.execute("CALL film_in_stock(1, 1, @c)")
            while cursor.nextset():
                pass
            cursor.execute("SELECT @c")
            assert str(cursor.fetchone()[0]) == in_stock
            # Triggers: a new film reaches film_text, a new customer gets its create_date.
            cursor.execute("INSERT INTO film (title, language_id) VALUES ('MYAAS TEST', 1)")
            cursor.execute("SELECT COUNT(*) FROM film_text WHERE title = 'MYAAS TEST'")
            assert cursor.fetchone()[0] == 1
            cursor.execute("INSERT INTO customer (store_id, first_name, last_name, address_id) VALUES (1, 'A', 'B', 1)")
            cursor.execute("SELECT create_date IS NOT NULL FROM customer WHERE customer_id = LAST_INSERT_ID()")
            assert cursor.fetchone()[0] == 1
            cursor.execute("CALL rewards_report(7, 20.00, @n)")
            while cursor.nextset():
                pass
        connection.close()
    finally:
        rig.instance("sakila-1", state="absent")
        rig.template("sakila", None, state="absent")
