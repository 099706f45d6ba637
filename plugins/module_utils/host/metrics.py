# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics of a pool, as a file for node_exporter's textfile collector.

What can be read off the pool (instances, templates, space) is read afresh at
every write. What happened between writes - import failures, the last
successful import, how long instances took to answer - is kept in the pool's
``metrics.json`` (the event records), updated under a lock by the run that saw
it. prometheus_client renders the file and replaces it atomically, so the
collector never reads half of one. Its import is deferred to the write: module
runs that write nothing do not pay for it.
"""

from __future__ import annotations

import importlib.util
import os
import time

from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import FileLock, read_json, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.names import pool_tag
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import parse_iso

EVENTS = "metrics.json"
# Upper bounds (seconds) of myaas_instance_ready_seconds: warm clones answer
# in a fraction of a second, clones in about one, upgrades in minutes.
READY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def metrics_file(pool):
    """Where the pool's metrics go: the folder the host role recorded (host_metrics_dir), else <pool>/metrics."""
    record = read_json(os.path.join(pool.path, "host.json")) or {}
    folder = record.get("metrics_dir") or os.path.join(pool.path, "metrics")
    # One file per pool: a textfile collector reads every *.prom of its folder.
    return os.path.join(folder, "myaas-%s.prom" % pool_tag(pool.path))


def missing_library():
    """A warning when prometheus_client cannot be imported here, else None."""
    if importlib.util.find_spec("prometheus_client") is None:
        return ("Metrics were not written: the Python library prometheus_client is missing on this host "
                "(the host role installs it).")
    return None


def record(pool, import_of=None, import_ok=None, ready_seconds=None, now=None):
    """Add what a run saw to the pool's event records.

    ``import_of``/``import_ok``: a template's import run ended (an unchanged
    dump is a success: the template is as fresh as its source).
    ``ready_seconds``: an instance answered its first login after that long.
    """
    now = time.time() if now is None else now
    with FileLock(pool.lock_path("metrics", "events"), 30, "The metrics of pool %s" % pool.path):
        events = read_json(os.path.join(pool.path, EVENTS)) or {}
        if import_of:
            template = events.setdefault("templates", {}).setdefault(import_of, {"failures": 0})
            if import_ok:
                template["last_success"] = now
            else:
                template["failures"] += 1
        if ready_seconds is not None:
            ready = events.setdefault("ready_seconds", {"buckets": [0] * len(READY_BUCKETS), "sum": 0.0, "count": 0})
            for index, bound in enumerate(READY_BUCKETS):
                if ready_seconds <= bound:
                    ready["buckets"][index] += 1
            ready["sum"] += ready_seconds
            ready["count"] += 1
        write_json(os.path.join(pool.path, EVENTS), events)


def write(pool, instances, templates, now=None):
    """Render the pool's metrics into its textfile (see ``metrics_file``); returns its path.

    ``instances`` and ``templates`` are what inventory.list_instances and
    list_templates give. Raises ImportError without prometheus_client.
    """
    # pylint: disable-next=import-outside-toplevel
    from prometheus_client import CollectorRegistry, write_to_textfile
    now = time.time() if now is None else now
    path = metrics_file(pool)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    # The events are read under the lock of the write: a run that wrote
    # later never leaves a file older than another's (counters only grow).
    with FileLock(pool.lock_path("metrics", "file"), 30, "The metrics file of pool %s" % pool.path):
        registry = CollectorRegistry()
        registry.register(_Collector(pool, instances, templates, now))
        write_to_textfile(path, registry)
    return path


class _Collector:
    """Yields the metric families once, at the write."""

    def __init__(self, pool, instances, templates, now):
        self.pool, self.instances, self.templates, self.now = pool, instances, templates, now
        self.events = read_json(os.path.join(pool.path, EVENTS)) or {}

    def collect(self):
        # pylint: disable-next=import-outside-toplevel
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        pool = self.pool.path
        counts = {}
        for instance in self.instances:
            key = (instance["template"], instance["owner"] or "", instance["status"])
            counts[key] = counts.get(key, 0) + 1
        family = GaugeMetricFamily("myaas_instances", "Instances on the pool, by template, owner and status.",
                                   labels=["pool", "template", "owner", "status"])
        for (template, owner, status), count in sorted(counts.items()):
            family.add_metric([pool, template, owner, status], count)
        yield family
        yield self._per_instance("myaas_instance_exclusive_bytes", "Bytes only this instance holds (its own "
                                 "writes since its clone), as btrfs counts them.", "exclusive_bytes")
        yield self._per_instance("myaas_instance_used_bytes", "What the instance's data grew by since its clone, "
                                 "as its server counts it against max_bytes; absent without a quota.", "used_bytes")
        yield self._per_instance("myaas_instance_max_bytes", "The instance's disk quota (max_bytes), in bytes; "
                                 "absent for an instance without one.", "max_bytes")
        yield self._per_template("myaas_template_generation_age_seconds", "Seconds since the current generation "
                                 "was imported.", lambda meta: self.now - parse_iso(meta["imported_at"])
                                 if meta.get("imported_at") else None)
        yield self._per_template("myaas_template_import_duration_seconds", "How long the import of the current "
                                 "generation took.", lambda meta: meta.get("import_seconds"))
        yield self._per_template("myaas_template_import_last_success_timestamp_seconds", "When the template "
                                 "last ended an import run current with its source (an unchanged dump counts).",
                                 self._last_success)
        yield self._per_template("myaas_template_warm_clones", "Warm clones the template keeps ready for "
                                 "requests (myaas_template warm); absent when it keeps none and none are left.",
                                 lambda meta: (meta.get("warm") or {}).get("count"))
        yield self._per_template("myaas_template_warm_clones_ready", "Warm clones waiting for a request now; "
                                 "below myaas_template_warm_clones while a refill runs or fails.",
                                 lambda meta: (meta.get("warm") or {}).get("ready"))
        failures = CounterMetricFamily("myaas_template_import_failures", "Import runs that failed (the previous "
                                       "generation kept serving).", labels=["pool", "template"])
        for name, template in sorted(self.events.get("templates", {}).items()):
            failures.add_metric([pool, name], template.get("failures", 0))
        yield failures
        ready = self.events.get("ready_seconds", {"buckets": [0] * len(READY_BUCKETS), "sum": 0.0, "count": 0})
        buckets = [(repr(bound), count) for bound, count in zip(READY_BUCKETS, ready["buckets"])]
        histogram = HistogramMetricFamily("myaas_instance_ready_seconds", "Seconds from a request's clone to the "
                                          "instance's first login (creates and resets).", labels=["pool"])
        histogram.add_metric([pool], buckets + [("+Inf", ready["count"])], ready["sum"])
        yield histogram
        stat = os.statvfs(pool)
        for name, value, text in (("myaas_pool_size_bytes", stat.f_blocks, "Size of the pool's file system."),
                                  ("myaas_pool_free_bytes", stat.f_bavail, "Bytes new data may still use on "
                                   "the pool.")):
            family = GaugeMetricFamily(name, text, labels=["pool"])
            family.add_metric([pool], value * stat.f_frsize)
            yield family

    def _last_success(self, meta):
        recorded = self.events.get("templates", {}).get(meta["name"], {}).get("last_success")
        return recorded if recorded is not None else (parse_iso(meta["imported_at"]) if meta.get("imported_at")
                                                      else None)

    def _per_instance(self, name, text, key):
        # pylint: disable-next=import-outside-toplevel
        from prometheus_client.core import GaugeMetricFamily
        # Not "instance": Prometheus sets that label to the scraped target.
        family = GaugeMetricFamily(name, text, labels=["pool", "instance_name", "template", "owner"])
        for instance in self.instances:
            if instance.get(key) is not None:
                family.add_metric([self.pool.path, instance["name"], instance["template"], instance["owner"] or ""],
                                  instance[key])
        return family

    def _per_template(self, name, text, value_of):
        # pylint: disable-next=import-outside-toplevel
        from prometheus_client.core import GaugeMetricFamily
        family = GaugeMetricFamily(name, text, labels=["pool", "template"])
        for template in self.templates:
            value = value_of(template) if template.get("generation") is not None else None
            if value is not None:
                family.add_metric([self.pool.path, template["name"]], value)
        return family
