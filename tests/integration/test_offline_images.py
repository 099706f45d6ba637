"""MyAAS's offline images, as the host role built them for the rig: what the official ones carry.

Each image holds the server version its tag names, runs its server as the
account the host has (same uid/gid, so datadirs move without a chown), has
the time zone database, and gets its packages from the host's own mirror.
PostgreSQL images have the en_US.utf8 locale and contrib; MariaDB and MySQL
images start by hand (`docker run`) and load their time zone tables.
"""

import os
import pwd
import re
import time

import psycopg2
import pytest

from rig import OFFLINE_IMAGES, sh

ACCOUNTS = {"mariadb": "mysql", "mysql": "mysql", "postgresql": "postgres"}
VERSION_COMMANDS = {
    "mariadb": "mariadbd --version",
    "mysql": "mysqld --version",
    "postgresql": 'for server in /usr/lib/postgresql/*/bin/postgres; do "$server" --version; done',
}
# (client, time zone loader) of the MySQL family's images.
TZ_TOOLS = {"mariadb": ("mariadb", "mariadb-tzinfo-to-sql"), "mysql": ("mysql", "mysql_tzinfo_to_sql")}
IDS = [image for _engine, image in OFFLINE_IMAGES]
PG_IMAGES = [image for engine, image in OFFLINE_IMAGES if engine == "postgresql"]
MYSQL_FAMILY = [(engine, image) for engine, image in OFFLINE_IMAGES if engine in TZ_TOOLS]

# What pg_dump -C writes for a database made on the official image (en_US.utf8
# is its default locale), with two contrib extensions in use.
EN_US_DUMP = """SET client_encoding = 'UTF8';
CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'en_US.utf8';
\\connect shop
SET client_encoding = 'UTF8';
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
CREATE TABLE public.customers (id integer PRIMARY KEY, name text NOT NULL);
COPY public.customers (id, name) FROM stdin;
1\tzoe
2\tZora
3\tadam
\\.
CREATE INDEX customers_name_trgm ON public.customers USING gin (name public.gin_trgm_ops);
"""


def in_image(image, script):
    return sh("docker", "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c", script)


@pytest.mark.parametrize("engine,image", OFFLINE_IMAGES, ids=IDS)
def test_the_server_is_the_version_the_tag_names(rig, engine, image):
    version = image.rsplit(":", 1)[1]
    out = in_image(image, VERSION_COMMANDS[engine]).stdout
    versions = re.findall(r"(?:Ver|\(PostgreSQL\)) (\d+\.\d+)", out)
    # One server per image, of the tag's major version (17.6 is PostgreSQL 17).
    assert len(versions) == 1 and (versions[0] + ".").startswith(version + "."), out


@pytest.mark.parametrize("engine,image", OFFLINE_IMAGES, ids=IDS)
def test_the_server_account_has_the_hosts_ids(rig, engine, image):
    host = pwd.getpwnam(ACCOUNTS[engine])
    out = in_image(image, "id -u %s; id -g %s" % (ACCOUNTS[engine], ACCOUNTS[engine])).stdout
    assert [int(n) for n in out.split()] == [host.pw_uid, host.pw_gid]


@pytest.mark.parametrize("engine,image", OFFLINE_IMAGES, ids=IDS)
def test_time_zones_and_the_hosts_mirror(rig, engine, image):
    out = in_image(image, "test -s /usr/share/zoneinfo/Europe/Berlin && echo tz; "
                          "cat /etc/apt/sources.list.d/*.sources").stdout
    assert out.startswith("tz\n"), out
    with open("/etc/apt/sources.list.d/debian.sources", encoding="utf-8") as handle:
        host_uris = set(re.findall(r"(?m)^URIs:\s*(.+)$", handle.read()))
    image_uris = set(re.findall(r"(?m)^URIs:\s*(.+)$", out))
    assert image_uris and image_uris <= host_uris, out
    suites = " ".join(re.findall(r"(?m)^Suites:\s*(.+)$", out)).split()
    if engine == "mysql":
        assert suites == ["sid"], out                      # unstable has no -updates or -security
    else:
        assert any(suite.endswith("-security") for suite in suites), out


@pytest.mark.parametrize("image", PG_IMAGES)
def test_postgresql_images_have_en_us_and_contrib(rig, image):
    out = in_image(image, "locale -a; ls /usr/share/postgresql/*/extension/").stdout.split()
    assert "en_US.utf8" in out
    assert {"pg_trgm.control", "pgcrypto.control", "hstore.control"} <= set(out)


@pytest.mark.parametrize("image", PG_IMAGES)
def test_a_dump_of_an_en_us_database_with_contrib_loads_and_clones(rig, workdir, image):
    dump = os.path.join(workdir, "shop.sql")
    with open(dump, "w", encoding="utf-8") as handle:
        handle.write(EN_US_DUMP)
    name = "enus-" + image.rsplit(":", 1)[1]
    try:
        result = rig.template(name, dump, engine="postgresql", image=image)
        assert result.get("changed") and not result.get("failed"), result
        db = rig.instance(name, template=name)["instance"]
        connection = psycopg2.connect(db["dsn"])
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT datcollate, datctype FROM pg_database WHERE datname = current_database()")
                assert cursor.fetchone() == ("en_US.utf8", "en_US.utf8")
                # en_US sorts case-insensitively first, unlike C.
                cursor.execute("SELECT string_agg(name, ',' ORDER BY name) FROM customers")
                assert cursor.fetchone()[0] == "adam,zoe,Zora"
                cursor.execute("SELECT name FROM customers WHERE name % 'zora' ORDER BY similarity(name, 'zora') DESC")
                assert cursor.fetchone()[0] == "Zora"
                cursor.execute("SELECT encode(digest('x', 'sha256'), 'hex')")
                assert cursor.fetchone()[0].startswith("2d711642")
        finally:
            connection.close()
    finally:
        rig.instance(name, state="absent")
        rig.template(name, dump, state="absent")


@pytest.mark.parametrize("engine,image", MYSQL_FAMILY, ids=[image for _engine, image in MYSQL_FAMILY])
def test_mysql_family_images_start_by_hand_and_load_time_zones(rig, engine, image):
    client, loader = TZ_TOOLS[engine]
    container = "myaas-it-tz-" + re.sub(r"[^a-z0-9]+", "-", image)
    sh("docker", "run", "--detach", "--name", container, "--network", "none", "--label",
       "org.myaas.pool=" + rig.pool, image)
    try:
        # Local root logs in on the socket with no password; nothing else does.
        deadline = time.monotonic() + 90
        while sh("docker", "exec", container, client, "-uroot", "-e", "SELECT 1", check=False).returncode != 0:
            assert time.monotonic() < deadline, sh("docker", "logs", container, check=False).stdout[-3000:]
            time.sleep(0.5)
        sh("docker", "exec", container, "sh", "-c", "%s /usr/share/zoneinfo 2>/dev/null | %s -uroot mysql"
           % (loader, client))
        out = sh("docker", "exec", container, client, "-uroot", "--batch", "--skip-column-names", "-e",
                 "SELECT CONVERT_TZ('2026-07-01 12:00:00', 'UTC', 'Europe/Berlin')").stdout
        assert out.strip() == "2026-07-01 14:00:00", out
        refused = sh("docker", "exec", container, client, "-uroot", "-h127.0.0.1", "-e", "SELECT 1", check=False)
        assert refused.returncode != 0, refused.stdout
    finally:
        sh("docker", "rm", "--force", "--volumes", container, check=False)
