"""The metrics file: what prometheus_client's own parser reads back from it."""

import json
import pathlib

from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.myaas.myaas.plugins.module_utils.host import metrics
from ansible_collections.myaas.myaas.plugins.module_utils.host.pool import Pool
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso


def samples(path):
    with open(path, encoding="utf-8") as handle:
        families = list(text_string_to_metric_families(handle.read()))
    return dict(((sample.name, tuple(sorted(sample.labels.items()))), sample.value)
                for family in families for sample in family.samples)


def test_events_and_the_pool_render_as_prometheus_reads_them(pool_dir, make_runner):
    pool_dir = pathlib.Path(pool_dir)
    pool = Pool(str(pool_dir), make_runner([]))
    (pool_dir / "locks").mkdir(exist_ok=True)
    (pool_dir / "host.json").write_text(json.dumps({"metrics_dir": str(pool_dir / "textfiles")}))
    for seconds in (0.2, 0.7, 42.0):
        metrics.record(pool, ready_seconds=seconds)
    metrics.record(pool, import_of="shop", import_ok=False, now=1000.0)
    metrics.record(pool, import_of="shop", import_ok=True, now=2000.0)
    metrics.record(pool, import_of="hr", import_ok=False)
    instances = [dict(name="a1", template="shop", owner="alice", status="running", exclusive_bytes=4096,
                      used_bytes=2048, max_bytes=2 ** 30),
                 dict(name="a2", template="shop", owner="alice", status="running", exclusive_bytes=None),
                 dict(name="b1", template="shop", owner=None, status="exited", exclusive_bytes=0)]
    templates = [dict(name="shop", generation=3, imported_at=iso(1500.0), import_seconds=12.5,
                      warm={"count": 2, "ready": 1, "generations": [3], "error": None}),
                 dict(name="hr", warm=None)]        # never imported: no generation
    path = metrics.write(pool, instances, templates, now=1600.0)
    assert path.startswith(str(pool_dir / "textfiles" / "myaas-")) and path.endswith(".prom")
    got = samples(path)
    p = ("pool", str(pool_dir))
    assert got[("myaas_instances", (("owner", "alice"), p, ("status", "running"), ("template", "shop")))] == 2
    assert got[("myaas_instances", (("owner", ""), p, ("status", "exited"), ("template", "shop")))] == 1
    a1 = (("instance_name", "a1"), ("owner", "alice"), p, ("template", "shop"))
    assert got[("myaas_instance_exclusive_bytes", a1)] == 4096
    assert not [key for key in got if key[0] == "myaas_instance_exclusive_bytes" and ("instance_name", "a2") in key[1]]
    assert got[("myaas_instance_max_bytes", a1)] == 2 ** 30
    assert got[("myaas_instance_used_bytes", a1)] == 2048
    assert not [key for key in got if key[0] == "myaas_instance_used_bytes" and ("instance_name", "a2") in key[1]]
    assert got[("myaas_template_generation_age_seconds", (p, ("template", "shop")))] == 100.0
    assert got[("myaas_template_import_duration_seconds", (p, ("template", "shop")))] == 12.5
    assert got[("myaas_template_import_last_success_timestamp_seconds", (p, ("template", "shop")))] == 2000.0
    assert got[("myaas_template_import_failures_total", (p, ("template", "shop")))] == 1
    assert got[("myaas_template_import_failures_total", (p, ("template", "hr")))] == 1
    assert got[("myaas_template_warm_clones", (p, ("template", "shop")))] == 2
    assert got[("myaas_template_warm_clones_ready", (p, ("template", "shop")))] == 1
    assert not [key for key in got if key[0].startswith("myaas_template_warm") and ("template", "hr") in key[1]]
    assert not [key for key in got if key[0].startswith("myaas_template_generation") and ("template", "hr") in key[1]]
    assert got[("myaas_instance_ready_seconds_bucket", (("le", "0.25"), p))] == 1
    assert got[("myaas_instance_ready_seconds_bucket", (("le", "1.0"), p))] == 2
    assert got[("myaas_instance_ready_seconds_bucket", (("le", "60.0"), p))] == 3
    assert got[("myaas_instance_ready_seconds_count", (p,))] == 3
    assert abs(got[("myaas_instance_ready_seconds_sum", (p,))] - 42.9) < 1e-9
    assert got[("myaas_pool_size_bytes", (p,))] > 0


def test_without_the_library_a_warning_says_what_to_install(monkeypatch):
    monkeypatch.setattr(metrics.importlib.util, "find_spec", lambda name: None)
    assert "prometheus_client is missing" in metrics.missing_library()


def test_the_alerts_and_the_dashboard_use_only_metrics_that_are_written(pool_dir, make_runner):
    import os
    import re
    import yaml
    pool = Pool(pool_dir, make_runner([]))
    os.makedirs(os.path.join(pool_dir, "locks"), exist_ok=True)
    metrics.record(pool, ready_seconds=0.5)
    metrics.record(pool, import_of="shop", import_ok=False)
    shop = dict(name="shop", generation=1, imported_at=iso(1000.0), import_seconds=3.0,
                warm={"count": 1, "ready": 1, "generations": [1], "error": None})
    path = metrics.write(pool, [dict(name="a1", template="shop", owner="alice", status="running",
                                     exclusive_bytes=1, used_bytes=1, max_bytes=2)], [shop])
    written = set(key[0] for key in samples(path))
    folder = os.path.join(os.path.dirname(__file__), "..", "..", "extensions", "monitoring")
    with open(os.path.join(folder, "alerts.yml"), encoding="utf-8") as handle:
        rules = yaml.safe_load(handle)["groups"][0]["rules"]
    with open(os.path.join(folder, "grafana-dashboard.json"), encoding="utf-8") as handle:
        dashboard = json.load(handle)
    expressions = [rule["expr"] for rule in rules] + [target["expr"] for panel in dashboard["panels"]
                                                      for target in panel["targets"]]
    used = set(name for expr in expressions for name in re.findall(r"\bmyaas_[a-z_]+", expr))
    assert {"myaas_template_import_last_success_timestamp_seconds", "myaas_pool_free_bytes"} <= used
    assert used <= written, used - written
    assert set(rule["alert"] for rule in rules) >= {"MyaasImportStale", "MyaasPoolAlmostFull"}
