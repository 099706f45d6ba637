"""MySQL's masking SQL: MariaDB's transforms, its own catalog filter and scrub."""

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.masking.mysql import MySQLMasking
from ansible_collections.myaas.myaas.plugins.module_utils.masking.sql import Column, MariaDBMasking
from ansible_collections.myaas.myaas.plugins.module_utils.templates.checks import dialect


def test_each_engine_of_the_mysql_family_gets_its_own_dialect():
    assert isinstance(dialect(get_engine("mysql")), MySQLMasking)
    assert not isinstance(dialect(get_engine("mariadb")), MySQLMasking)
    assert isinstance(dialect(get_engine("mariadb")), MariaDBMasking)


def test_transforms_are_mariadbs_so_replacements_agree_across_engines():
    column = Column("shop", "shop", "customers", "email", "varchar", "text", 190)
    assert MySQLMasking().expression(column, "email") == MariaDBMasking().expression(column, "email")


def test_generated_columns_are_not_masked_they_follow_their_sources():
    for masking in (MySQLMasking(), MariaDBMasking()):
        assert "COALESCE(c.GENERATION_EXPRESSION, '') = ''" in masking.columns_sql(["shop"])


def test_the_scrub_truncates_the_undo_that_saw_the_updates_and_renews_the_redo_log():
    sql = MySQLMasking().scrub_sql()
    for name in ("innodb_undo_001", "innodb_undo_002"):
        inactive, active = sql.index("%s SET INACTIVE" % name), sql.index("%s SET ACTIVE" % name)
        assert inactive < sql.index("wait_undo_empty('innodb_undo_001,innodb_undo_002')") < active
    assert sql.index("DROP UNDO TABLESPACE myaas_undo_1") > sql.index("myaas_undo_1 SET INACTIVE")
    assert sql.rstrip().endswith("DROP DATABASE IF EXISTS `myaas_masking`;")
    assert MySQLMasking().after_shutdown_script() is None   # the engine renews the redo log after every import
    assert MySQLMasking().import_args() == []


def test_every_mysql_template_is_frozen_with_the_clones_small_redo_log():
    engine = get_engine("mysql")
    script = engine.after_import_script()
    assert 'rm -f "$datadir"/#innodb_redo/*' in script and "--innodb-fast-shutdown=0" in script
    assert "--innodb-redo-log-capacity=16777216" in script and "--innodb-redo-log-capacity=16777216" in \
        engine.clone_args()
    assert "--innodb-redo-log-capacity=268435456" in engine.bulk_load_args({}, 2 ** 30)
    assert get_engine("mariadb").after_import_script() is None


def test_json_columns_are_sampled_as_text_but_take_no_text_transform():
    masking = MySQLMasking()
    column = masking.column("app", ["app", "member", "extra", "json", "0", "0", "InnoDB"])
    assert column.kind == "json" and masking.sample_expr(column) == "LEFT(CAST(`extra` AS CHAR), 65535)"
    text = masking.column("app", ["app", "member", "email", "varchar", "190", "0", "InnoDB"])
    assert masking.sample_expr(text) == "`email`"


def test_statistics_that_hold_values_are_looked_for_where_each_server_keeps_them():
    sql = MySQLMasking().value_statistics_sql(["app.member", "shop.customers"])
    assert "information_schema.COLUMN_STATISTICS" in sql and "'app.member', 'shop.customers'" in sql
    assert "--column-statistics=0" in MySQLMasking().value_statistics_advice
    assert "mysql.column_stats" in MariaDBMasking().value_statistics_sql(["app.member"])
    assert "--ignore-table=mysql.column_stats" in MariaDBMasking().value_statistics_advice
