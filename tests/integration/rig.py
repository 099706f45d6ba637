"""Helpers that drive the collection the way users do: ansible and ansible-playbook."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pymysql
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Where the host role records the pid of a dockerd it started (host_docker_pidfile).
DOCKERD_PIDFILE = "/run/myaas-dockerd.pid"
ENV = dict(os.environ)
ENV.update({
    "PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ["PATH"],
    "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, "build", "collections"),
    "ANSIBLE_HOME": os.path.join(ROOT, "build", "ansible-home"),
    "ANSIBLE_LOCALHOST_WARNING": "false",
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_FORCE_COLOR": "0",
    # Group myaas is this machine, reached locally as root (what `make demo` uses).
    "ANSIBLE_INVENTORY": os.path.join(ROOT, "playbooks", "inventory", "localhost.yml"),
})


def sh(*argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def login_refused(port, user, password):
    """True if a MariaDB or MySQL server on 127.0.0.1:``port`` refuses the login (no password: ``""``)."""
    try:
        pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, connect_timeout=5).close()
    except pymysql.err.OperationalError as exc:
        # 1045 access denied (1698 without a password); 1130 no such account for this host; 3118 (MySQL) and 4151 (MariaDB) account locked
        if exc.args[0] in (1045, 1130, 1698, 3118, 4151):
            return True
        raise
    return False


def files_holding(path, needles):
    """The files under ``path`` (relative, sorted) that hold any of ``needles`` (str or bytes), byte for byte.

    Every file of a template's subvolume is read, whatever its kind: the
    search that proves masking left no original value behind.
    """
    with tempfile.NamedTemporaryFile() as patterns:
        patterns.write(b"".join((n if isinstance(n, bytes) else n.encode()) + b"\n" for n in needles))
        patterns.flush()
        found = sh("grep", "--recursive", "--files-with-matches", "--text", "--fixed-strings", "--file",
                   patterns.name, path, check=False)
    assert found.returncode in (0, 1), found.stdout
    return sorted(os.path.relpath(name, path) for name in found.stdout.splitlines())


def descendants(pid):
    """The pids of every process below ``pid`` (children, their children, ...)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def warm_slots(pool, template):
    """{slot: its warm.json} of the ready warm clones of ``template`` on ``pool`` (not links to taken ones)."""
    folder = os.path.join(pool, "warm", template)
    found = {}
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        record = os.path.join(folder, entry, "warm.json")
        if not os.path.islink(os.path.join(folder, entry)) and os.path.exists(record):
            with open(record, encoding="utf-8") as handle:
                found[entry] = json.load(handle)
    return dict((slot, record) for slot, record in found.items() if record.get("ready_at"))


def docker_is_up():
    return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          check=False).returncode == 0


def ansible_playbook(playbook, *args, env=None):
    return subprocess.run(["ansible-playbook", os.path.join(ROOT, playbook)] + list(args), cwd=ROOT,
                          env=dict(ENV, **(env or {})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)


def module_argv(module, args, check_mode=False, diff=False, verbosity=0):
    argv = ["ansible", "localhost", "-m", "myaas.myaas." + module, "-a", json.dumps(args)]
    return argv + (["--check"] if check_mode else []) + (["--diff"] if diff else []) + \
        (["-" + "v" * verbosity] if verbosity else [])


def run_module(module, args, check_mode=False, diff=False, env=None):
    """Run a module through `ansible`; return its result dict (with 'failed' set on failure)."""
    proc = subprocess.run(module_argv(module, args, check_mode, diff), cwd=ROOT,
                          env=dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                                   **(env or {})),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible printed no JSON (rc %d): %s %s" % (proc.returncode, proc.stdout, proc.stderr))
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    result["rc"] = proc.returncode
    return result


class Rig:
    def __init__(self, base, pool, image, vars_file, provision):
        self.base = base
        self.pool = pool
        self.image = image
        self.vars_file = vars_file
        self.provision = provision

    # -- modules ------------------------------------------------------------
    def template(self, name, src, **options):
        args = dict(name=name, src=src, pool=self.pool, image=self.image)
        args.update(options)
        check_mode = args.pop("check_mode", False)
        return run_module("myaas_template", args, check_mode=check_mode, diff=True)

    def sample_template(self, name):
        """The bundled sample imported as template ``name``; its metadata."""
        result = self.template(name, SAMPLE)
        assert not result.get("failed"), result
        return result["template"]

    def template_in_background(self, name, src, **options):
        """Start an import and return its process (stdout and stderr merged, text)."""
        args = dict(name=name, src=src, pool=self.pool, image=self.image)
        args.update(options)
        return subprocess.Popen(module_argv("myaas_template", args), cwd=ROOT, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def instance(self, name, **options):
        args = dict(name=name, pool=self.pool)
        args.update(options)
        check_mode = args.pop("check_mode", False)
        return run_module("myaas_instance", args, check_mode=check_mode, diff=True)

    def info(self, **options):
        return run_module("myaas_info", dict(options, pool=self.pool))

    def playbook(self, playbook, *args):
        return ansible_playbook(playbook, "-e", "myaas_pool=" + self.pool, *args)

    # -- looking at the host -------------------------------------------------
    def template_json(self, name):
        with open(os.path.join(self.pool, "templates", name, "template.json"), "rb") as handle:
            return handle.read()

    def containers(self, status=None, **labels):
        argv = ["docker", "ps", "--all", "--format", "{{.Names}}", "--filter", "label=org.myaas.pool=" + self.pool]
        for key, value in labels.items():
            argv += ["--filter", "label=org.myaas.%s=%s" % (key, value)]
        return sh(*(argv + (["--filter", "status=" + status] if status else []))).stdout.split()

    def volumes(self, **labels):
        argv = ["docker", "volume", "ls", "--quiet", "--filter", "label=org.myaas.pool=" + self.pool]
        for key, value in labels.items():
            argv += ["--filter", "label=org.myaas.%s=%s" % (key, value)]
        return sh(*argv).stdout.split()

    def import_events_since(self, since):
        """This pool's import containers created since ``since`` (unix seconds; docker's own event log)."""
        out = sh("docker", "events", "--since", str(since), "--until", str(int(time.time()) + 1),
                 "--filter", "type=container", "--filter", "event=create",
                 "--filter", "label=org.myaas.role=import", "--filter", "label=org.myaas.pool=" + self.pool,
                 "--format", "{{.Actor.Attributes.name}}").stdout
        return out.split()

    def subvolumes(self):
        out = sh("btrfs", "subvolume", "list", "-o", self.pool).stdout
        return sorted(line.split(" path ", 1)[1] for line in out.splitlines() if " path " in line)

    def gone(self, name):
        """Nothing of the instance is left: container, volume, subvolume, folder."""
        return (not self.containers(instance=name) and not self.volumes(instance=name)
                and not [p for p in self.subvolumes() if p.startswith("instances/%s/" % name)]
                and not os.path.exists(os.path.join(self.pool, "instances", name)))

    def require_own_dockerd(self):
        """Skip, before anything is made, unless dockerd is one the host role started here."""
        try:
            with open(DOCKERD_PIDFILE, encoding="utf-8") as handle:
                os.kill(int(handle.read().strip()), 0)
        except (OSError, ValueError):
            pytest.skip("dockerd was not started by the host role on this host (no live %s); this test stops "
                        "only a dockerd it started" % DOCKERD_PIDFILE)

    def stop_dockerd(self):
        """Stop the dockerd that the host role started (by the pid it recorded, never by name).

        A dockerd that something else runs (systemd, a user's own) is not ours
        to stop: the test that needs this is skipped there.
        """
        try:
            with open(DOCKERD_PIDFILE, encoding="utf-8") as handle:
                pid = int(handle.read().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            pytest.skip("dockerd was not started by the host role on this host (no live %s); this test stops "
                        "only a dockerd it started" % DOCKERD_PIDFILE)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not docker_is_up()

    def start_dockerd(self):
        """Let the host role start dockerd again, as it does on hosts without an init system."""
        again = ansible_playbook("playbooks/provision.yml", "-e", "@" + self.vars_file)
        assert again.returncode == 0, again.stdout[-3000:]

    def restart_dockerd(self):
        self.stop_dockerd()
        self.start_dockerd()

    def parallel_instances(self, workdir, template, count, prefix="many-"):
        """Ask for ``count`` instances at once, as Ansible forks do (one inventory host each).

        Returns (the playbook run, its wall time, the instances that came back).
        """
        inventory = os.path.join(workdir, prefix + "hosts.json")
        with open(inventory, "w", encoding="utf-8") as handle:
            json.dump({"all": {"hosts": dict(("%s%d" % (prefix, i), {}) for i in range(count)),
                               "vars": {"ansible_connection": "local",
                                        "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}, handle)
        playbook = os.path.join(workdir, prefix + "play.yml")
        with open(playbook, "w", encoding="utf-8") as handle:
            handle.write("- hosts: all\n  gather_facts: false\n  tasks:\n"
                         "    - myaas.myaas.myaas_instance: {name: '{{ inventory_hostname }}', template: %s, pool: %s}\n"
                         "      register: db\n"
                         "    - ansible.builtin.copy: {content: '{{ db.instance | to_json }}', mode: '0600',\n"
                         "                             dest: '%s/{{ inventory_hostname }}.json'}\n"
                         % (template, self.pool, workdir))
        started = time.monotonic()
        run = subprocess.run(["ansible-playbook", "-i", inventory, "--forks", str(count), playbook], cwd=ROOT,
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        elapsed = time.monotonic() - started
        instances = []
        for i in range(count):
            path = os.path.join(workdir, "%s%d.json" % (prefix, i))
            if os.path.exists(path):
                with open(path, encoding="utf-8") as handle:
                    instances.append(json.load(handle))
        return run, elapsed, instances

    @contextlib.contextmanager
    def small_pool(self, workdir, size="1G"):
        """A second, small pool (a loop file of ``size``), removed on exit with what ran on it."""
        pool = os.path.join(workdir, "small")
        image = os.path.join(workdir, "small.img")
        os.makedirs(pool)
        sh("truncate", "--size", size, image)
        sh("mkfs.btrfs", "-q", image)
        sh("mount", "-o", "loop,noatime", image, pool)
        try:
            yield pool
        finally:
            for container in sh("docker", "ps", "-aq", "--filter", "label=org.myaas.pool=" + pool).stdout.split():
                sh("docker", "rm", "--force", container, check=False)
            sh("umount", pool)

    def remove_everything(self):
        for container in self.containers():
            sh("docker", "rm", "--force", "--volumes", container, check=False)
        for volume in self.volumes():
            sh("docker", "volume", "rm", "--force", volume, check=False)

    # -- databases -----------------------------------------------------------
    @staticmethod
    def connect(instance, database=None, password=None):
        return pymysql.connect(host="127.0.0.1", port=instance["port"], user=instance["user"],
                               password=password or instance["password"],
                               database=database or instance["database"], autocommit=True, connect_timeout=5)

    @staticmethod
    def connect_pg(instance, database=None, password=None):
        import psycopg2  # pylint: disable=import-outside-toplevel
        connection = psycopg2.connect(host="127.0.0.1", port=instance["port"], user=instance["user"],
                                      password=password or instance["password"],
                                      dbname=database or instance["database"], connect_timeout=5)
        connection.autocommit = True
        return connection

    def query(self, instance, sql, database=None):
        connection = (self.connect_pg if instance.get("engine") == "postgresql" else self.connect)(instance, database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def wait_for(self, predicate, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for " + what)


PG_IMAGE = "myaas/postgresql:15"
PG_CUSTOMERS = 3000
# The bundled sample dump, and how many customers it holds.
SAMPLE = os.path.join(ROOT, "samples", "shop.sql.gz")
SAMPLE_CUSTOMERS = 6000
# The images users pull by default, and MyAAS's offline ones: the whole
# lifecycle is tested on each, for every engine and on a second MariaDB.
OFFICIAL_IMAGES = {"mariadb": "mariadb:10.11", "postgresql": "postgres:15", "mysql": "mysql:9.7"}
FLAVOURS = [
    ("mariadb", "mariadb:10.11"),
    ("mariadb", "myaas/mariadb:10.11"),
    ("postgresql", "postgres:15"),
    ("postgresql", "myaas/postgresql:15"),
    ("mysql", "mysql:9.7"),
    ("mysql", "myaas/mysql:9.7"),
    ("mariadb", "mariadb:11.8"),
    ("mariadb", "myaas/mariadb:11.8"),
]
# The offline images the rig's host role builds (the first of each engine is
# the one the role records for it); PostgreSQL 17 is built for its own checks.
OFFLINE_IMAGES = [("mariadb", "myaas/mariadb:10.11"), ("postgresql", PG_IMAGE), ("mysql", "myaas/mysql:9.7"),
                  ("mariadb", "myaas/mariadb:11.8"), ("postgresql", "myaas/postgresql:17")]
# Stand-ins for the official images on machines that reach no registry (see
# its README); CI has shared/ beside the clone.
STANDIN_BUILD = os.environ.get("MYAAS_STANDIN_BUILD",
                               os.path.join(os.path.dirname(ROOT), "shared", "official-images", "build.sh"))


def official_images():
    """Every official image the tests use, the engines' defaults first."""
    wanted = list(OFFICIAL_IMAGES.values()) + [image for _engine, image in FLAVOURS if not image.startswith("myaas/")]
    wanted += ["postgres:17"]      # beside myaas/postgresql:17, for tests that compare the two
    return sorted(set(wanted), key=wanted.index)


def ensure_official_images():
    """Pull the official images; without a registry, build the stand-ins under their names."""
    missing = [image for image in official_images()
               if sh("docker", "image", "inspect", image, check=False).returncode != 0]
    missing = [image for image in missing if sh("docker", "pull", "--quiet", image, check=False).returncode != 0]
    if not missing:
        return
    if not os.path.exists(STANDIN_BUILD):
        raise AssertionError("%s cannot be pulled here and there is no stand-in recipe at %s (set "
                             "MYAAS_STANDIN_BUILD): the official-image tests need them." % (missing, STANDIN_BUILD))
    if not shutil.which("mmdebstrap"):
        sh("apt-get", "install", "-y", "-q", "mmdebstrap")
    built = sh("bash", STANDIN_BUILD, *missing, check=False)
    assert built.returncode == 0, built.stdout[-3000:]


def provision(prefix="myaas-it-", size="12G", image="myaas/mariadb:10.11"):
    """A rig of its own: loop-file pool under /tmp, dockerd and the image, made by the host role.

    Returns (rig, dockerd_was_up); hand both to ``teardown`` when done.
    """
    dockerd_was_up = docker_is_up()
    base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    host_vars = {
        "host_pool_path": os.path.join(base, "pool"),
        "host_pool_file": os.path.join(base, "pool.img"),
        "host_pool_size": size,
        "host_pool_label": prefix.strip("-"),
        "host_pool_persist": False,
        "host_images": [{"name": image, "engine": "mariadb", "source": "build"}] + [
            {"name": name, "engine": engine, "source": "build"} for engine, name in OFFLINE_IMAGES if name != image],
        "host_python_libs_from": "pip",
    }
    vars_file = os.path.join(base, "vars.json")
    with open(vars_file, "w", encoding="utf-8") as handle:
        json.dump(host_vars, handle)
    result = ansible_playbook("playbooks/provision.yml", "-e", "@" + vars_file)
    return Rig(base, host_vars["host_pool_path"], image, vars_file, result), dockerd_was_up


def teardown(rig, dockerd_was_up):
    """Remove what the rig's session made: containers, volumes, the pool's mount, files, dockerd."""
    rig.remove_everything()
    if os.path.ismount(rig.pool):
        sh("umount", rig.pool)
    shutil.rmtree(rig.base, ignore_errors=True)
    if not dockerd_was_up:
        subprocess.run([os.path.join(ROOT, "tests", "stop_dockerd.sh")], check=False)
