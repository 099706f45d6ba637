"""Shipping plans: what is sent, against which parent, and what the receiver's metadata says."""

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates import shipping

SHOW = """gen-3
\tName: \t\t\tgen-3
\tUUID: \t\t\t6c1f0b52-0000-4000-8000-000000000003
\tParent UUID: \t\t6c1f0b52-0000-4000-8000-000000000002
\tReceived UUID: \t\t-
\tFlags: \t\t\treadonly
"""


def sub(uuid, parent=None, received=None):
    return {"uuid": uuid, "parent_uuid": parent, "received_uuid": received}


def template(generation, kept, pool="/srv/a"):
    records = [{"generation": number, "path": "%s/templates/shop/gen-%d" % (pool, number)} for number in kept]
    return {"name": "shop", "generation": generation, "path": records[-1]["path"], "generations": records,
            "row_counts": {"shop.customers": 6000}}


def test_btrfs_subvolume_show_is_read_with_dashes_as_none():
    assert shipping.parse_show(SHOW) == sub("6c1f0b52-0000-4000-8000-000000000003",
                                            "6c1f0b52-0000-4000-8000-000000000002")


def test_a_new_receiver_gets_the_whole_generation():
    steps = shipping.plan("shop", template(3, [3]), {3: sub("u3")}, None, {})
    assert steps == {"generation": 3, "uuid": "u3", "parent": None, "parent_path": None, "leftovers": [], "prune": []}


def test_a_snapshot_of_a_generation_the_receiver_holds_is_sent_against_it():
    source = {2: sub("u2"), 3: sub("u3", parent="u2")}
    target = {2: sub("t2", received="u2")}
    steps = shipping.plan("shop", template(3, [2, 3]), source, template(2, [2], "/srv/b"), target)
    assert steps["parent"] == 2 and steps["prune"] == []


def test_an_incremental_refresh_descends_from_the_previous_generation_through_its_base():
    # gen-3 is a snapshot of base-2, which is a snapshot of gen-2.
    source = {2: sub("u2"), 3: sub("u3", parent="b2")}
    steps = shipping.plan("shop", template(3, [2, 3]), source, template(2, [2], "/srv/b"),
                          {2: sub("t2", received="u2")}, lineage={"b2": "u2"})
    assert steps["parent"] == 2
    assert shipping.plan("shop", template(3, [2, 3]), source, template(2, [2], "/srv/b"),
                         {2: sub("t2", received="u2")})["parent"] is None


def test_a_physical_generation_is_sent_against_the_newest_one_received_as_its_files_may_share_blocks():
    source = {1: sub("u1"), 2: sub("u2"), 3: sub("u3")}
    received = {1: sub("t1", received="u1"), 2: sub("t2", received="u2")}
    physical = dict(template(3, [1, 2, 3]), base="/srv/a/templates/shop/base-3")
    assert shipping.plan("shop", physical, source, template(2, [1, 2], "/srv/b"), received)["parent"] == 2
    assert shipping.plan("shop", template(3, [1, 2, 3]), source, template(2, [1, 2], "/srv/b"), received)[
        "parent"] is None


def test_a_parent_the_receiver_lacks_means_a_full_stream():
    source = {2: sub("u2"), 3: sub("u3", parent="u2")}
    steps = shipping.plan("shop", template(3, [2, 3]), source, template(1, [1], "/srv/b"),
                          {1: sub("t1", received="u1")})
    assert steps["parent"] is None
    # The sender keeps 2 and 3: the receiver's 1 goes once 3 is in place.
    assert steps["prune"] == [1]


def test_a_receiver_that_has_the_current_generation_gets_nothing():
    assert shipping.plan("shop", template(3, [3]), {3: sub("u3")}, template(3, [3], "/srv/b"),
                         {3: sub("t3", received="u3")}) is None


def test_a_leftover_is_never_a_parent():
    # gen-2 arrived whole (a Received UUID) but the swap did not happen: template.json names gen-1 only.
    source = {1: sub("u1"), 2: sub("u2"), 3: sub("u3", parent="u2")}
    steps = shipping.plan("shop", template(3, [1, 2, 3]), source, template(1, [1], "/srv/b"),
                          {1: sub("t1", received="u1"), 2: sub("t2", received="u2")})
    assert steps["parent"] is None and steps["leftovers"] == [2]


def test_what_a_killed_ship_left_is_removed_before_the_next_one():
    # Generation 3 half received (no Received UUID), and not named by the receiver's template.json.
    steps = shipping.plan("shop", template(3, [3]), {3: sub("u3")}, template(2, [2], "/srv/b"),
                          {2: sub("t2", received="u2"), 3: sub("t3")})
    assert steps["leftovers"] == [3] and steps["prune"] == [2]


def test_a_generation_imported_on_the_receiver_is_not_overwritten():
    with pytest.raises(MyaasError, match="imports a template or receives it"):
        shipping.plan("shop", template(3, [3]), {3: sub("u3")}, template(3, [3], "/srv/b"), {3: sub("t3")})


def test_the_receivers_metadata_names_its_own_pool_and_only_what_it_holds():
    document = shipping.metadata_for(dict(template(3, [2, 3]), base="/srv/a/templates/shop/base-3"),
                                     "/srv/b/templates/shop", {3})
    assert document["path"] == "/srv/b/templates/shop/gen-3"
    assert [record["path"] for record in document["generations"]] == ["/srv/b/templates/shop/gen-3"]
    assert document["base"] is None and document["row_counts"] == {"shop.customers": 6000}


def test_a_remote_side_hands_ssh_one_quoted_string():
    side = shipping.Side("/srv/b", ["ssh", "db2"], runner=type("R", (), {"run": None})())
    assert side.argv(["sh", "-c", "echo 'a b'", "x"]) == ["ssh", "db2", "sh -c 'echo '\"'\"'a b'\"'\"'' x"]
    assert shipping.Side("/srv/b", [], runner=type("R", (), {"run": None})()).argv(["ls", "a b"]) == ["ls", "a b"]


def test_a_generation_the_source_received_is_known_by_the_uuid_it_came_with():
    # server-a passes on what it received from the importer (i2): the copy on server-b carries i2 too.
    source = {3: sub("a3", received="i3"), 2: sub("a2", received="i2")}
    steps = shipping.plan("shop", template(3, [2, 3]), source, template(2, [2]), {2: sub("b2", received="i2")})
    assert steps["uuid"] == "i3"
    assert shipping.plan("shop", template(3, [2, 3]), source, template(3, [3]), {3: sub("b3", received="i3")}) is None


LISTING = """ID 256 gen 9 top level 5 parent_uuid -    received_uuid i1   uuid a1 path templates/shop/gen-1
ID 260 gen 12 top level 5 parent_uuid a1     received_uuid -    uuid inst path instances/alice/data
ID 261 gen 13 top level 5 parent_uuid inst   received_uuid -    uuid br1 path templates/shop-bug/gen-1
"""


def test_a_branch_is_sent_against_the_generation_its_instance_was_cloned_from():
    listed = shipping.parse_list(LISTING)
    assert listed["inst"] == {"parent_uuid": "a1", "received_uuid": None, "path": "instances/alice/data"}
    # The instance is writable (no parent for btrfs send); shop gen-1 is read-only and server-b received it as i1.
    found = shipping.shared_parent(sub("br1", parent="inst"), listed, {"a1", "br1"}, {"b1", "i1"})
    assert found["path"] == "templates/shop/gen-1" and found["uuid"] == "a1"
    # Without that generation on the receiver, or with it writable on the sender, the branch goes whole.
    assert shipping.shared_parent(sub("br1", parent="inst"), listed, {"a1", "br1"}, {"b1"}) is None
    assert shipping.shared_parent(sub("br1", parent="inst"), listed, {"br1"}, {"i1"}) is None
