"""MySQL as teams run it: dumps written by mysqldump from a GTID server, MySQL 8.0+ schema
features, the default authentication, events that stay quiet in clones, masking that
leaves no original in the template's files, and no account that opens with a known password.

The lifecycle that every engine shares (reset, dockerd restart, reaper) is in
test_images.py; Sakila, MySQL's own sample, is in test_sakila.py.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse

import pymysql
import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from quota_checks import SYSTEM_TABLESPACE, file_per_table_is_refused, quotas_off, runaway_write_is_stopped
from rig import files_holding, login_refused, sh

IMAGES = ["mysql:9.7", "myaas/mysql:9.7"]
IDS = ["official", "offline"]
DEFINER = "app@10.0.0.%"
# The production password of the definer account in tests/data/mysql_features.sql.
PRODUCTION_PASSWORD = "Prod-Only-9f3b"
RULES = {
    "columns": {"app.member.email": "email", "app.member.full_name": "name", "app.member.extra": "null",
                "shop.customers.email": "email", "shop.customers.full_name": "name"},
    "keep": {"shop.categories.name": "product data", "shop.products.name": "product data"},
}


@pytest.fixture(scope="module")
def mysql_templates(rig, mysql_dump):
    """The mysqldump-made dump imported once per image, on first use."""
    made = {}

    def get(image):
        if image not in made:
            result = rig.template("my-" + IDS[IMAGES.index(image)], mysql_dump[0], engine="mysql", image=image)
            assert result.get("changed") and not result.get("failed"), result
            made[image] = result["template"]
        return made[image]
    return get


def connect_dsn(dsn):
    """Connect with PyMySQL using nothing but the DSN, exactly as it was returned."""
    url = urllib.parse.urlsplit(dsn)
    return pymysql.connect(host=url.hostname, port=url.port, user=urllib.parse.unquote(url.username),
                           password=urllib.parse.unquote(url.password),
                           database=urllib.parse.unquote(url.path.lstrip("/")) or None, autocommit=True,
                           connect_timeout=5)


def one(cursor, sql, args=None):
    cursor.execute(sql, (args,) if isinstance(args, str) else args)
    return cursor.fetchone()[0]


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_a_gtid_mysqldump_loads_and_its_objects_work_for_the_instances_user(
        rig, mysql_templates, mysql_dump, image):
    path, source_counts, _emails = mysql_dump
    with open(path, encoding="utf-8") as handle:
        head = handle.read(4096)
    # The dump is what production backups are: GTIDs, binary logging switched off, version comments.
    assert "SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/" in head and "SET @@SESSION.SQL_LOG_BIN= 0;" in head
    template = mysql_templates(image)
    assert template["databases"] == ["shop", "app"]
    assert template["definers_created"] == [DEFINER]
    assert template["row_counts"] == source_counts
    instance = rig.instance("my-objects-" + IDS[IMAGES.index(image)], template=template["name"])
    assert not instance.get("failed"), instance
    db = instance["instance"]
    try:
        connection = connect_dsn(db["dsn"])
        with connection.cursor() as cursor:
            assert one(cursor, "SELECT DATABASE()") == "shop"
            assert one(cursor, "SELECT COUNT(*) FROM customers") == source_counts["shop.customers"]
            assert one(cursor, "SELECT plugin FROM mysql.user WHERE user = %s", db["user"]) == "caching_sha2_password"
            assert one(cursor, "SELECT @@version").startswith("9.7.")
            cursor.execute("USE app")
            assert one(cursor, "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                               "WHERE SCHEMA_NAME = 'app'") == "utf8mb4_0900_ai_ci"
            assert one(cursor, "SELECT profile->>'$.city' FROM member WHERE id = 3") == "Oslo"
            assert one(cursor, "SELECT email_domain FROM member WHERE id = 3") == "corp-mail.example"
            assert one(cursor, "SELECT name_length FROM member WHERE id = 3") == len("Member Nr 3")
            # Invisible: not in SELECT *, there by name.
            cursor.execute("SELECT * FROM member WHERE id = 10")
            assert "internal_note" not in [column[0] for column in cursor.description]
            assert one(cursor, "SELECT internal_note FROM member WHERE id = 10") == "note 10"
            with pytest.raises(pymysql.err.OperationalError, match="member_age_ck"):
                cursor.execute("UPDATE member SET age = 5 WHERE id = 2")
            plan = str(cursor.execute("EXPLAIN SELECT id FROM member WHERE LOWER(full_name) = 'member nr 7'")
                       and cursor.fetchall())
            assert "ix_member_lower_name" in plan
            assert one(cursor, "SELECT ST_SRID(home) FROM member WHERE id = 1") == 4326
            assert one(cursor, "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = 'app' "
                               "AND INDEX_NAME = 'sx_member_home' AND INDEX_TYPE = 'SPATIAL'") == 1
            # Objects whose DEFINER has no account in the template work for the instance's user.
            assert one(cursor, "SELECT members FROM member_by_city WHERE city = 'Berlin'") == 125
            assert one(cursor, "SELECT ROUND(distance_km(home, ST_SRID(POINT(10, 50), 4326))) FROM member "
                               "WHERE id = 1") == 1
            cursor.execute("CALL members_older_than(50)")
            assert cursor.fetchone()[0] == one_count_older(source_counts)
            cursor.nextset()
            cursor.execute("UPDATE member SET age = age + 1 WHERE id = 1")
            assert one(cursor, "SELECT COUNT(*) FROM audit WHERE member_id = 1") == source_counts["app.audit"] + 1
            # Production's event is in the catalog, and enabled, but no scheduler runs it in a clone.
            assert one(cursor, "SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_NAME = 'tick'") == "ENABLED"
            assert one(cursor, "SELECT @@event_scheduler") == "OFF"
            before = one(cursor, "SELECT COUNT(*) FROM event_log")
            assert before == source_counts["app.event_log"]
            time.sleep(2.5)
            assert one(cursor, "SELECT COUNT(*) FROM event_log") == before
        connection.close()
        # The client command works as it is returned, with MySQL's own client.
        out = sh("docker", "run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c",
                 db["client_command"] + " --batch --skip-column-names -e 'SELECT COUNT(*) FROM orders'").stdout
        assert out.strip().splitlines()[-1] == str(source_counts["shop.orders"])
    finally:
        rig.instance(db["name"], state="absent")


def one_count_older(source_counts):
    """members_older_than(50): ages in the features file are 16 + i % 80 for i in 1..500."""
    assert source_counts["app.member"] == 500
    return sum(1 for i in range(1, 501) if 16 + i % 80 > 50)


def test_no_account_on_a_mysql_clone_opens_over_tcp_with_no_or_a_known_password(rig, mysql_templates):
    template = mysql_templates(IMAGES[0])
    instance = rig.instance("my-accounts", template=template["name"])["instance"]
    try:
        accounts = rig.query(instance, "SELECT user, host, account_locked FROM mysql.user")
        users = sorted(set(user for user, _host, _locked in accounts))
        assert "root" in users and "app" in users, users
        assert [locked for user, host, locked in accounts if (user, host) == ("root", "localhost")] == ["Y"]
        assert not [host for user, host, _locked in accounts if user == "root" and host != "localhost"]
        for user in users + [""]:
            for password in ("", "root", "mysql", "password", PRODUCTION_PASSWORD):
                if user != instance["user"]:
                    assert login_refused(instance["port"], user, password), (user, password)
        assert login_refused(instance["port"], instance["user"], "")
        assert not login_refused(instance["port"], instance["user"], instance["password"])
    finally:
        rig.instance("my-accounts", state="absent")


def test_masking_on_mysql_fails_closed_and_leaves_no_original_in_any_file(rig, workdir, mysql_templates,
                                                                          mysql_dump):
    path, source_counts, emails = mysql_dump
    # The dump's UPDATE trigger on member would fire while masking: dropped after the load, as documented.
    drop_trigger = os.path.join(workdir, "drop-trigger.sql")
    with open(drop_trigger, "w", encoding="utf-8") as handle:
        handle.write("DROP TRIGGER app.member_audit;\n")
    try:
        partial = dict(RULES, columns=dict(RULES["columns"]))
        del partial["columns"]["app.member.email"], partial["columns"]["app.member.extra"]
        refused = rig.template("my-masked", path, engine="mysql", image=IMAGES[0], masking=partial,
                               post_import_sql=[drop_trigger])
        assert refused.get("failed") and "app.member.email" in refused["msg"], refused
        # A JSON column is sampled too: its values hold e-mail addresses, its name says nothing.
        assert {"app.member.email", "app.member.extra"} <= set(refused["uncovered"]), refused["uncovered"]
        text_on_json = dict(RULES, columns=dict(RULES["columns"], **{"app.member.extra": "email"}))
        wrong = rig.template("my-masked", path, engine="mysql", image=IMAGES[0], masking=text_on_json,
                             post_import_sql=[drop_trigger])
        assert wrong.get("failed") and "app.member.extra is a json column" in wrong["msg"], wrong.get("msg")
        assert not os.path.exists(os.path.join(rig.pool, "templates", "my-masked", "gen-1"))

        # A histogram holds sampled values in the data dictionary, which no rebuild rewrites: refused.
        histogram = os.path.join(workdir, "histogram.sql")
        with open(histogram, "w", encoding="utf-8") as handle:
            handle.write("ANALYZE TABLE app.member UPDATE HISTOGRAM ON age, full_name;\n")
        with_statistics = rig.template("my-masked", path, engine="mysql", image=IMAGES[0], masking=RULES,
                                       post_import_sql=[drop_trigger, histogram])
        # Only the masked column's: age is not masked, its values stay in the template anyway.
        assert with_statistics.get("failed") and with_statistics["histograms"] == ["app.member.full_name"], \
            with_statistics
        assert "--column-statistics=0" in with_statistics["msg"]

        masked = rig.template("my-masked", path, engine="mysql", image=IMAGES[0], masking=RULES,
                              post_import_sql=[drop_trigger])
        assert masked.get("changed") and not masked.get("failed"), masked
        assert masked["template"]["row_counts"] == source_counts
        needles = [email.encode() for email in emails[:100]] + [b"Member Nr 17", b"customer501@example.org"]
        # The same search finds the originals in the unmasked template of the same dump.
        assert files_holding(mysql_templates(IMAGES[0])["path"], needles)
        assert files_holding(masked["template"]["path"], needles) == []

        instance = rig.instance("my-masked-1", template="my-masked")["instance"]
        rows = rig.query(instance, "SELECT email, full_name, email_domain FROM app.member ORDER BY id LIMIT 50")
        assert all(email.startswith("user.") and email.endswith("@example.com") for email, _n, _d in rows)
        assert {domain for _e, _n, domain in rows} == {"example.com"}   # the generated column follows
        assert not {name for _e, name, _d in rows} & {"Member Nr %d" % i for i in range(1, 51)}
        log = subprocess.run(["docker", "logs", instance["container"]], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, check=False).stdout
        assert not get_engine("mysql").crash_recovery(log) and "ready for connections" in log
    finally:
        rig.instance("my-masked-1", state="absent")
        rig.template("my-masked", None, state="absent")


def test_the_nightly_playbook_imports_each_dump_with_its_templates_engine(rig, workdir, mysql_dump, shop_sql):
    dumps = os.path.join(workdir, "dumps")
    os.makedirs(dumps)
    shutil.copy(mysql_dump[0], os.path.join(dumps, "billing.sql"))
    shutil.copy(shop_sql, os.path.join(dumps, "webshop.sql"))
    per_template = json.dumps({"dumps_dir": dumps, "image": rig.image, "myaas_engines": {"billing": "mysql"},
                               "myaas_images": {"billing": IMAGES[1]},
                               "myaas_tuning": {"webshop": SYSTEM_TABLESPACE}})
    try:
        run = rig.playbook("playbooks/import_templates.yml", "-e", per_template)
        assert run.returncode == 0, run.stdout[-3000:]
        billing, webshop = (json.loads(rig.template_json(name)) for name in ("billing", "webshop"))
        assert (billing["engine"], billing["image"]) == ("mysql", IMAGES[1])
        assert (webshop["engine"], webshop["image"]) == ("mariadb", rig.image)
        assert billing["row_counts"] == mysql_dump[1]
        # The settings of one template's import, and what they are for: its instances take quotas.
        assert (billing["options"]["tuning"], webshop["options"]["tuning"]) == ({}, SYSTEM_TABLESPACE)
        limited = rig.instance("webshop-q", template="webshop", max_bytes="64M")
        assert not limited.get("failed") and limited["instance"]["max_bytes"] == 64 * 2 ** 20, limited
        assert rig.instance("webshop-q", state="absent")["changed"]
    finally:
        for name in ("billing", "webshop"):
            rig.template(name, None, state="absent")
        quotas_off(rig)


def test_a_runaway_write_stops_at_the_instance_quota(rig, mysql_templates, mysql_dump):
    # Tables in files of their own have no cap InnoDB keeps: refused before anything is made.
    file_per_table_is_refused(rig, mysql_templates("mysql:9.7")["name"], "my-quota")
    made = rig.template("my-quota-t", mysql_dump[0], engine="mysql", image="mysql:9.7", tuning=SYSTEM_TABLESPACE)
    assert made["changed"] and not made.get("failed"), made
    try:
        runaway_write_is_stopped(rig, "my-quota-t", "customers", mysql_dump[1]["shop.customers"])
    finally:
        rig.template("my-quota-t", None, state="absent")
