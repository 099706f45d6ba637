"""The images users run: the official ones and MyAAS's offline ones, for both engines.

MyAAS starts every server itself (entrypoint overridden), so the same
lifecycle must hold on each image: import, instance, reset, a dockerd restart,
the reaper; no superuser that anyone can log in as; DEFINERs of production
dumps that work; a DSN that works exactly as it is returned.
"""

import json
import os
import re
import subprocess
import time
import urllib.parse

import psycopg2
import pymysql
import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from rig import FLAVOURS, OFFICIAL_IMAGES, PG_CUSTOMERS, ROOT, SAMPLE, SAMPLE_CUSTOMERS, run_module, sh

CUSTOMERS = {"mariadb": SAMPLE_CUSTOMERS, "mysql": SAMPLE_CUSTOMERS, "postgresql": PG_CUSTOMERS}
# engine[-version unless the default's]-kind, e.g. mariadb-official, mariadb-11.8-offline
IDS = ["-".join([engine] + [image.split(":")[1]] * (image.split(":")[1] != OFFICIAL_IMAGES[engine].split(":")[1])
                + ["offline" if image.startswith("myaas/") else "official"]) for engine, image in FLAVOURS]
SUPERUSERS = {"mariadb": ["root", "mysql", "mariadb.sys", ""], "postgresql": ["postgres"],
              "mysql": ["root", "mysql", "mysql.sys", "mysql.session", "mysql.infoschema", ""]}


def flavour_id(engine, image):
    return IDS[FLAVOURS.index((engine, image))].replace(".", "")  # names have no dots: mariadb-118-official


@pytest.fixture(scope="module")
def templates(rig, pg_sql, mysql_dump):
    """The sample shop imported once per (engine, image), on first use (MySQL's as its mysqldump wrote it)."""
    made = {}
    dumps = {"mariadb": SAMPLE, "postgresql": pg_sql, "mysql": mysql_dump[0]}

    def get(engine, image):
        if (engine, image) not in made:
            name = "img-" + flavour_id(engine, image)
            result = rig.template(name, dumps[engine], engine=engine, image=image)
            assert result.get("changed") and not result.get("failed"), result
            made[(engine, image)] = result["template"]
        return made[(engine, image)]
    return get


def account_uid(image, account):
    out = sh("docker", "run", "--rm", "--entrypoint", "id", image, "-u", account).stdout
    return int(out.strip())


def repo_passwords():
    """Every password-looking value written in this repository, and the usual guesses."""
    found = {"", "root", "mysql", "mariadb", "postgres", "password", "secret", "admin", "unused-no-network"}
    pattern = re.compile(r"""(?i)(?:password|passwd|pwd|secret)\w*["']?\s*[:=]\s*["']([^"'\s]{1,64})["']""")
    for path in sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=ROOT).stdout.split():
        full = os.path.join(ROOT, path)
        if path.endswith((".gz", ".png")) or not os.path.isfile(full):
            continue
        with open(full, encoding="utf-8", errors="replace") as handle:
            found.update(pattern.findall(handle.read()))
    return sorted(found)


def login_refusal(engine, host, port, user, password):
    """The server's refusal of a login, or None when the login worked or nothing answered."""
    try:
        if engine in ("mariadb", "mysql"):
            pymysql.connect(host=host, port=port, user=user, password=password, connect_timeout=5).close()
        else:
            psycopg2.connect(host=host, port=port, user=user, password=password, dbname="postgres",
                             connect_timeout=5).close()
    except pymysql.err.OperationalError as exc:
        # 1045 and 1698 access denied (1698: the account exists, its plugin said no), 3118 (MySQL) and 4151
        # (MariaDB) account locked
        return exc.args[1] if exc.args[0] in (1045, 1698, 3118, 4151) else None
    except psycopg2.OperationalError as exc:
        refused = "password authentication failed" in str(exc) or "no password supplied" in str(exc)
        return str(exc) if refused else None
    return None


def login_attempt(engine, host, port, user, password):
    try:
        return login_refusal(engine, host, port, user, password) or "no refusal"
    except Exception as exc:  # pylint: disable=broad-exception-caught
        return repr(exc)


def write_file(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def container_ip(container):
    return sh("docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
              container).stdout.strip()


def count_customers(rig, db):
    return rig.query(db, "SELECT COUNT(*) FROM customers")[0][0]


@pytest.mark.parametrize("engine,image", FLAVOURS, ids=IDS)
def test_import_instance_and_reset_on_every_image(rig, templates, engine, image):
    template = templates(engine, image)
    assert template["image"] == image
    # The server's own accounts are none of production's: nothing to lock.
    assert template["passwords_removed"] == []
    # The import server ran as the image's own account and initialised the datadir itself.
    marker = "PG_VERSION" if engine == "postgresql" else "mysql"
    owner = os.stat(os.path.join(template["path"], marker)).st_uid
    assert owner == account_uid(image, get_engine(engine).account) and owner != 0
    name = "life-" + flavour_id(engine, image)
    db = rig.instance(name, template=template["name"])["instance"]
    try:
        assert count_customers(rig, db) == CUSTOMERS[engine]
        config = json.loads(sh("docker", "inspect", db["container"]).stdout)[0]["Config"]
        assert config["Entrypoint"] == ["/bin/sh"] and config["User"].split(":")[0] == str(owner)
        # No credentials through the entrypoint's variables (the image's own, like MYSQL_MAJOR, aside).
        image_env = json.loads(sh("docker", "image", "inspect", image).stdout)[0]["Config"]["Env"] or []
        assert not [var for var in config["Env"] or [] if var.startswith(("MARIADB_", "MYSQL_", "POSTGRES_"))
                    and var not in image_env]
        rig.query(db, "DELETE FROM reviews")
        assert rig.query(db, "SELECT COUNT(*) FROM reviews")[0][0] == 0
        reset = rig.instance(name, state="reset")["instance"]
        assert (reset["port"], reset["password"]) == (db["port"], db["password"])
        assert rig.query(db, "SELECT COUNT(*) FROM reviews")[0][0] > 0
        log = sh("docker", "logs", db["container"]).stdout
        assert not get_engine(engine).crash_recovery(log), log[-3000:]
    finally:
        rig.instance(name, state="absent")
    assert rig.gone(name)


@pytest.mark.parametrize("engine,image", FLAVOURS, ids=IDS)
def test_no_superuser_logs_in_over_tcp_with_no_or_a_known_password(rig, templates, engine, image):
    template = templates(engine, image)
    name = "lock-" + flavour_id(engine, image)
    db = rig.instance(name, template=template["name"])["instance"]
    passwords = repo_passwords()
    assert len(passwords) > 10
    try:
        # From the host through the published port, and from the Docker bridge
        # (where other developers' instances are) to the server itself.
        for host, port in (("127.0.0.1", db["port"]), (container_ip(db["container"]), get_engine(engine).port)):
            assert not login_refusal(engine, host, port, db["user"], db["password"]), "the control login failed"
            accepted = [(user, password, login_attempt(engine, host, port, user, password))
                        for user in SUPERUSERS[engine] for password in passwords
                        if not login_refusal(engine, host, port, user, password)]
            assert accepted == [], (host, accepted)
    finally:
        rig.instance(name, state="absent")


@pytest.mark.dockerd_restart
def test_instances_on_every_image_survive_a_dockerd_restart_and_are_reaped(rig, templates):
    made = []
    try:
        for engine, image in FLAVOURS:
            template = templates(engine, image)
            for kind, ttl in (("short", "2s"), ("kept", "8h")):
                name = "rr-%s-%s" % (flavour_id(engine, image), kind)
                made.append((engine, kind, rig.instance(name, template=template["name"], ttl=ttl)["instance"]))
        rig.restart_dockerd()
        for engine, _kind, db in made:
            rig.wait_for(lambda db=db, engine=engine: _answers(rig, db, CUSTOMERS[engine]), timeout=60,
                         what="instance %s after the restart" % db["name"])
            # Stopped with the engine's own clean-shutdown signal, so no recovery at the new start.
            assert not get_engine(engine).crash_recovery(sh("docker", "logs", db["container"]).stdout), db["name"]
            again = rig.instance(db["name"], template=db["template"])
            assert again["changed"] is False
            assert (again["instance"]["port"], again["instance"]["password"]) == (db["port"], db["password"])
        time.sleep(2)
        reaped = rig.playbook("playbooks/reap.yml")
        assert reaped.returncode == 0, reaped.stdout[-3000:]
        for engine, kind, db in made:
            if kind == "short":
                assert rig.gone(db["name"]), db["name"]
            else:
                assert count_customers(rig, db) == CUSTOMERS[engine]
    finally:
        for _engine, _kind, db in made:
            rig.instance(db["name"], state="absent")


def _answers(rig, db, expected):
    try:
        return count_customers(rig, db) == expected
    except Exception:  # pylint: disable=broad-exception-caught
        return False


# A dump as mysqldump writes it on a production server, where the objects
# belong to an application account from the application's network.
DEFINER_DUMP = """-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: db1.prod    Database: shop
-- ------------------------------------------------------
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;

CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;

USE `shop`;
DROP TABLE IF EXISTS `orders`;
CREATE TABLE `orders` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `total` decimal(10,2) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
LOCK TABLES `orders` WRITE;
INSERT INTO `orders` VALUES (1,10.00),(2,32.50),(3,41.00);
UNLOCK TABLES;
DROP TABLE IF EXISTS `audit`;
CREATE TABLE `audit` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `order_id` int(11) NOT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
/*!50003 SET @saved_cs_client      = @@character_set_client */ ;
DELIMITER ;;
{trigger}
DELIMITER ;
/*!50003 SET character_set_client  = @saved_cs_client */ ;
DELIMITER ;;
CREATE DEFINER=`app`@`10.0.0.%` FUNCTION `order_total`(p_id INT) RETURNS decimal(10,2)
    READS SQL DATA
    SQL SECURITY DEFINER
BEGIN
  RETURN (SELECT total FROM orders WHERE id = p_id);
END ;;
DELIMITER ;
DELIMITER ;;
CREATE DEFINER=`app`@`10.0.0.%` PROCEDURE `close_order`(IN p_id INT)
    SQL SECURITY DEFINER
BEGIN
  UPDATE orders SET total = 0 WHERE id = p_id;
END ;;
DELIMITER ;
/*!50001 DROP VIEW IF EXISTS `big_orders`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=`app`@`10.0.0.%` SQL SECURITY DEFINER */
/*!50001 VIEW `big_orders` AS select `orders`.`id` AS `id` from `orders` where `orders`.`total` > 20 */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;

-- Dump completed on 2026-11-24 23:00:01
"""
# mysqldump writes a trigger on one line longer than this file's lines may be.
DEFINER_DUMP = DEFINER_DUMP.replace("{trigger}", (
    "/*!50003 CREATE*/ /*!50017 DEFINER=`app`@`10.0.0.%`*/ /*!50003 TRIGGER `orders_ai` AFTER INSERT ON `orders` "
    "FOR EACH ROW INSERT INTO audit (order_id) VALUES (NEW.id) */;;"))
# Characters that must be percent-encoded in a URL's user-info.
AWKWARD_PASSWORD = "p@ss:w/rd%?#x"


def connect_mysql_dsn(dsn):
    """What a MySQL driver does with a URL: parse it and undo the percent-encoding."""
    url = urllib.parse.urlsplit(dsn)
    return pymysql.connect(host=url.hostname, port=url.port, user=urllib.parse.unquote(url.username),
                           password=urllib.parse.unquote(url.password),
                           database=urllib.parse.unquote(url.path.lstrip("/")) or None, autocommit=True)


@pytest.mark.parametrize("image", [image for engine, image in FLAVOURS if engine == "mariadb"])
def test_production_definers_work_for_the_instances_user(rig, workdir, image):
    dump = write_file(workdir, "shop-definers.sql", DEFINER_DUMP)
    name = "definers-" + flavour_id("mariadb", image)
    try:
        result = rig.template(name, dump, image=image)
        assert result.get("changed"), result
        assert result["template"]["definers_created"] == ["app@10.0.0.%"]
        assert result["template"]["databases"] == ["shop"]
        db = rig.instance(name, template=name, password=AWKWARD_PASSWORD, public_host="127.0.0.1")["instance"]
        assert db["database"] == "shop"
        connection = connect_mysql_dsn(db["dsn"])          # the DSN exactly as returned
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT DATABASE(), COUNT(*) FROM orders")
                assert cursor.fetchone() == ("shop", 3)
                cursor.execute("SELECT COUNT(*) FROM big_orders")                  # view
                assert cursor.fetchone()[0] == 2
                cursor.execute("SELECT order_total(2)")                            # function
                assert float(cursor.fetchone()[0]) == 32.5
                cursor.execute("CALL close_order(3)")                              # procedure
                cursor.execute("SELECT total FROM orders WHERE id = 3")
                assert float(cursor.fetchone()[0]) == 0
                cursor.execute("INSERT INTO orders (total) VALUES (5)")            # trigger
                cursor.execute("SELECT COUNT(*) FROM audit")
                assert cursor.fetchone()[0] == 1
                # The dump was not rewritten, and its definer cannot log in.
                cursor.execute("SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_NAME = 'big_orders'")
                assert cursor.fetchone()[0] == "app@10.0.0.%"
                cursor.execute("SHOW CREATE USER 'app'@'10.0.0.%'")
                assert "ACCOUNT LOCK" in cursor.fetchone()[0]
        finally:
            connection.close()
    finally:
        rig.instance(name, state="absent")
        rig.template(name, dump, state="absent")


PG_OWN_DATABASE_DUMP = """--
-- PostgreSQL database dump
--
SET statement_timeout = 0;
SET client_encoding = 'UTF8';
CREATE DATABASE crm WITH TEMPLATE = template0 ENCODING = 'UTF8';
\\connect crm
SET client_encoding = 'UTF8';
CREATE TABLE public.contacts (id integer PRIMARY KEY, email text NOT NULL);
COPY public.contacts (id, email) FROM stdin;
1\tana@example.org
2\tbo@example.org
\\.
--
-- PostgreSQL database dump complete
--
"""


@pytest.mark.parametrize("image", [image for engine, image in FLAVOURS if engine == "postgresql"])
def test_a_dump_that_makes_its_own_database_gets_a_dsn_that_lands_in_it(rig, workdir, image):
    dump = write_file(workdir, "crm.sql", PG_OWN_DATABASE_DUMP)
    name = "owndb-" + flavour_id("postgresql", image)
    try:
        result = rig.template(name, dump, engine="postgresql", image=image)
        assert result.get("changed"), result
        assert result["template"]["databases"] == ["crm"]
        db = rig.instance(name, template=name, password=AWKWARD_PASSWORD, public_host="127.0.0.1")["instance"]
        assert db["dsn"].endswith("/crm") and "p%40ss%3Aw%2Frd%25%3F%23x" in db["dsn"]
        connection = psycopg2.connect(db["dsn"])           # the DSN exactly as returned
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_database(), COUNT(*) FROM contacts")
                assert cursor.fetchone() == ("crm", 2)
        finally:
            connection.close()
    finally:
        rig.instance(name, state="absent")
        rig.template(name, dump, state="absent")


def test_a_template_without_image_uses_what_the_host_was_provisioned_with(rig, pg_sql):
    record_path = os.path.join(rig.pool, "host.json")
    with open(record_path, encoding="utf-8") as handle:
        assert json.load(handle)["images"] == {"mariadb": rig.image, "postgresql": "myaas/postgresql:15",
                                               "mysql": "myaas/mysql:9.7"}
    made = []
    try:
        for name, args, expected in (
                ("noimage", dict(src=SAMPLE), rig.image),
                ("noimage-pg", dict(src=pg_sql, engine="postgresql"), "myaas/postgresql:15")):
            result = run_module("myaas_template", dict(args, name=name, pool=rig.pool))
            made.append(name)
            assert result.get("changed") and result["template"]["image"] == expected, result
        # A host the role did not record falls back to the official image.
        os.rename(record_path, record_path + ".away")
        try:
            result = run_module("myaas_template", dict(name="noimage-official", src=SAMPLE, pool=rig.pool))
            made.append("noimage-official")
            assert result.get("changed") and result["template"]["image"] == OFFICIAL_IMAGES["mariadb"], result
        finally:
            os.rename(record_path + ".away", record_path)
    finally:
        for name in made:
            run_module("myaas_template", dict(name=name, pool=rig.pool, state="absent"))


def test_clones_of_postgresql_stop_with_a_fast_shutdown(rig, templates):
    template = templates("postgresql", OFFICIAL_IMAGES["postgresql"])
    db = rig.instance("pg-stop", template=template["name"])["instance"]
    try:
        config = json.loads(sh("docker", "inspect", db["container"]).stdout)[0]["Config"]
        assert config["StopSignal"] == "SIGINT"
        assert rig.instance("pg-stop", state="stopped")["changed"]
        log = subprocess.run(["docker", "logs", db["container"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, check=True).stdout
        assert "received fast shutdown request" in log and "database system is shut down" in log
        assert rig.instance("pg-stop", template=template["name"])["operation"] == "start"
        assert not get_engine("postgresql").crash_recovery(sh("docker", "logs", db["container"]).stdout)
    finally:
        rig.instance("pg-stop", state="absent")
