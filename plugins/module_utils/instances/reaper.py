# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reaper: remove what has expired or was left half-made, repair what must live on.

Each instance is judged under its own lock, taken without waiting: an
instance that another run holds (being created, reset or dropped) is left
alone. Nothing is judged while the Docker engine cannot be asked, since a
container that cannot be seen is not a missing one. Check mode reports the
same decisions without acting on them.
"""

from __future__ import annotations

import glob
import os

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances import warm
from ansible_collections.myaas.myaas.plugins.module_utils.instances.clone import WARM_FOLDER, instance_paths
from ansible_collections.myaas.myaas.plugins.module_utils.instances.manager import InstanceManager
from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import protected_now
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import FileLock, read_json
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_iso


def verdict(meta, data_exists, container_state, now):
    """What to do with one instance: (action, why), action one of remove, repair, keep.

    A protection lease that has ended protects nothing: the instance is
    judged like any other (removed once expired).
    """
    if meta is None:
        return "remove", "left half-made: no instance.json, and no run is making it"
    expired = bool(meta.get("expires_at")) and parse_iso(meta["expires_at"]) <= now
    protected = protected_now(meta, now)
    lease = meta.get("protected_until") if meta.get("protected") else None
    if expired and not protected:
        ended = "; its protection ended at %s" % lease if lease else ""
        return "remove", "expired at %s%s" % (meta["expires_at"], ended)
    if not data_exists:
        return "repair", "its data is missing; made again from its template"
    if not container_state:
        return "repair", "its container is missing; started again on the same port with the same password"
    if protected:
        return "keep", "protected until %s" % lease if lease else "protected"
    return "keep", "not expired"


class Reaper:
    def __init__(self, pool, docker, engines, check_mode, now, wait_timeout=60):
        self.pool = pool
        self.docker = docker
        self.engines = engines
        self.check_mode = check_mode
        self.now = now
        self.wait_timeout = wait_timeout
        self.result = {"changed": False, "removed": [], "repaired": [], "busy": [], "reasons": {}}

    def run(self):
        self.pool.ensure_layout()
        self.docker.ping()
        names = set(os.path.basename(path) for path in glob.glob(os.path.join(self.pool.path, "instances", "*")))
        containers = dict((instance, name) for name, instance in
                          self.docker.containers(role="instance", pool=self.pool.path) if instance)
        for name in sorted(names | set(containers)):
            self._judge(name, name in names, containers.get(name))
        self._refill_warm()
        return self.result

    def _refill_warm(self):
        """Every template's warm clones: a dead one replaced, missing ones made, an older generation's removed."""
        self.result["warm"] = {}
        # Templates that keep warm clones, and those whose clones remain (the template may be gone).
        templates = set(os.path.basename(os.path.dirname(path)) for path in
                        glob.glob(os.path.join(self.pool.path, "templates", "*", warm.SETTINGS)))
        templates |= set(os.path.basename(path) for path in glob.glob(os.path.join(self.pool.path, WARM_FOLDER, "*")))
        for template in sorted(templates) if not self.check_mode else []:
            try:
                done = warm.WarmPool(self.pool, self.docker, self.engines, template, 0, self.wait_timeout).refill()
            except MyaasError as exc:
                done = {"error": exc.msg}
            self.result["warm"][template] = done
            self.result["changed"] = self.result["changed"] or bool(done.get("made") or done.get("removed"))

    def _manager(self, name, container):
        params = {"name": name, "state": "present", "lock_timeout": 0, "wait_timeout": self.wait_timeout}
        manager = InstanceManager(self.pool, self.docker, self.engines, params, self.check_mode)
        if container:
            manager.container = container
        return manager

    def _judge(self, name, has_folder, container):
        lock = FileLock(self.pool.lock_path("instance", name), 0, "Instance %s" % name)
        try:
            lock.__enter__()
        except MyaasError:
            self.result["busy"].append(name)
            self.result["reasons"][name] = "busy: another run holds its lock"
            return
        try:
            paths = instance_paths(self.pool, name)
            meta = read_json(paths["meta"]) if has_folder else None
            # A take of a warm clone killed before the instance's record: the
            # slot's record moved with the folder and names the container.
            taken = warm.interrupted_take(paths["dir"]) if has_folder and meta is None else None
            # The instance's own container: those made before names carried the pool keep their old name.
            manager = self._manager(name, (meta or {}).get("container") or container)
            manager.warm_link = (meta or {}).get("warm_clone")
            manager.interrupted_take = taken
            if meta is None and not has_folder:
                action, why = "remove", "a container of this pool whose instance is gone"
            else:
                state = self.docker.state(meta["container"]) if meta else {}
                action, why = verdict(meta, os.path.isdir(paths["data"]), state, self.now)
            if taken:
                why = "a warm clone of %s whose take ended before the instance's record was written" % taken["template"]
            if action == "keep":
                return
            self.result["reasons"][name] = why
            self.result["removed" if action == "remove" else "repaired"].append(name)
            self.result["changed"] = True
            if self.check_mode:
                return
            if action == "remove":
                manager.remove_everything()
            else:
                manager.repair(meta)
        finally:
            lock.__exit__(None, None, None)
