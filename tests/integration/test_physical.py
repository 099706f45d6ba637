"""Templates from physical backups, taken by each engine's own tool from a live server (backup_sources.py).

What the source held, the template's instances hold; a backup cut short is
refused and the template serves on; masking leaves no original value in the
template's files, although a physical copy brings production's files as
they are; a backup of another version or engine is refused by name.
"""

import json
import os
import shutil

import pytest

import backup_sources
from personal_dump import masking_rules, originals
from rig import files_holding

CUSTOMERS = 1000
# engine -> (template image = the source's version, the rig's prefix of its tables)
IMAGES = {"mariadb": "mariadb:10.11", "postgresql": "postgres:15", "mysql": "mysql:9.7"}
ENGINES = sorted(IMAGES)


def ok(result):
    assert not result.get("failed"), result.get("msg", result)
    return result


def table(engine, name):
    return ("public.%s" if engine == "postgresql" else "shop.%s") % name


@pytest.fixture(scope="module")
def backups(rig):
    """engine -> (backup path, source row counts, source version): one backup of each engine's live server."""
    made = {}
    for engine in ENGINES:
        if engine == "postgresql":
            made[engine] = backup_sources.postgresql(IMAGES[engine], rig.base, CUSTOMERS)
        else:
            made[engine] = backup_sources.mysql_family(engine, IMAGES[engine], rig.base, CUSTOMERS)
    return made


def template(rig, engine, name, src, **options):
    return rig.template(name, src, engine=engine, image=IMAGES[engine], **options)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_backup_becomes_a_template_whose_instances_hold_the_sources_data(rig, backups, engine):
    path, counts, _version = backups[engine]
    name = "phys-" + engine
    try:
        result = ok(template(rig, engine, name, path))
        made = result["template"]
        assert result["changed"] and made["source"]["backup"] in ("mariadb-backup", "pg_basebackup", "mysql-clone")
        assert made["row_counts"] == counts
        # Unmasked, production's values are in the files: the masking test's search would find them.
        assert files_holding(made["path"], originals(CUSTOMERS))
        # Production's history is there: updated rows, deleted ones gone.
        assert counts[table(engine, "orders")] < 2 * CUSTOMERS
        instance = ok(rig.instance(name + "-1", template=name))["instance"]
        assert instance["database"] == "shop"
        rows = rig.query(instance, "SELECT email, city FROM customer WHERE id IN (5, 6) ORDER BY id")
        assert [tuple(row) for row in rows] == [("orig.person00005@corp-mail.net", "Hamburg"),
                                                ("orig.person00006@corp-mail.net", "Berlin")]
        # Production's accounts log in nowhere: their passwords are gone from the template.
        if engine == "postgresql":
            assert made["passwords_removed"] == ["postgres"]
        else:
            assert "root@%" in made["passwords_removed"]
        # An unchanged backup is not imported again.
        assert ok(template(rig, engine, name, path))["changed"] is False
    finally:
        rig.instance(name + "-1", state="absent")
        rig.template(name, None, state="absent")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_backup_cut_short_is_refused_and_the_template_serves_on(rig, backups, engine, tmp_path):
    path, _counts, _version = backups[engine]
    name = "phys-cut-" + engine
    if os.path.isdir(path):
        cut = tmp_path / "cut"
        cut.mkdir()
        for entry in os.listdir(path):
            data = open(os.path.join(path, entry), "rb").read()
            (cut / entry).write_bytes(data[:len(data) // 2] if entry.startswith("base.tar") else data)
    else:
        data = open(path, "rb").read()
        cut = tmp_path / os.path.basename(path)
        cut.write_bytes(data[:len(data) // 2])
    try:
        good = ok(template(rig, engine, name, path))["template"]
        before = rig.template_json(name)
        subvolumes = rig.subvolumes()
        result = template(rig, engine, name, str(cut))
        assert result.get("failed") and "cut short or damaged" in result["msg"], result.get("msg")
        assert rig.template_json(name) == before and rig.subvolumes() == subvolumes
        assert not rig.containers(role="import", template=name)
        instance = ok(rig.instance(name + "-1", template=name))["instance"]
        assert instance["generation"] == good["generation"]
        assert rig.query(instance, "SELECT COUNT(*) FROM customer")[0][0] == CUSTOMERS
    finally:
        rig.instance(name + "-1", state="absent")
        rig.template(name, None, state="absent")


@pytest.mark.parametrize("engine", ENGINES)
def test_masking_a_physical_backup_leaves_no_original_value_in_the_templates_files(rig, backups, engine):
    path, counts, _version = backups[engine]
    name = "phys-mask-" + engine
    needles = originals(CUSTOMERS)
    try:
        rules = masking_rules("public" if engine == "postgresql" else "shop")
        made = ok(template(rig, engine, name, path, masking=rules))["template"]
        assert made["masking"]["columns"][table(engine, "customer.email")] == "email"
        assert made["row_counts"][table(engine, "customer")] == counts[table(engine, "customer")]
        assert made["row_counts"][table(engine, "audit_log")] == 0
        assert files_holding(made["path"], needles) == []
    finally:
        rig.template(name, None, state="absent")


def test_a_backup_of_another_major_version_or_engine_is_refused_by_name(rig, backups):
    path, _counts, version = backups["mariadb"]
    other = rig.template("phys-other", path, engine="mariadb", image="mariadb:11.8")
    assert other.get("failed") and version.split("-")[0] in other["msg"] and "11.8" in other["msg"], other["msg"]
    assert "same major version" in other["msg"]
    wrong = rig.template("phys-other", path, engine="postgresql", image="postgres:15")
    assert wrong.get("failed") and "import it with engine: mariadb" in wrong["msg"], wrong["msg"]
    assert not os.path.exists(os.path.join(rig.pool, "templates", "phys-other", "template.json"))
    rig.template("phys-other", None, state="absent")


def test_template_metadata_names_the_backup(rig, backups):
    path, _counts, version = backups["postgresql"]
    try:
        ok(template(rig, "postgresql", "phys-meta", path))
        made = json.loads(rig.template_json("phys-meta"))
        assert made["source"]["backup"] == "pg_basebackup" and made["source"]["server_version"] == version.split(".")[0]
        assert made["timings"]["restore"] > 0
    finally:
        rig.template("phys-meta", None, state="absent")


def test_the_nightly_import_picks_up_backup_files_and_folders(rig, backups, tmp_path):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    shutil.copy(backups["mariadb"][0], str(dumps / "nightly-m.xbstream.zst"))
    shutil.copytree(backups["postgresql"][0], str(dumps / "nightly-p"))
    # A folder that holds no backup is none of the play's business.
    (dumps / "archive").mkdir()
    (dumps / "archive" / "notes.txt").write_text("old stuff")
    settings = {"myaas_engines": {"nightly-p": "postgresql"},
                "myaas_images": {"nightly-m": "mariadb:10.11", "nightly-p": "postgres:15"}}
    try:
        run = rig.playbook("playbooks/import_templates.yml", "-e", "dumps_dir=%s" % dumps, "-e", json.dumps(settings))
        assert run.returncode == 0, run.stdout[-3000:]
        templates = dict((t["name"], t) for t in rig.info()["templates"])
        assert templates["nightly-m"]["source"]["backup"] == "mariadb-backup"
        assert templates["nightly-p"]["source"]["backup"] == "pg_basebackup"
        assert "archive" not in templates
        assert templates["nightly-p"]["row_counts"] == backups["postgresql"][1]
    finally:
        for name in ("nightly-m", "nightly-p"):
            rig.template(name, None, state="absent")
