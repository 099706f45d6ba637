"""Disk quotas: sizes, the btrfs commands they run, and owners' budgets."""

import json
import os

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.instances import quota

GIB = 2 ** 30


@pytest.mark.parametrize("text, size", [("20G", 20 * GIB), ("512M", 512 * 2 ** 20), ("1.5G", int(1.5 * GIB)),
                                        (str(GIB), GIB), ("0", 0), ("none", 0), (None, None)])
def test_sizes(text, size):
    assert quota.parse_size("max_bytes", text) == size


@pytest.mark.parametrize("text, message", [("lots", "is not a size"), ("1M", "is below 64")])
def test_bad_sizes_say_what_to_give(text, message):
    with pytest.raises(MyaasError, match=message):
        quota.parse_size("max_bytes", text)


def test_a_limit_turns_quotas_on_once_then_holds_the_backstop(pool_dir, make_runner):
    runner = make_runner([(["btrfs", "qgroup", "show"], (1, "", "ERROR: can't list qgroups: quotas not enabled"))])
    meta = {"max_bytes": 2 * GIB, "quota_base_bytes": 100 * 2 ** 20}
    quota.apply_limit(Pool(pool_dir, runner), pool_dir + "/instances/a1/data", meta)
    assert runner.ran("btrfs", "quota") == [["btrfs", "quota", "enable", pool_dir],
                                            ["btrfs", "quota", "rescan", "--wait", pool_dir]]
    # Twice the template's capped file and the quota (all of it rewritten), and room for logs and temp.
    assert runner.ran("btrfs", "qgroup", "limit") == [
        ["btrfs", "qgroup", "limit", "-e", str(2 * (100 * 2 ** 20 + 2 * GIB) + 512 * 2 ** 20),
         pool_dir + "/instances/a1/data"]]
    # Quotas on: no second enable; no max_bytes lifts the limit.
    runner = make_runner([])
    quota.apply_limit(Pool(pool_dir, runner), pool_dir + "/instances/a1/data", {"max_bytes": None})
    assert not runner.ran("btrfs", "quota")
    assert runner.ran("btrfs", "qgroup", "limit")[0][3:5] == ["-e", "none"]


def _datadir(tmp_path, *files):
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return str(tmp_path)


@pytest.mark.parametrize("engine", ["mariadb", "mysql"])
def test_innodb_takes_a_quota_only_when_the_tables_are_in_the_system_tablespace(tmp_path, engine):
    innodb = get_engine(engine)
    # The server's own tables may have files (MariaDB's mysql/*.ibd, MySQL's mysql.ibd and undo files).
    allowed = _datadir(tmp_path / "a", "ibdata1", "mysql/innodb_table_stats.ibd", "mysql.ibd", "undo_001",
                       "shop/customers.frm")
    assert innodb.quota_refusal(allowed) is None
    refused = _datadir(tmp_path / "b", "ibdata1", "shop/customers.ibd", "shop/orders.ibd")
    assert "keeps 2 tables in files of their own" in innodb.quota_refusal(refused)
    with pytest.raises(MyaasError, match=r"import the template with tuning: \{innodb_file_per_table: 0\}"):
        quota.check_engine(innodb, GIB, refused)
    quota.check_engine(innodb, None, refused)     # no quota asked, nothing to refuse


def test_the_cap_is_a_server_argument_from_the_templates_size():
    args = get_engine("mariadb").quota_args(512 * 2 ** 20, 100 * 2 ** 20 + 1)
    assert "--innodb-data-file-path=ibdata1:12M:autoextend:max:613M" in args
    assert "--innodb-file-per-table=0" in args and "--enforce-storage-engine=InnoDB" in args
    assert any(arg.startswith("--innodb-temp-data-file-path=ibtmp1:12M:autoextend:max:") for arg in args)
    assert "--disabled-storage-engines=MyISAM,MRG_MYISAM,CSV,ARCHIVE" in get_engine("mysql").quota_args(GIB, GIB)


def test_postgresql_takes_no_quota(tmp_path):
    with pytest.raises(MyaasError, match="PANICs on its write-ahead log"):
        quota.check_engine(get_engine("postgresql"), GIB, str(tmp_path))


def test_the_quota_group_of_a_subvolume_is_read_in_bytes(pool_dir, make_runner):
    out = ("Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path \n"
           "--------    ----------    ---------  --------------  -------------   ---- \n"
           "0/257        104857600     12632064            none      134217728   instances/a1/data\n")
    runner = make_runner([(["btrfs", "qgroup", "show"], (0, out, ""))])
    assert Pool(pool_dir, runner).qgroup(pool_dir + "/instances/a1/data") == (12632064, 134217728)
    runner = make_runner([(["btrfs", "qgroup", "show"], (0, out.replace("134217728", "none"), ""))])
    assert Pool(pool_dir, runner).qgroup(pool_dir + "/instances/a1/data") == (12632064, None)


def _instance(pool_dir, name, owner, max_bytes):
    os.makedirs(os.path.join(pool_dir, "instances", name))
    with open(os.path.join(pool_dir, "instances", name, "instance.json"), "w", encoding="utf-8") as handle:
        json.dump({"name": name, "owner": owner, "max_bytes": max_bytes}, handle)


def test_an_owners_budget_holds_the_sum_of_their_quotas(pool_dir, make_runner):
    pool = Pool(pool_dir, make_runner([]))
    _instance(pool_dir, "a1", "alice", 6 * GIB)
    _instance(pool_dir, "a2", "alice", 3 * GIB)
    _instance(pool_dir, "b1", "bob", 50 * GIB)
    quota.check_budget(pool, "alice", "a3", GIB, 10 * GIB)
    quota.check_budget(pool, "alice", "a1", 7 * GIB, 10 * GIB)      # a1's own quota grows into what is left
    with pytest.raises(MyaasError, match=r"has 1.00 GB left, the rest held by a1 \(6.00 GB\), a2 \(3.00 GB\)"):
        quota.check_budget(pool, "alice", "a3", 2 * GIB, 10 * GIB)
    with pytest.raises(MyaasError, match="give the instance a quota, max_bytes, of at most 1.00 GB"):
        quota.check_budget(pool, "alice", "a3", None, 10 * GIB)
    quota.check_budget(pool, "carol", "c1", None, None)             # no budget, nothing to check


def test_a_quota_below_what_the_data_grew_by_is_refused(tmp_path):
    data = tmp_path / "instances" / "a1" / "data"
    data.mkdir(parents=True)
    with open(data / "ibdata1", "wb") as handle:
        handle.truncate(300 * 2 ** 20)          # 200 MiB over the template's 100
    meta = {"quota_base_bytes": 100 * 2 ** 20}
    mariadb = get_engine("mariadb")
    assert mariadb.quota_used(str(data), meta["quota_base_bytes"]) == 200 * 2 ** 20
    with pytest.raises(MyaasError, match=r"below what the instance already holds \(200.00 MB\).*at least 264.00 MB"):
        quota.check_use(mariadb, str(data), meta, 256 * 2 ** 20)
    quota.check_use(mariadb, str(data), meta, 264 * 2 ** 20)


def test_bookmarks_and_branches_of_an_instance_with_a_quota_are_refused():
    with pytest.raises(MyaasError, match="a bookmark would share its data and let it write its quota again"):
        quota.check_no_quota({"name": "a1", "max_bytes": GIB}, "a bookmark")
    quota.check_no_quota({"name": "a1", "max_bytes": None}, "a bookmark")
