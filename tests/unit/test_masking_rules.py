"""Masking rules, classification verdicts, the row-count gate and the SQL the masker sends.

That the SQL masks for real, and that no original is left in the files, is
proved on both engines by tests/integration/test_masking.py.
"""

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.masking import rules as masking_rules
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.masking.postgresql import PostgreSQLMasking
from ansible_collections.myaas.myaas.plugins.module_utils.masking.sql import Column, MariaDBMasking
from ansible_collections.myaas.myaas.plugins.module_utils.templates.checks import shrunk_tables, value_kinds

RULES = {"columns": {"shop.customer.email": "email", "shop.customer.notes": "fixed:n/a"},
         "truncate": ["shop.audit_log"], "keep": {"shop.product.name": "product names are public"}}


@pytest.mark.parametrize("column,suggest", [
    ("email", "email"), ("contact_email", "email"), ("full_name", "name"), ("firstName", "name"),
    ("mobile_phone", "phone"), ("birth_date", "date"), ("dateOfBirth", "date"), ("last_ip", "ip"),
    ("card_number", "credit_card"), ("iban", "hash"), ("street_address", "text")])
def test_personal_by_its_name(column, suggest):
    assert masking_rules.personal_by_name(column) == suggest


@pytest.mark.parametrize("column", ["id", "customer_id", "zipped", "description", "shipping", "city", "amount",
                                    "skip", "renamed_at"])
def test_not_personal_by_its_name(column):
    assert masking_rules.personal_by_name(column) is None


def test_rules_are_normalised_and_covered_by_column_table_or_keep():
    rules = masking_rules.check_rules(RULES)
    assert masking_rules.covered(rules, "shop.customer.email")
    assert masking_rules.covered(rules, "shop.audit_log.payload")       # its table is truncated
    assert masking_rules.covered(rules, "shop.product.name")
    assert not masking_rules.covered(rules, "shop.customer.full_name")
    assert masking_rules.rules_hash(rules) == masking_rules.rules_hash(masking_rules.check_rules(dict(RULES)))


@pytest.mark.parametrize("bad,message", [
    ({"columns": {"shop.customer": "email"}}, "is not database.table.column"),
    ({"columns": {"shop.customer.email": "scramble"}}, "is not a transform"),
    ({"keep": {"shop.product.name": " "}}, "needs a reason"),
    ({"truncate": ["audit_log"]}, "is not database.table"),
    ({"columns": {"a.b.c": "email"}, "keep": {"a.b.c": "why"}}, "both masked and kept"),
    ({"mask": {}}, "unknown keys mask"),
])
def test_bad_rules_say_what_is_wrong(bad, message):
    with pytest.raises(MyaasError, match=message):
        masking_rules.check_rules(bad)


def test_rules_naming_what_the_dump_lacks_fail():
    with pytest.raises(MyaasError, match="shop.customer.emial"):
        masking_rules.check_names(masking_rules.check_rules({"columns": {"shop.customer.emial": "email"}}),
                                  {"shop.customer.email": None})


def test_value_verdicts_need_luhn_for_cards():
    assert value_kinds([3, 0, 0, 0, 0, 0]) == ["email"]
    assert value_kinds([0, 0, 10, 9, 0, 0]) == ["credit_card"]
    assert value_kinds([0, 0, 100, 11, 0, 0]) == []        # barcodes: one in ten passes Luhn by chance
    assert value_kinds([0, 1, 0, 0, 0, 2]) == ["phone", "ip"]


def test_a_table_that_lost_more_than_max_shrink_is_named_with_both_counts():
    old = {"shop.customer": 2000, "shop.orders": 100, "shop.audit_log": 50, "shop.gone": 10, "shop.empty": 0}
    new = {"shop.customer": 500, "shop.orders": 60, "shop.audit_log": 0, "shop.empty": 0}
    assert shrunk_tables(old, new, 0.5, {"shop.audit_log"}) == [("shop.customer", 2000, 500), ("shop.gone", 10, 0)]
    assert shrunk_tables(old, new, 1.0, set()) == []
    assert shrunk_tables(None, new, 0.5, set()) == []


def test_one_update_per_table_and_every_transform_keeps_nulls_and_fits_the_column():
    email = Column(None, "shop", "customer", "email", "varchar", "text", 190)
    notes = Column(None, "shop", "customer", "notes", "varchar", "text", 20)
    born = Column(None, "shop", "customer", "born", "date", "date", 0)
    sql = MariaDBMasking().update_sql([(email, "email"), (notes, "text"), (born, "date")])
    assert sql.startswith("UPDATE `shop`.`customer` SET `email` = IF((@h := SHA2(CONCAT(@myaas_key, `email`), 256)) "
                          "IS NULL, NULL, CONCAT('user.', LEFT(@h, 16), ")
    assert "`notes` = LEFT(IF((@h := SHA2(" in sql and sql.count("), 20)") == 1
    assert "DATE_ADD(`born`, INTERVAL" in sql and sql.count("UPDATE") == 1
    assert MariaDBMasking().expression(notes, "fixed:it's") == "IF(`notes` IS NULL, NULL, 'it\\'s')"
    pg_email = Column("shop", "public", "customer", "email", "character varying(190)", "text", 190)
    assert PostgreSQLMasking().expression(pg_email, "email") == \
        '"myaas_masking".email("email"::text)::character varying(190)'


class EchoingDocker:
    """A server that fails the masking script and echoes it back, the worst a client could do."""

    def __init__(self):
        self.argv = []

    def exec(self, _container, argv, data=None, user=None, check=True):
        del user, check
        self.argv.append(list(argv))
        if data and "UPDATE" in data:
            raise MyaasError("Command failed: ERROR 1064 near %r" % data)
        if "information_schema.COLUMNS" in " ".join(argv):
            return 0, "shop\tcustomer\temail\tvarchar\t190\t0\n", ""
        return 0, "", ""


def test_the_key_is_in_no_argv_no_error_and_no_traceback_when_masking_fails():
    import traceback
    from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
    from ansible_collections.myaas.myaas.plugins.module_utils.templates.checks import TemplateChecks
    key = "ab" * 32
    docker = EchoingDocker()
    checks = TemplateChecks(docker, get_engine("mariadb"), "c1", ["shop"], {})
    rules = masking_rules.check_rules({"columns": {"shop.customer.email": "email"}})
    with pytest.raises(MyaasError) as failed:
        checks.mask(rules, checks.columns(), key)
    text = "".join(traceback.format_exception(failed.type, failed.value, failed.tb))
    assert "ERROR 1064" in failed.value.msg and "********" in failed.value.msg
    assert key not in failed.value.msg and key not in text and key not in str(failed.value.args)
    assert not any(key in " ".join(argv) for argv in docker.argv)
