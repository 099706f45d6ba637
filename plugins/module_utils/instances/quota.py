# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk quotas of instances: the server's own cap, a btrfs quota group behind it, and the budgets of owners.

An instance's ``max_bytes`` is what its data may grow by since the clone.
The server itself refuses a write past it (``Engine.quota_args``: InnoDB's
system tablespace capped at the template's size plus max_bytes), and goes on
answering. The data subvolume's quota group gets a larger limit (``backstop``):
what the server may rewrite of the template's data, its logs and temporary
tablespace, and max_bytes again. It holds the pool for the neighbours if
the server writes where it has no cap; it is not met by a runaway write, whose
failure at a btrfs limit would be the server's own page or log write (measured:
an abort, or a hang), not the developer's statement.

An owner's budget (``owner_max_bytes``) is the sum of ``max_bytes`` their
instances may hold, checked when an instance is made or its quota grows.
A level-1 quota group per owner would count their writes together, but a
snapshot placed in one that its template is not in leaves btrfs's
accounting inconsistent until a rescan of the whole pool: too slow for a clone.
"""

from __future__ import annotations

import glob
import hashlib
import os

from ansible.module_utils.common.text.formatters import bytes_to_human, human_to_bytes

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import FileLock, read_json

# A server's start and first writes (redo, undo, temporary tables) need room
# of their own on a fresh clone: less than this cannot start reliably.
MIN_MAX_BYTES = 64 * 2 ** 20
# Above a clone's capped data and its rewrite of the template's: redo (16
# MiB), the temporary tablespace (256 MiB cap), undo and system tables.
BACKSTOP_ROOM = 512 * 2 ** 20


def parse_size(option, value):
    """'20G', '512M', '1.5G', '1073741824' -> bytes; None stays None; 0 or 'none' -> 0 (no quota)."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("0", "none"):
        return 0
    try:
        size = human_to_bytes(text)
    except ValueError:
        raise MyaasError("%s %r is not a size: give bytes or a number with a unit (20G, 512M, 1.5T); "
                         "0 or none for no quota." % (option, value))
    if size < MIN_MAX_BYTES:
        raise MyaasError("%s %r is below %s, the least a server needs to start and write its logs on a clone; "
                         "give more." % (option, value, bytes_to_human(MIN_MAX_BYTES)))
    return size


def check_engine(engine, max_bytes, datadir, otherwise="Or leave max_bytes out"):
    """Refuse a quota that the server of ``datadir`` (a generation's or the instance's) cannot keep itself: fail
    closed, before anything is made or removed. ``otherwise``: the other way out the message gives.

    Returns why the data takes no quota (None: it takes one), which callers need when none was asked for.
    """
    refusal = engine.quota_refusal(datadir)
    if max_bytes and refusal:
        raise MyaasError("max_bytes is refused for this %s instance: %s. %s (the pool's free space and "
                         "myaas_pool_free_bytes still guard it)." % (engine.name, refusal, otherwise))
    return refusal


def backstop(meta):
    """The data subvolume's quota group limit in bytes for an instance with ``max_bytes`` (None without one)."""
    if not meta.get("max_bytes"):
        return None
    base = meta.get("quota_base_bytes") or 0
    return 2 * (base + meta["max_bytes"]) + BACKSTOP_ROOM


def base_of(engine, data, meta):
    """Bytes ``meta``'s max_bytes counts from: its record's, or what ``data`` holds now (a first quota, or a record
    made before quotas had a base)."""
    base = meta.get("quota_base_bytes")
    return engine.quota_base(data) if base is None else base


def check_use(engine, data, meta, max_bytes):
    """Refuse a quota below what the instance's data already grew by (and room for its server's next writes)."""
    if not max_bytes or not os.path.isdir(data) or meta.get("quota_base_bytes") is None:
        return      # a first quota counts from what the data holds when it is given
    used = engine.quota_used(data, meta["quota_base_bytes"]) or 0
    if max_bytes < used + MIN_MAX_BYTES:
        raise MyaasError("max_bytes %s is below what the instance already holds (%s) plus %s for its server's own "
                         "writes: give at least %s, or reset it (state=reset) to start again from its template."
                         % (bytes_to_human(max_bytes), bytes_to_human(used), bytes_to_human(MIN_MAX_BYTES),
                            bytes_to_human(used + MIN_MAX_BYTES)))


def check_no_quota(meta, what):
    """Refuse ``what`` (a bookmark, a branch) of an instance with a quota: its data would become shared, its
    exclusive bytes fall to nothing, and it could write its quota again."""
    if meta.get("max_bytes"):
        raise MyaasError("Instance %s has a disk quota (max_bytes): %s would share its data and let it write its "
                         "quota again. Lift the quota first (max_bytes=0), by an admin, or copy its data another way."
                         % (meta["name"], what))


def apply_limit(pool, data, meta):
    """Give the data subvolume its backstop for ``meta``'s max_bytes (none lifts it), turning quotas on for the
    pool when needed."""
    limit = backstop(meta)
    if limit and not pool.quota_enabled():
        pool.enable_quota()
    if limit or pool.quota_enabled():
        pool.limit_exclusive(data, limit)


def owner_lock(pool, owner, timeout):
    """Held while an owner's budget is checked and the instance made: two requests cannot both take the rest."""
    # Owners are free text; a digest names the lock file safely.
    digest = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:16]
    return FileLock(pool.lock_path("owner", digest), timeout, "The budget of %s" % owner)


def check_budget(pool, owner, name, max_bytes, budget):
    """Refuse ``max_bytes`` for instance ``name`` when the owner's other instances leave less of ``budget``."""
    if not budget:
        return
    held = {}
    for path in glob.glob(os.path.join(pool.path, "instances", "*", "instance.json")):
        meta = read_json(path) or {}
        if meta.get("owner") == owner and meta.get("name") != name:
            held[meta.get("name")] = meta.get("max_bytes") or 0
    left = max(budget - sum(held.values()), 0)
    if not max_bytes:
        raise MyaasError("%s has a disk budget of %s (owner_max_bytes): give the instance a quota, max_bytes, of "
                         "at most %s (what is left of it)." % (owner, bytes_to_human(budget), bytes_to_human(left)))
    if max_bytes > left:
        holders = ", ".join("%s (%s)" % (key, bytes_to_human(value)) for key, value in sorted(held.items()))
        raise MyaasError("%s's disk budget of %s (owner_max_bytes) has %s left, the rest held by %s. Ask for a "
                         "smaller max_bytes, or drop an instance (playbook drop_db.yml)."
                         % (owner, bytes_to_human(budget), bytes_to_human(left), holders))
