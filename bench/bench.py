"""MyAAS benchmark: what MyAAS promises, measured side by side on the real rig.

    python bench/bench.py            # full: ~20 MB and >= 2 GB templates, n = 10
    python bench/bench.py --quick    # small machines and `make test`: tiny sizes, n = 3
    python bench/bench.py --only ship --quick    # only myaas_ship's full and incremental ship figures
    python bench/bench.py --only speed           # module call, warm clone, ten at once, new_db.yml, each / its floor
    python bench/bench.py --only quota           # a clone with a disk quota against one without

Writes bench/results/results.json (every sample), results.md (the table with
goals) and ready_time.png (instance ready time against template size).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

import personal_dump  # noqa: E402  pylint: disable=wrong-import-position
import physical_import  # noqa: E402  pylint: disable=wrong-import-position
import shipping  # noqa: E402  pylint: disable=wrong-import-position
import speed  # noqa: E402  pylint: disable=wrong-import-position
from rig import PG_IMAGE, provision, run_module, sh, teardown  # noqa: E402  pylint: disable=wrong-import-position

GENERATOR = os.path.join(ROOT, "tools", "make_sample_dump.py")
MB = 1000 * 1000


def figure(samples, unit):
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": len(samples),
            "unit": unit, "samples": [round(s, 4) for s in samples]}


def make_dump(rig, customers, name, dialect="mysql"):
    path = os.path.join(rig.base, "%s.sql" % name)
    sh(sys.executable, GENERATOR, "--customers", str(customers), "--dialect", dialect, "-o", path)
    return path


def timed(fn):
    started = time.monotonic()
    value = fn()
    return time.monotonic() - started, value


def select_one(rig, instance):
    return rig.query(instance, "SELECT 1")[0][0] == 1


def ready_times(rig, template, runs, prefix):
    """Module call to a successful SELECT 1 with the returned credentials, and the module's own breakdown."""
    totals, breakdown = [], {}
    for run in range(runs):
        name = "%s-%d" % (prefix, run)
        started = time.monotonic()
        result = rig.instance(name, template=template)
        assert not result.get("failed"), result
        assert select_one(rig, result["instance"])
        totals.append(time.monotonic() - started)
        for step, seconds in result["instance"].get("timings", {}).items():
            breakdown.setdefault(step, []).append(seconds)
        rig.instance(name, state="absent")
    return figure(totals, "s"), dict((step, figure(values, "s")) for step, values in breakdown.items())


def baseline_import(rig, dump):
    """The same dump piped with the plain client into a server of the same image with its
    default settings: from an empty datadir to loaded data, as myaas_template's figure is
    (which also includes the clean shutdown and the freeze)."""
    datadir = os.path.join(rig.base, "baseline")
    os.makedirs(datadir)
    container = "myaas-bench-baseline"
    started = time.monotonic()
    sh("docker", "run", "--detach", "--name", container, "--network", "none", "--label",
       "org.myaas.pool=" + rig.pool, "--mount", "type=bind,source=%s,target=/var/lib/mysql" % datadir, rig.image)
    try:
        deadline = time.monotonic() + 120
        while sh("docker", "exec", container, "mariadb", "-e", "SELECT 1", check=False).returncode != 0:
            assert time.monotonic() < deadline, "baseline server did not start"
            time.sleep(0.2)
        sh("docker", "exec", container, "mariadb", "-e", "CREATE DATABASE bench")
        with open(dump, "rb") as source:
            subprocess.run(["docker", "exec", "-i", container, "mariadb", "bench"], stdin=source, check=True)
        return time.monotonic() - started
    finally:
        sh("docker", "rm", "--force", container, check=False)
        sh("rm", "-rf", datadir)


def concurrent(rig, count):
    run, seconds, instances = rig.parallel_instances(rig.base, "small", count, prefix="conc-")
    for i in range(count):
        rig.instance("conc-%d" % i, state="absent")
    return seconds, run.returncode == 0 and len(set(instance["port"] for instance in instances)) == count


def new_db_walltime(rig, runs):
    samples = []
    for run in range(runs):
        seconds, result = timed(lambda run=run: rig.playbook("playbooks/new_db.yml", "-e", "template=small",
                                                             "-e", "instance=pb-%d" % run))
        assert result.returncode == 0, result.stdout[-2000:]
        samples.append(seconds)
        rig.instance("pb-%d" % run, state="absent")
    return figure(samples, "s")


def resets(rig, runs):
    created = rig.instance("resetme", template="small")["instance"]
    samples = []
    for _run in range(runs):
        rig.query(created, "DELETE FROM reviews")
        started = time.monotonic()
        result = rig.instance("resetme", state="reset")
        assert not result.get("failed"), result
        assert rig.query(created, "SELECT COUNT(*) FROM reviews")[0][0] > 0
        samples.append(time.monotonic() - started)
    rig.instance("resetme", state="absent")
    return figure(samples, "s")


def bookmarks_and_branch(rig, template, runs):
    """Save a bookmark, reset to it n times, branch the instance: seconds, and the branch's own bytes."""
    created = rig.instance("bookmarked", template=template)["instance"]
    save_seconds, saved = timed(lambda: rig.instance("bookmarked", state="saved", bookmark="b"))
    assert saved["changed"], saved
    samples = []
    for _run in range(runs):
        rig.query(created, "DELETE FROM reviews")
        started = time.monotonic()
        result = rig.instance("bookmarked", state="reset", bookmark="b")
        assert not result.get("failed"), result
        assert rig.query(created, "SELECT COUNT(*) FROM reviews")[0][0] > 0
        samples.append(time.monotonic() - started)
    branch_seconds, branch = timed(lambda: run_module("myaas_template", {
        "name": "branched", "pool": rig.pool, "from_instance": "bookmarked"}))
    assert branch["changed"], branch
    sh("sync")
    own = sh("btrfs", "filesystem", "du", "-s", "--raw", branch["template"]["path"]).stdout.splitlines()[-1].split()
    origin = sh("btrfs", "filesystem", "du", "-s", "--raw",
                os.path.join(rig.pool, "instances", "bookmarked", "data")).stdout.splitlines()[-1].split()
    rig.instance("bookmarked", state="absent")
    run_module("myaas_template", {"name": "branched", "pool": rig.pool, "state": "absent"})
    return {"save_seconds": save_seconds, "reset_to_bookmark": figure(samples, "s"), "branch_seconds": branch_seconds,
            "branch_exclusive_bytes": int(own[1]), "origin_bytes": int(origin[0]),
            "branch_ratio": int(own[1]) / int(origin[0])}


def masking_cost(rig, customers):
    """Per engine: seconds masking adds per million masked rows, next to the load of the same tables.

    The dump (tests/integration/personal_dump.py) holds the masked and
    truncated tables and a 50-row table of products, so its load time is the
    load time of the masked tables.
    """
    figures = {}
    flavours = (("mariadb", "mysql", {}), ("postgresql", "postgresql", {"engine": "postgresql", "image": PG_IMAGE}))
    for engine, dialect, extra in flavours:
        dump = personal_dump.write(os.path.join(rig.base, "personal-%s.sql" % engine), dialect, customers)
        prefix = "shop" if engine == "mariadb" else "public"
        rules = personal_dump.masking_rules(prefix)
        plain = rig.template("plain-" + engine, dump, database="shop", **extra)
        masked = rig.template("masked-" + engine, dump, database="shop", masking=rules, **extra)
        assert plain["changed"] and masked["changed"], (plain.get("msg"), masked.get("msg"))
        counts = masked["template"]["row_counts"]
        masked_rows = counts["%s.customer" % prefix] + counts["%s.orders" % prefix]
        rows = sum(plain["template"]["row_counts"].values())
        load = plain["template"]["timings"]["load"]
        # What grows with the rows (mask, rebuild), and what does not: the scrub in the server
        # and after its shutdown (MariaDB's two redo log resizes, PostgreSQL's pg_resetwal).
        masking = masked["template"]["masking"]["seconds"]
        fixed = masked["template"]["masking"]["scrub_seconds"] + (
            masked["template"]["timings"]["shutdown_and_scrub"] - plain["template"]["timings"]["shutdown_and_scrub"])
        figures[engine] = {"rows": rows, "masked_rows": masked_rows, "load_seconds": load,
                           "masking_seconds": masking, "fixed_scrub_seconds": fixed,
                           "masking_s_per_million_rows": masking / masked_rows * 1e6,
                           "load_s_per_million_rows": load / rows * 1e6,
                           "ratio": (masking / masked_rows) / (load / rows)}
        for name in ("plain-" + engine, "masked-" + engine):
            rig.template(name, dump, state="absent")
    return figures


def rehearsal(rig, template, image, import_seconds):
    """An upgrade rehearsal of ``template`` to ``image``, next to the same database's import time."""
    result = rig.instance("rehearsal-" + template, template=template, upgrade_to=image)
    assert not result.get("failed"), result.get("msg")
    rig.instance("rehearsal-" + template, state="absent")
    report = result["upgrade"]
    return {"image_to": image, "versions": "%s -> %s" % (report["version_from"], report["version_to"]),
            "rehearsal_seconds": report["seconds"], "import_seconds": import_seconds,
            "ratio": report["seconds"] / import_seconds, "steps": report["steps"], "ok": report["ok"]}


def space(rig, template):
    rig.instance("space", template=template)
    sh("sync")
    [instance] = rig.info(name="space")["instances"]
    size = [t for t in rig.info()["templates"] if t["name"] == template][0]["bytes"]
    rig.instance("space", state="absent")
    return instance["exclusive_bytes"], size


def run(args):
    rig, dockerd_was_up = provision(prefix="myaas-bench-", size=args.pool_size)
    results = {"mode": "quick" if args.quick else "full", "runs": args.runs, "figures": {}}
    try:
        assert rig.provision.returncode == 0, rig.provision.stdout[-3000:]
        figures = results["figures"]
        templates = {}
        if args.only == "speed":
            results["templates"] = {}
            figures["speed"] = speed.speed(rig, speed_templates(rig, args, results["templates"]), args.runs)
            return results
        if args.only == "quota":
            results["templates"] = {}
            # Quotas need the tables in the system tablespace, which the server caps.
            made = speed_templates(rig, args, results["templates"], engines=("mariadb",),
                                   tuning={"innodb_file_per_table": "0"})
            figures["quota"] = speed.quota_cost(rig, made["mariadb"][0], args.runs)
            return results
        for label, customers in ((("small", args.small),) if not args.only else ()) + (("large", args.large),):
            dump = make_dump(rig, customers, label)
            seconds, imported = timed(lambda dump=dump, label=label: rig.template(label, dump))
            assert imported["changed"], imported
            templates[label] = {"dump_bytes": os.path.getsize(dump), "template_bytes": imported["template"]["size_bytes"],
                                "import_seconds": imported["template"]["import_seconds"],
                                "timings": imported["template"]["timings"]}
            print("template %s: %.1f MB dump imported in %.1f s" % (label, templates[label]["dump_bytes"] / MB, seconds))
        results["templates"] = templates
        if not args.only:
            serving(rig, args, templates, figures)
        if args.only != "import":
            figures["ship"] = shipping.ship_rates(rig, "large")
        if args.only != "ship":
            large = os.path.join(rig.base, "large.sql")
            figures["physical"] = physical_import.physical_vs_logical(
                rig, "large", templates["large"]["import_seconds"], templates["large"]["timings"])
            figures["logical_phases"] = physical_import.logical_phases(
                rig, large, rig.image, "large", templates["large"]["timings"])
            figures["parallel_load"] = physical_import.parallel_load(rig, large, rig.image, "large")
            figures["dumped_import"] = physical_import.dumped_import(rig, "large")
    finally:
        teardown(rig, dockerd_was_up)
    return results


def speed_templates(rig, args, templates, engines=("mariadb", "mysql", "postgresql"), tuning=None):
    """The small dump imported on each engine (with ``tuning``): {engine: (template, image, dump)}."""
    made = {}
    for engine, image, dialect in (("mariadb", rig.image, "mysql"), ("mysql", "myaas/mysql:9.7", "mysql"),
                                   ("postgresql", PG_IMAGE, "postgresql")):
        if engine not in engines:
            continue
        label = "speed-" + engine
        dump = make_dump(rig, args.small, label, dialect=dialect)
        imported = rig.template(label, dump, engine=engine, image=image, tuning=tuning or {})
        assert imported["changed"], imported
        templates[label] = {"dump_bytes": os.path.getsize(dump), "template_bytes": imported["template"]["size_bytes"]}
        made[engine] = (label, image, dump)
    return made


def serving(rig, args, templates, figures):
    """The figures of serving instances, and of the import against the plain client."""
    baseline = baseline_import(rig, os.path.join(rig.base, "large.sql"))
    myaas = templates["large"]["import_seconds"]
    figures["import"] = {"dump": "large", "myaas_seconds": myaas, "plain_client_seconds": baseline,
                         "myaas_mb_per_s": templates["large"]["dump_bytes"] / MB / myaas,
                         "plain_mb_per_s": templates["large"]["dump_bytes"] / MB / baseline,
                         "speedup": baseline / myaas, "goal": ">= 2x"}

    pg_dump = make_dump(rig, args.small, "pg-small", dialect="postgresql")
    imported = rig.template("pg-small", pg_dump, engine="postgresql", image=PG_IMAGE)
    assert imported["changed"], imported
    templates["pg-small"] = {"dump_bytes": os.path.getsize(pg_dump),
                             "template_bytes": imported["template"]["size_bytes"],
                             "import_seconds": imported["template"]["import_seconds"]}
    for label in ("small", "large", "pg-small"):
        figures["ready_" + label], figures["ready_breakdown_" + label] = ready_times(rig, label, args.runs, label)
    figures["ready_ratio_large_small"] = figures["ready_large"]["median"] / figures["ready_small"]["median"]
    figures["new_db_playbook"] = new_db_walltime(rig, max(3, args.runs // 2))
    exclusive, size = space(rig, "large")
    figures["space"] = {"exclusive_bytes": exclusive, "template_bytes": size, "ratio": exclusive / size}
    seconds, ok = concurrent(rig, 10)
    figures["concurrency_10"] = {"seconds": seconds, "all_ready_distinct_ports": ok}
    figures["reset"] = resets(rig, args.runs)
    figures["bookmarks"] = bookmarks_and_branch(rig, "large", args.runs)
    figures["masking"] = masking_cost(rig, args.masked)
    figures["rehearsal"] = {
        "large": rehearsal(rig, "large", "myaas/mariadb:11.8", templates["large"]["import_seconds"]),
        "pg-small": rehearsal(rig, "pg-small", "myaas/postgresql:17", templates["pg-small"]["import_seconds"])}


def goals(figures):
    """(figure, measured, goal, met) rows of the figures this run measured."""
    return ((_serving_goals(figures) if "ready_small" in figures else []) + speed.goals(figures)
            + shipping.goals(figures)
            + (_import_goals(figures) if "physical" in figures else []))


def _serving_goals(figures):
    return [
        ("instance ready, small (median)", "%.2f s" % figures["ready_small"]["median"], "<= 1.5 s",
         figures["ready_small"]["median"] <= 1.5),
        ("instance ready, large (median)", "%.2f s" % figures["ready_large"]["median"], "<= 1.5 s",
         figures["ready_large"]["median"] <= 1.5),
        ("ready large / small", "%.2f" % figures["ready_ratio_large_small"], "<= 1.2",
         figures["ready_ratio_large_small"] <= 1.2),
        ("PostgreSQL instance ready, small (median)", "%.2f s" % figures["ready_pg-small"]["median"], "<= 1.5 s",
         figures["ready_pg-small"]["median"] <= 1.5),
        ("new_db.yml wall time (median)", "%.2f s" % figures["new_db_playbook"]["median"], "<= 4 s",
         figures["new_db_playbook"]["median"] <= 4),
        ("fresh instance exclusive / template", "%.2f %%" % (100 * figures["space"]["ratio"]), "<= 1 %",
         figures["space"]["ratio"] <= 0.01),
        ("import speedup vs plain client", "%.2fx (%.1f vs %.1f MB/s)" % (
            figures["import"]["speedup"], figures["import"]["myaas_mb_per_s"], figures["import"]["plain_mb_per_s"]),
         ">= 2x", figures["import"]["speedup"] >= 2),
        ("10 instances at once", "%.1f s" % figures["concurrency_10"]["seconds"], "<= 10 s, distinct ports",
         figures["concurrency_10"]["seconds"] <= 10 and figures["concurrency_10"]["all_ready_distinct_ports"]),
        ("reset (median)", "%.2f s" % figures["reset"]["median"], "<= 1.5 s", figures["reset"]["median"] <= 1.5),
    ] + [
        ("masking, %s: per million rows, against their load" % engine,
         "%.2f (%.1f s vs %.1f s per million rows; plus %.1f s fixed scrub)" % (
             figures["masking"][engine]["ratio"], figures["masking"][engine]["masking_s_per_million_rows"],
             figures["masking"][engine]["load_s_per_million_rows"], figures["masking"][engine]["fixed_scrub_seconds"]),
         "<= 1", figures["masking"][engine]["ratio"] <= 1) for engine in ("mariadb", "postgresql")
    ] + [
        ("reset to a bookmark, large (median)", "%.2f s" % figures["bookmarks"]["reset_to_bookmark"]["median"],
         "< 2 s", figures["bookmarks"]["reset_to_bookmark"]["median"] < 2),
        ("save a bookmark, large (clean stop, snapshot, start)", "%.2f s" % figures["bookmarks"]["save_seconds"],
         "-", True),
        ("branch exclusive / origin, large", "%.3f %% (%.1f MB of %.1f MB), made in %.2f s" % (
            100 * figures["bookmarks"]["branch_ratio"], figures["bookmarks"]["branch_exclusive_bytes"] / MB,
            figures["bookmarks"]["origin_bytes"] / MB, figures["bookmarks"]["branch_seconds"]),
         "<= 1 %", figures["bookmarks"]["branch_ratio"] <= 0.01),
    ] + [
        ("upgrade rehearsal, %s (%s): rehearsal / import of the same database" % (label, rehearsed["versions"]),
         "%.2f (%.1f s vs %.1f s)" % (rehearsed["ratio"], rehearsed["rehearsal_seconds"], rehearsed["import_seconds"]),
         "-", rehearsed["ok"]) for label, rehearsed in sorted(figures["rehearsal"].items())
    ]


def _import_goals(figures):
    return [
        ("physical import (mariadb-backup) vs logical, same database", "%.1fx (%.1f s vs %.1f s)" % (
            figures["physical"]["speedup"], figures["physical"]["physical_seconds"],
            figures["physical"]["logical_seconds"]), ">= 10x", figures["physical"]["speedup"] >= 10),
        ("physical import vs copying its datadir (cp --reflink=never)", "%.1fx (%.1f s vs %.1f s, %.0f MB)" % (
            figures["physical"]["floor_ratio"], figures["physical"]["physical_seconds"],
            figures["physical"]["copy_floor_seconds"], figures["physical"]["bytes"] / MB), "<= 3x",
         figures["physical"]["floor_ratio"] <= 3),
    ] + [
        ("logical import of the large dump: where the load's time goes", "decompress %.0f %%, client and SQL layer "
         "%.0f %%, insert and index build %.0f %% (of %.1f s); flush %.1f s" % (
             100 * figures["logical_phases"]["shares_of_load"]["decompress_seconds"],
             100 * figures["logical_phases"]["shares_of_load"]["client_and_sql_layer_seconds"],
             100 * figures["logical_phases"]["shares_of_load"]["insert_and_index_build_seconds"],
             figures["logical_phases"]["load_seconds"], figures["logical_phases"]["flush_seconds"]), "-", True),
        ("the large dump's rows on 1 / 2 / 4 connections at once (%d CPUs)" % figures["parallel_load"]["cpus"],
         "%s s; speedup %s" % (" / ".join("%.1f" % figures["parallel_load"]["seconds"][n] for n in ("1", "2", "4")),
                               " / ".join("%.2fx" % figures["parallel_load"]["speedup"][n] for n in ("1", "2", "4"))),
         "-", True),
        ("myaas_template, a mariadb-dump of the large database (%.0f MB) on 1 / 2 connections" % (
            figures["dumped_import"]["dump_bytes"] / MB),
         "import %.1f / %.1f s, load %.1f / %.1f s; load speedup %.2fx" % (
             figures["dumped_import"]["import_seconds"]["1"], figures["dumped_import"]["import_seconds"]["2"],
             figures["dumped_import"]["load_seconds"]["1"], figures["dumped_import"]["load_seconds"]["2"],
             figures["dumped_import"]["load_speedup"]["2"]), "-", True),
    ]


def write(results, outdir):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "results.json"), "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    figures = results["figures"]
    lines = ["# MyAAS benchmark (%s mode, n = %d)" % (results["mode"], results["runs"]), "",
             "| figure | measured | goal | met |", "|---|---|---|---|"]
    lines += ["| %s | %s | %s | %s |" % (name, value, goal, "yes" if met else "NO")
              for name, value, goal, met in goals(figures)]
    lines += ["", "Templates: " + ", ".join("%s %.1f MB dump, %.1f MB on the pool" % (
        label, t["dump_bytes"] / MB, t["template_bytes"] / MB) for label, t in results["templates"].items())]
    if "ready_small" in figures:
        lines += ["", "Ready-time breakdown (median seconds): " + "; ".join(
            "%s: %s" % (label, ", ".join("%s %.3f" % (step, f["median"])
                                         for step, f in sorted(figures["ready_breakdown_" + label].items())))
            for label in ("small", "large", "pg-small"))]
        chart(results, os.path.join(outdir, "ready_time.png"))
    with open(os.path.join(outdir, "results.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def chart(results, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    fig, axes = pyplot.subplots(figsize=(6.5, 4))
    for engine, labels, marker in (("MariaDB", ("small", "large"), "o-"), ("PostgreSQL", ("pg-small",), "s")):
        sizes, medians, lows, highs = [], [], [], []
        for label in labels:
            ready = results["figures"]["ready_" + label]
            sizes.append(results["templates"][label]["template_bytes"] / MB)
            medians.append(ready["median"])
            lows.append(ready["median"] - ready["min"])
            highs.append(ready["max"] - ready["median"])
        axes.errorbar(sizes, medians, yerr=[lows, highs], fmt=marker, capsize=4, label=engine)
    axes.set_xscale("log")
    axes.set_xlabel("template size on the pool (MB)")
    axes.set_ylabel("ready time (s): module call to SELECT 1")
    axes.axhline(1.5, color="red", linestyle="--", label="goal 1.5 s")
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.set_title("MyAAS instance ready time vs template size (median, min-max)")
    fig.tight_layout()
    fig.savefig(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 3 runs, for small machines and CI")
    parser.add_argument("--runs", type=int, help="runs per figure (default 10, quick 3)")
    parser.add_argument("--small", type=int, help="customers in the small dump (default 45000: ~20 MB)")
    parser.add_argument("--large", type=int, help="customers in the large dump (default 4600000: > 2 GB of SQL)")
    parser.add_argument("--masked", type=int, help="customers in the masking dump (default 100000; quick 5000)")
    parser.add_argument("--pool-size", help="sparse size of the bench pool (default 40G, quick 8G)")
    parser.add_argument("--only", choices=["import", "ship", "speed", "quota"], help="import: only the large "
                        "template's logical and physical import figures; ship: only myaas_ship's full and incremental "
                        "ship figures; speed: only an instance's time against the server's own (issue 24's ratios); "
                        "quota: only a clone's time with and without a disk quota")
    parser.add_argument("--output", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 10)
    args.small = args.small or (2000 if args.quick else 45000)
    args.large = args.large or (20000 if args.quick else 4600000)
    args.masked = args.masked or (5000 if args.quick else 100000)
    args.pool_size = args.pool_size or ("8G" if args.quick else "40G")
    write(run(args), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
