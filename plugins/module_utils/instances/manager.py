# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Instances: a writable snapshot of a template's generation, and a server on it.

Every change is planned, then done under the instance's lock. A clone that
does not come up (no login with its credentials within wait_timeout) is
removed whole: container, volume, subvolume and folder.
"""

from __future__ import annotations

import getpass
import os
import shutil
import time

from ansible_collections.myaas.myaas.plugins.module_utils.instances import bookmarks, quota, warm
from ansible_collections.myaas.myaas.plugins.module_utils.instances.clone import (
    STOP_TIMEOUT, WARM_METADATA, CloneSteps, default_database, load_instance, load_template, new_password)
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances.steps import remove_file, run_every, status_diff
from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import (
    LIMITS, VERBS, check_access, planned_settings, protection)
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import read_json, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.module_runner import process_seconds
from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso

COW_METHOD = "btrfs-snapshot"
# A fresh clone writes about 12 MiB as its server starts; leave room for that
# and for a little work before calling the pool full.
MIN_FREE_BYTES = 64 * 2 ** 20


def connection(engine, meta, secret):
    info = dict(meta)
    info.update(user=secret["user"], password=secret["password"])
    where = (secret["user"], secret["password"], meta["host"], meta["port"], meta["database"])
    info["dsn"] = engine.dsn(*where)
    info["client_command"] = engine.client_command(*where)
    return info


class InstanceManager(CloneSteps):
    def result(self, changed, meta, action, before=None):
        secret = read_json(self.paths["secret"]) if meta and os.path.exists(self.paths["secret"]) else None
        info = connection(self.engines(meta["engine"]), meta, secret) if meta and secret else meta
        if info and self.timings:
            if self.clone_done:
                self.timings["metadata"] = round(time.monotonic() - self.clone_done, 4)
            info = dict(info, timings=self.timings)
        result = {"changed": changed, "operation": action, "instance": info,
                  "diff": {"before": before or {}, "after": meta or {}}}
        if self.upgrade or (self.check_mode and meta and meta.get("upgrade_to") and action in ("create", "reset")):
            # In check mode, what would be upgraded.
            result["upgrade"] = self.upgrade or {"image_from": self._template_image(meta), "image_to":
                                                 meta["upgrade_to"], "planned": True}
        return result

    def _template_image(self, meta):
        return load_template(self.pool, meta["template"])["image"]

    # -- entry points ----------------------------------------------------
    def apply(self):
        state = self.params["state"]
        self.steps_before_clone["module_start"] = process_seconds()
        mark = time.monotonic()
        self.pool.ensure_layout()
        with self._lock():
            self.steps_before_clone["lock"] = round(time.monotonic() - mark, 4)
            meta = load_instance(self.pool, self.name)
            if meta:
                check_access(meta, self.params, state)
                # Instances made before names carried the pool, and warm clones taken, keep their container's name.
                self.container = meta.get("container", self.container)
                self.warm_link = meta.get("warm_clone")
            else:
                # A warm clone whose take was killed before this record: what
                # this name must remove (a drop, a create again, the reaper).
                self.interrupted_take = warm.interrupted_take(self.paths["dir"])
            bookmark = self.params.get("bookmark")
            if state == "absent":
                return bookmarks.drop(self, meta, bookmark) if bookmark and meta else self._absent(meta)
            if meta is None:
                if state in ("stopped", "saved"):
                    raise MyaasError("Instance %s does not exist; there is nothing to %s."
                                     % (self.name, VERBS[state]))
                return self._create()
            wanted = self.params.get("template")
            if wanted and wanted != meta["template"]:
                raise MyaasError("Instance %s exists with template %s, not %s. Drop it first, or use state=reset "
                                 "to refresh its data from its own template." % (self.name, meta["template"], wanted))
            changes = planned_settings(meta, self.params, self.now())
            if state == "saved":
                return bookmarks.save(self, self._apply_settings(meta, changes), bookmark)
            if state == "reset":
                return self._reset(self._apply_settings(meta, changes), bookmark)
            self._check_generation(meta)
            self._check_upgrade(meta)
            before = meta
            result = (self._stop if state == "stopped" else self._ensure_running)(self._apply_settings(meta, changes))
            if changes:
                result.update(changed=True, diff={"before": before, "after": result["diff"]["after"]})
                result["operation"] = "update" if result["operation"] == "none" else result["operation"]
            return result

    def _check_generation(self, meta):
        if self.params.get("generation") is None and self.params.get("as_of") is None:
            return
        wanted = self._wanted_generation(load_template(self.pool, meta["template"]))["generation"]
        if wanted != meta.get("generation"):
            raise MyaasError("Instance %s holds generation %s of template %s, not %d. Use state=reset with the same "
                             "generation or as_of to replace its data, or another instance name."
                             % (self.name, meta.get("generation"), meta["template"], wanted))

    def _check_upgrade(self, meta):
        wanted = self.params.get("upgrade_to")
        if wanted and wanted != meta.get("upgrade_to"):
            raise MyaasError("Instance %s runs %s, not an upgrade to %s. Use state=reset with upgrade_to to upgrade "
                             "its data afresh from the template, or another instance name."
                             % (self.name, meta.get("upgrade_to") or meta["image"], wanted))

    def _apply_settings(self, meta, changes):
        """The metadata with ``changes``, written (and limits given to the container) unless in check mode."""
        if not changes:
            return meta
        meta = dict(meta, **changes)
        engine = self.engines(meta["engine"])
        budget = self.params.get("owner_max_bytes")
        refused = quota.check_engine(engine, changes.get("max_bytes"), self.paths["data"]) \
            if changes.get("max_bytes") or budget else None
        quota.check_use(engine, self.paths["data"], meta, changes.get("max_bytes"))
        if budget and ("max_bytes" in changes or "owner" in changes) and not refused:
            with quota.owner_lock(self.pool, meta["owner"], self.params["lock_timeout"]):
                quota.check_budget(self.pool, meta["owner"], self.name, meta.get("max_bytes"), budget)
                return self._write_settings(meta, changes)
        return self._write_settings(meta, changes)

    def _write_settings(self, meta, changes):
        if not self.check_mode:
            if set(changes) & set(LIMITS) and self.docker.state(meta["container"]):
                self.docker.update(meta["container"], changes.get("memory"), changes.get("cpus"))
            if "max_bytes" in changes and os.path.isdir(self.paths["data"]):
                self._change_quota(meta)
            write_json(self.paths["meta"], meta)
        return meta

    def _change_quota(self, meta):
        """Give a new max_bytes to the data and to its server, which caps it itself (a server argument): a clean
        restart when it runs, a new stopped container when it does not."""
        engine = self.engines(meta["engine"])
        meta["quota_base_bytes"] = quota.base_of(engine, self.paths["data"], meta) if meta.get("max_bytes") else None
        # The record first: a restart that fails leaves the instance as its record says.
        write_json(self.paths["meta"], meta)
        state = self.docker.state(self.container)
        if state and state.get("Running"):
            self.docker.stop(self.container, STOP_TIMEOUT)
            self._run_container(meta, engine, meta["generation"])
            self._wait_ready(meta, read_json(self.paths["secret"]), engine)
        elif state:
            self.docker.remove(self.container, self.pool.path)
            self.docker.create(self._container_spec(meta, engine, meta["generation"]))
        # After the server has its new cap: a lower limit never meets the old, higher one.
        quota.apply_limit(self.pool, self.paths["data"], meta)

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
            "generation": self._wanted_generation(template)["generation"],
            "engine": template["engine"],
            "image": params.get("upgrade_to") or template["image"],
            # Every reset upgrades the template's data afresh to this image.
            "upgrade_to": params.get("upgrade_to"),
            "host": params["public_host"],
            "bind_address": params["bind_address"],
            "port": params["port"],
            "database": params["database"] or default_database(template, engine),
            "container": self.container,
            "created_at": iso(created),
            "expires_at": iso(created + ttl) if ttl else None,
            "owner": params["owner"] or params.get("requester") or getpass.getuser(),
            "memory": params["memory"],
            "cpus": params["cpus"],
            "cow": COW_METHOD,
        }
        meta.update(protection(params["protected"], params.get("protection_lease"), created))
        data = self._wanted_generation(template)["path"]
        refused = quota.check_engine(engine, params.get("max_bytes"), data)
        # An inventory's default quota applies where the server can keep one.
        meta["max_bytes"] = params.get("max_bytes") or (None if refused else params.get("default_max_bytes")) or None
        # Budgets hold quotas: instances that can have none are outside them.
        if not params.get("owner_max_bytes") or refused:
            return self._create_checked(meta, template, engine)
        with quota.owner_lock(self.pool, meta["owner"], params["lock_timeout"]):
            quota.check_budget(self.pool, meta["owner"], self.name, meta["max_bytes"], params["owner_max_bytes"])
            return self._create_checked(meta, template, engine)

    def _create_checked(self, meta, template, engine):
        params = self.params
        if self.check_mode:
            return self.result(True, meta, "create")
        secret = {"user": params["user"], "password": params["password"] or new_password()}
        if self._from_warm(meta, secret, engine, template):
            return self.result(True, meta, "create")
        if os.path.lexists(self.paths["dir"]):
            # A create that was killed, or failed and could not clean up, left
            # its folder; whatever else it left goes before the new snapshot.
            self._remove_clone()
            remove_file(os.path.join(self.paths["dir"], WARM_METADATA))
            self.interrupted_take = None
        os.makedirs(self.paths["dir"], mode=0o700, exist_ok=True)
        try:
            meta["generation"], ready = self._clone_and_start(meta, secret, engine, create=True)
        except BaseException:
            self._remove_everything()
            raise
        meta["ready_seconds"] = ready
        return self.result(True, meta, "create")

    def _from_warm(self, meta, secret, engine, template):
        """Take one of the template's warm clones when one fits the request, and give it the account.

        True when taken. False: clone afresh - none fits, or the one taken
        did not answer (it is removed whole). Either way the warm clones are
        refilled after the module returned (``self.after_return``).
        """
        own_account = (secret["user"] == warm.ACCOUNT and not self.params["password"]
                       and meta["database"] == default_database(template, engine))
        # A warm server runs without the cap a quota gives its arguments.
        if (self.params["port"] or meta["memory"] or meta["cpus"] or meta["upgrade_to"] or meta["max_bytes"]
                or meta["generation"] != template["generation"] or os.path.lexists(self.paths["dir"])
                # MySQL's clones lock root: another account is made only at a server's start.
                or not (own_account or engine.local_superuser_in_clones)):
            return False
        mark = time.monotonic()
        slot = warm.take(self.pool, template["name"], meta["generation"], meta["bind_address"],
                         self.params["port_range"], self.paths["dir"])
        if slot is None:
            return False
        self.after_return = warm.WarmPool(self.pool, self.docker, self.engines, template["name"],
                                          self.params["lock_timeout"], self.params["wait_timeout"]).refill_recorded
        self.container, self.warm_link = slot["container"], slot["slot"]
        taken = dict(meta, port=slot["port"], container=slot["container"], warm_clone=slot["slot"])
        self.timings.update(self.steps_before_clone, take=round(time.monotonic() - mark, 4))
        try:
            # The instance's record first: from here on, the reaper and a
            # later run know the container and the port are this instance's.
            write_json(self.paths["meta"], taken)
            os.unlink(os.path.join(self.paths["dir"], WARM_METADATA))
            mark = time.monotonic()
            if own_account:
                secret = read_json(self.paths["secret"])     # a password nobody has seen yet
            else:
                # Over the server's socket (the password in no argv); the
                # account it waited with is locked.
                self._feed_when_ready(engine, engine.init_sql(secret["user"], secret["password"], meta["database"])
                                      + engine.lock_accounts_sql([warm.ACCOUNT] if secret["user"] != warm.ACCOUNT
                                                                 else []), secret["password"])
            write_json(self.paths["secret"], secret, mode=0o600)
            self.timings["account"] = round(time.monotonic() - mark, 4)
            self._wait_ready(taken, secret, engine)
        except Exception:  # pylint: disable=broad-exception-caught
            # A warm server that died, or did not take the account: gone
            # whole, and this request clones afresh.
            self._remove_everything()
            self.container, self.warm_link, self.timings = container_name(self.pool.path, self.name), None, {}
            return False
        except BaseException:
            self._remove_everything()
            raise
        meta.update(taken)
        self.clone_done = time.monotonic()
        self.timings["login"] = round(self.clone_done - mark - self.timings["account"], 4)
        meta["ready_seconds"] = round(self.clone_done - mark + self.timings["take"], 3)
        return True

    # -- other states -----------------------------------------------------
    def _ensure_running(self, meta):
        state = self.docker.state(self.container)
        if state and state.get("Running"):
            return self.result(False, meta, "none")
        if self.check_mode:
            return status_diff(self.result(True, meta, "start"), state, "running")
        if not os.path.isdir(self.paths["data"]):
            # A reset that failed half-way left the metadata but no data.
            return self._reset(meta)
        if state:
            self.docker.start(self.container)
        else:
            # The container was lost (e.g. pruned): make it again on the same data.
            self._run_container(meta, self.engines(meta["engine"]), meta["generation"])
        self._wait_ready(meta, read_json(self.paths["secret"]), self.engines(meta["engine"]))
        return status_diff(self.result(True, meta, "start"), state, "running")

    def _stop(self, meta):
        state = self.docker.state(self.container)
        if not state or not state.get("Running"):
            return self.result(False, meta, "none")
        if not self.check_mode:
            self.docker.stop(self.container, STOP_TIMEOUT)
        return status_diff(self.result(True, meta, "stop"), state, "exited")

    def _reset(self, meta, bookmark=None):
        """New data for the instance: its template's generation (the current one unless asked), or a bookmark."""
        before = dict(meta)
        if bookmark:
            record, path = bookmarks.find(self, meta, bookmark)
            # A bookmark's data runs on the image it was saved from (its own major version).
            meta = dict(meta, generation=record["generation"], bookmark=bookmark, reset_at=iso(self.now()),
                        image=record.get("image", meta["image"]), upgrade_to=record.get("upgrade_to"))
        else:
            template = load_template(self.pool, meta["template"])
            record = self._wanted_generation(template)
            meta = dict(meta, generation=record["generation"], bookmark=None, reset_at=iso(self.now()))
            upgrade_to = self.params.get("upgrade_to") or meta.get("upgrade_to")
            meta.update(upgrade_to=upgrade_to, image=upgrade_to or meta["image"])
            path = None
        if self.check_mode:
            return self.result(True, meta, "reset", before)
        engine = self.engines(meta["engine"])
        if path is None and meta.get("max_bytes"):
            # Before the data goes: a generation imported with files of its own per table takes no quota.
            quota.check_engine(engine, meta["max_bytes"], record["path"],
                               "Or lift the instance's quota (max_bytes=0) with this reset")
        self._remove_clone()
        try:
            meta["generation"], meta["ready_seconds"] = self._clone_and_start(
                meta, read_json(self.paths["secret"]), engine, create=False, bookmark_path=path)
        except BaseException:
            # Nothing half-made stays behind; the metadata is kept so that the
            # same name, port and credentials come back with the next reset.
            self._remove_clone()
            raise
        return self.result(True, meta, "reset", before)

    def _absent(self, meta):
        exists = meta is not None or os.path.exists(self.paths["dir"]) or self.docker.inspect(self.container)
        if not exists:
            return {"changed": False, "operation": "none", "instance": None}
        if not self.check_mode:
            self._remove_everything()
        return {"changed": True, "operation": "remove", "instance": None,
                "diff": {"before": meta or {}, "after": {}}}

    def _clone_steps(self):
        def warm_link():
            # A taken warm clone's volume was bound through this link.
            if self.warm_link and os.path.islink(self.warm_link):
                os.unlink(self.warm_link)
        return self._interrupted_take_steps() + [
            lambda: self.docker.remove(self.container, self.pool.path), warm_link,
            # A rehearsal's upgrade server, when a run was killed during one.
            lambda: self.docker.remove(self.container + "-upgrade", self.pool.path),
            lambda: self.docker.remove_volume(self.container, self.pool.path),
            lambda: self.pool.delete_subvolume(self.paths["data"])]

    def _interrupted_take_steps(self):
        """Removing the warm clone an interrupted take left (see warm.interrupted_take): container, volume, link."""
        record = self.interrupted_take
        if not record:
            return []
        link = warm.slot_path(self.pool, record)
        return [lambda: self.docker.remove(record["container"], self.pool.path),
                lambda: os.unlink(link) if os.path.islink(link) else None,
                lambda: self.docker.remove_volume(record["container"], self.pool.path)]

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
            subvolumes = [self.paths["data"], os.path.join(self.paths["dir"], "bookmarks")]
            if os.path.isdir(self.paths["dir"]) and not any(os.path.lexists(path) for path in subvolumes):
                shutil.rmtree(self.paths["dir"])

        def bookmarks_folder():
            run_every(bookmarks.remove_all(self.pool, self.name))
            if os.path.isdir(os.path.join(self.paths["dir"], "bookmarks")):
                os.rmdir(os.path.join(self.paths["dir"], "bookmarks"))
        run_every(self._clone_steps() + [bookmarks_folder, lambda: remove_file(self.paths["meta"]),
                                         lambda: remove_file(self.paths["secret"]), folder])
