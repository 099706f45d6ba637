import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.names import check_name
from ansible_collections.myaas.myaas.plugins.module_utils.instances.ports import parse_range, pick_port
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso, parse_iso, parse_protection, parse_ttl


@pytest.mark.parametrize("name", ["shop", "a", "shop-alice_2", "0db", "x" * 63])
def test_good_names_pass(name):
    assert check_name("instance", name) == name


@pytest.mark.parametrize("name", ["../x", "a b", "x;rm", "x" * 64, "", "-x", "_x", "Shop", "a/b", "a.b",
                                  "a\nb", None, "$(id)"])
def test_bad_names_are_refused_with_the_rule(name):
    with pytest.raises(MyaasError) as err:
        check_name("instance", name)
    assert "Invalid instance name" in err.value.msg
    assert "1 to 63 characters" in err.value.msg


@pytest.mark.parametrize("text,seconds", [("0", 0), ("90", 90), ("30m", 1800), ("8h", 28800), ("2d", 172800),
                                          ("1w", 604800), (3600, 3600), (" 5s ", 5)])
def test_ttl(text, seconds):
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["8 hours", "-1", "1.5h", "h", ""])
def test_bad_ttl(text):
    with pytest.raises(MyaasError, match="not a duration"):
        parse_ttl(text)


def test_iso_round_trip():
    assert parse_iso(iso(1700000000)) == 1700000000
    assert iso(1700000000).endswith("+00:00")


def test_port_range():
    assert parse_range("13306-13999") == (13306, 13999)
    for bad in ("13306", "a-b", "80-90", "2000-1000", "60000-70000"):
        with pytest.raises(MyaasError):
            parse_range(bad)


def test_pick_port_skips_taken_and_busy_ports():
    busy = {13307}
    port = pick_port((13306, 13310), taken={13306}, address="127.0.0.1", free=lambda a, p: p not in busy)
    assert port == 13308


def test_pick_port_says_when_the_range_is_full():
    with pytest.raises(MyaasError, match="No free port left"):
        pick_port((13306, 13307), taken={13306, 13307}, address="127.0.0.1", free=lambda a, p: True)


@pytest.mark.parametrize("value, expected", [
    (None, (None, None)), (True, (True, None)), (False, (False, None)), ("yes", (True, None)),
    ("false", (False, None)), ("1", (True, None)), ("7d", (True, 604800)), ("12h", (True, 43200)),
    ("0s", (False, None))])
def test_protected_is_a_yes_no_or_a_lease(value, expected):
    assert parse_protection(value) == expected


def test_a_protected_that_is_neither_says_what_to_give():
    with pytest.raises(MyaasError, match="neither true/false nor a duration.*7d"):
        parse_protection("forever")
