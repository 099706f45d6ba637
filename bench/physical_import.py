"""Physical against logical import of one database, next to the disk's floor (bench.py calls it).

The database is the bench's large template. Its physical backup is taken by
mariadb-backup from a running instance of it (as production's backup job
would take it from the server), then imported as a template of its own. The
floor is a plain copy of the template's datadir on the same disk (cp
--reflink=never, synced): no import can write the same bytes faster.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.mariadb import MariaDB
from rig import sh


def _timed(argv):
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def logical_phases(rig, dump, image, database, timings):
    """Where a logical import's seconds go (seconds per phase, and each phase's share of the load).

    - decompress: gzip -dc of the dump, to /dev/null;
    - client and SQL layer: the same dump into a server of the same image and settings whose tables are
      BLACKHOLE (the client sends, the server parses and executes every statement, nothing is stored);
    - insert and index build: the import's load minus that;
    - flush: the import's clean shutdown (and scrub).
    """
    packed = dump + ".gz"
    with open(packed, "wb") as out:
        subprocess.run(["gzip", "-1", "-c", dump], stdout=out, check=True)
    decompress = _timed(["sh", "-c", "gzip -dc '%s' > /dev/null" % packed])
    os.unlink(packed)
    sql_layer = _blackhole_load(rig, dump, image, database)
    load = timings["load"]
    phases = {"decompress_seconds": decompress, "client_and_sql_layer_seconds": sql_layer,
              "insert_and_index_build_seconds": max(0.0, load - sql_layer), "flush_seconds": timings["shutdown_and_scrub"],
              "load_seconds": load}
    phases["shares_of_load"] = dict((key, round(phases[key] / load, 3)) for key in (
        "decompress_seconds", "client_and_sql_layer_seconds", "insert_and_index_build_seconds"))
    return phases


@contextlib.contextmanager
def _bench_server(rig, image, extra_args=()):
    """A MariaDB server of ``image`` with the import's bulk-load settings, on no network: yields its client argv."""
    engine = MariaDB()
    entrypoint, args = engine.command(engine.bulk_load_args({}, 4 * 2 ** 30) + list(extra_args))
    uid = sh("docker", "run", "--rm", "--entrypoint", "id", image, "-u", engine.account).stdout.strip()
    datadir = tempfile.mkdtemp(prefix="bench-server-", dir=rig.base)
    os.chown(datadir, int(uid), int(uid))
    name = "myaas-bench-server-%d-%s" % (os.getpid(), os.path.basename(datadir))
    sh("docker", "run", "--detach", "--name", name, "--network", "none", "--user", "%s:%s" % (uid, uid),
       "--label", "org.myaas.pool=" + rig.pool, "--volume", "%s:%s" % (datadir, engine.datadir),
       "--entrypoint", entrypoint, image, *args)
    try:
        client = ["docker", "exec", "--interactive", "--user", "root", name] + engine.local_client()
        deadline = time.monotonic() + 120
        while subprocess.run(client + ["--execute", "SELECT 1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             check=False).returncode != 0:
            assert time.monotonic() < deadline, "the bench server did not start"
            time.sleep(0.2)
        yield client
    finally:
        subprocess.run(["docker", "rm", "--force", name], stdout=subprocess.DEVNULL, check=False)
        shutil.rmtree(datadir, ignore_errors=True)


def _blackhole_load(rig, dump, image, database):
    with _bench_server(rig, image, ["--plugin-load-add=ha_blackhole"]) as client:
        sh(*(client + ["--execute", "CREATE DATABASE `%s`" % database]))
        started = time.monotonic()
        with open(dump, "rb") as source:
            rewrite = subprocess.Popen(["sed", "s/ENGINE=InnoDB/ENGINE=BLACKHOLE/"], stdin=source,
                                       stdout=subprocess.PIPE)
            subprocess.run(client + [database], stdin=rewrite.stdout, stdout=subprocess.DEVNULL, check=True)
            rewrite.wait()
        return time.monotonic() - started


def _deal_rows(dump, count, prefix, session):
    """(what precedes the rows, what follows them, ``count`` files of the INSERT lines dealt round-robin)."""
    head, tail = [], []
    parts = ["%s%d.sql" % (prefix, index) for index in range(count)]
    outs = [open(path, "wb") for path in parts]  # pylint: disable=consider-using-with
    try:
        for out in outs:
            out.write(session)
        dealt = 0
        with open(dump, "rb") as source:
            for line in source:
                if line.startswith(b"INSERT INTO "):
                    outs[dealt % count].write(line)
                    dealt += 1
                elif not dealt:
                    head.append(line)
                elif not line.startswith(b"SET "):      # not the dump's session restore: ours is a new session
                    tail.append(line)
    finally:
        for out in outs:
            out.close()
    return b"".join(head), b"".join(tail), parts


def parallel_load(rig, dump, image, database, connections=(1, 2, 4)):
    """Seconds to load the dump's rows on 1, 2, ... connections at once, and the speedup over one.

    The best case for loading a dump on several connections: the schema is
    made first, then the dump's INSERT statements are dealt round-robin to the
    connections (rows of one table on several connections too), then what
    follows the rows (views, triggers). Only the rows are timed.
    """
    session = b"SET NAMES utf8mb4; SET FOREIGN_KEY_CHECKS=0; SET UNIQUE_CHECKS=0;\n"
    seconds = {}
    for count in connections:
        head, tail, parts = _deal_rows(dump, count, os.path.join(rig.base, "rows-%d-" % count), session)
        try:
            with _bench_server(rig, image) as client:
                sh(*(client + ["--execute", "CREATE DATABASE `%s`" % database]))
                subprocess.run(client + [database], input=head, stdout=subprocess.DEVNULL, check=True)
                started = time.monotonic()
                loaders = []
                for path in parts:
                    with open(path, "rb") as part:
                        loaders.append(subprocess.Popen(client + [database], stdin=part, stdout=subprocess.DEVNULL))
                failed = [loader.args for loader in loaders if loader.wait() != 0]
                assert not failed, "a connection failed to load its rows"
                seconds[count] = time.monotonic() - started
                subprocess.run(client + [database], input=session + tail, stdout=subprocess.DEVNULL, check=True)
        finally:
            for path in parts:
                os.unlink(path)
    return {"seconds": dict((str(count), value) for count, value in seconds.items()),
            "speedup": dict((str(count), seconds[connections[0]] / value) for count, value in seconds.items()),
            "cpus": os.cpu_count()}


def take_backup(container, path, *options):
    """A mariadb-backup of the MyAAS instance running in ``container``, streamed (xbstream) into ``path``."""
    # As the OS user root, whom the clone's local root logs in as (unix socket), on MyAAS's socket.
    with open(path, "wb") as out:
        taken = subprocess.run(["docker", "exec", "--user", "root", container, "mariadb-backup", "--backup",
                                "--stream=xbstream", "--user=root", "--socket=/tmp/mysqld.sock", "--target-dir=/tmp"]
                               + list(options), stdout=out, stderr=subprocess.PIPE, check=False)
    assert taken.returncode == 0, taken.stderr.decode("utf-8", "replace")[-2000:]


def physical_vs_logical(rig, template, logical_seconds, timings):
    """Seconds of the logical import, the physical import of the same database, and the floor; and ratios."""
    instance = rig.instance("physical-source", template=template)
    assert not instance.get("failed"), instance.get("msg")
    backup = os.path.join(rig.base, "%s.xbstream" % template)
    try:
        take_backup(instance["instance"]["container"], backup)
    finally:
        rig.instance("physical-source", state="absent")
    physical = rig.template(template + "-physical", backup)
    assert not physical.get("failed"), physical.get("msg")
    made = physical["template"]
    floor_dir = os.path.join(rig.pool, "floor-copy")
    sh("sync")
    started = time.monotonic()
    sh("cp", "-a", "--reflink=never", made["path"], floor_dir)
    sh("sync")
    floor = time.monotonic() - started
    shutil.rmtree(floor_dir)
    os.unlink(backup)
    rig.template(template + "-physical", None, state="absent")
    return {"logical_seconds": logical_seconds, "physical_seconds": made["import_seconds"], "copy_floor_seconds": floor,
            "physical_steps": made["timings"], "logical_steps": timings, "bytes": made["size_bytes"],
            "speedup": logical_seconds / made["import_seconds"], "floor_ratio": made["import_seconds"] / floor}


def dumped_import(rig, template, connections=(1, 2)):
    """The template's database dumped by mariadb-dump, then imported by myaas_template on 1, 2, ... connections.

    The sample dumps are not a dump tool's output, so MyAAS loads them on one
    connection; a real tool's dump of the same database has its rows dealt.
    Returns seconds of each import and of its load step, and the speedups over the first.
    """
    instance = rig.instance("dumped-source", template=template)
    assert not instance.get("failed"), instance.get("msg")
    dump = os.path.join(rig.base, "%s-dumped.sql" % template)
    try:
        with open(dump, "wb") as out:
            taken = subprocess.run(["docker", "exec", "--user", "root", instance["instance"]["container"],
                                    "mariadb-dump", "--user=root", "--socket=/tmp/mysqld.sock", "--single-transaction",
                                    "--databases", instance["instance"]["database"]],
                                   stdout=out, stderr=subprocess.PIPE, check=False)
        assert taken.returncode == 0, taken.stderr.decode("utf-8", "replace")[-2000:]
    finally:
        rig.instance("dumped-source", state="absent")
    figures = {"dump_bytes": os.path.getsize(dump), "import_seconds": {}, "load_seconds": {}, "cpus": os.cpu_count()}
    try:
        for count in connections:
            name = "%s-dumped-%d" % (template, count)
            made = rig.template(name, dump, restore_jobs=count)
            assert not made.get("failed"), made.get("msg")
            assert made["template"]["load_connections"] == count, made["template"]
            figures["import_seconds"][str(count)] = made["template"]["import_seconds"]
            figures["load_seconds"][str(count)] = made["template"]["timings"]["load"]
            rig.template(name, None, state="absent")
    finally:
        os.unlink(dump)
    first = str(connections[0])
    figures["load_speedup"] = dict((key, figures["load_seconds"][first] / value)
                                   for key, value in figures["load_seconds"].items())
    return figures
