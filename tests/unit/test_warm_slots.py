"""Warm slots on a plain folder: which one a request takes, and that a taken one is gone for the next."""

import json
import os

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances import warm


class FolderPool:
    """The two paths warm.py asks a pool for."""

    def __init__(self, path):
        self.path = path

    def template_dir(self, name):
        return os.path.join(self.path, "templates", name)


def slot(pool, name, generation=2, bind_address="127.0.0.1", ready_at="2026-12-01T03:00:00+00:00"):
    path = os.path.join(pool.path, "warm", "shop", name)
    os.makedirs(path)
    record = {"name": name, "generation": generation, "bind_address": bind_address, "port": 13400,
              "container": "myaas-x-warm.shop." + name, "ready_at": ready_at}
    with open(os.path.join(path, "warm.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    return path


@pytest.fixture
def pool(tmp_path):
    return FolderPool(str(tmp_path))


def test_a_request_takes_the_oldest_ready_slot_of_its_generation_and_leaves_a_link(pool):
    slot(pool, "g1-old", generation=1, ready_at="2026-12-01T01:00:00+00:00")
    slot(pool, "g2-making", ready_at=None)
    slot(pool, "g2-public", bind_address="0.0.0.0")
    newer = slot(pool, "g2-b", ready_at="2026-12-01T03:00:02+00:00")
    older = slot(pool, "g2-a", ready_at="2026-12-01T03:00:01+00:00")
    first = os.path.join(pool.path, "instances", "alice")
    os.makedirs(os.path.dirname(first))
    taken = warm.take(pool, "shop", 2, "127.0.0.1", (13306, 13999), first)
    assert taken["slot"] == older and os.readlink(older) == first and taken["port"] == 13400
    # Outside the request's range: not taken.
    assert warm.take(pool, "shop", 2, "127.0.0.1", (14000, 14099), os.path.join(pool.path, "instances", "x")) is None
    # The taken slot is a link now: the next request gets the other one, then none is left.
    second = os.path.join(pool.path, "instances", "bob")
    assert warm.take(pool, "shop", 2, "127.0.0.1", (13306, 13999), second)["slot"] == newer
    assert warm.take(pool, "shop", 2, "127.0.0.1", (13306, 13999), os.path.join(pool.path, "instances", "carol")) is None
    assert [path for path, _record in warm.ready_slots(pool, "shop")] == [
        os.path.join(pool.path, "warm", "shop", name) for name in ("g1-old", "g2-public")]


def test_a_slot_removed_meanwhile_is_skipped(pool, monkeypatch):
    gone = slot(pool, "g2-a", ready_at="2026-12-01T03:00:01+00:00")
    kept = slot(pool, "g2-b", ready_at="2026-12-01T03:00:02+00:00")
    real_rename = os.rename

    def rename(source, destination):
        if source == gone:      # another request renamed it between the listing and this rename
            raise FileNotFoundError(source)
        return real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    os.makedirs(os.path.join(pool.path, "instances"))
    assert warm.take(pool, "shop", 2, "127.0.0.1", (13306, 13999), os.path.join(pool.path, "instances", "a"))["slot"] == kept


class CountingWarmPool:
    def __init__(self, pool):
        self.pool, self.template, self.refills = pool, "shop", 0

    def refill(self):
        self.refills += 1
        return {"made": 1, "removed": 0, "ready": 1}


def test_settings_are_planned_in_check_mode_and_kept_when_not_given(pool):
    os.makedirs(pool.template_dir("shop"))
    clones = CountingWarmPool(pool)
    assert warm.apply(clones, None, "127.0.0.1", "13306-13999", False) == (False, None)
    changed, report = warm.apply(clones, 2, "127.0.0.1", "13306-13999", True)
    assert changed and report["planned"] and report["count"] == 2 and clones.refills == 0
    assert not os.path.exists(warm.settings_path(pool, "shop"))
    changed, report = warm.apply(clones, 2, "127.0.0.1", "13306-13999", False)
    assert changed and report["made"] == 1 and warm.read_settings(pool, "shop")["count"] == 2
    # Not given: the number set before, still refilled.
    _changed, report = warm.apply(clones, None, "0.0.0.0", "1-2", False)
    assert report["count"] == 2 and report["bind_address"] == "127.0.0.1" and clones.refills == 2
    with pytest.raises(MyaasError, match="warm must be 0 or more"):
        warm.apply(clones, -1, "127.0.0.1", "13306-13999", False)


class RunningEngine:
    @staticmethod
    def state(_name):
        return {"Running": True}


def test_a_refill_never_removes_a_clone_a_request_took_meanwhile(pool, monkeypatch):
    stale = slot(pool, "g1-old", generation=1)
    also_stale = slot(pool, "g1-older", generation=1)
    instance = os.path.join(pool.path, "instances", "alice")
    os.makedirs(os.path.dirname(instance))
    removed = []
    monkeypatch.setattr(warm.WarmClone, "remove", lambda clone: removed.append(os.path.basename(clone.paths["dir"])))
    monkeypatch.setattr(warm.WarmClone, "__init__", lambda clone, *args: setattr(
        clone, "paths", {"dir": os.path.join(pool.path, "warm", "shop", args[5])}))
    real_rename = os.rename

    def rename(source, destination):
        if source == stale and ".removing-" in destination:
            # A request's take, between the refill's listing and its rename.
            real_rename(source, instance)
            os.symlink(instance, source)
        return real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename)
    clones = warm.WarmPool(pool, RunningEngine(), None, "shop")
    assert clones._prune({"generation": 2}, {"count": 1, "bind_address": "127.0.0.1"}) == 1
    # The taken one is left as its request made it; only the other went.
    assert removed == [".removing-g1-older"] and os.readlink(stale) == instance
    assert os.path.exists(os.path.join(instance, "warm.json")) and not os.path.exists(also_stale)


def test_the_summary_counts_ready_slots_and_shows_a_failed_refill(pool):
    assert warm.summary(pool, "shop") is None
    os.makedirs(pool.template_dir("shop"))
    warm.write_settings(pool, "shop", 2, "127.0.0.1", "13306-13999")
    slot(pool, "g2-ready")
    slot(pool, "g2-making", ready_at=None)
    assert warm.summary(pool, "shop") == {"count": 2, "ready": 1, "generations": [2], "error": None}
    failure = {"at": "2026-12-01T03:00:00+00:00", "error": "no free port in 13306-13999"}
    with open(os.path.join(pool.path, "warm", "shop", warm.ERROR), "w", encoding="utf-8") as handle:
        json.dump(failure, handle)
    # The error file is no slot, and stays shown when the template keeps none any more.
    warm.write_settings(pool, "shop", 0, "127.0.0.1", "13306-13999")
    assert warm.summary(pool, "shop") == {"count": 0, "ready": 1, "generations": [2], "error": failure}


def test_an_interrupted_take_is_known_only_by_a_whole_slot_record(tmp_path):
    folder = str(tmp_path)
    assert warm.interrupted_take(folder) is None
    record = {"name": "g2-ab", "template": "shop", "container": "myaas-x-warm.shop.g2-ab", "generation": 2}
    with open(os.path.join(folder, "warm.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    assert warm.interrupted_take(folder) == record
    with open(os.path.join(folder, "warm.json"), "w", encoding="utf-8") as handle:
        json.dump(dict(record, container=None), handle)
    assert warm.interrupted_take(folder) is None
    with open(os.path.join(folder, "warm.json"), "w", encoding="utf-8") as handle:
        handle.write("{not json")
    assert warm.interrupted_take(folder) is None


def test_a_refill_that_fails_keeps_why_for_whoever_ran_it(pool, monkeypatch):
    def no_port(_self):
        raise MyaasError("no free port in 13306-13999")
    monkeypatch.setattr(warm.WarmPool, "_refill", no_port)
    with pytest.raises(MyaasError, match="no free port"):
        warm.WarmPool(pool, None, None, "shop").refill()
    with open(os.path.join(pool.path, "warm", "shop", warm.ERROR), encoding="utf-8") as handle:
        assert json.load(handle)["error"] == "no free port in 13306-13999"
    assert oct(os.stat(os.path.join(pool.path, "warm", "shop", warm.ERROR)).st_mode & 0o777) == "0o600"
