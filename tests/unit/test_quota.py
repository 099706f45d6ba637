"""Disk quotas: sizes, the btrfs commands they run, and owners' budgets."""

import json
import os

import pytest

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


def test_a_limit_turns_quotas_on_once_then_caps_the_exclusive_bytes(pool_dir, make_runner):
    runner = make_runner([(["btrfs", "qgroup", "show"], (1, "", "ERROR: can't list qgroups: quotas not enabled"))])
    quota.apply_limit(Pool(pool_dir, runner), pool_dir + "/instances/a1/data", 2 * GIB)
    assert runner.ran("btrfs", "quota") == [["btrfs", "quota", "enable", pool_dir],
                                            ["btrfs", "quota", "rescan", "--wait", pool_dir]]
    assert runner.ran("btrfs", "qgroup", "limit") == [
        ["btrfs", "qgroup", "limit", "-e", str(2 * GIB), pool_dir + "/instances/a1/data"]]
    # Quotas on: no second enable; 0 lifts the cap.
    runner = make_runner([])
    quota.apply_limit(Pool(pool_dir, runner), pool_dir + "/instances/a1/data", 0)
    assert not runner.ran("btrfs", "quota")
    assert runner.ran("btrfs", "qgroup", "limit")[0][3:5] == ["-e", "none"]


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


def test_a_quota_below_what_the_instance_holds_is_refused(tmp_path, make_runner):
    data = tmp_path / "instances" / "a1" / "data"
    data.mkdir(parents=True)
    out = "0/257  104857600  209715200  none  none  instances/a1/data\n"
    pool = Pool(str(tmp_path), make_runner([(["btrfs", "qgroup", "show"], (0, out, ""))]))
    with pytest.raises(MyaasError, match=r"below what the instance already holds \(200.00 MB\).*at least 264.00 MB"):
        quota.check_use(pool, str(data), 256 * 2 ** 20)
    quota.check_use(pool, str(data), 264 * 2 ** 20)


def test_bookmarks_and_branches_of_an_instance_with_a_quota_are_refused():
    with pytest.raises(MyaasError, match="a bookmark would share its data and let it write its quota again"):
        quota.check_no_quota({"name": "a1", "max_bytes": GIB}, "a bookmark")
    quota.check_no_quota({"name": "a1", "max_bytes": None}, "a bookmark")
