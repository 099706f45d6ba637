import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import ENGINES, get_engine
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
    for risky in ("flush-log-at-trx-commit", "doublewrite"):
        assert any(risky in arg for arg in bulk), risky
        assert not any(risky in arg for arg in clone), risky
    # Imports write no binary log (clones of MySQL write none either: nobody replicates from them).
    assert any(arg in ("--skip-log-bin", "--disable-log-bin") for arg in bulk)
    # The redo log keeps its size, so a clone never rebuilds it at start.
    for extra in (engine.bulk_load_args({}, GIB), engine.clone_args()):
        assert set(engine.common_args) <= set(engine.command(extra)[1])


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


def test_local_clients_ignore_the_images_option_files_and_use_our_socket():
    client = get_engine("mariadb").local_client("shop")
    assert client[:3] == ["mariadb", "--no-defaults", "--socket=/tmp/mysqld.sock"]
    assert client[-1] == "shop" and "--user=root" in client
    assert get_engine("mysql").local_client()[0] == "mysql"
    assert get_engine("mariadb").exec_user == "root"


@pytest.mark.parametrize("name", ["mariadb", "mysql", "postgresql"])
def test_the_server_is_started_by_myaas_not_by_the_images_entrypoint(name):
    engine = get_engine(name)
    entrypoint, args = engine.command(["--extra"])
    assert entrypoint == "/bin/sh" and args[0] == "-c" and args[1] == engine.launcher
    # $0, then the datadir ($1), then the server's arguments, ours last.
    assert args[2:4] == ["myaas-server", engine.datadir] and args[-1] == "--extra"
    assert set(engine.server_args()) <= set(args)
    # No environment variable of any image decides anything, and no secret is on the command line.
    assert "PASSWORD" not in " ".join(args)


@pytest.mark.parametrize("name,init", [("mariadb", "mariadb-install-db"), ("mysql", "--initialize-insecure"),
                                       ("postgresql", "initdb")])
def test_launchers_initialise_an_empty_datadir_themselves(name, init):
    launcher = get_engine(name).launcher
    assert init in launcher and launcher.startswith("set -eu")
    assert "exec " in launcher.splitlines()[-1]


def test_mariadb_servers_read_no_option_file_and_listen_on_all_addresses():
    args = get_engine("mariadb").server_args()
    assert args[0] == "--no-defaults"
    assert "--bind-address=0.0.0.0" in args and "--skip-name-resolve" in args
    assert "--auth-root-authentication-method=socket" in get_engine("mariadb").launcher


def test_postgresql_superuser_has_no_password_and_tcp_needs_one():
    engine = get_engine("postgresql")
    assert "--auth-host=scram-sha-256" in engine.launcher and "--auth-local=peer" in engine.launcher
    assert "host all all all scram-sha-256" in engine.launcher
    assert "PASSWORD NULL" in engine.init_sql("dev", "x", None).splitlines()[0]


def test_mysql_locks_the_password_less_root_before_the_freeze():
    assert "ALTER USER 'root'@'localhost' ACCOUNT LOCK" in get_engine("mysql").before_shutdown_sql()


def test_definers_become_locked_accounts_with_rights_on_the_templates_databases():
    engine = get_engine("mariadb")
    sql = engine.create_definers_sql(["app@10.0.0.%", "o'brien@%"], ["shop", "hr"], "Zz9")
    assert "CREATE USER IF NOT EXISTS 'app'@'10.0.0.%' IDENTIFIED BY 'Zz9' ACCOUNT LOCK;" in sql
    assert "GRANT ALL PRIVILEGES ON `hr`.* TO 'o\\'brien'@'%';" in sql
    assert "*.*" not in sql
    assert "information_schema.TRIGGERS" in engine.missing_definers_sql()
    assert get_engine("postgresql").missing_definers_sql() is None


@pytest.mark.parametrize("name,dsn", [
    ("mariadb", "mysql://d%40v:p%2F%3A%40%25w@h:1/my%20db"),
    ("postgresql", "postgresql://d%40v:p%2F%3A%40%25w@h:1/my%20db"),
])
def test_dsn_percent_encodes_user_password_and_database(name, dsn):
    assert get_engine(name).dsn("d@v", "p/:@%w", "h", 1, "my db") == dsn


def test_dsn_without_a_database_has_no_trailing_slash_and_ipv6_is_bracketed():
    assert get_engine("mariadb").dsn("u", "p", "::1", 3, None) == "mysql://u:p@[::1]:3"


def test_client_commands_follow_the_engine():
    assert get_engine("mariadb").client_command("dev", "pw", "db1", 13306, "shop") == \
        "mariadb --protocol=TCP --max-allowed-packet=1G -h db1 -P 13306 -u dev -ppw shop"
    assert get_engine("postgresql").client_command("dev", "pw", "db1", 15432, "shop") == \
        "psql postgresql://dev:pw@db1:15432/shop"
    assert get_engine("postgresql").client_command("dev", "pw", "db1", 15432, None).endswith("/postgres")


def test_mysql_follows_the_official_image():
    engine = get_engine("mysql")
    assert engine.default_image == "mysql:9.7"
    assert engine.account == "mysql" and "--initialize-insecure" in engine.launcher
    assert "--disable-log-bin" in engine.bulk_load_args({}, GIB)
    assert engine.dsn("u", "p", "h", 1, "d") == "mysql://u:p@h:1/d"


# The last lines of real logs of MySQL 9.7 (Debian's build, in the official image's layout).
MYSQL_CLEAN_END = (
    "2026-11-30T05:30:42.470102Z 0 [System] [MY-013172] [Server] Received SHUTDOWN from user <via user signal>. "
    "Shutting down mysqld (Version: 9.7.4-2).\n"
    "2026-11-30T05:30:44.012461Z 0 [System] [MY-010910] [Server] /usr/sbin/mysqld: Shutdown complete "
    "(mysqld 9.7.4-2)  (Debian).\n"
    "2026-11-30T05:30:44.012568Z 0 [System] [MY-015016] [Server] MySQL Server - end.\n")


def test_mysql_sees_a_clean_shutdown_only_at_the_end_of_its_log():
    engine = get_engine("mysql")
    assert engine.clean_shutdown(MYSQL_CLEAN_END)
    assert engine.clean_shutdown("[MY-010910] [Server] /usr/sbin/mysqld: Shutdown complete (mysqld 8.4.3)  MySQL")
    # A later run that did not stop cleanly: its log ends elsewhere.
    restarted = MYSQL_CLEAN_END + "2026-11-30T05:31:00Z 0 [System] [MY-010931] [Server] ready for connections.\n"
    assert not engine.clean_shutdown(restarted)
    assert engine.crash_recovery("[Note] [MY-012551] [InnoDB] Database was not shutdown normally!")
    assert engine.crash_recovery("[Note] [MY-012552] [InnoDB] Starting crash recovery.")
    assert not engine.crash_recovery(MYSQL_CLEAN_END + "[Note] [MY-013911] [Server] Crash recovery finished in InnoDB "
                                     "engine. No attempts to commit, rollback or prepare any transactions.")
    assert "--log-error-verbosity=3" in engine.command(engine.clone_args())[1]


def test_mysql_clones_fire_no_events_and_write_no_binary_log():
    engine = get_engine("mysql")
    for args in (engine.clone_args(), engine.bulk_load_args({}, GIB)):
        assert "--event-scheduler=OFF" in args and "--disable-log-bin" in args
    assert "--max-allowed-packet=1G" in engine.clone_args()


@pytest.mark.parametrize("name", ["mariadb", "postgresql"])
def test_ready_probe_is_a_query_through_the_local_client(name):
    engine = get_engine(name)
    probe = engine.ready_probe()
    assert probe[:len(engine.local_client())] == engine.local_client() and probe[-1] == "SELECT 1"


def test_postgresql_bulk_settings_are_command_line_only():
    engine = get_engine("postgresql")
    args = engine.bulk_load_args({"maintenance_work_mem": "2GB"}, 24 * GIB)
    settings = dict(args[i + 1].split("=", 1) for i in range(0, len(args), 2) if args[i] == "-c")
    assert settings["fsync"] == "off" and settings["full_page_writes"] == "off"
    assert settings["wal_level"] == "minimal" and settings["maintenance_work_mem"] == "2GB"
    assert settings["shared_buffers"] == "3072MB"
    assert "fsync=off" not in " ".join(engine.clone_args())
    assert engine.stop_signal == "SIGINT" and engine.exec_user is None


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
