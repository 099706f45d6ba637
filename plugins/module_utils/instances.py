# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instances: a writable snapshot of a template's generation, and a server on it.

Every change is planned, then done under the instance's lock. A clone that
does not come up (no login with its credentials within wait_timeout) is
removed whole: container, volume, subvolume and folder.
"""

from __future__ import annotations

import getpass
import glob
import os
import secrets
import shutil
import string
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instance_steps import remove_file, run_every, status_diff
from ansible_collections.myaas.myaas.plugins.module_utils.instance_settings import (
    LIMITS, check_access, planned_settings)
from ansible_collections.myaas.myaas.plugins.module_utils.metadata import FileLock, read_json, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name
from ansible_collections.myaas.myaas.plugins.module_utils.ports import pick_port
from ansible_collections.myaas.myaas.plugins.module_utils.runtime import labels
from ansible_collections.myaas.myaas.plugins.module_utils.template_import import metadata_path as template_metadata
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso

METADATA = "instance.json"
SECRET = "secret.json"
COW_METHOD = "btrfs-snapshot"
# A fresh clone writes about 12 MiB as its server starts; leave room for that
# and for a little work before calling the pool full.
MIN_FREE_BYTES = 64 * 2 ** 20
# Seconds a clone gets to shut down cleanly when stopped.
STOP_TIMEOUT = 60
_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def new_password(length=24):
    # Letters and digits only: the password goes into DSNs and shell commands.
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _position in range(length))


def instance_paths(pool, name):
    directory = pool.instance_dir(name)
    return {
        "dir": directory,
        "data": os.path.join(directory, "data"),
        "meta": os.path.join(directory, METADATA),
        "secret": os.path.join(directory, SECRET),
    }


def load_instance(pool, name):
    return read_json(instance_paths(pool, name)["meta"])


def load_template(pool, name):
    template = read_json(template_metadata(pool, name))
    if template is None:
        if glob.glob(os.path.join(pool.template_dir(name), ".importing-*")):
            raise MyaasError("Template %s is being imported for the first time and has no data yet; "
                             "ask again when the import finished." % name)
        raise MyaasError("Template %s does not exist on pool %s. Import it first (module "
                         "myaas.myaas.myaas_template, playbook import_templates.yml)." % (name, pool.path))
    return template


def connection(engine, meta, secret):
    info = dict(meta)
    info.update(user=secret["user"], password=secret["password"])
    where = (secret["user"], secret["password"], meta["host"], meta["port"], meta["database"])
    info["dsn"] = engine.dsn(*where)
    info["client_command"] = engine.client_command(*where)
    return info


def default_database(template, engine):
    """Where a client lands: the schema the dump was loaded into, else the dump's first own one."""
    return (template["options"]["database"] or (template.get("databases") or [None])[0]
            or engine.default_database)


class InstanceManager:
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

    def _lock(self, kind="instance", name=None):
        return FileLock(self.pool.lock_path(kind, name or self.name), self.params["lock_timeout"],
                        "%s %s" % (kind.capitalize(), name or self.name))

    def _result(self, changed, meta, action, before=None):
        secret = read_json(self.paths["secret"]) if meta and os.path.exists(self.paths["secret"]) else None
        info = connection(self.engines(meta["engine"]), meta, secret) if meta and secret else meta
        if info and self.timings:
            info = dict(info, timings=self.timings)
        return {"changed": changed, "operation": action, "instance": info,
                "diff": {"before": before or {}, "after": meta or {}}}

    # -- entry points ----------------------------------------------------
    def apply(self):
        state = self.params["state"]
        self.pool.ensure_layout()
        with self._lock():
            meta = load_instance(self.pool, self.name)
            if meta:
                check_access(meta, self.params, state)
                # Instances made before names carried the pool keep their container's name.
                self.container = meta.get("container", self.container)
            if state == "absent":
                return self._absent(meta)
            if meta is None:
                if state == "stopped":
                    raise MyaasError("Instance %s does not exist; there is nothing to stop." % self.name)
                return self._create()
            wanted = self.params.get("template")
            if wanted and wanted != meta["template"]:
                raise MyaasError("Instance %s exists with template %s, not %s. Drop it first, or use state=reset "
                                 "to refresh its data from its own template." % (self.name, meta["template"], wanted))
            changes = planned_settings(meta, self.params)
            if state == "reset":
                return self._reset(self._apply_settings(meta, changes))
            if state == "stopped":
                return self._stop(self._apply_settings(meta, changes))
            before = meta
            result = self._ensure_running(self._apply_settings(meta, changes))
            if changes:
                result.update(changed=True, diff={"before": before, "after": result["diff"]["after"]})
                result["operation"] = "update" if result["operation"] == "none" else result["operation"]
            return result

    def _apply_settings(self, meta, changes):
        """The metadata with ``changes``, written (and limits given to the container) unless in check mode."""
        if not changes:
            return meta
        meta = dict(meta, **changes)
        if not self.check_mode:
            if set(changes) & set(LIMITS) and self.docker.state(meta["container"]):
                self.docker.update(meta["container"], changes.get("memory"), changes.get("cpus"))
            write_json(self.paths["meta"], meta)
        return meta

    # -- create ------------------------------------------------------------
    def _create(self):
        params = self.params
        if not params.get("template"):
            raise MyaasError("Instance %s does not exist: give template to create it." % self.name)
        template = load_template(self.pool, params["template"])
        engine = self.engines(template["engine"])
        free = self.pool.free_bytes()
        if free < MIN_FREE_BYTES:
            raise MyaasError("The pool %s is full (%d MiB free; a new instance needs about %d MiB to start). Drop "
                             "instances you no longer need (playbook drop_db.yml, reap.yml) or grow the pool."
                             % (self.pool.path, free // 2 ** 20, MIN_FREE_BYTES // 2 ** 20))
        created = self.now()
        ttl = params["ttl"] or 0
        meta = {
            "name": self.name,
            "template": template["name"],
            "generation": template["generation"],
            "engine": template["engine"],
            "image": template["image"],
            "host": params["public_host"],
            "bind_address": params["bind_address"],
            "port": params["port"],
            "database": params["database"] or default_database(template, engine),
            "container": self.container,
            "created_at": iso(created),
            "expires_at": iso(created + ttl) if ttl else None,
            "owner": params["owner"] or params.get("requester") or getpass.getuser(),
            "protected": bool(params["protected"]),
            "memory": params["memory"],
            "cpus": params["cpus"],
            "cow": COW_METHOD,
        }
        if self.check_mode:
            return self._result(True, meta, "create")
        secret = {"user": params["user"], "password": params["password"] or new_password()}
        if os.path.lexists(self.paths["dir"]):
            # A create that was killed, or failed and could not clean up, left
            # its folder; whatever else it left goes before the new snapshot.
            self._remove_clone()
        os.makedirs(self.paths["dir"], mode=0o700, exist_ok=True)
        try:
            meta["generation"], ready = self._clone_and_start(meta, secret, engine, create=True)
        except BaseException:
            self._remove_everything()
            raise
        meta["ready_seconds"] = ready
        return self._result(True, meta, "create")

    def _clone_and_start(self, meta, secret, engine, create):
        """Snapshot the template, start the server, wait for a login. Returns (generation, seconds)."""
        started = mark = time.monotonic()

        def lap(step):
            nonlocal mark
            now = time.monotonic()
            self.timings[step] = round(now - mark, 4)
            mark = now

        generation = self._snapshot(meta["template"])
        lap("snapshot")
        init_sql = engine.init_sql(secret["user"], secret["password"], meta["database"])
        init_path = os.path.join(self.paths["data"], engine.init_file)
        if engine.credentials_via == "init_file":
            data_stat = os.stat(self.paths["data"])
            with open(os.open(init_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
                      encoding="utf-8") as init:
                init.write(init_sql)
            # The server drops root before it reads the init file.
            os.chown(init_path, data_stat.st_uid, data_stat.st_gid)
        if create:
            write_json(self.paths["secret"], secret, mode=0o600)
        self.docker.create_volume(self.container, self.paths["data"],
                                  labels(role="instance", instance=self.name, pool=self.pool.path))
        meta["generation"] = generation
        self._reserve_port(meta)
        lap("prepare")
        self._run_container(meta, engine, generation)
        lap("container")
        if engine.credentials_via == "local_client":
            # Through the local client's stdin, as the server's OS superuser:
            # the password is in no argv and no environment.
            self.docker.wait_until_answers(self.container, engine.ready_probe(), engine.exec_user,
                                           ("wait_timeout", self.params["wait_timeout"]),
                                           "The server of instance %s" % self.name, 0.05)
            self.docker.exec(self.container, engine.local_client(), data=init_sql, user=engine.exec_user)
        self._wait_ready(meta, secret, engine)
        lap("server_start_and_login")
        if os.path.exists(init_path):
            os.unlink(init_path)
        return generation, round(time.monotonic() - started, 3)

    def _snapshot(self, template_name):
        # The importer may retire a generation between our reading of the
        # metadata and the snapshot; read again and retry instead of failing.
        for attempt in range(3):
            template = load_template(self.pool, template_name)
            try:
                self.pool.snapshot(template["path"], self.paths["data"])
                return template["generation"]
            except MyaasError:
                if attempt == 2 or os.path.exists(template["path"]):
                    raise
        raise AssertionError("unreachable")

    def _reserve_port(self, meta):
        """Pick (or check) the port and write the metadata that holds it, under the pool's ports lock.

        The lock covers only the choice: the metadata is the reservation, so
        containers start in parallel outside it.
        """
        with self._lock("ports", "all"):
            taken = self._taken_ports()
            if meta["port"] and meta["port"] in taken:
                raise MyaasError("Port %d is held by instance %s; choose another port, or none to get a free one."
                                 % (meta["port"], taken[meta["port"]]))
            if not meta["port"]:
                meta["port"] = pick_port(self.params["port_range"], taken, meta["bind_address"])
            write_json(self.paths["meta"], meta)

    def _taken_ports(self):
        """{port: instance name} of every other instance on the pool."""
        taken = {}
        for path in glob.glob(os.path.join(self.pool.path, "instances", "*", METADATA)):
            other = read_json(path)
            if other and other.get("port") and other["name"] != self.name:
                taken[other["port"]] = other["name"]
        return taken

    def _run_container(self, meta, engine, generation):
        data = os.stat(self.paths["data"])
        entrypoint, args = engine.command(engine.clone_args())
        spec = {
            "name": self.container,
            "image": meta["image"],
            # The account that owns the datadir: the server's, as the import ran it.
            "user": "%d:%d" % (data.st_uid, data.st_gid),
            "entrypoint": entrypoint,
            "args": args,
            "labels": labels(role="instance", instance=self.name, template=meta["template"],
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
        self.docker.remove(self.container, self.pool.path)
        self.docker.run(spec)

    def _wait_ready(self, meta, secret, engine):
        timeout = self.params["wait_timeout"]
        deadline = time.monotonic() + timeout
        # A server published on every address answers on loopback.
        wildcard = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}
        address = wildcard.get(meta["bind_address"], meta["bind_address"])
        last_error = None
        while time.monotonic() < deadline:
            try:
                if engine.probe_login(address, meta["port"], secret["user"], secret["password"],
                                      meta["database"], timeout=2):
                    return
            except Exception as exc:  # pylint: disable=broad-exception-caught
                last_error = exc
            if not self.docker.state(self.container).get("Running"):
                break
            time.sleep(0.05)
        log = self.docker.logs(self.container, tail=30)
        reason = "%s: %s" % (type(last_error).__name__, last_error) if last_error else "the server exited"
        # Driver messages name the user, not the password; scrub it anyway,
        # since this text is printed by a failing run.
        reason = reason.replace(secret["password"], "********")
        raise MyaasError("Instance %s did not accept a login within wait_timeout (%d s): %s."
                         % (self.name, timeout, reason), server_log=log.splitlines()[-30:])

    # -- other states -----------------------------------------------------
    def _ensure_running(self, meta):
        state = self.docker.state(self.container)
        if state and state.get("Running"):
            return self._result(False, meta, "none")
        if self.check_mode:
            return status_diff(self._result(True, meta, "start"), state, "running")
        if not os.path.isdir(self.paths["data"]):
            # A reset that failed half-way left the metadata but no data.
            return self._reset(meta)
        if state:
            self.docker.start(self.container)
        else:
            # The container was lost (e.g. pruned): make it again on the same data.
            self._run_container(meta, self.engines(meta["engine"]), meta["generation"])
        self._wait_ready(meta, read_json(self.paths["secret"]), self.engines(meta["engine"]))
        return status_diff(self._result(True, meta, "start"), state, "running")

    def _stop(self, meta):
        state = self.docker.state(self.container)
        if not state or not state.get("Running"):
            return self._result(False, meta, "none")
        if not self.check_mode:
            self.docker.stop(self.container, STOP_TIMEOUT)
        return status_diff(self._result(True, meta, "stop"), state, "exited")

    def _reset(self, meta):
        before = dict(meta)
        template = load_template(self.pool, meta["template"])
        meta = dict(meta, generation=template["generation"], reset_at=iso(self.now()))
        if self.check_mode:
            return self._result(True, meta, "reset", before)
        engine = self.engines(meta["engine"])
        self._remove_clone()
        try:
            meta["generation"], meta["ready_seconds"] = self._clone_and_start(
                meta, read_json(self.paths["secret"]), engine, create=False)
        except BaseException:
            # Nothing half-made stays behind; the metadata is kept so that the
            # same name, port and credentials come back with the next reset.
            self._remove_clone()
            raise
        return self._result(True, meta, "reset", before)

    def _absent(self, meta):
        exists = meta is not None or os.path.exists(self.paths["dir"]) or self.docker.inspect(self.container)
        if not exists:
            return {"changed": False, "operation": "none", "instance": None}
        if not self.check_mode:
            self._remove_everything()
        return {"changed": True, "operation": "remove", "instance": None,
                "diff": {"before": meta or {}, "after": {}}}

    def _clone_steps(self):
        return [lambda: self.docker.remove(self.container, self.pool.path),
                lambda: self.docker.remove_volume(self.container, self.pool.path),
                lambda: self.pool.delete_subvolume(self.paths["data"])]

    def _remove_clone(self):
        """The container, its volume and the data snapshot; the instance's folder and files stay."""
        run_every(self._clone_steps())

    # -- for the reaper, which holds the instance's lock itself ------------
    def remove_everything(self):
        self._remove_everything()

    def repair(self, meta):
        """Bring back a lost container (same port, same password) or lost data (from the template)."""
        return self._ensure_running(meta)

    def _remove_everything(self):
        def folder():
            # Only once the data is gone: never delete a datadir file by file.
            if os.path.isdir(self.paths["dir"]) and not os.path.lexists(self.paths["data"]):
                shutil.rmtree(self.paths["dir"])
        run_every(self._clone_steps() + [lambda: remove_file(self.paths["meta"]),
                                         lambda: remove_file(self.paths["secret"]), folder])
