"""Masking that fails closed, and checks before a template goes live, on both engines.

The file search is shown to work first: the same dump imported without
masking leaves the originals in the files, where the search finds them.
"""

import datetime
import json
import ipaddress
import os
import re

import pytest
import yaml

from personal_dump import DOMAIN, customer, luhn, masking_rules, originals, write
from rig import PG_IMAGE, files_holding, sh

CUSTOMERS = 2000
ENGINES = ["mariadb", "postgresql"]
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def prefix(engine):
    return "shop" if engine == "mariadb" else "public"


def rules(engine, without=()):
    return masking_rules(prefix(engine), without)


def template(rig, engine, name, src, **options):
    extra = {} if engine == "mariadb" else {"engine": "postgresql", "image": PG_IMAGE}
    return rig.template(name, src, database="shop", **dict(extra, **options))


@pytest.fixture(scope="module")
def dumps(rig):
    made = {}
    for engine in ENGINES:
        dialect = "mysql" if engine == "mariadb" else "postgresql"
        made[engine] = {
            "full": write(os.path.join(rig.base, "personal-%s.sql" % engine), dialect, CUSTOMERS),
            "quarter": write(os.path.join(rig.base, "personal-%s-quarter.sql" % engine), dialect, CUSTOMERS // 4),
        }
    made["needles"] = originals(CUSTOMERS)
    return made


@pytest.fixture(scope="module")
def masked(rig, dumps):
    """Each engine's dump imported with the rules, once."""
    made = {}
    for engine in ENGINES:
        result = template(rig, engine, "masked-" + engine, dumps[engine]["full"], masking=rules(engine),
                          checks=["SELECT COUNT(*) = %d FROM customer" % CUSTOMERS])
        assert result.get("changed") and not result.get("failed"), result.get("msg", result)
        made[engine] = result["template"]
    return made


@pytest.mark.parametrize("engine", ENGINES)
def test_no_original_value_is_left_in_any_file_of_the_template(rig, dumps, masked, engine):
    control = template(rig, engine, "unmasked-" + engine, dumps[engine]["full"])
    try:
        assert control["changed"], control
        # The search finds originals where they are...
        assert files_holding(control["template"]["path"], dumps["needles"])
        # ...and the import without rules warned about the personal columns.
        personal = [finding["column"] for finding in control["template"]["personal_columns"]]
        assert "%s.customer.email" % prefix(engine) in personal and "%s.customer.contact" % prefix(engine) in personal
    finally:
        template(rig, engine, "unmasked-" + engine, dumps[engine]["full"], state="absent")
    path = masked[engine]["path"]
    assert sh("btrfs", "property", "get", "-ts", path, "ro").stdout.strip() == "ro=true"
    assert files_holding(path, dumps["needles"]) == []
    summary = masked[engine]["masking"]
    assert summary["columns"]["%s.customer.email" % prefix(engine)] == "email"
    assert summary["truncated"] == ["%s.audit_log" % prefix(engine)] and len(summary["rules_sha256"]) == 64
    assert masked[engine]["row_counts"]["%s.customer" % prefix(engine)] == CUSTOMERS
    assert masked[engine]["row_counts"]["%s.audit_log" % prefix(engine)] == 0
    assert masked[engine]["checks"][0]["passed"]


@pytest.mark.parametrize("engine", ENGINES)
def test_masked_values_are_of_their_kind_and_joins_and_unique_keys_hold(rig, masked, engine):
    name = "masked-db-" + engine
    db = rig.instance(name, template="masked-" + engine)
    assert not db.get("failed"), db
    db = db["instance"]
    try:
        rows = rig.query(db, "SELECT id, email, full_name, phone, card_number, notes, birth_date, last_ip, contact "
                             "FROM customer ORDER BY id")
        assert len(rows) == CUSTOMERS
        for number, email, full_name, phone, card, notes, birth, last_ip, contact in rows:
            original = customer(number)
            assert EMAIL_RE.match(email) and DOMAIN not in email, email
            assert full_name != original["full_name"] and len(full_name.split()) == 2
            assert re.match(r"^\+1 555 \d{7}$", phone), phone
            assert re.match(r"^\d{16}$", card) and luhn(card[:-1]) == card, card
            assert notes is None
            shift = (birth - datetime.date.fromisoformat(original["birth_date"])).days
            assert -182 <= shift <= 182
            assert ipaddress.ip_address(last_ip).is_private and last_ip != original["last_ip"]
            assert contact != original["contact"] and "+44" not in contact
        assert len(set(row[1] for row in rows)) == CUSTOMERS   # unique stays unique
        joined = rig.query(db, "SELECT COUNT(*) FROM orders o JOIN customer c ON c.email = o.customer_email")
        assert joined[0][0] == 2 * CUSTOMERS                   # every order still finds its customer
        assert rig.query(db, "SELECT COUNT(*) FROM audit_log")[0][0] == 0
        assert rig.query(db, "SELECT name FROM product WHERE id = 7")[0][0] == "Widget 7"   # kept
    finally:
        rig.instance(name, state="absent")


def test_the_same_original_gets_the_same_replacement_in_a_second_import_and_across_engines(rig, dumps, masked):
    emails = {}
    for engine in ENGINES:
        again = template(rig, engine, "masked-" + engine, dumps[engine]["full"], masking=rules(engine),
                         checks=["SELECT COUNT(*) = %d FROM customer" % CUSTOMERS], force=True, keep_generations=2)
        assert again["changed"] and again["template"]["generation"] == 2, again
        name = "masked-again-" + engine
        db = rig.instance(name, template="masked-" + engine)["instance"]
        try:
            emails[engine] = dict((row[0], tuple(row[1:])) for row in rig.query(
                db, "SELECT id, email, full_name, phone, card_number, last_ip, birth_date FROM customer ORDER BY id"))
        finally:
            rig.instance(name, state="absent")
        first = rig.instance(name, template="masked-" + engine, generation=1)
        try:
            assert dict((row[0], tuple(row[1:])) for row in rig.query(
                first["instance"], "SELECT id, email, full_name, phone, card_number, last_ip, birth_date FROM customer"
            )) == emails[engine]
        finally:
            rig.instance(name, state="absent")
    # One pool, one key: each original became the same replacement in both engines.
    assert emails["mariadb"] == emails["postgresql"]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_uncovered_personal_column_fails_the_import_and_the_old_template_serves(rig, dumps, masked, engine):
    current = rig.template_json("masked-" + engine)
    failed = template(rig, engine, "masked-" + engine, dumps[engine]["full"],
                      masking=rules(engine, without=("customer.full_name", "customer.contact")), force=True)
    assert failed.get("failed"), failed
    p = prefix(engine)
    # One caught by its name, one only by its values; both named, with rules to paste.
    assert "%s.customer.full_name (its name)" % p in failed["msg"], failed["msg"]
    assert "%s.customer.contact (values like phone)" % p in failed["msg"], failed["msg"]
    assert "  %s.customer.contact: phone" % p in failed["rules_snippet"]
    assert sorted(failed["uncovered"]) == ["%s.customer.contact" % p, "%s.customer.full_name" % p]
    assert rig.template_json("masked-" + engine) == current
    assert not [line for line in rig.subvolumes() if ".importing-" in line]
    db = rig.instance("still-" + engine, template="masked-" + engine)
    try:
        assert rig.query(db["instance"], "SELECT COUNT(*) FROM customer")[0][0] == CUSTOMERS
    finally:
        rig.instance("still-" + engine, state="absent")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_shrunken_table_or_a_failing_check_leaves_the_current_generation_serving(rig, dumps, masked, engine):
    current = rig.template_json("masked-" + engine)
    shrunk = template(rig, engine, "masked-" + engine, dumps[engine]["quarter"], masking=rules(engine),
                      checks=["SELECT COUNT(*) = %d FROM customer" % CUSTOMERS])
    assert shrunk.get("failed"), shrunk
    assert "table %s.customer went from %d to %d rows" % (prefix(engine), CUSTOMERS, CUSTOMERS // 4) in shrunk["msg"]
    assert rig.template_json("masked-" + engine) == current
    check = "SELECT COUNT(*) = 0 FROM customer"
    failing = template(rig, engine, "masked-" + engine, dumps[engine]["full"], masking=rules(engine), checks=[check],
                       force=True)
    assert failing.get("failed") and failing["failed_check"] == check, failing
    assert "The check %r returned, not one true value" % check in failing["msg"], failing["msg"]
    broken = template(rig, engine, "masked-" + engine, dumps[engine]["full"], masking=rules(engine),
                      checks=["SELECT no_such_column FROM customer"], force=True)
    assert broken.get("failed") and "failed, not one true value" in broken["msg"], broken
    assert rig.template_json("masked-" + engine) == current
    listed = [entry for entry in rig.info()["templates"] if entry["name"] == "masked-" + engine][0]
    assert listed["masking"]["rules_sha256"] and listed["row_counts"]["%s.customer" % prefix(engine)] == CUSTOMERS
    assert [check["passed"] for check in listed["checks"]] == [True]


def test_the_nightly_playbook_reads_rules_beside_the_dump_and_checks_from_a_variable(rig, dumps, workdir):
    folder = os.path.join(workdir, "dumps")
    os.makedirs(folder)
    sh("cp", dumps["mariadb"]["full"], os.path.join(folder, "pbmask.sql"))
    masking = rules("mariadb")
    renamed = dict((key, dict((name.replace("shop.", "pbmask.", 1), value) for name, value in masking[key].items()))
                   for key in ("columns", "keep"))
    renamed["truncate"] = ["pbmask.audit_log"]
    with open(os.path.join(folder, "pbmask.masking.yml"), "w", encoding="utf-8") as out:
        out.write(yaml.safe_dump(renamed))
    checks = json.dumps({"myaas_checks": {"pbmask": ["SELECT COUNT(*) = 0 FROM audit_log"]}})
    try:
        run = rig.playbook("playbooks/import_templates.yml", "-e", "dumps_dir=" + folder, "-e", checks)
        assert run.returncode == 0, run.stdout[run.stdout.find("failed: [localhost]"):][:3000]
        made = json.loads(rig.template_json("pbmask"))
        assert made["masking"]["columns"]["pbmask.customer.email"] == "email"
        assert made["checks"][0]["sql"] == "SELECT COUNT(*) = 0 FROM audit_log"
        assert files_holding(made["path"], dumps["needles"]) == []
    finally:
        rig.template("pbmask", dumps["mariadb"]["full"], state="absent")
