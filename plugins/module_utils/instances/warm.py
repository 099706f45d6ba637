# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Warm clones: servers already started on a template's current generation, waiting for a request.

A template with ``warm: N`` keeps N of them. Each lives in a slot folder,
<pool>/warm/<template>/<slot>/ (its data subvolume, warm.json and
secret.json). The production accounts are locked; the default account (dev)
is made when it starts, with a password only root can read, handed to the one
request that takes it. Another account is made over the server's local
socket when a request asks for one.

- A slot's record reserves its port while it is made, and says ``ready_at``
  only once its server answers: no request takes it before.
- Taking a slot is one rename of its folder to the instance's folder, which
  the kernel lets only one process do: a clone never goes to two requests.
- The container and volume keep the slot's name, and a link is left at the
  slot's path to the instance's folder: the volume is bound to that path, and
  Docker binds it again whenever the container starts.
- Refilling (``refill``) holds the template's warm lock; it removes slots of
  an older generation, leftovers and links whose instance is gone, and makes
  what is missing. It runs after a request returned, after an import, and
  from the reaper.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import FileLock, read_json, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.instances.clone import (
    SECRET, WARM_FOLDER, WARM_METADATA, CloneSteps, default_database, load_template, new_password)
from ansible_collections.myaas.myaas.plugins.module_utils.instances.ports import parse_range
from ansible_collections.myaas.myaas.plugins.module_utils.instances.steps import run_every
from ansible_collections.myaas.myaas.plugins.module_utils.names import pool_tag
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso

SETTINGS = "warm.json"       # in the template's folder: how many, on which address and ports
REMOVING = ".removing-"
ACCOUNT = "dev"              # myaas_instance's default user: the account a warm clone starts with
ERROR = "error.json"         # in the warm folder: why the last refill nobody waited for failed


def folder(pool, template):
    return os.path.join(pool.path, WARM_FOLDER, template)


def slot_path(pool, record):
    """Where the slot of a warm clone's record (warm.json) was made: the link a take leaves."""
    return os.path.join(folder(pool, record["template"]), record["name"])


def settings_path(pool, template):
    return os.path.join(pool.template_dir(template), SETTINGS)


def read_settings(pool, template):
    """{count, bind_address, port_range}; count 0 when the template keeps no warm clones."""
    return read_json(settings_path(pool, template)) or {"count": 0}


def write_settings(pool, template, count, bind_address, port_range):
    write_json(settings_path(pool, template), {"count": count, "bind_address": bind_address,
                                               "port_range": port_range})


def ready_slots(pool, template):
    """[(slot folder, its record)] of the slots that can be taken, oldest first."""
    found = []
    base = folder(pool, template)
    for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        path = os.path.join(base, entry)
        if entry.startswith(".") or entry == ERROR or os.path.islink(path):
            continue
        record = read_json(os.path.join(path, WARM_METADATA))
        if record and record.get("ready_at"):
            found.append((path, record))
    return sorted(found, key=lambda item: item[1]["ready_at"])


def interrupted_take(instance_dir):
    """The slot's record (warm.json) left in an instance's folder by a take killed before the instance's record
    was written, else None: it names the warm container and volume that are now that instance's to remove."""
    try:
        record = read_json(os.path.join(instance_dir, WARM_METADATA))
    except MyaasError:
        return None     # unreadable: the folder is removed as half-made, without it
    if isinstance(record, dict) and all(record.get(key) for key in ("container", "template", "name")):
        return record
    return None


def summary(pool, template):
    """What an operator sees of a template's warm clones: {count, ready, generations, error}, or None.

    ``count`` is how many it keeps, ``ready`` how many wait for a request now
    (of ``generations``), ``error`` why the last refill failed ({at, error};
    None once one did all it had to). None when the template keeps no warm
    clones and none are left.
    """
    settings = read_settings(pool, template)
    ready = ready_slots(pool, template)
    failure = read_json(os.path.join(folder(pool, template), ERROR))
    if not settings["count"] and not ready and not failure:
        return None
    return {"count": settings["count"], "ready": len(ready),
            "generations": sorted(set(record["generation"] for _path, record in ready)), "error": failure}


def take(pool, template, generation, bind_address, port_range, destination):
    """Move a ready slot of ``generation``, on ``bind_address`` with a port in ``port_range`` (low, high), to
    ``destination`` (a folder that must not exist).

    Returns the slot's record, with ``slot`` (the path it had), or None when
    there is none to take. Several requests may run this at once: only one
    rename of a folder succeeds, the others try the next slot. The record
    (warm.json) moves with it: the caller removes it once the instance's own
    record holds the port.
    """
    low, high = port_range
    for path, record in ready_slots(pool, template):
        if (record["generation"] != generation or record["bind_address"] != bind_address
                or not low <= record["port"] <= high):
            continue
        try:
            os.rename(path, destination)
        except OSError:
            continue        # taken by another request, or removed by a refill, meanwhile
        # The volume is bound to the slot's path: keep it valid for later starts.
        os.symlink(destination, path)
        return dict(record, slot=path)
    return None


class WarmClone(CloneSteps):
    """One slot: a clone with the default account made in advance, its server started, on the pool's ports."""

    role = "warm"

    def __init__(self, pool, docker, engines, params, template, slot):
        path = os.path.join(folder(pool, template), slot)
        super().__init__(pool, docker, engines, dict(params, name=slot, generation=None, as_of=None), False)
        self.template = template
        self.paths = {"dir": path, "data": os.path.join(path, "data"), "meta": os.path.join(path, WARM_METADATA),
                      "secret": os.path.join(path, SECRET)}
        # A dot: no instance name has one, so no instance's container has this name.
        self.container = "myaas-%s-warm.%s.%s" % (pool_tag(pool.path), template, slot.replace(REMOVING, ""))

    def make(self, template_meta, settings):
        """Snapshot, start, wait until the account logs in over TCP; the record (warm.json)."""
        engine = self.engines(template_meta["engine"])
        meta = {"name": self.name, "template": self.template, "generation": template_meta["generation"],
                "engine": template_meta["engine"], "image": template_meta["image"], "upgrade_to": None,
                "bind_address": settings["bind_address"], "port": None, "container": self.container,
                "database": default_database(template_meta, engine), "owner": "", "memory": None, "cpus": None}
        os.makedirs(self.paths["dir"], mode=0o700)
        # The account a request most often asks for, made now: its password
        # is kept here (root, 0600) and handed to the one request that takes
        # the clone, which then needs no SQL at all.
        secret = {"user": ACCOUNT, "password": new_password()}
        meta["generation"], meta["ready_seconds"] = self._clone_and_start(meta, secret, engine, create=True)
        meta["ready_at"] = iso(self.now())
        write_json(self.paths["meta"], meta)
        return meta

    def remove(self):
        if os.path.islink(self.paths["dir"]):
            raise MyaasError("%s is a taken warm clone's link; its instance is not removed here." % self.paths["dir"])

        def files():
            if not os.path.lexists(self.paths["data"]) and os.path.isdir(self.paths["dir"]):
                shutil.rmtree(self.paths["dir"])
        run_every([lambda: self.docker.remove(self.container, self.pool.path),
                   lambda: self.docker.remove_volume(self.container, self.pool.path),
                   lambda: self.pool.delete_subvolume(self.paths["data"]), files])


class WarmPool:
    """The warm clones of one template."""

    def __init__(self, pool, docker, engines, template, lock_timeout=300, wait_timeout=60):
        self.pool = pool
        self.docker = docker
        self.engines = engines
        self.template = template
        self.lock_timeout = lock_timeout
        self.wait_timeout = wait_timeout
        self.folder = folder(pool, template)

    def _clone(self, slot, settings):
        params = {"lock_timeout": self.lock_timeout, "wait_timeout": self.wait_timeout,
                  "port_range": parse_range(settings.get("port_range") or "13306-13999")}
        return WarmClone(self.pool, self.docker, self.engines, params, self.template, slot)

    def refill(self):
        """Remove what is stale, make what is missing; {made, removed, ready}.

        Raises MyaasError when a clone cannot be made (it is removed whole),
        and keeps why in the warm folder (error.json) for myaas_info, whoever
        ran it; the next refill that does all it has to removes it.
        """
        try:
            return self._refill()
        except BaseException as exc:
            # SystemExit too: a failed command ends in the module's fail_json.
            os.makedirs(self.folder, exist_ok=True)
            write_json(os.path.join(self.folder, ERROR), {"at": iso(time.time()), "error": str(exc)}, mode=0o600)
            raise

    def _refill(self):
        done = {"made": 0, "removed": 0, "ready": 0}
        with FileLock(self.pool.lock_path("warm", self.template), self.lock_timeout, "Warm clones of %s"
                      % self.template):
            template = self._template()
            settings = read_settings(self.pool, self.template) if template else {"count": 0}
            done["removed"] = self._prune(template, settings)
            done["ready"] = len(ready_slots(self.pool, self.template))
            while done["ready"] < settings["count"]:
                slot = "g%d-%s" % (template["generation"], secrets.token_hex(4))
                making = self._clone(slot, settings)
                try:
                    making.make(template, settings)
                except BaseException:
                    making.remove()
                    raise
                done["made"] += 1
                done["ready"] += 1
            if os.path.exists(os.path.join(self.folder, ERROR)):
                os.unlink(os.path.join(self.folder, ERROR))     # this refill did all it had to
            if not settings["count"] and os.path.isdir(self.folder) and not os.listdir(self.folder):
                os.rmdir(self.folder)
        return done

    def _template(self):
        try:
            return load_template(self.pool, self.template)
        except Exception:  # pylint: disable=broad-exception-caught
            return None     # gone, or being imported for the first time: no warm clones

    def _prune(self, template, settings):
        """Remove the slots no request may take any more; how many.

        A slot is first renamed to a hidden name, which a request's rename
        (``take``) excludes: whichever comes first wins. What was renamed is
        checked again: a link is a clone a request took meanwhile, put back.
        """
        entries = sorted(os.listdir(self.folder)) if os.path.isdir(self.folder) else []
        keep = []
        for entry in entries:
            path = os.path.join(self.folder, entry)
            if entry == ERROR or entry.startswith("."):
                continue
            if os.path.islink(path):
                if not os.path.exists(path):        # its instance is gone
                    os.unlink(path)
                continue
            record = read_json(os.path.join(path, WARM_METADATA)) or {}
            if (template and record.get("ready_at") and record.get("generation") == template["generation"]
                    and record.get("bind_address") == settings.get("bind_address")
                    and self.docker.state(record.get("container") or "-").get("Running")):
                keep.append((record["ready_at"], entry))
        # The oldest are kept when fewer are asked for.
        keep = set(entry for _ready_at, entry in sorted(keep)[:settings["count"]])
        removed = 0
        for entry in entries:
            path = os.path.join(self.folder, entry)
            if entry == ERROR or entry in keep or os.path.islink(path) or not os.path.lexists(path):
                continue
            hidden = entry if entry.startswith(".") else REMOVING + entry
            if hidden != entry:
                try:
                    os.rename(path, os.path.join(self.folder, hidden))
                except OSError:
                    continue        # taken by a request meanwhile
            if os.path.islink(os.path.join(self.folder, hidden)):
                # A request took it between the listing and the rename.
                os.rename(os.path.join(self.folder, hidden), path)
                continue
            self._clone(hidden, settings).remove()
            removed += 1
        return removed

    def refill_recorded(self):
        """``refill`` for a process nobody waits for: its error is only kept in the warm folder (error.json)."""
        try:
            self.refill()
        except BaseException:  # pylint: disable=broad-exception-caught
            pass


def apply(warm_pool, count, bind_address, port_range, check_mode):
    """Keep ``count`` warm clones (None: as set before); (changed, report) or (False, None) when none are kept.

    ``report``: count, ready, made, removed, and bind_address.
    """
    pool, template = warm_pool.pool, warm_pool.template
    before = read_settings(pool, template)
    if count is None and not before["count"]:
        return False, None
    if count is not None and count < 0:
        raise MyaasError("warm must be 0 or more (started clones kept ready for requests).")
    wanted = dict(before, count=before["count"] if count is None else count)
    if count is not None:
        wanted.update(bind_address=bind_address, port_range=port_range)
    changed = wanted != before
    if check_mode:
        ready = len(ready_slots(pool, template))
        return changed or ready != wanted["count"], dict(wanted, ready=ready, planned=True)
    if changed and os.path.isdir(pool.template_dir(template)):
        write_settings(pool, template, wanted["count"], wanted["bind_address"], wanted["port_range"])
    done = warm_pool.refill()
    return changed or bool(done["made"] or done["removed"]), dict(wanted, **done)


def reported(result, apply):
    """``result`` with what ``apply()`` ((changed, report)) did to the warm clones.

    The template's own work is done by then: a warm clone that cannot be
    made is reported (warm.error, and a warning), not a failed task.
    """
    try:
        changed, report = apply()
    except MyaasError as exc:
        changed, report = False, {"error": exc.msg}
        result.setdefault("warnings", []).append("The warm clones were not refilled: %s" % exc.msg)
    if report is not None:
        result.update(changed=result["changed"] or changed, warm=report)
    return result
