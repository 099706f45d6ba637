"""MariaDB's answers to real restore failures: rows above 16 MiB, events, collations, storage engines."""

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.masking.sql import Column, MariaDBMasking

MARIADB = get_engine("mariadb")


def test_clones_and_the_local_client_take_rows_as_large_as_the_import_did():
    assert "--max-allowed-packet=1G" in MARIADB.bulk_load_args({}, 2 ** 30)
    assert "--max-allowed-packet=1G" in MARIADB.clone_args()
    assert "--max-allowed-packet=1G" in MARIADB.local_client("shop")


def test_events_are_off_in_imports_and_clones_and_can_be_turned_on():
    for args in (MARIADB.bulk_load_args({}, 2 ** 30), MARIADB.clone_args()):
        assert "--event-scheduler=OFF" in args
        # DISABLED would refuse SET GLOBAL event_scheduler = ON.
        assert "--event-scheduler=DISABLED" not in args


def test_a_mysql_8_collation_gets_advice_that_names_it_and_what_to_do():
    error = "Import of d.sql failed: ERROR 1273 (HY000) at line 5: Unknown collation: 'utf8mb4_0900_ai_ci'"
    advice = MARIADB.load_error_advice(error)
    assert "utf8mb4_0900_ai_ci" in advice and "engine: mysql" in advice and "image: mariadb:11.8" in advice
    assert "engine: mariadb" in get_engine("mysql").load_error_advice(
        "ERROR 1273 (HY000) at line 9: Unknown collation: 'utf8mb4_uca1400_ai_ci'")
    assert MARIADB.load_error_advice("ERROR 1062 (23000) at line 7: Duplicate entry '1'") == ""
    assert get_engine("postgresql").load_error_advice("ERROR: syntax error") == ""


def column(storage_engine, name="email"):
    return MariaDBMasking().column(None, ["legacy", "member_log", name, "varchar", "120", "0", storage_engine])


@pytest.mark.parametrize("storage_engine", ["InnoDB", "Aria", "MyISAM", "MEMORY"])
def test_storage_engines_whose_files_are_scrubbed_are_masked(storage_engine):
    sql = MariaDBMasking().update_sql([(column(storage_engine), "email")])
    assert sql.startswith("UPDATE `legacy`.`member_log` SET `email` = ")


@pytest.mark.parametrize("storage_engine", ["ARCHIVE", "CSV", "CONNECT", "ROCKSDB", "MRG_MyISAM", "SPIDER"])
def test_other_storage_engines_are_refused_with_the_table_and_what_to_do(storage_engine):
    with pytest.raises(MyaasError) as refused:
        MariaDBMasking().update_sql([(column(storage_engine), "email")])
    message = refused.value.msg
    assert "legacy.member_log" in message and "storage engine %s" % storage_engine in message
    assert "ALTER TABLE `member_log` ENGINE=InnoDB" in message and "keep" in message


def test_truncation_empties_the_files_of_archive_and_csv_but_not_remote_tables():
    assert MariaDBMasking().truncate_sql(column("CSV")) == "TRUNCATE TABLE `legacy`.`member_log`;\n"
    with pytest.raises(MyaasError, match="FEDERATED"):
        MariaDBMasking().truncate_sql(column("FEDERATED"))


def test_a_column_without_a_known_storage_engine_keeps_the_old_shape():
    plain = Column("shop", "shop", "t", "email", "varchar", "text", 100)
    assert plain.storage_engine is None
    assert MariaDBMasking().update_sql([(plain, "email")]).startswith("UPDATE")


def test_the_scrub_moves_arias_log_to_new_files_and_the_shutdown_check_counts_them():
    sql = MariaDBMasking().scrub_sql()
    assert sql.index("SET GLOBAL aria_log_file_size = 8388608") < sql.index("ENGINE=Aria TRANSACTIONAL=1")
    # More than one minimal log file's worth of records: 1 MiB doubled four times.
    assert sql.count("INSERT INTO `myaas_masking`.`aria_fill` SELECT") == 4
    assert sql.index("aria_fill") < sql.index("DROP DATABASE IF EXISTS `myaas_masking`")
    assert "aria_log.[0-9]*" in MariaDBMasking().after_shutdown_script()
