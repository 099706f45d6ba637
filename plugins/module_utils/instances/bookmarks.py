# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bookmarks: an instance's data frozen under a name, to go back to in seconds.

A bookmark is a read-only snapshot of the instance's datadir, taken while its
server is stopped cleanly (verified from the server's log), so that the data
a reset brings back, or a branch is made of, never needs crash recovery.
Layout: instances/NAME/bookmarks/BOOKMARK; instance.json lists them.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances import quota
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import write_json
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso

# Seconds a server gets to shut down cleanly before a bookmark or a branch.
STOP_TIMEOUT = 60


def bookmark_path(pool, instance, bookmark):
    return os.path.join(pool.instance_dir(instance), "bookmarks", bookmark)


def verify_clean_stop(docker, container, engine, what):
    log = docker.logs(container, tail=400)
    code = docker.state(container).get("ExitCode")
    if code != 0 or not engine.clean_shutdown(log):
        raise MyaasError("The server of %s did not shut down cleanly (exit code %s), so its data was not frozen: "
                         "a clone of it would need crash recovery. Try again; if it keeps failing, see "
                         "server_log." % (what, code), server_log=log.splitlines()[-30:])


@contextlib.contextmanager
def cleanly_stopped(manager, meta):
    """The instance's server shut down cleanly for the body, and started again after if it was running."""
    docker, container = manager.docker, manager.container
    engine = manager.engines(meta["engine"])
    state = docker.state(container)
    running = bool(state.get("Running"))
    what = "instance %s" % meta["name"]
    if not running:
        try:
            verify_clean_stop(docker, container, engine, what)
        except MyaasError:
            # Stopped by a crash, a kill or a lost container: a start runs the
            # server's recovery, and the stop below is a clean one.
            manager.repair(meta)
            running = None
    try:
        if running is not False:
            docker.stop(container, STOP_TIMEOUT)
            verify_clean_stop(docker, container, engine, what)
        yield
    finally:
        if running:
            manager.repair(meta)


def save(manager, meta, name):
    """Freeze the instance's data as bookmark ``name``; an existing one is kept as it is."""
    bookmarks = meta.get("bookmarks") or {}
    path = bookmark_path(manager.pool, meta["name"], name)
    if name in bookmarks and os.path.isdir(path):
        return manager.result(False, meta, "none")
    # The image too: a bookmark of an upgraded instance holds the new major's data.
    record = {"created_at": iso(manager.now()), "template": meta["template"], "generation": meta["generation"],
              "image": meta["image"], "upgrade_to": meta.get("upgrade_to")}
    after = dict(meta, bookmarks=dict(bookmarks, **{name: record}))
    quota.check_no_quota(meta, "a bookmark")
    if manager.check_mode:
        return manager.result(True, after, "save", meta)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # A save that was killed after its snapshot left one that nothing lists.
    manager.pool.delete_subvolume(path)
    with cleanly_stopped(manager, meta):
        manager.pool.snapshot(manager.paths["data"], path, readonly=True)
    write_json(manager.paths["meta"], after)
    return manager.result(True, after, "save", meta)


def drop(manager, meta, name):
    """Remove bookmark ``name``; the instance stays."""
    bookmarks = dict(meta.get("bookmarks") or {})
    path = bookmark_path(manager.pool, meta["name"], name)
    if name not in bookmarks and not os.path.lexists(path):
        return manager.result(False, meta, "none")
    bookmarks.pop(name, None)
    after = dict(meta, bookmarks=bookmarks)
    if not manager.check_mode:
        manager.pool.delete_subvolume(path)
        write_json(manager.paths["meta"], after)
    return manager.result(True, after, "drop_bookmark", meta)


def find(manager, meta, name):
    """(record, path) of bookmark ``name``, or an error that lists the instance's bookmarks."""
    bookmarks = meta.get("bookmarks") or {}
    path = bookmark_path(manager.pool, meta["name"], name)
    if name not in bookmarks or not os.path.isdir(path):
        raise MyaasError("Instance %s has no bookmark %s; it has %s. Save one with state=saved and bookmark=NAME."
                         % (meta["name"], name, ", ".join(sorted(bookmarks)) or "none"))
    return bookmarks[name], path


def remove_all(pool, instance):
    """Steps that delete every bookmark subvolume of ``instance`` (before its folder goes)."""
    folder = os.path.join(pool.instance_dir(instance), "bookmarks")
    if not os.path.isdir(folder):
        return []
    return [lambda path=os.path.join(folder, entry): pool.delete_subvolume(path) for entry in sorted(os.listdir(folder))]
