# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The receiving host's half of a ship: check a delivered generation, then make it current.

myaas_ship with ``swap=false`` leaves the generation it delivered read-only in
the template's folder, unused, with ``.ship-gen-N.json`` beside it (the
template.json to install, the Received UUID it must carry, the metadata's
digest it was planned against, the generations to prune). Here, on the host
that serves it: the Received UUID is checked, a throw-away server runs on a
writable snapshot of it and counts every table's rows, and only if they equal
the row counts the importer recorded is template.json swapped, by the same
locked, atomic script myaas_ship uses. A generation that fails is removed:
the current one keeps serving and the next ship sends it again.
"""

from __future__ import annotations

import glob
import json
import os
import re
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.registry import get_engine
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import read_json
from ansible_collections.myaas.myaas.plugins.module_utils.names import pool_tag
from ansible_collections.myaas.myaas.plugins.module_utils.templates.checks import TemplateChecks
from ansible_collections.myaas.myaas.plugins.module_utils.templates.shipping import METADATA, SWAP_SCRIPT, Side, STAGED
from ansible_collections.myaas.myaas.plugins.module_utils.upgrades.rehearsal import compare_counts, start_throwaway_server


def _unlink(path):
    # Another ship may have removed it already (its receive clears staged files).
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def staged(pool, name):
    """[(generation, path of .ship-gen-N.json)] in the template's folder, newest first."""
    found = []
    for path in glob.glob(os.path.join(pool.template_dir(name), STAGED.replace("%d", "*"))):
        match = re.search(r"\.ship-gen-(\d+)\.json$", path)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


class Receiver:
    """Checks and swaps in what myaas_ship delivered of template ``name`` to ``pool``."""

    def __init__(self, pool, docker, runner, name, lock_timeout, start_timeout):
        self.pool, self.docker, self.runner, self.name = pool, docker, runner, name
        self.lock_timeout, self.start_timeout = lock_timeout, start_timeout
        self.side = Side(pool.path, [], runner)

    def plan(self):
        """The staged delivery to check ({generation, uuid, expected, prune, template}), or None."""
        for generation, path in staged(self.pool, self.name):
            with open(path, encoding="utf-8") as handle:
                delivery = json.load(handle)
            if delivery.get("generation") == generation and os.path.isdir(
                    self.pool.generation_path(self.name, generation)):
                return dict(delivery, staged_at=path)
        return None

    def receive(self, delivery):
        """Check the delivered generation, then swap it in; returns {table: {before, after}}. Raises MyaasError."""
        generation = delivery["generation"]
        path = self.pool.generation_path(self.name, generation)
        try:
            got = (self.side.subvolume(path) or {}).get("received_uuid")
            if got != delivery["uuid"]:
                raise MyaasError("Generation %d of template %s was not received whole: its Received UUID is %s, "
                                 "the sender's %s." % (generation, self.name, got or "missing", delivery["uuid"]))
            recorded = delivery["template"].get("row_counts")
            counted = self.count_rows(delivery["template"], path, generation)
            if recorded is None:
                # A branch: nobody counted its rows when it was made. Its server started and answered; the
                # counts go with it from here.
                delivery["template"]["row_counts"] = counted
            tables, problems = compare_counts(recorded, counted) if recorded is not None else (
                dict((table, {"before": None, "after": rows}) for table, rows in counted.items()), [])
            if problems:
                differ = ["%s: %s rows recorded, %s received" % (table, counts["before"], counts["after"])
                          for table, counts in sorted(tables.items()) if counts["before"] != counts["after"]]
                raise MyaasError("Generation %d of template %s as received holds other row counts than its importer "
                                 "recorded: %s. It was removed; the current generation keeps serving."
                                 % (generation, self.name, "; ".join(differ[:10])), row_counts=tables)
        except MyaasError:
            current = read_json(os.path.join(self.pool.template_dir(self.name), METADATA)) or {}
            # Unless an overlapping run made it current meanwhile.
            if current.get("generation") != generation:
                self.pool.delete_subvolume(path)
            _unlink(delivery["staged_at"])
            raise
        self.side.run(["sh", "-c", SWAP_SCRIPT, "myaas-swap", self.pool.template_dir(self.name),
                       self.pool.lock_path("template", self.name), str(self.lock_timeout), delivery["expected"],
                       str(generation), delivery["uuid"]] + list(delivery.get("prune") or []),
                      data=json.dumps(delivery["template"], indent=2, sort_keys=True).encode())
        _unlink(delivery["staged_at"])
        return tables

    def count_rows(self, template, path, generation):
        """Every table's rows, counted by a server of the template's image on a writable snapshot of ``path``."""
        engine = get_engine(template["engine"])
        if not self.docker.image_id(template["image"]):
            raise MyaasError("Image %s, which serves template %s, is not on this host. Make it available with the "
                             "role myaas.myaas.host (host_images)." % (template["image"], self.name))
        data = os.path.join(self.pool.template_dir(self.name), ".verify-%d" % generation)
        container = "myaas-verify-%s-%s-%d" % (pool_tag(self.pool.path), self.name, generation)
        # What a killed check left, of any generation.
        for left in glob.glob(os.path.join(self.pool.template_dir(self.name), ".verify-*")):
            self.pool.delete_subvolume(left)
        self.pool.snapshot(path, data)
        try:
            start_throwaway_server(self.docker, engine, self.pool.path, container, template["image"], data,
                                   dict(role="verify", template=self.name), ("start_timeout", self.start_timeout),
                                   "The received generation's server")
            gate = TemplateChecks(self.docker, engine, container, template.get("databases") or [], {})
            return gate.row_counts(gate.columns())
        finally:
            self.docker.remove(container, self.pool.path)
            self.pool.delete_subvolume(data)


def receive_all(receiver, check_mode=False):
    """Plan and receive; the module's result."""
    delivery = receiver.plan()
    if delivery is None or check_mode:
        return {"changed": delivery is not None, "generation": (delivery or {}).get("generation"), "row_counts": {}}
    started = time.monotonic()
    tables = receiver.receive(delivery)
    return {"changed": True, "generation": delivery["generation"], "row_counts": tables,
            "seconds": round(time.monotonic() - started, 3)}
