import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines import ENGINES, get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

GIB = 2 ** 30
MARIADB_SHUTDOWN_LOG = """\
2026-11-24 22:57:35 0 [Note] mariadbd (initiated by: unknown): Normal shutdown
2026-11-24 22:57:35 0 [Note] InnoDB: Starting shutdown...
2026-11-24 22:57:35 0 [Note] Shutdown completed; log sequence number 6495713; transaction id 216
2026-11-24 22:57:35 0 [Note] mariadbd: Shutdown complete
"""


def test_unknown_engine_names_the_known_ones():
    assert sorted(ENGINES) == ["mariadb", "mysql", "postgresql"]
    with pytest.raises(MyaasError, match="mariadb, mysql, postgresql"):
        get_engine("mongodb")


@pytest.mark.parametrize("name", ["mariadb", "mysql"])
def test_bulk_load_settings_never_reach_clones(name):
    engine = get_engine(name)
    bulk = set(engine.bulk_load_args({}, GIB))
    clone = set(engine.clone_args())
    for risky in ("flush-log-at-trx-commit", "doublewrite", "log-bin"):
        assert any(risky in arg for arg in bulk), risky
        assert not any(risky in arg for arg in clone), risky
    # The redo log keeps its size, so a clone never rebuilds it at start.
    assert set(engine.common_args) <= bulk and set(engine.common_args) <= clone


def test_tuning_overrides_the_defaults():
    args = get_engine("mariadb").bulk_load_args({"innodb_buffer_pool_size": "4G", "max_connections": 10}, 24 * GIB)
    assert "--innodb-buffer-pool-size=4G" in args
    assert "--innodb-buffer-pool-size=6144M" not in args
    assert "--max-connections=10" in args


@pytest.mark.parametrize("memory,pool", [(GIB // 2, "256M"), (4 * GIB, "1024M"), (24 * GIB, "6144M"),
                                         (256 * GIB, "8192M")])
def test_buffer_pool_follows_the_hosts_memory(memory, pool):
    assert "--innodb-buffer-pool-size=" + pool in get_engine("mariadb").bulk_load_args({}, memory)


def test_mariadb_clean_shutdown_needs_both_lines_in_order():
    engine = get_engine("mariadb")
    assert engine.clean_shutdown(MARIADB_SHUTDOWN_LOG)
    killed = MARIADB_SHUTDOWN_LOG.rsplit("\n", 2)[0]
    assert not engine.clean_shutdown(killed)
    assert not engine.clean_shutdown("mariadbd: Shutdown complete\n")


def test_crash_recovery_is_seen():
    engine = get_engine("mariadb")
    assert engine.crash_recovery("[Note] InnoDB: Starting crash recovery from checkpoint LSN=1")
    assert not engine.crash_recovery(MARIADB_SHUTDOWN_LOG)


def test_init_sql_quotes_what_it_is_given():
    sql = get_engine("mariadb").init_sql("dev", "pa'ss\\word", "shop")
    assert "IDENTIFIED BY 'pa\\'ss\\\\word'" in sql
    assert "CREATE DATABASE IF NOT EXISTS `shop`;" in sql
    assert sql.count("'dev'@'%'") == 3


def test_local_clients():
    assert get_engine("mariadb").local_client("shop")[0] == "mariadb"
    assert get_engine("mariadb").local_client("shop")[-1] == "shop"
    mysql = get_engine("mysql").local_client()
    assert mysql[:2] == ["mysql", "--user=root"]


def test_mysql_follows_the_official_image():
    engine = get_engine("mysql")
    assert engine.default_image == "mysql:8.0"
    assert engine.import_env() == {"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}
    assert "--disable-log-bin" in engine.bulk_load_args({}, GIB)
    assert engine.clean_shutdown("[System] [MY-010910] [Server] /usr/sbin/mysqld: Shutdown complete (mysqld 8.0.40)")
    assert engine.dsn("u", "p", "h", 1, "d") == "mysql://u:p@h:1/d"


def test_ready_probe_ignores_the_official_images_temporary_server():
    probe = get_engine("mariadb").ready_probe()
    assert "skip_networking = 0" in probe[-1]


def test_postgresql_bulk_settings_are_command_line_only():
    engine = get_engine("postgresql")
    args = engine.bulk_load_args({"maintenance_work_mem": "2GB"}, 24 * GIB)
    settings = dict(args[i + 1].split("=", 1) for i in range(0, len(args), 2) if args[i] == "-c")
    assert settings["fsync"] == "off" and settings["full_page_writes"] == "off"
    assert settings["wal_level"] == "minimal" and settings["maintenance_work_mem"] == "2GB"
    assert settings["shared_buffers"] == "3072MB"
    assert "fsync=off" not in " ".join(engine.clone_args())
    assert engine.stop_signal == "SIGINT" and engine.exec_user == "postgres"


def test_postgresql_credentials_go_through_the_local_client():
    engine = get_engine("postgresql")
    assert engine.credentials_via == "local_client"
    sql = engine.init_sql("dev", "it's", "shop")
    assert "PASSWORD 'it''s'" in sql and "\\gexec" in sql and "CREATE DATABASE \"shop\"" in sql


def test_postgresql_restore_runs_parallel_jobs():
    argv = get_engine("postgresql").restore_argv("pg_custom", "shop", "/myaas/dump", 4)
    assert argv[0] == "pg_restore" and "--exit-on-error" in argv
    assert argv[argv.index("--jobs") + 1] == "4" and argv[argv.index("--dbname") + 1] == "shop"
    assert argv[-1] == "/myaas/dump"


def test_postgresql_logs():
    engine = get_engine("postgresql")
    assert engine.clean_shutdown("LOG:  shutting down\nLOG:  database system is shut down\n")
    assert not engine.clean_shutdown("LOG:  received fast shutdown request\n")
    assert engine.crash_recovery("LOG:  database system was not properly shut down; automatic recovery in progress")
    assert engine.dsn("dev", "pw", "db1", 15432, "shop") == "postgresql://dev:pw@db1:15432/shop"
