"""Speed of an instance against the server's own pace (bench.py --only speed calls it).

The floor, measured in the same run on the same template: a snapshot of the
template's current generation and a plain container of the same image and
server arguments, started with the docker CLI, until a TCP ``SELECT 1`` with
a known account answers. No MyAAS code runs in it. The account is made by the
server itself: MariaDB and MySQL read an init file, PostgreSQL trusts TCP
through an hba file of its own.

Every MyAAS figure is the same wall time, from the start of a module's
process (as Ansible runs it on the host: an args file, the collection on
PYTHONPATH) to a TCP ``SELECT 1`` with the credentials it returned. The
controller's own cost is the last figure: new_db.yml against a one-task
playbook on the same host.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from rig import ROOT, sh

COLLECTIONS = os.path.join(ROOT, "build", "collections")
sys.path.insert(0, COLLECTIONS)

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine  # noqa: E402  pylint: disable=wrong-import-position

FLOOR_USER, FLOOR_PASSWORD = "floor", "floorpassword1"
FLOOR_PORT = 13990
GOALS = {"module": 1.3, "warm": 0.5, "ten": 6.0, "playbook": 1.8}


def median(samples):
    return statistics.median(samples)


def module_call(module, args):
    """(seconds, result) of one module process, as Ansible runs it on the host."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    try:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "plugins", "modules", module + ".py"), handle.name],
                              env=dict(os.environ, PYTHONPATH=COLLECTIONS), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, check=False)
        seconds = time.monotonic() - started
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("%s printed no JSON: %s %s" % (module, proc.stdout[-2000:], proc.stderr[-2000:]))
    assert not result.get("failed"), result.get("msg")
    return seconds, result


def login(engine, port, user, password, database=None):
    """Seconds of a TCP login and SELECT 1."""
    started = time.monotonic()
    assert engine.probe_login("127.0.0.1", port, user, password, database, timeout=2)
    return time.monotonic() - started


def current_generation_path(rig, template):
    meta = json.loads(rig.template_json(template))
    return [record for record in meta["generations"] if record["generation"] == meta["generation"]][0]["path"]


def floor_once(rig, template, engine_name, image, index, port=FLOOR_PORT):
    """Snapshot + a plain server container on the same image, until a TCP SELECT 1 answers (seconds)."""
    engine = get_engine(engine_name)
    # On the pool: a snapshot stays inside its file system.
    snapshot = os.path.join(rig.pool, "bench-floor-%d" % index)
    container = "myaas-bench-floor-%d" % index
    source = current_generation_path(rig, template)
    extra = engine.clone_args()
    if engine_name == "postgresql":
        hba, extra = "floor_hba.conf", extra + ["-c", "hba_file=%s/floor_hba.conf" % engine.datadir]
    entrypoint, args = engine.command(extra)
    started = time.monotonic()
    try:
        sh("btrfs", "subvolume", "snapshot", source, snapshot)
        owner = os.stat(snapshot)
        if engine_name == "postgresql":
            path = os.path.join(snapshot, hba)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("local all all trust\nhost all all all trust\n")
        else:
            path = os.path.join(snapshot, engine.init_file)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(engine.init_sql(FLOOR_USER, FLOOR_PASSWORD, None))
        os.chown(path, owner.st_uid, owner.st_gid)
        sh("docker", "run", "--detach", "--name", container, "--label", "org.myaas.pool=" + rig.pool,
           "--user", "%d:%d" % (owner.st_uid, owner.st_gid), "--publish", "127.0.0.1:%d:%d" % (port, engine.port),
           "--mount", "type=bind,source=%s,target=%s" % (snapshot, engine.datadir), "--entrypoint", entrypoint,
           image, *args)
        user, password = (("postgres", "") if engine_name == "postgresql" else (FLOOR_USER, FLOOR_PASSWORD))
        deadline = time.monotonic() + 60
        while True:
            try:
                if engine.probe_login("127.0.0.1", port, user, password, None, timeout=2):
                    return time.monotonic() - started
            except Exception:  # pylint: disable=broad-exception-caught
                assert time.monotonic() < deadline, sh("docker", "logs", container, check=False).stdout[-2000:]
            time.sleep(0.02)
    finally:
        sh("docker", "rm", "--force", container, check=False)
        sh("btrfs", "subvolume", "delete", snapshot, check=False)


def cold_once(rig, template, name, **options):
    """(seconds from module start to our own login, the module's step timings)."""
    seconds, result = module_call("myaas_instance", dict(options, name=name, template=template, pool=rig.pool))
    made = result["instance"]
    seconds += login(get_engine(made["engine"]), made["port"], made["user"], made["password"], made["database"])
    return seconds, made.get("timings", {})


def drop(rig, name):
    module_call("myaas_instance", {"name": name, "pool": rig.pool, "state": "absent"})


def engine_figures(rig, template, engine_name, image, runs, warm):
    """Floor, cold and (when ``warm``) warm figures of one template, interleaved so that noise hits all alike."""
    floors, colds, warms, steps, warm_steps = [], [], [], {}, {}
    for run in range(runs):
        floors.append(floor_once(rig, template, engine_name, image, run))
        seconds, timings = cold_once(rig, template, "cold-%s-%d" % (template, run))
        colds.append(seconds)
        for step, value in timings.items():
            steps.setdefault(step, []).append(value)
        drop(rig, "cold-%s-%d" % (template, run))
    if warm:
        set_warm(rig, template, engine_name, image, warm["src"], 1)
        for run in range(runs):
            # A floor between takes: the same noise, and time for the refill to finish.
            floors.append(floor_once(rig, template, engine_name, image, runs + run))
            wait_warm(rig, template, 1)
            seconds, timings = cold_once(rig, template, "warm-%s-%d" % (template, run))
            assert "take" in timings, "no warm clone was taken: %s" % timings
            warms.append(seconds)
            for step, value in timings.items():
                warm_steps.setdefault(step, []).append(value)
            drop(rig, "warm-%s-%d" % (template, run))
        set_warm(rig, template, engine_name, image, warm["src"], 0)
    figures = {"floor": median(floors), "floors": floors, "module": median(colds), "modules": colds,
               "steps": dict((step, median(values)) for step, values in steps.items())}
    if warm:
        figures.update(warm=median(warms), warms=warms,
                       warm_steps=dict((step, median(values)) for step, values in warm_steps.items()))
    return figures


def set_warm(rig, template, engine_name, image, src, count):
    module_call("myaas_template", {"name": template, "pool": rig.pool, "warm": count, "src": src,
                                   "engine": engine_name, "image": image})


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def wait_warm(rig, template, count, timeout=60):
    """Until ``count`` warm clones of ``template`` are ready (the refill runs after a module returns)."""
    deadline = time.monotonic() + timeout
    folder = os.path.join(rig.pool, "warm", template)
    while True:
        ready = [entry for entry in (os.listdir(folder) if os.path.isdir(folder) else [])
                 if not os.path.islink(os.path.join(folder, entry))
                 and "ready_at" in read(os.path.join(folder, entry, "warm.json"))]
        if len(ready) >= count:
            return
        assert time.monotonic() < deadline, "no warm clone of %s after %d s" % (template, timeout)
        time.sleep(0.05)


def at_once(work, count):
    """Seconds from calling ``work(index)`` for ``count`` indexes at once until the last one returned."""
    done = [False] * count

    def one(index):
        work(index)
        done[index] = True

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(done), "%d of %d failed (their errors are printed above)" % (done.count(False), count)
    return time.monotonic() - started


def ten_at_once(rig, template, count=10):
    """Seconds from starting ``count`` module processes at once until the last one's login answered."""
    elapsed = at_once(lambda index: cold_once(rig, template, "ten-%d" % index), count)
    for index in range(count):
        drop(rig, "ten-%d" % index)
    return elapsed


def ten_floors_at_once(rig, template, engine_name, image, count=10):
    """Seconds until the last of ``count`` plain containers started at once answers: what the engine and
    the CPU allow, without MyAAS."""
    return at_once(lambda index: floor_once(rig, template, engine_name, image, 100 + index,
                                            port=FLOOR_PORT - 1 - index), count)


def playbooks(rig, template, runs):
    """(new_db.yml's median wall time, a one-task playbook's) against the same host, interleaved."""
    one_task = os.path.join(rig.base, "one_task.yml")
    with open(one_task, "w", encoding="utf-8") as handle:
        handle.write("- name: One task\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
                     "    - name: An instance\n      myaas.myaas.myaas_instance:\n"
                     "        {name: '{{ instance }}', template: '{{ template }}', pool: '{{ myaas_pool }}'}\n")
    new_db, single = [], []
    for run in range(runs):
        for samples, playbook, name in ((new_db, os.path.join(ROOT, "playbooks", "new_db.yml"), "pb-new-%d" % run),
                                        (single, one_task, "pb-one-%d" % run)):
            started = time.monotonic()
            done = rig.playbook(playbook, "-e", "template=" + template, "-e", "instance=" + name)
            samples.append(time.monotonic() - started)
            assert done.returncode == 0, done.stdout[-2000:]
            drop(rig, name)
    return median(new_db), median(single)


def speed(rig, templates, runs):
    """Every figure of the speed section; ``templates``: {engine: (template, image, dump)}."""
    figures = {"engines": {}}
    for engine_name, (template, image, src) in sorted(templates.items()):
        figures["engines"][engine_name] = engine_figures(rig, template, engine_name, image, runs, {"src": src})
    mariadb = templates["mariadb"][0]
    figures["ten_floor"] = figures["engines"]["mariadb"]["floor"]
    figures["ten"] = ten_at_once(rig, mariadb)
    figures["ten_plain"] = ten_floors_at_once(rig, mariadb, "mariadb", templates["mariadb"][1])
    figures["new_db"], figures["one_task"] = playbooks(rig, mariadb, max(3, runs // 2))
    return figures


def quota_cost(rig, template, runs):
    """A clone's module call with and without a disk quota, the same pool, interleaved (seconds, medians).

    First with the pool's quota groups off, then on (turned on by the first
    max_bytes), with and without a limit of the instance's own.
    """
    plain, unlimited, limited = [], [], []
    for run in range(runs):
        plain.append(cold_once(rig, template, "q-off-%d" % run)[0])
        drop(rig, "q-off-%d" % run)
    drop(rig, "q-first")
    cold_once(rig, template, "q-first", max_bytes="1G")       # turns the pool's quota groups on
    drop(rig, "q-first")
    for run in range(runs):
        unlimited.append(cold_once(rig, template, "q-on-%d" % run)[0])
        limited.append(cold_once(rig, template, "q-max-%d" % run, max_bytes="1G")[0])
        drop(rig, "q-on-%d" % run)
        drop(rig, "q-max-%d" % run)
    return {"quotas_off": median(plain), "quotas_on": median(unlimited), "max_bytes": median(limited),
            "samples": {"quotas_off": plain, "quotas_on": unlimited, "max_bytes": limited}}


def quota_goals(figures):
    if "quota" not in figures:
        return []
    found = figures["quota"]
    ratio = found["max_bytes"] / found["quotas_off"]
    return [("a clone with max_bytes / one on a pool without quotas", "%.2f (%.3f s vs %.3f s; quotas on, no "
             "limit: %.3f s)" % (ratio, found["max_bytes"], found["quotas_off"], found["quotas_on"]),
             "<= 1.1", ratio <= 1.1)]


def goals(figures):
    """(figure, measured, goal, met) rows."""
    if "speed" not in figures:
        return quota_goals(figures)
    speed_figures = figures["speed"]
    rows = []
    for engine_name, found in sorted(speed_figures["engines"].items()):
        ratio = found["module"] / found["floor"]
        rows.append(("%s: module call to our own login / floor" % engine_name, "%.2f (%.3f s vs %.3f s; steps %s)" % (
            ratio, found["module"], found["floor"], ", ".join("%s %.3f" % item for item in found["steps"].items())),
            "<= %.1f" % GOALS["module"], ratio <= GOALS["module"]))
        if "warm" in found:
            ratio = found["warm"] / found["floor"]
            rows.append(("%s: a warm clone taken, to our own login / floor" % engine_name,
                         "%.2f (%.3f s vs %.3f s; steps %s)" % (ratio, found["warm"], found["floor"], ", ".join(
                             "%s %.3f" % item for item in found["warm_steps"].items())),
                         "<= %.1f" % GOALS["warm"], ratio <= GOALS["warm"]))
    ratio = speed_figures["ten"] / speed_figures["ten_floor"]
    rows.append(("ten instances asked at once, until the last login / floor", "%.2f (%.2f s vs %.3f s; ten plain "
                 "containers at once: %.2f s)" % (ratio, speed_figures["ten"], speed_figures["ten_floor"],
                                                  speed_figures["ten_plain"]),
                 "<= %.0f" % GOALS["ten"], ratio <= GOALS["ten"]))
    ratio = speed_figures["new_db"] / speed_figures["one_task"]
    rows.append(("new_db.yml / a one-task playbook, same host", "%.2f (%.2f s vs %.2f s)" % (
        ratio, speed_figures["new_db"], speed_figures["one_task"]), "<= %.1f" % GOALS["playbook"],
        ratio <= GOALS["playbook"]))
    return rows + quota_goals(figures)
