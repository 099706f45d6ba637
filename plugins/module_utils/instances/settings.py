# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings of an existing instance: who may touch it, and what a run asks to change,
planned before anything is done.

An option left out (None) keeps what the instance has. The expiry is counted
from the instance's creation, so asking twice with the same ttl changes
nothing.
"""

from __future__ import annotations

import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso, parse_iso

# What a state does to an instance, as error messages say it.
VERBS = {"absent": "drop", "stopped": "stop", "saved": "save"}
# Applied to a running container with `docker update`.
LIMITS = ("memory", "cpus")


def check_access(meta, params, state):
    """Refuse a requester who does not own the instance, unless the run is an admin's.

    Without ``requester`` (a root shell driving the module directly) nothing
    is checked: ownership is what the playbooks and AWX enforce for people.
    """
    requester = params.get("requester")
    if not requester or params.get("admin") or meta.get("owner") == requester:
        return
    if state in ("present", "started"):
        raise MyaasError("Instance %s belongs to %s, not to %s: its credentials are given to its owner only. "
                         "Ask for another name (or none, to get your own)."
                         % (meta["name"], meta.get("owner"), requester))
    raise MyaasError("Instance %s belongs to %s: only its owner or an admin (myaas_admin=true) may %s it."
                     % (meta["name"], meta.get("owner"), VERBS.get(state, state)))


def protection(protected, lease, now):
    """The metadata of ``protected``: a lease (seconds) ends that long after ``now``."""
    return {"protected": bool(protected), "protection_lease": lease,
            "protected_until": iso(now + lease) if protected and lease else None}


def protected_now(meta, now):
    """Whether the reaper must keep the instance at ``now``: protected, and its lease (if any) not over."""
    until = meta.get("protected_until")
    return bool(meta.get("protected")) and not (until and parse_iso(until) <= now)


def planned_settings(meta, params, now=None):
    """{key: new value} for the settings ``params`` change; raises for those that cannot change.

    A protection lease counts from when it was granted: asked again with the
    same duration it stays as it is; another duration, or the same one once
    the lease has ended, starts a new lease at ``now``.
    """
    if params.get("port") and params["port"] != meta["port"]:
        raise MyaasError("Instance %s listens on port %d; the port of an existing instance cannot change. "
                         "Drop it and create it again with port %d (state=absent, then present); "
                         "state=reset keeps its port." % (meta["name"], meta["port"], params["port"]))
    wanted = {}
    if params.get("ttl") is not None:
        ttl = params["ttl"]
        wanted["expires_at"] = iso(parse_iso(meta["created_at"]) + ttl) if ttl else None
    if params.get("protected") is not None:
        lease = params.get("protection_lease")
        now = time.time() if now is None else now
        ended = bool(meta.get("protected_until")) and parse_iso(meta["protected_until"]) <= now
        if bool(meta.get("protected")) != params["protected"] or meta.get("protection_lease") != lease or ended:
            wanted.update(protection(params["protected"], lease, now))
    if params.get("max_bytes") is not None:
        wanted["max_bytes"] = params["max_bytes"] or None
    for key in ("owner",) + LIMITS:
        if params.get(key) is not None:
            wanted[key] = params[key]
    return dict((key, value) for key, value in wanted.items() if meta.get(key) != value)
