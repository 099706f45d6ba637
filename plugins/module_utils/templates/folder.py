# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A template's folder on the pool: its numbered subvolumes, what failed imports left, what is pruned.

templates/NAME/ holds gen-N (the generations), base-N (a generation's
physical backup as restored, for incremental refreshes), .importing-*
(staging of an import under way or killed), rehearsals/ (upgrade reports by
generation) and template.json. Every function runs under the template's lock.
"""

from __future__ import annotations

import glob
import os

from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import STAGING_PREFIX

KINDS = ("gen-", "base-")


def numbered(pool, name, prefixes=KINDS):
    """(path, number) of every gen-N and base-N subvolume of template ``name``, by number."""
    found = []
    for prefix in prefixes:
        for path in glob.glob(os.path.join(pool.template_dir(name), prefix + "*")):
            suffix = path.rsplit("-", 1)[1]
            if suffix.isdigit():
                found.append((path, int(suffix)))
    return sorted(found, key=lambda item: item[1])


def leftovers(pool, docker, name, current):
    """(containers, subvolumes) of imports of ``name`` that did not finish.

    A generation newer than the current one was renamed into place by a run
    that died (or hit a full pool) before template.json named it: nothing
    serves it, and the next import needs its number.
    """
    containers = docker.names(role="import", template=name, pool=pool.path)
    staging = sorted(glob.glob(os.path.join(pool.template_dir(name), STAGING_PREFIX + "*")))
    stray = [path for path, number in numbered(pool, name) if number > (current or {}).get("generation", 0)]
    return containers, staging + stray


def remove_leftovers(pool, docker, name, current):
    containers, subvolumes = leftovers(pool, docker, name, current)
    for container in containers:
        docker.remove(container, pool.path)
    for path in subvolumes:
        pool.delete_subvolume(path)
    return containers + subvolumes


def prune(pool, name, generation, keep):
    """Delete what ``keep`` generations up to ``generation`` no longer need: subvolumes and rehearsal reports."""
    for path, number in numbered(pool, name):
        if number <= generation - keep:
            pool.delete_subvolume(path)
    for report in glob.glob(os.path.join(pool.template_dir(name), "rehearsals", "gen-*-*.json")):
        number = os.path.basename(report).split("-")[1]
        if number.isdigit() and int(number) <= generation - keep:
            os.unlink(report)


def delete_subvolumes(pool, name):
    for path, _number in numbered(pool, name):
        pool.delete_subvolume(path)
