# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is on a pool: templates, instances and orphans, read without changing anything.

It reads what every layer writes (templates, instances, the pool's layout),
so it sits above them, beside the modules that report it.
"""

from __future__ import annotations

import glob
import os
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.instances import warm
from ansible_collections.myaas.myaas.plugins.module_utils.instances.clone import METADATA as INSTANCE_METADATA, SECRET
from ansible_collections.myaas.myaas.plugins.module_utils.templates.generations import kept, origin
from ansible_collections.myaas.myaas.plugins.module_utils.names import container_name
from ansible_collections.myaas.myaas.plugins.module_utils.host import metrics
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import read_json
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import STAGING_PREFIX
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_iso


# Each template's record (importer.METADATA): named here so that reading it
# does not import the importer into every instance run that writes metrics.
TEMPLATE_METADATA = "template.json"


def list_templates(pool):
    # Deferred: only the info module lists rehearsals.
    # pylint: disable-next=import-outside-toplevel
    from ansible_collections.myaas.myaas.plugins.module_utils.upgrades.rehearsal import kept_reports
    templates = []
    for directory in sorted(glob.glob(os.path.join(pool.path, "templates", "*"))):
        meta = read_json(os.path.join(directory, TEMPLATE_METADATA)) or {}
        importing = bool(glob.glob(os.path.join(directory, STAGING_PREFIX + "*")))
        generations = kept(meta)
        templates.append({
            "name": os.path.basename(directory),
            "engine": meta.get("engine"),
            "image": meta.get("image"),
            "generation": meta.get("generation"),
            "imported_at": meta.get("imported_at"),
            "source": meta.get("source"),
            "origin": origin(meta),
            "owner": meta.get("owner"),
            "generations": [dict(record, origin=origin(record)) for record in generations],
            # Upgrade rehearsals of the kept generations, newest first.
            "rehearsals": kept_reports(pool, os.path.basename(directory),
                                       set(record["generation"] for record in generations)),
            "bytes": meta.get("size_bytes"),
            # Per template's current generation; each generation's own are in generations.
            "masking": meta.get("masking"),
            "row_counts": meta.get("row_counts"),
            "checks": meta.get("checks"),
            "personal_columns": meta.get("personal_columns"),
            "status": "importing" if importing else ("ready" if meta else "missing"),
            "warm": warm.summary(pool, os.path.basename(directory)),
        })
    return templates


def list_instances(pool, docker, sizes=True, now=None):
    now = time.time() if now is None else now
    # With quota groups on, btrfs keeps each clone's exclusive bytes: read, not walked (du).
    counted = sizes and pool.quota_enabled()
    instances = []
    for directory in sorted(glob.glob(os.path.join(pool.path, "instances", "*"))):
        meta = read_json(os.path.join(directory, INSTANCE_METADATA))
        if meta is None:
            continue
        state = docker.state(meta["container"])
        data = os.path.join(directory, "data")
        expires = meta.get("expires_at")
        entry = dict((key, meta.get(key)) for key in (
            "name", "template", "generation", "engine", "image", "upgrade_to", "host", "port", "database", "owner",
            "created_at", "expires_at", "protected", "protected_until", "container", "bookmark"))
        entry["bookmarks"] = meta.get("bookmarks") or {}
        entry.update({
            "status": state["Status"] if state else ("missing" if os.path.isdir(data) else "broken"),
            "expired": bool(expires) and parse_iso(expires) <= now,
            "exclusive_bytes": _exclusive_bytes(pool, data, counted) if sizes else None,
            "max_bytes": meta.get("max_bytes"),
            # What max_bytes counts, as the server caps it: its data's growth since the clone.
            "used_bytes": get_engine(meta["engine"]).quota_used(data, meta.get("quota_base_bytes"))
            if meta.get("max_bytes") else None,
        })
        instances.append(entry)
    return instances


def _exclusive_bytes(pool, data, counted):
    """What the instance's data holds alone; None when its data is missing or not a subvolume (its root is
    inode 256 on btrfs), which a quota group would count as the pool's."""
    if not os.path.isdir(data):
        return None
    if counted:
        return pool.qgroup(data)[0] if os.stat(data).st_ino == 256 else None
    return pool.usage(data)[1]


def find_orphans(pool, docker, instances):
    """Containers of the pool whose instance is gone, and instance folders without instance.json.

    An instance whose container or data is missing is not an orphan: its
    status says so, and the reaper repairs it. A folder without instance.json
    may be an instance being made right now; the reaper checks its lock.
    """
    known = set(instance["name"] for instance in instances)
    orphans = []
    for container, name in docker.containers(role="instance", pool=pool.path):
        if name not in known:
            orphans.append({"kind": "container", "name": name, "container": container})
    for directory in sorted(glob.glob(os.path.join(pool.path, "instances", "*"))):
        if os.path.basename(directory) not in known:
            orphans.append({"kind": "datadir", "name": os.path.basename(directory),
                            "container": container_name(pool.path, os.path.basename(directory))})
    return orphans


def instance_password(pool, name):
    secret = read_json(os.path.join(pool.instance_dir(name), SECRET))
    return secret and secret["password"]


def update_metrics(pool, docker, write=True, **events):
    """Record a run's ``events`` (see metrics.record) and, unless not ``write``, write the pool's metrics file.

    Returns a warning for the run's result when they could not be written
    (metrics never fail the work they describe), else None.
    """
    try:
        if events:
            metrics.record(pool, **events)
        warning = metrics.missing_library()
        if warning is None and write:
            templates = []
            for path in sorted(glob.glob(os.path.join(pool.path, "templates", "*", TEMPLATE_METADATA))):
                name = os.path.basename(os.path.dirname(path))
                templates.append(dict(read_json(path) or {}, name=name, warm=warm.summary(pool, name)))
            metrics.write(pool, list_instances(pool, docker), templates)
        return warning
    except (Exception, SystemExit) as exc:  # pylint: disable=broad-exception-caught
        # Metrics never fail the work they describe, nor hide its own error.
        return "Metrics were not written: %s" % exc
