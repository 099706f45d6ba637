"""Upgrade rehearsals on the real rig: a template's snapshot upgraded in place to the next major version.

MariaDB 10.11 -> 11.8 and PostgreSQL 15 -> 17 on the images users run (the
official ones) and on MyAAS's offline ones, on small shops of our own that
hold what breaks (a function reading a system variable MariaDB 11 removed, an
SQL function reading a column PostgreSQL 17 removed, the adminpack extension
PostgreSQL 17 dropped) and on the real samples, Sakila and Pagila. MySQL runs
the same path from the official 9.7 image to the offline 9.7 one: no older
MySQL server is installable here.
"""

import json
import os

import pytest

from rig import ROOT
from samples import pagila_dump, sakila_dump
from test_sakila import PROBES as SAKILA_PROBES

DATA = os.path.join(ROOT, "tests", "data")
MARIADB_SQL = os.path.join(DATA, "upgrade_mariadb.sql")
MARIADB_REMOVED_SQL = os.path.join(DATA, "upgrade_mariadb_removed.sql")
PG_SQL = os.path.join(DATA, "upgrade_postgresql.sql")
# MariaDB skips sakila-mv-schema's MySQL-only versioned comments (/*!50705 ...*/): no spatial column there.
SAKILA_MARIADB_PROBES = [sql for sql in SAKILA_PROBES if "location" not in sql and "SPATIAL" not in sql]


def ok(result):
    assert not result.get("failed"), result.get("msg", result)
    return result


def version(rig, instance):
    sql = "SHOW server_version" if instance["engine"] == "postgresql" else "SELECT VERSION()"
    return rig.query(instance, sql)[0][0]


def all_rows_equal(report, template):
    counts = report["row_counts"]
    assert set(counts) == set(template["row_counts"]), (counts, template["row_counts"])
    assert all(entry["before"] == entry["after"] == template["row_counts"][table]
               for table, entry in counts.items()), counts


def nothing_left(rig, name):
    return rig.gone(name) and not rig.containers(instance=name)


@pytest.fixture(scope="module")
def mariadb_shop(rig):
    template = ok(rig.template("upg-maria", MARIADB_SQL, image="mariadb:10.11",
                               post_import_sql=[MARIADB_REMOVED_SQL],
                               checks=["SELECT COUNT(*) = 6 FROM film"]))["template"]
    yield template
    rig.template("upg-maria", None, state="absent")


@pytest.fixture(scope="module")
def pg_shop(rig):
    template = ok(rig.template("upg-pg", PG_SQL, engine="postgresql", image="postgres:15",
                               checks=["SELECT count(*) = 6 FROM film"]))["template"]
    yield template
    rig.template("upg-pg", None, state="absent")


def test_mariadb_10_11_to_11_8_reports_and_names_what_no_longer_compiles(rig, mariadb_shop):
    try:
        result = ok(rig.instance("upg-m1", template="upg-maria", upgrade_to="mariadb:11.8"))
        report, instance = result["upgrade"], result["instance"]
        assert report["version_from"].startswith("10.11.") and report["version_to"].startswith("11.8.")
        assert version(rig, instance).startswith("11.8.")
        assert instance["image"] == "mariadb:11.8"
        all_rows_equal(report, mariadb_shop)
        assert report["checks"] == [{"sql": "SELECT COUNT(*) = 6 FROM film", "returned": "1", "passed": True}]
        # A view, a trigger is not counted; three routines, one of which reads a removed variable.
        assert report["objects_checked"] == 4
        assert [(p["kind"], p["name"]) for p in report["problems"]] == [("function", "upg-maria.change_buffering")]
        assert "innodb_change_buffering" in report["problems"][0]["problem"]
        assert report["ok"] is False and report["errors"] == []
        assert {"versions", "ownership", "server_start", "mariadb_upgrade", "row_counts", "checks",
                "views_and_routines", "shutdown"} <= set(report["steps"])
        # What still compiles works on the new version: the view, the function, the procedure and its trigger.
        assert sorted(rig.query(instance, "SELECT title, out_now FROM film_on_loan")) == [
            ("ACADEMY DINOSAUR", 1), ("AFFAIR PREJUDICE", 1), ("AIRPLANE SIERRA", 1)]
        assert rig.query(instance, "SELECT film_in_stock(2), film_in_stock(1)")[0] == (1, 0)
        rig.query(instance, "CALL rent_film(3, @id)")
        assert rig.query(instance, "SELECT COUNT(*) FROM audit_log")[0][0] == 1

        # The template's own instances still run the old version, on untouched data.
        plain = ok(rig.instance("upg-m0", template="upg-maria"))["instance"]
        assert plain["image"] == "mariadb:10.11" and version(rig, plain).startswith("10.11.")
        assert rig.query(plain, "SELECT COUNT(*) FROM rental")[0][0] == 6
        assert rig.query(plain, "SELECT change_buffering()")[0][0]

        # A reset upgrades afresh from the template: the write is gone, the version stays new.
        reset = ok(rig.instance("upg-m1", state="reset"))
        assert reset["upgrade"]["finished_at"] >= report["finished_at"]
        assert reset["upgrade"]["problems"] == report["problems"]
        assert rig.query(reset["instance"], "SELECT COUNT(*) FROM rental")[0][0] == 6
        assert version(rig, reset["instance"]).startswith("11.8.")

        # Asking for another upgrade of the existing instance is refused, not silently ignored.
        refused = rig.instance("upg-m1", upgrade_to="mariadb:10.11")
        assert refused.get("failed") and "state=reset" in refused["msg"]

        # The report stays with the generation.
        [info] = [t for t in rig.info()["templates"] if t["name"] == "upg-maria"]
        [kept] = info["rehearsals"]
        assert kept["generation"] == mariadb_shop["generation"] and kept["image_to"] == "mariadb:11.8"
        assert kept["problems"] == report["problems"]
    finally:
        rig.instance("upg-m1", state="absent")
        rig.instance("upg-m0", state="absent")


def test_check_mode_plans_the_upgrade_and_makes_nothing(rig, mariadb_shop):
    result = ok(rig.instance("upg-m2", template="upg-maria", upgrade_to="mariadb:11.8", check_mode=True))
    assert result["changed"] and result["upgrade"] == {"image_from": "mariadb:10.11", "image_to": "mariadb:11.8",
                                                       "planned": True}
    assert nothing_left(rig, "upg-m2")


@pytest.mark.parametrize("image, says", [
    ("mariadb:10.10-nowhere", "is not on this host"),
    ("postgres:17", "has no mariadb server"),
])
def test_a_rehearsal_that_cannot_start_names_why_and_leaves_nothing(rig, mariadb_shop, image, says):
    result = rig.instance("upg-m3", template="upg-maria", upgrade_to=image)
    assert result.get("failed") and says in result["msg"], result.get("msg")
    assert result["upgrade"]["error"] and result["upgrade"]["ok"] is False
    assert nothing_left(rig, "upg-m3")


def test_a_downgrade_is_refused(rig):
    try:
        ok(rig.template("upg-new", MARIADB_SQL, image="myaas/mariadb:11.8"))
        result = rig.instance("upg-m4", template="upg-new", upgrade_to="mariadb:10.11")
        assert result.get("failed") and "never downgrades" in result["msg"], result.get("msg")
        assert nothing_left(rig, "upg-m4")
    finally:
        rig.template("upg-new", None, state="absent")


def test_postgresql_15_to_17_with_pg_upgrade_link(rig, pg_shop):
    try:
        result = ok(rig.instance("upg-p1", template="upg-pg", upgrade_to="postgres:17"))
        report, instance = result["upgrade"], result["instance"]
        assert report["version_from"].startswith("15.") and report["version_to"].startswith("17.")
        assert version(rig, instance).startswith("17.")
        all_rows_equal(report, pg_shop)
        assert report["checks"][0]["passed"] is True
        assert {"old_binaries", "pg_upgrade", "server_start", "analyze", "views_and_routines"} <= set(report["steps"])
        # Two views and four routines; the one reading pg_stat_bgwriter.buffers_backend no longer compiles.
        assert report["objects_checked"] == 6
        assert [(p["kind"], p["name"]) for p in report["problems"]] == [("routine", "backend_buffer_writes()")]
        assert "buffers_backend" in report["problems"][0]["problem"]
        assert rig.query(instance, "SELECT count(*) FROM film_on_loan")[0][0] == 3
        assert rig.query(instance, "SELECT films FROM rating_totals WHERE rating = 'G'")[0][0] == 2
        assert rig.query(instance, "SELECT film_in_stock(2), film_in_stock(1)")[0] == (True, False)
        rig.query(instance, "CALL rent_film(3)")
        assert rig.query(instance, "SELECT count(*) FROM audit_log")[0][0] == 1
        # pg_upgrade --link made a new datadir inside the snapshot: nothing of the old one is left there.
        data = os.path.join(rig.pool, "instances", "upg-p1", "data")
        with open(os.path.join(data, "PG_VERSION"), encoding="utf-8") as handle:
            assert handle.read().strip() == "17"
        assert not [name for name in os.listdir(data) if name.startswith(".myaas-")]

        plain = ok(rig.instance("upg-p0", template="upg-pg"))["instance"]
        assert version(rig, plain).startswith("15.")
        assert rig.query(plain, "SELECT count(*) FROM rental")[0][0] == 6
    finally:
        rig.instance("upg-p1", state="absent")
        rig.instance("upg-p0", state="absent")


def test_adminpack_stops_a_postgresql_17_upgrade_named_and_leaves_nothing(rig, tmp_path):
    dump = tmp_path / "adminpack.sql"
    dump.write_text(open(PG_SQL, encoding="utf-8").read() + "CREATE EXTENSION adminpack;\n", encoding="utf-8")
    try:
        template = ok(rig.template("upg-admin", str(dump), engine="postgresql", image="myaas/postgresql:15"))
        before = rig.subvolumes()
        result = rig.instance("upg-p2", template="upg-admin", upgrade_to="postgres:17")
        assert result.get("failed"), result
        assert "adminpack" in result["msg"] and "DROP EXTENSION adminpack" in result["msg"], result["msg"]
        assert [(p["kind"], p["name"]) for p in result["upgrade"]["problems"]] == [("extension", "adminpack")]
        assert nothing_left(rig, "upg-p2") and rig.subvolumes() == before
        # The failed rehearsal is kept with the generation, and the template serves on.
        [info] = [t for t in rig.info()["templates"] if t["name"] == "upg-admin"]
        assert info["rehearsals"][0]["ok"] is False and "adminpack" in info["rehearsals"][0]["error"]
        plain = ok(rig.instance("upg-p3", template="upg-admin"))["instance"]
        assert rig.query(plain, "SELECT extversion FROM pg_extension WHERE extname = 'adminpack'")
        assert template["template"]["row_counts"]["public.film"] == 6
    finally:
        rig.instance("upg-p3", state="absent")
        rig.template("upg-admin", None, state="absent")


def test_mysql_goes_through_the_same_checks_from_the_official_image_to_the_offline_one(rig):
    try:
        template = ok(rig.template("upg-my", MARIADB_SQL, engine="mysql", image="mysql:9.7",
                                   checks=["SELECT COUNT(*) = 6 FROM film"]))["template"]
        result = ok(rig.instance("upg-y1", template="upg-my", upgrade_to="myaas/mysql:9.7"))
        report, instance = result["upgrade"], result["instance"]
        assert report["version_from"].startswith("9.7.") and report["version_to"].startswith("9.7.")
        assert report["ok"] is True and report["problems"] == [] and report["errors"] == []
        assert report["objects_checked"] == 3
        assert report["checks"][0]["passed"] is True
        all_rows_equal(report, template)
        # Another image's server account owns the data now, and the instance's own login works.
        assert os.stat(os.path.join(rig.pool, "instances", "upg-y1", "data")).st_uid == 3306
        assert rig.query(instance, "SELECT film_in_stock(2)")[0][0] == 1
        rig.query(instance, "CALL rent_film(3, @id)")
        assert rig.query(instance, "SELECT COUNT(*) FROM audit_log")[0][0] == 1
    finally:
        rig.instance("upg-y1", state="absent")
        rig.template("upg-my", None, state="absent")


def test_sakila_on_mariadb_10_11_upgrades_to_11_8_with_every_row_view_and_routine(rig):
    dump = sakila_dump(rig.base)
    try:
        template = ok(rig.template("upg-sakila", dump, image="myaas/mariadb:10.11"))["template"]
        old = ok(rig.instance("upg-s0", template="upg-sakila"))["instance"]
        expected = [rig.query(old, sql)[0][0] for sql in SAKILA_MARIADB_PROBES]
        result = ok(rig.instance("upg-s1", template="upg-sakila", upgrade_to="myaas/mariadb:11.8"))
        report, new = result["upgrade"], result["instance"]
        assert report["version_to"].startswith("11.8.") and version(rig, new).startswith("11.8.")
        assert report["ok"] is True and report["problems"] == [], report["problems"]
        assert template["row_counts"]["sakila.rental"] == 16044
        all_rows_equal(report, template)
        # 7 views, 3 procedures, 3 functions.
        assert report["objects_checked"] == 13
        assert [rig.query(new, sql)[0][0] for sql in SAKILA_MARIADB_PROBES] == expected
        assert version(rig, old).startswith("10.11.")
    finally:
        rig.instance("upg-s1", state="absent")
        rig.instance("upg-s0", state="absent")
        rig.template("upg-sakila", None, state="absent")


# Pagila's routines that work (in its v15 release get_customer_balance and
# inventory_in_stock read rental columns that became rental_period, on every
# PostgreSQL version: PL/pgSQL bodies are only checked when they run).
PAGILA_PROBES = [
    "SELECT count(*) FROM customer_list",
    "SELECT count(*) FROM film_list WHERE category = 'Action'",
    "SELECT count(*) FROM actor_info",
    "SELECT total_sales FROM sales_by_film_category ORDER BY category LIMIT 1",
    "SELECT count(*) FROM sales_top5_by_film_category",
    "SELECT count(*) FROM rental_report",
    "SELECT count(*) FROM payment",
    "SELECT count(*) FROM film WHERE fulltext @@ to_tsquery('drama')",
    "SELECT group_concat(name) FROM (SELECT name FROM category ORDER BY 1) AS names",
    "SELECT last_day('2022-02-10')",
]


def test_pagila_on_postgresql_15_upgrades_to_17_with_every_row_view_and_routine(rig):
    dump = pagila_dump(rig.base)
    try:
        template = ok(rig.template("upg-pagila", dump, engine="postgresql", image="myaas/postgresql:15",
                                   database="pagila"))["template"]
        old = ok(rig.instance("upg-g0", template="upg-pagila"))["instance"]
        expected = [str(rig.query(old, sql)[0][0]) for sql in PAGILA_PROBES]
        result = ok(rig.instance("upg-g1", template="upg-pagila", upgrade_to="myaas/postgresql:17"))
        report, new = result["upgrade"], result["instance"]
        assert report["version_to"].startswith("17.") and version(rig, new).startswith("17.")
        assert report["ok"] is True and report["problems"] == [], report["problems"]
        assert template["row_counts"]["public.rental"] == 16044
        all_rows_equal(report, template)
        assert report["objects_checked"] >= 15
        assert [str(rig.query(new, sql)[0][0]) for sql in PAGILA_PROBES] == expected
        assert version(rig, old).startswith("15.")
    finally:
        rig.instance("upg-g1", state="absent")
        rig.instance("upg-g0", state="absent")
        rig.template("upg-pagila", None, state="absent")


def test_rehearse_upgrade_playbook_prints_the_report(rig, pg_shop):
    try:
        run = rig.playbook("playbooks/rehearse_upgrade.yml", "-e", "template=upg-pg", "-e", "image=postgres:17",
                           "-e", "name=upg-p9")
        assert run.returncode == 0, run.stdout[-3000:]
        assert "backend_buffer_writes()" in run.stdout and "15." in run.stdout and "17." in run.stdout
        assert json.loads(open(os.path.join(rig.pool, "instances", "upg-p9", "instance.json"),
                               encoding="utf-8").read())["upgrade_to"] == "postgres:17"
    finally:
        rig.instance("upg-p9", state="absent")


def test_nightly_import_rehearses_each_fresh_template_and_keeps_the_report(rig, tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    shop = open(MARIADB_SQL, encoding="utf-8").read()
    (dumps / "upg-night.sql").write_text(shop, encoding="utf-8")
    (dumps / "upg-broken.sql").write_text(shop + open(MARIADB_REMOVED_SQL, encoding="utf-8").read(),
                                          encoding="utf-8")
    try:
        run = rig.playbook("playbooks/import_templates.yml", "-e", "dumps_dir=%s" % dumps,
                           "-e", "rehearse_upgrade_to=myaas/mariadb:11.8")
        # The broken function fails the play, by name, after both imports and rehearsals.
        assert run.returncode != 0 and "upgrade rehearsal of ['upg-broken']" in run.stdout, run.stdout[-3000:]
        templates = dict((t["name"], t) for t in rig.info()["templates"])
        good, bad = templates["upg-night"]["rehearsals"], templates["upg-broken"]["rehearsals"]
        assert [(r["generation"], r["image_to"], r["ok"]) for r in good] == [(1, "myaas/mariadb:11.8", True)]
        assert [p["name"] for p in bad[0]["problems"]] == ["upg-broken.change_buffering"]
        all_rows_equal(good[0], templates["upg-night"])
        # The rehearsal instances are gone; the reports stay.
        assert nothing_left(rig, "upg-night-rehearsal") and nothing_left(rig, "upg-broken-rehearsal")
        # An unchanged dump is not imported again, so nothing is rehearsed again.
        again = rig.playbook("playbooks/import_templates.yml", "-e", "dumps_dir=%s" % dumps,
                             "-e", "rehearse_upgrade_to=myaas/mariadb:11.8")
        assert again.returncode == 0, again.stdout[-3000:]
        templates = dict((t["name"], t) for t in rig.info()["templates"])
        assert templates["upg-night"]["rehearsals"] == good
    finally:
        for name in ("upg-night", "upg-broken"):
            rig.template(name, None, state="absent")
