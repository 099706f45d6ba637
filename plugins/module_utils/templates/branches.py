# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Branches: a template (or a new generation of one) made of an instance's data.

The instance's server is shut down cleanly first (a bookmark already was),
its datadir is snapshotted read-only into the template's staging name and
renamed into place, and the template's metadata names it in one atomic
rename, as an import does. No byte is copied: the branch shares its data
with its origin until either of them writes.
"""

from __future__ import annotations

import os

from ansible_collections.myaas.myaas.plugins.module_utils.instances import bookmarks, quota
from ansible_collections.myaas.myaas.plugins.module_utils.instances.clone import load_instance_or_fail
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.instances.settings import check_access
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import read_json
from ansible_collections.myaas.myaas.plugins.module_utils.templates.importer import TEMPLATE_FORMAT, metadata_path


def _check_target(current, meta, params):
    if current and current["engine"] != meta["engine"]:
        raise MyaasError("Template %s holds %s data; instance %s runs %s. Branch into a new template name."
                         % (current["name"], current["engine"], meta["name"], meta["engine"]))
    requester = params.get("requester")
    if current and requester and not params.get("admin") and current.get("owner") != requester:
        raise MyaasError("Template %s is not a branch of %s's; choose a new template name for the branch "
                         "(only an admin, myaas_admin=true, may replace someone else's template)."
                         % (current["name"], requester))


def plan(templates, instances, current, bookmark):
    """(instance metadata, the branch's template metadata as it will be, the bookmark's path or None)."""
    pool = templates.pool
    meta = load_instance_or_fail(pool, instances.name)
    check_access(meta, templates.params, "branch")
    _check_target(current, meta, templates.params)
    generation, bookmark_path = meta["generation"], None
    if not bookmark:
        quota.check_no_quota(meta, "a branch of its live data")
    if bookmark:
        record, bookmark_path = bookmarks.find(instances, meta, bookmark)
        generation = record["generation"]
    origin = read_json(metadata_path(pool, meta["template"])) or {}
    user = read_json(instances.paths["secret"])["user"]
    inherited = (origin.get("source") or {}).get("accounts", [])
    number = (current["generation"] if current else 0) + 1
    return meta, bookmark_path, {
        "name": templates.name,
        "engine": meta["engine"],
        "image": meta["image"],
        "image_id": origin.get("image_id") or templates.docker.image_id(meta["image"]),
        "owner": templates.params.get("requester") or meta.get("owner"),
        "generation": number,
        "path": pool.generation_path(templates.name, number),
        "options": {"format": TEMPLATE_FORMAT, "database": meta["database"], "post_import_sql": [], "tuning": {}},
        "databases": origin.get("databases") or [meta["database"]],
        "definers_created": origin.get("definers_created", []),
        # The instance's account is in the data; clones of the branch lock it.
        "source": {"instance": meta["name"], "bookmark": bookmark, "template": meta["template"],
                   "generation": generation, "owner": meta.get("owner"), "accounts": sorted(set(inherited + [user]))},
    }


def make_branch(templates, instances, bookmark=None):
    """Make the template ``templates.name`` (or its next generation) from an instance or its bookmark."""
    pool = templates.pool
    pool.ensure_layout()
    with templates.lock():
        current = read_json(metadata_path(pool, templates.name))
        # pylint: disable-next=protected-access
        with instances._lock():
            meta, bookmark_path, planned = plan(templates, instances, current, bookmark)
            if bookmark and current and current["source"] == planned["source"]:
                # A bookmark never changes: the branch already holds it.
                return {"changed": False, "template": current, "diff": {"before": current, "after": current}}
            result = {"changed": True, "reason": "branch of instance %s%s" % (
                meta["name"], " at bookmark %s" % bookmark if bookmark else ""),
                "diff": {"before": current or {}, "after": planned}, "template": planned}
            if templates.check_mode:
                return result
            os.makedirs(pool.template_dir(templates.name), mode=0o755, exist_ok=True)
            result["removed_leftovers"] = templates.remove_leftovers(current)
            staging = pool.staging_path(templates.name, planned["generation"])
            try:
                if bookmark_path:
                    pool.snapshot(bookmark_path, staging, readonly=True)
                else:
                    with bookmarks.cleanly_stopped(instances, meta):
                        pool.snapshot(instances.paths["data"], staging, readonly=True)
                os.rename(staging, planned["path"])
            except BaseException:
                pool.delete_subvolume(staging)
                raise
        result["template"] = result["diff"]["after"] = templates.commit(planned, current)
        return result
