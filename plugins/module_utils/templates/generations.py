# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A template's generations: which ones are kept, and which one a clone asks for.

template.json lists the generations kept on the pool (``generations``, oldest
first), each with when it was made and from what: a dump, or an instance or
bookmark for a branch. The list is written in the same atomic rename that
makes a new generation current, so it never names a subvolume that is not
complete. Templates written before this list existed have only their current
generation.
"""

from __future__ import annotations

import os
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_iso, parse_moment

RECORD_KEYS = ("generation", "path", "imported_at", "source", "masking", "row_counts", "checks", "personal_columns")


def record_of(template):
    return dict((key, template.get(key)) for key in RECORD_KEYS)


def kept(template):
    """Records of the generations of ``template`` that are on the pool, oldest first."""
    if not template:
        return []
    records = template.get("generations") or [record_of(template)]
    return [record for record in records if os.path.isdir(record["path"])]


def add_generation(current, template, keep):
    """``template`` (a new current generation) with the list of generations that ``keep`` leaves."""
    first = template["generation"] - keep + 1
    older = [record for record in kept(current) if first <= record["generation"] < template["generation"]]
    return dict(template, generations=older + [record_of(template)])


def origin(record):
    """What a branch generation was made from (instance, bookmark, template, generation); None for a dump."""
    source = record.get("source") or {}
    return source if "instance" in source else None


def pick(template, generation=None, as_of=None, now=None):
    """The record of the generation a clone asks for: by number, as of a moment, or the current one.

    Once a template is masked, its older unmasked generations are not cloned.
    """
    record = _pick(template, generation, as_of, now)
    if template.get("masking") and not record.get("masking"):
        raise MyaasError("Generation %d of template %s was imported without masking, and the template is masked "
                         "now; clone a masked generation." % (record["generation"], template["name"]))
    return record


def _pick(template, generation, as_of, now):
    records = kept(template)
    listing = ", ".join("%d (%s)" % (record["generation"], record["imported_at"]) for record in records) or "none"
    if generation is not None:
        for record in records:
            if record["generation"] == generation:
                return record
        raise MyaasError("Template %s has no generation %d on the pool; it keeps %s. Import with a larger "
                         "keep_generations to keep more." % (template["name"], generation, listing))
    if as_of is not None:
        moment = parse_moment(as_of, time.time() if now is None else now)
        candidates = [record for record in records if parse_iso(record["imported_at"]) <= moment]
        if not candidates:
            raise MyaasError("Template %s has no generation imported at or before %s; it keeps %s."
                             % (template["name"], as_of, listing))
        return max(candidates, key=lambda record: record["generation"])
    return record_of(template)
