from ansible_collections.myaas.myaas.plugins.module_utils.templates.importer import import_reason

WANTED = {"engine": "mariadb", "image_id": "sha256:1", "options": {"database": "shop"}}
CURRENT = dict(WANTED, source={"path": "/d/shop.sql.gz", "bytes": 10, "mtime": 5.0, "sha256": "aa"})


def never():
    raise AssertionError("the dump must not be hashed")


def test_new_template():
    source = {"bytes": 10, "mtime": 5.0}
    assert import_reason(None, source, WANTED, False, never) == "the template does not exist yet"


def test_unchanged_size_and_mtime_do_not_hash():
    source = {"bytes": 10, "mtime": 5.0}
    assert import_reason(CURRENT, source, WANTED, False, never) is None
    assert source["sha256"] == "aa"


def test_touched_but_same_content_is_unchanged():
    source = {"bytes": 10, "mtime": 6.0}
    assert import_reason(CURRENT, source, WANTED, False, lambda: "aa") is None


def test_changed_content():
    source = {"bytes": 11, "mtime": 6.0}
    assert import_reason(CURRENT, source, WANTED, False, lambda: "bb") == "the dump changed"


def test_force_hashes_and_imports():
    source = {"bytes": 10, "mtime": 5.0}
    assert import_reason(CURRENT, source, WANTED, True, lambda: "aa") == "force is set"


def test_new_image_or_options_reimport():
    source = {"bytes": 10, "mtime": 5.0}
    assert import_reason(CURRENT, dict(source), dict(WANTED, image_id="sha256:2"), False, never) == \
        "its image id changed"
    assert import_reason(CURRENT, dict(source), dict(WANTED, options={"database": "x"}), False, never) == \
        "its options changed"
