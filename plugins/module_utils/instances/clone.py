# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps of a clone: snapshot, port, container, first login.

CloneSteps is the half of the instance manager that makes a server run on
new data; the manager (instances.py) decides when, and cleans up when a step
fails.
"""

from __future__ import annotations

import glob
import os
import secrets
import string
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates.generations import pick
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import FileLock, read_json, write_init_file, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name
from ansible_collections.myaas.myaas.plugins.module_utils.instances import quota
from ansible_collections.myaas.myaas.plugins.module_utils.instances.ports import pick_port
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import PortTaken, labels

METADATA = "instance.json"
SECRET = "secret.json"
# Warm clones: <pool>/warm/<template>/<slot>/, their record beside their data.
WARM_FOLDER = "warm"
WARM_METADATA = "warm.json"
# Seconds a clone gets to shut down cleanly when stopped.
STOP_TIMEOUT = 60


def instance_paths(pool, name):
    directory = pool.instance_dir(name)
    return {
        "dir": directory,
        "data": os.path.join(directory, "data"),
        "meta": os.path.join(directory, METADATA),
        "secret": os.path.join(directory, SECRET),
    }


def load_instance(pool, name):
    """An instance's metadata, or None when there is no such instance."""
    return read_json(instance_paths(pool, name)["meta"])


def load_instance_or_fail(pool, name):
    meta = load_instance(pool, name)
    if meta is None:
        raise MyaasError("Instance %s does not exist on pool %s (list them with playbook list_dbs.yml)."
                         % (name, pool.path))
    return meta


def load_template(pool, name):
    # The importer's own file name; not imported from there, which would load
    # all of the importer (0.04 s) into every instance request.
    template = read_json(os.path.join(pool.template_dir(name), "template.json"))
    if template is None:
        if glob.glob(os.path.join(pool.template_dir(name), ".importing-*")):
            raise MyaasError("Template %s is being imported for the first time and has no data yet; "
                             "ask again when the import finished." % name)
        raise MyaasError("Template %s does not exist on pool %s. Import it first (module "
                         "myaas.myaas.myaas_template, playbook import_templates.yml)." % (name, pool.path))
    return template


def new_password(length=24):
    # Letters and digits only: the password goes into DSNs and shell commands.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _position in range(length))


def default_database(template, engine):
    """Where a client lands: the schema the dump was loaded into, else the dump's first own one."""
    return (template["options"]["database"] or (template.get("databases") or [None])[0]
            or engine.default_database)


class CloneSteps:
    """What an instance's manager knows, and the steps that bring its server up on new data."""

    role = "instance"   # the containers' and volumes' org.myaas.role label

    def __init__(self, pool, docker, engines, params, check_mode, now=time.time):
        self.pool = pool
        self.docker = docker
        self.engines = engines          # callable: engine name -> Engine
        self.params = params
        self.check_mode = check_mode
        self.now = now
        self.name = params["name"]
        self.paths = instance_paths(pool, self.name)
        self.container = container_name(pool.path, self.name)
        self.timings = {}   # seconds per step of a clone, returned so the slowest is visible
        # Seconds before the clone's steps: the module's process start and imports, the lock's wait.
        self.steps_before_clone = {}
        self.clone_done = None  # monotonic time when the login answered: what follows is metadata
        self.warm_link = None   # the slot path of the warm clone this instance was taken from
        self.interrupted_take = None    # the slot record of a warm clone whose take here was killed
        self.after_return = None  # work for after the module returned (refilling warm clones)
        self.upgrade = None  # the report of an upgrade rehearsal, when the clone was upgraded

    def _lock(self, kind="instance", name=None):
        return FileLock(self.pool.lock_path(kind, name or self.name), self.params["lock_timeout"],
                        "%s %s" % (kind.capitalize(), name or self.name))

    def _wanted_generation(self, template):
        """The record of the generation this run asks for: ``generation``, ``as_of``, else the current one."""
        return pick(template, self.params.get("generation"), self.params.get("as_of"), self.now())

    def _clone_and_start(self, meta, secret, engine, create, bookmark_path=None):
        """Snapshot the template's generation (or a bookmark), start the server, wait for a login.

        Returns (generation, seconds).
        """
        started = mark = time.monotonic()
        self.timings.update(self.steps_before_clone)

        def lap(step):
            nonlocal mark
            now = time.monotonic()
            self.timings[step] = round(now - mark, 4)
            mark = now

        if bookmark_path:
            self.pool.snapshot(bookmark_path, self.paths["data"])
            generation, foreign = meta["generation"], []
            lap("snapshot")
        else:
            template, record = self._snapshot(meta["template"])
            generation, foreign = record["generation"], (record.get("source") or {}).get("accounts", [])
            lap("snapshot")
            if meta.get("upgrade_to"):
                # Before the instance's account exists: the upgraded data is
                # checked by the server's local superuser, on no network.
                # Imported here: a rehearsal's code (and what it needs of the
                # importer) costs every other request 0.04 s of imports.
                from ansible_collections.myaas.myaas.plugins.module_utils.upgrades.rehearsal import (  # pylint: disable=import-outside-toplevel
                    Rehearsal)
                self.upgrade = Rehearsal(self, meta, engine, template, record).run()
                lap("upgrade")
        # A clone of a template whose tables are all in the system tablespace
        # keeps new ones there too: a quota given later finds none outside it.
        # A quota is checked on the data itself: a new generation may have changed its layout.
        meta["capped_layout"] = not quota.check_engine(engine, meta.get("max_bytes"), self.paths["data"])
        if meta.get("max_bytes"):
            meta["quota_base_bytes"] = engine.quota_base(self.paths["data"])
            quota.apply_limit(self.pool, self.paths["data"], meta)
            lap("quota")
        init_sql = engine.lock_accounts_sql([user for user in foreign if user != secret["user"]]) + \
            engine.init_sql(secret["user"], secret["password"], meta["database"])
        init_path = os.path.join(self.paths["data"], engine.init_file)
        if engine.credentials_via == "init_file":
            write_init_file(self.paths["data"], engine.init_file, init_sql)
        if create:
            write_json(self.paths["secret"], secret, mode=0o600)
        self.docker.create_volume(self.container, self.paths["data"],
                                  labels(role=self.role, instance=self.name, pool=self.pool.path))
        meta["generation"] = generation
        picked = self._reserve_port(meta)
        lap("prepare")
        self._run_container(meta, engine, generation, picked)
        lap("container")
        if engine.credentials_via == "local_client":
            # Through the local client's stdin, as the server's OS superuser:
            # the password is in no argv and no environment. One exec waits
            # for the server and feeds it (a probe per engine call cost 0.1 s).
            self._feed_when_ready(engine, init_sql, secret["password"])
        self._wait_ready(meta, secret, engine)
        lap("server_start_and_login")
        if os.path.exists(init_path):
            os.unlink(init_path)
        self.clone_done = time.monotonic()
        return generation, round(time.monotonic() - started, 3)

    def _feed_when_ready(self, engine, sql, password):
        """Feed ``sql`` (which holds ``password``) to the local client once the server answers."""
        rc, out, err = self.docker.exec(self.container, engine.wait_then(engine.local_client(),
                                                                         self.params["wait_timeout"]),
                                        check=False, data=sql, user=engine.exec_user)
        if rc == 0:
            return
        state = self.docker.state(self.container)
        problem = ("did not answer within wait_timeout (%d s)" % self.params["wait_timeout"] if rc == 75
                   else "refused the account's SQL: %s" % (err or out).strip()[-2000:])
        if not state.get("Running"):
            problem = "exited during start-up (exit code %s)" % state.get("ExitCode")
        # A server logs a failed statement whole: the password goes, as in a failing run's output.
        log = self.docker.logs(self.container, tail=30).replace(password, "********")
        raise MyaasError("The server of %s %s %s." % (self.role, self.name, problem.replace(password, "********")),
                         server_log=log.splitlines())

    def _snapshot(self, template_name):
        """Snapshot the generation asked for; (the template's metadata, the generation's record)."""
        # The importer may retire a generation between our reading of the
        # metadata and the snapshot; read again and retry instead of failing.
        for attempt in range(3):
            template = load_template(self.pool, template_name)
            record = self._wanted_generation(template)
            try:
                self.pool.snapshot(record["path"], self.paths["data"])
                return template, record
            except MyaasError:
                if attempt == 2 or os.path.exists(record["path"]):
                    raise
        raise AssertionError("unreachable")

    def _reserve_port(self, meta, busy=None):
        """Pick (or check) the port and write the metadata that holds it, under the pool's ports lock.

        True if the port was picked here (not asked for, not the instance's
        own). The lock covers only the choice: the metadata is the
        reservation, so containers start in parallel outside it. ``busy``: a
        port just found taken at start, to pick another.
        """
        # The engine is asked before the lock: ten requests at once queued
        # behind each other's engine call. What it cannot know yet (ports
        # chosen by runs in progress) is in their metadata, read under the lock.
        engine_held = dict((port, name) for port, name in self.docker.held_ports().items() if name != self.container)
        with self._lock("ports", "all"):
            taken = dict(engine_held)
            taken.update(self._taken_ports())
            if busy:
                taken[busy], meta["port"] = "something else", None
            if meta["port"] and meta["port"] in taken:
                raise MyaasError("Port %d is held by instance %s; choose another port, or none to get a free one."
                                 % (meta["port"], taken[meta["port"]]))
            picked = not meta["port"]
            if picked:
                meta["port"] = pick_port(self.params["port_range"], taken, meta["bind_address"])
            write_json(self.paths["meta"], meta)
        return picked

    def _taken_ports(self):
        """{port: instance or warm clone} of every other instance and warm clone on the pool, from their metadata."""
        taken = {}
        warm = os.path.join(self.pool.path, WARM_FOLDER, "*")
        # A taken clone's record, left by a killed take, is read through its
        # slot's link: its port is its instance's, in instance.json.
        instances = os.path.join(os.path.realpath(self.pool.path), "instances") + os.sep
        for path in (glob.glob(os.path.join(self.pool.path, "instances", "*", METADATA))
                     + [record for record in glob.glob(os.path.join(warm, "*", WARM_METADATA))
                        + glob.glob(os.path.join(warm, ".*", WARM_METADATA))
                        if not os.path.realpath(record).startswith(instances)]):
            other = read_json(path)
            if other and other.get("port") and other["name"] != self.name:
                taken[other["port"]] = other["name"]
        return taken

    def _run_container(self, meta, engine, generation, picked=False):
        """Start the instance's container; a port picked here and taken meanwhile is picked again.

        Another pool on this host chooses under its own lock, so both can pick
        the same free port; the engine refuses the second to start.
        """
        for attempt in range(3):
            self.docker.remove(self.container, self.pool.path)
            try:
                self.docker.run(self._container_spec(meta, engine, generation))
                return
            except PortTaken:
                if not picked or attempt == 2:
                    raise
                self._reserve_port(meta, busy=meta["port"])

    def _container_spec(self, meta, engine, generation):
        data = os.stat(self.paths["data"])
        capped = []
        if meta.get("max_bytes"):
            capped = engine.quota_args(meta["max_bytes"], quota.base_of(engine, self.paths["data"], meta))
        elif meta.get("capped_layout"):
            capped = engine.capped_layout_args()
        entrypoint, args = engine.command(engine.clone_args() + capped)
        return {
            "name": self.container,
            "image": meta["image"],
            # The account that owns the datadir: the server's, as the import ran it.
            "user": "%d:%d" % (data.st_uid, data.st_gid),
            "entrypoint": entrypoint,
            "args": args,
            "labels": labels(role=self.role, instance=self.name, template=meta["template"],
                             generation=generation, pool=self.pool.path, engine=meta["engine"],
                             owner=meta["owner"], port=meta["port"]),
            "mounts": [{"type": "volume", "source": self.container, "target": engine.datadir}],
            "publish": [(meta["bind_address"], meta["port"], engine.port)],
            "restart": "unless-stopped",
            # A clean shutdown on `docker stop` and host shutdowns, never a kill
            # followed by crash recovery.
            "stop_signal": engine.stop_signal,
            "stop_timeout": STOP_TIMEOUT,
            "memory": meta["memory"],
            "cpus": meta["cpus"],
        }

    def _wait_ready(self, meta, secret, engine):
        timeout = self.params["wait_timeout"]
        deadline = time.monotonic() + timeout
        # A server published on every address answers on loopback.
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
        address = wildcard.get(meta["bind_address"], meta["bind_address"])
        last_error, asked = None, time.monotonic()
        while time.monotonic() < deadline:
            try:
                if engine.probe_login(address, meta["port"], secret["user"], secret["password"],
                                      meta["database"], timeout=2):
                    return
            except Exception as exc:  # pylint: disable=broad-exception-caught
                last_error = exc
            # Whether the server died, asked of the engine every 0.25 s only:
            # ten clones starting at once would keep it busy answering.
            if time.monotonic() - asked >= 0.25:
                asked = time.monotonic()
                if not self.docker.state(self.container).get("Running"):
                    break
            # A refused TCP login costs the server next to nothing; a shorter
            # wait returns the instance sooner (0.05 s cost 0.025 s on average).
            time.sleep(0.02)
        log = self.docker.logs(self.container, tail=30)
        reason = "%s: %s" % (type(last_error).__name__, last_error) if last_error else "the server exited"
        # Driver messages name the user, not the password; scrub it anyway,
        # since this text is printed by a failing run.
        reason = reason.replace(secret["password"], "********")
        raise MyaasError("Instance %s did not accept a login within wait_timeout (%d s): %s."
                         % (self.name, timeout, reason), server_log=log.splitlines()[-30:])
