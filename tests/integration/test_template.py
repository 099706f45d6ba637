"""myaas_template on the real rig: formats, idempotence, atomic swaps, broken dumps, kills."""

import bz2
import glob
import gzip
import lzma
import os
import shutil
import signal
import time

import pytest

from ansible_collections.myaas.myaas.plugins.module_utils.names import import_container_name
from rig import ROOT, cmdline, descendants, sh

CUSTOMERS = 6000   # what the bundled sample holds


def compressed(src, dest, fmt):
    with open(src, "rb") as handle:
        data = handle.read()
    if fmt == "zstd":
        sh("zstd", "-q", "-f", src, "-o", dest)
        return dest
    writer = {"plain": lambda d: d, "gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[fmt]
    with open(dest, "wb") as out:
        out.write(writer(data))
    return dest


def check_shop_works(rig, template, name):
    db = rig.instance(name, template=template)
    assert db["changed"], db
    try:
        instance = db["instance"]
        assert rig.query(instance, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
        orders = rig.query(instance, "SELECT COUNT(*) FROM order_totals")[0][0]
        assert orders > 0
        assert rig.query(instance, "SELECT full_name FROM customers WHERE full_name LIKE '%Zoë%' LIMIT 1")
        stock = rig.query(instance, "SELECT stock FROM products WHERE id = 1")[0][0]
        rig.query(instance, "INSERT INTO orders VALUES (NULL, 1, 'new', NOW())")
        order = rig.query(instance, "SELECT MAX(id) FROM orders")[0][0]
        rig.query(instance, "INSERT INTO order_items VALUES (%d, 1, 3, 100)" % order)
        assert rig.query(instance, "SELECT stock FROM products WHERE id = 1")[0][0] == stock - 3   # the trigger
        log = sh("docker", "logs", instance["container"]).stdout
        assert "crash recovery" not in log.lower()
        assert "ready for connections" in log
    finally:
        rig.instance(name, state="absent")


@pytest.mark.parametrize("fmt,suffix", [("plain", "sql"), ("gzip", "sql.gz"), ("bzip2", "sql.bz2"),
                                        ("xz", "sql.xz"), ("zstd", "sql.zst")])
def test_import_each_format_and_clone_it(rig, shop_sql, workdir, fmt, suffix):
    name = "fmt-" + fmt
    src = compressed(shop_sql, os.path.join(workdir, "shop." + suffix), fmt)
    result = rig.template(name, src)
    assert result["changed"], result
    template = result["template"]
    assert template["generation"] == 1
    assert template["source"]["bytes"] == os.path.getsize(src)
    assert template["rate"] > 0 and template["size_bytes"] > 0
    assert sh("btrfs", "property", "get", "-ts", template["path"], "ro").stdout.strip() == "ro=true"
    assert not rig.containers(role="import", template=name)
    check_shop_works(rig, name, "clone-" + fmt)


def test_second_run_is_unchanged_and_starts_nothing(rig, workdir):
    src = shutil.copy(os.path.join(ROOT, "samples", "shop.sql.gz"), workdir)
    assert rig.template("again", src)["changed"]
    before = rig.template_json("again")
    since = int(time.time())
    second = rig.template("again", src)
    assert second["changed"] is False
    assert second["template"]["generation"] == 1
    assert rig.import_events_since(since) == []
    assert rig.template_json("again") == before
    # Touching the dump without changing it costs a hash, not an import.
    os.utime(src)
    third = rig.template("again", src)
    assert third["changed"] is False
    assert rig.import_events_since(since) == []
    # Check mode with force reports an import and does none.
    check = rig.template("again", src, force=True, check_mode=True)
    assert check["changed"] and check["template"]["generation"] == 2
    assert rig.import_events_since(since) == []
    assert sorted(os.listdir(os.path.join(rig.pool, "templates", "again"))) == ["gen-1", "template.json"]


def test_changed_dump_makes_a_new_generation_while_the_old_serves(rig, shop_sql, workdir):
    src = os.path.join(workdir, "shop.sql")
    shutil.copy(shop_sql, src)
    first = rig.template("gens", src)["template"]
    with open(src, "a", encoding="utf-8") as handle:
        handle.write("INSERT INTO categories (name) VALUES ('Generation two');\n")
    proc = rig.template_in_background("gens", src)
    # While the new generation is being imported, the old one is the template.
    rig.wait_for(lambda: rig.containers(role="import", template="gens"), timeout=60, what="the import container")
    assert b'"generation": 1' in rig.template_json("gens")
    assert os.path.isdir(first["path"])
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert b'"generation": 2' in rig.template_json("gens")
    assert not os.path.exists(first["path"])     # keep_generations=1
    db = rig.instance("gens-clone", template="gens")["instance"]
    try:
        assert db["generation"] == 2
        assert rig.query(db, "SELECT COUNT(*) FROM categories WHERE name = 'Generation two'")[0][0] == 1
    finally:
        rig.instance("gens-clone", state="absent")


def broken_dumps(shop_sql, workdir):
    with open(shop_sql, "rb") as handle:
        sql = handle.read()
    middle = len(sql) // 2
    middle = sql.index(b"\n", middle) + 1
    syntax = sql[:middle] + b"INSERT INTO customers VALUES (1,2,;\n" + sql[middle:]
    whole_gz = gzip.compress(sql)
    cases = {
        "syntax.sql": (syntax, "at line"),
        "truncated.sql.gz": (whole_gz[: len(whole_gz) * 2 // 3], "damaged"),
        "empty.sql": (b"", "is empty"),
        "picture.sql.gz": (b"\x89PNG\r\n\x1a\n" + os.urandom(2048), "is not an SQL dump"),
    }
    for name, (data, _message) in cases.items():
        with open(os.path.join(workdir, name), "wb") as out:
            out.write(data)
    return dict((name, (os.path.join(workdir, name), message)) for name, (_data, message) in cases.items())


def test_broken_dumps_leave_the_template_intact(rig, shop_sql, workdir):
    good = rig.template("sturdy", shop_sql)["template"]
    before_meta = rig.template_json("sturdy")
    before_files = sh("find", good["path"], "-printf", "%P %s %T@\n").stdout
    for name, (path, message) in broken_dumps(shop_sql, workdir).items():
        result = rig.template("sturdy", path)
        assert result["failed"], (name, result)
        assert message in result["msg"], (name, result["msg"])
        assert path in result["msg"], (name, result["msg"])
        assert rig.template_json("sturdy") == before_meta, name
        assert sh("find", good["path"], "-printf", "%P %s %T@\n").stdout == before_files, name
        assert sorted(os.listdir(os.path.join(rig.pool, "templates", "sturdy"))) == \
            ["gen-%d" % good["generation"], "template.json"], name
        assert not rig.containers(role="import", template="sturdy"), name
    db = rig.instance("sturdy-clone", template="sturdy")["instance"]
    try:
        assert rig.query(db, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
    finally:
        rig.instance("sturdy-clone", state="absent")


def test_syntax_error_names_the_line_and_shows_the_server_log(rig, shop_sql, workdir):
    path, _message = broken_dumps(shop_sql, workdir)["syntax.sql"]
    result = rig.template("syntax-only", path)
    assert result["failed"]
    assert "ERROR 1064" in result["msg"] and "at line" in result["msg"]
    assert any("ready for connections" in line for line in result["server_log"])
    assert not os.path.exists(os.path.join(rig.pool, "templates", "syntax-only", "template.json"))
    assert not [p for p in rig.subvolumes() if p.startswith("templates/syntax-only/")]


def test_failing_post_import_sql_fails_the_import(rig, shop_sql, workdir):
    anonymise = os.path.join(workdir, "anonymise.sql")
    with open(anonymise, "w", encoding="utf-8") as handle:
        handle.write("UPDATE customers SET email = CONCAT('user', id, '@example.invalid');\n")
    result = rig.template("post", shop_sql, post_import_sql=[anonymise])
    assert result["changed"]
    db = rig.instance("post-clone", template="post")["instance"]
    try:
        assert rig.query(db, "SELECT COUNT(*) FROM customers WHERE email LIKE '%@example.invalid'")[0][0] == CUSTOMERS
    finally:
        rig.instance("post-clone", state="absent")
    before = rig.template_json("post")
    with open(anonymise, "a", encoding="utf-8") as handle:
        handle.write("UPDATE no_such_table SET x = 1;\n")
    failed = rig.template("post", shop_sql, post_import_sql=[anonymise])
    assert failed["failed"] and "no_such_table" in failed["msg"]
    assert rig.template_json("post") == before


def test_definer_of_a_missing_user_and_several_schemas_import(rig, workdir):
    path = os.path.join(workdir, "multi.sql")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("""-- mysqldump --databases sales hr
CREATE DATABASE IF NOT EXISTS `sales`;
USE `sales`;
CREATE TABLE t (id INT PRIMARY KEY, v INT);
INSERT INTO t VALUES (1, 10), (2, 20);
CREATE DEFINER=`ghost`@`%` SQL SECURITY DEFINER VIEW v AS SELECT SUM(v) AS s FROM t;
DELIMITER ;;
CREATE DEFINER=`ghost`@`%` TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.v * 2 ;;
DELIMITER ;
CREATE DATABASE IF NOT EXISTS `hr`;
USE `hr`;
CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20));
INSERT INTO people VALUES (1, 'Ana'), (2, 'Björn'), (3, 'Chloé');
""")
    result = rig.template("multi", path)
    assert result["changed"], result
    assert result["template"]["options"]["database"] is None
    db = rig.instance("multi-clone", template="multi", database="sales")["instance"]
    try:
        assert rig.query(db, "SELECT COUNT(*) FROM t", database="sales")[0][0] == 2
        assert rig.query(db, "SELECT COUNT(*) FROM people", database="hr")[0][0] == 3
    finally:
        rig.instance("multi-clone", state="absent")


def test_kill_during_import_keeps_the_old_template_and_the_next_run_cleans_up(rig, workdir):
    big = os.path.join(workdir, "big.sql.gz")
    sh(os.path.join(ROOT, ".venv", "bin", "python"), os.path.join(ROOT, "tools", "make_sample_dump.py"),
       "--customers", "60000", "-o", big)
    small = os.path.join(ROOT, "samples", "shop.sql.gz")
    assert rig.template("killme", small)["changed"]
    before = rig.template_json("killme")
    payloads = set(glob.glob("/tmp/ansible_myaas.myaas.myaas_template_payload_*"))
    proc = rig.template_in_background("killme", big)
    rig.wait_for(lambda: rig.containers(role="import", template="killme"), timeout=60, what="the import")
    time.sleep(1)
    # Only the module process that this test's own `ansible` started.
    module_pids = [pid for pid in descendants(proc.pid) if "AnsiballZ_myaas_template" in cmdline(pid)]
    assert module_pids
    for pid in module_pids:
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    # A killed module cannot remove the folder Ansible unpacked it into.
    for folder in set(glob.glob("/tmp/ansible_myaas.myaas.myaas_template_payload_*")) - payloads:
        shutil.rmtree(folder, ignore_errors=True)
    assert rig.template_json("killme") == before
    leftovers = [p for p in rig.subvolumes() if p.startswith("templates/killme/.importing-")]
    assert leftovers, "the killed run should have left its staging subvolume"
    db = rig.instance("killme-clone", template="killme")["instance"]
    try:
        assert rig.query(db, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
    finally:
        rig.instance("killme-clone", state="absent")
    rerun = rig.template("killme", big)
    assert rerun["changed"], rerun
    assert sorted(rerun["removed_leftovers"]) == sorted([import_container_name(rig.pool, "killme")] +
                                                        [os.path.join(rig.pool, p) for p in leftovers])
    assert rerun["template"]["generation"] == 2
    assert not [p for p in rig.subvolumes() if p.startswith("templates/killme/.importing-")]


def test_dump_bigger_than_the_pool(rig, workdir):
    """A separate small pool: the data of this dump does not fit on it."""
    with rig.small_pool(workdir) as pool:
        ok = rig.template("fits", os.path.join(ROOT, "samples", "shop.sql.gz"), pool=pool)
        assert ok["changed"], ok
        with open(os.path.join(pool, "templates", "fits", "template.json"), "rb") as handle:
            before = handle.read()
        huge = os.path.join(workdir, "huge.sql.gz")
        row = "x" * 1000000
        with gzip.open(huge, "wt", compresslevel=1) as out:
            out.write("CREATE TABLE big (id INT AUTO_INCREMENT PRIMARY KEY, b LONGTEXT);\n")
            for _row in range(1500):
                out.write("INSERT INTO big (b) VALUES ('%s');\n" % row)
        result = rig.template("fits", huge, pool=pool, import_timeout=300)
        assert result["failed"], result
        assert "ran out of space" in result["msg"], result["msg"]
        with open(os.path.join(pool, "templates", "fits", "template.json"), "rb") as handle:
            assert handle.read() == before
        assert sorted(os.listdir(os.path.join(pool, "templates", "fits"))) == ["gen-1", "template.json"]
        assert not sh("docker", "ps", "-aq", "--filter", "label=org.myaas.pool=" + pool).stdout.strip()


def test_absent_removes_the_template_and_its_clones_keep_working(rig):
    assert rig.template("gone", os.path.join(ROOT, "samples", "shop.sql.gz"))["changed"]
    db = rig.instance("orphan-of-gone", template="gone")["instance"]
    try:
        removed = rig.template("gone", None, state="absent")
        assert removed["changed"] and removed["template"] is None
        assert not os.path.exists(os.path.join(rig.pool, "templates", "gone"))
        assert rig.query(db, "SELECT COUNT(*) FROM customers")[0][0] == CUSTOMERS
        assert rig.template("gone", None, state="absent")["changed"] is False
    finally:
        rig.instance("orphan-of-gone", state="absent")


def test_nightly_playbook_imports_a_folder_and_names_the_broken_dumps(rig, shop_sql, workdir):
    dumps = os.path.join(workdir, "dumps")
    os.makedirs(dumps)
    shutil.copy(os.path.join(ROOT, "samples", "shop.sql.gz"), os.path.join(dumps, "nightly-a.sql.gz"))
    shutil.copy(shop_sql, os.path.join(dumps, "nightly-b.sql"))
    broken = broken_dumps(shop_sql, workdir)["truncated.sql.gz"][0]
    shutil.copy(broken, os.path.join(dumps, "nightly-broken.sql.gz"))
    with open(os.path.join(dumps, "README.txt"), "w", encoding="utf-8") as handle:
        handle.write("not a dump, not picked up\n")
    run = rig.playbook("playbooks/import_templates.yml", "-e", "dumps_dir=" + dumps, "-e", "image=" + rig.image)
    assert run.returncode != 0
    assert "1 dump(s) were not imported" in run.stdout
    assert "nightly-broken.sql.gz" in run.stdout.split("were not imported")[1]
    for name in ("nightly-a", "nightly-b"):
        assert b'"generation": 1' in rig.template_json(name)
    assert not os.path.exists(os.path.join(rig.pool, "templates", "nightly-broken", "template.json"))
    since = int(time.time())
    again = rig.playbook("playbooks/import_templates.yml", "-e", "dumps_dir=" + dumps, "-e", "image=" + rig.image)
    assert again.returncode != 0
    assert rig.import_events_since(since) == [import_container_name(rig.pool, "nightly-broken")]


def test_same_template_twice_at_once_imports_once_and_others_run_in_parallel(rig, workdir):
    src = shutil.copy(os.path.join(ROOT, "samples", "shop.sql.gz"), workdir)
    first, second = rig.template_in_background("twice", src), rig.template_in_background("twice", src)
    other = rig.template_in_background("alongside", src)
    # Different templates import side by side: both import servers run at once.
    rig.wait_for(lambda: len(rig.containers(role="import")) >= 2, timeout=60, what="two imports at once")
    assert sorted(rig.containers(role="import")) == sorted(import_container_name(rig.pool, name)
                                                           for name in ("alongside", "twice"))
    outputs = [proc.communicate(timeout=300)[0] for proc in (first, second, other)]
    assert [proc.returncode for proc in (first, second, other)] == [0, 0, 0], outputs
    # The second run on "twice" waited for the lock, then found the template up to date.
    assert sorted("CHANGED" in out for out in outputs[:2]) == [False, True], outputs
    assert b'"generation": 1' in rig.template_json("twice")
