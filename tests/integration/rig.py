"""Helpers that drive the collection the way users do: ansible and ansible-playbook."""

import json
import os
import subprocess
import time

import pymysql

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ)
ENV.update({
    "PATH": os.path.join(ROOT, ".venv", "bin") + os.pathsep + os.environ["PATH"],
    "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, "build", "collections"),
    "ANSIBLE_HOME": os.path.join(ROOT, "build", "ansible-home"),
    "ANSIBLE_LOCALHOST_WARNING": "false",
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_FORCE_COLOR": "0",
})


def sh(*argv, check=True, **kwargs):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


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


def run_module(module, args, check_mode=False, diff=False):
    """Run a module through `ansible`; return its result dict (with 'failed' set on failure)."""
    proc = subprocess.run(module_argv(module, args, check_mode, diff), cwd=ROOT,
                          env=dict(ENV, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
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

    def containers(self, **labels):
        argv = ["docker", "ps", "--all", "--format", "{{.Names}}", "--filter", "label=org.myaas.pool=" + self.pool]
        for key, value in labels.items():
            argv += ["--filter", "label=org.myaas.%s=%s" % (key, value)]
        return sh(*argv).stdout.split()

    def volumes(self):
        return sh("docker", "volume", "ls", "--quiet", "--filter", "label=org.myaas.pool=" + self.pool).stdout.split()

    def subvolumes(self):
        out = sh("btrfs", "subvolume", "list", "-o", self.pool).stdout
        return sorted(line.split(" path ", 1)[1] for line in out.splitlines() if " path " in line)

    def remove_everything(self):
        for container in self.containers():
            sh("docker", "rm", "--force", container, check=False)
        for volume in self.volumes():
            sh("docker", "volume", "rm", "--force", volume, check=False)

    # -- databases -----------------------------------------------------------
    @staticmethod
    def connect(instance, database=None, password=None):
        return pymysql.connect(host="127.0.0.1", port=instance["port"], user=instance["user"],
                               password=password or instance["password"],
                               database=database or instance["database"], autocommit=True, connect_timeout=5)

    def query(self, instance, sql, database=None):
        connection = self.connect(instance, database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            connection.close()

    def wait_for(self, predicate, timeout=30, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for " + what)
