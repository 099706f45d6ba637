"""myaas_ship's rate and bytes: a full ship and an incremental ship of one template (bench.py calls it).

The template is a physical one, refreshed as production refreshes it: a full
mariadb-backup of a running instance of the bench's large template is
imported (generation 1, with its base), a night's changes are made on that
instance, and its incremental backup is imported on top (generation 2, a
snapshot of generation 1's base). Each generation is shipped with myaas_ship
to a second btrfs pool of this host (a loop file of its own, so the stream
crosses file systems): generation 1 whole, generation 2 with generation 1 as
its parent. An instance on the receiving pool then reads the night's changes.
"""

import os
import shutil

from physical_import import take_backup
from rig import run_module

MB = 1000 * 1000
NAME = "shipped"
# A night's changes: 1 % of the customers move, 1 % more reviews.
CHANGE = ("UPDATE customers SET city = 'Hamburg' WHERE id % 100 = 0",
          "INSERT INTO reviews (product_id, customer_id, stars, body) "
          "SELECT product_id, customer_id, stars, CONCAT(body, ' (again)') FROM reviews WHERE id % 100 = 0")
COUNT = "SELECT COUNT(*) FROM reviews"


def _ok(result):
    assert not result.get("failed"), (result.get("msg"), result.get("module_stderr"))
    return result


def _backups(rig, template, workdir):
    """(full backup, incremental backup, reviews after the change) of a running instance of ``template``."""
    made = _ok(rig.instance("ship-source", template=template))["instance"]
    full, incremental = os.path.join(workdir, "full.xbstream"), os.path.join(workdir, "incremental.xbstream")
    try:
        take_backup(made["container"], full, "--extra-lsndir=/tmp/full-lsn")
        for statement in CHANGE:
            rig.query(made, statement)
        reviews = rig.query(made, COUNT)[0][0]
        take_backup(made["container"], incremental, "--incremental-basedir=/tmp/full-lsn")
    finally:
        rig.instance("ship-source", state="absent")
    return full, incremental, reviews


def _on_target(rig, target):
    made = _ok(run_module("myaas_instance", {"name": "ship-check", "template": NAME, "pool": target}))["instance"]
    try:
        return rig.query(made, COUNT)[0][0]
    finally:
        run_module("myaas_instance", {"name": "ship-check", "pool": target, "state": "absent"})


def ship_rates(rig, template):
    """Bytes sent, seconds and MB/s of a full and of an incremental ship of one template; and ratios."""
    workdir = os.path.join(rig.base, "ship")
    os.makedirs(workdir)
    try:
        full, incremental, reviews = _backups(rig, template, workdir)
        sizes = {"incremental_backup_bytes": os.path.getsize(incremental)}
        first = _ok(rig.template(NAME, full, keep_generations=2))["template"]
        os.unlink(full)
        # Sparse: room for both generations, whatever their size.
        with rig.small_pool(workdir, "%dM" % (3 * first["size_bytes"] // 2 ** 20 + 1024)) as target:
            ships = {}

            def ship(mode):
                ships[mode] = _ok(run_module("myaas_ship", {"name": NAME, "source_pool": rig.pool,
                                                            "target_pool": target}))
                assert ships[mode]["mode"] == mode, ships[mode]

            ship("full")
            second = _ok(rig.template(NAME, incremental, keep_generations=2))["template"]
            assert second["generation"] == 2, second
            ship("incremental")
            assert ships["incremental"]["parent"] == 1, ships["incremental"]
            assert _on_target(rig, target) == reviews, "the receiver does not hold the night's changes"
            run_module("myaas_template", {"name": NAME, "pool": target, "state": "absent"})
        return _figures(ships, sizes, first, second)
    finally:
        rig.template(NAME, None, state="absent")
        shutil.rmtree(workdir, ignore_errors=True)


def _figures(ships, sizes, first, second):
    figures = dict(("%s_%s" % (mode, key), result[key]) for mode, result in ships.items()
                   for key in ("bytes_sent", "seconds"))
    for mode, result in ships.items():
        figures[mode + "_mb_per_s"] = result["rate"] / MB
    figures.update(sizes, full_template_bytes=first["size_bytes"], template_bytes=second["size_bytes"],
                   incremental_of_full=figures["incremental_bytes_sent"] / figures["full_bytes_sent"],
                   incremental_of_template=figures["incremental_bytes_sent"] / second["size_bytes"],
                   full_of_template=figures["full_bytes_sent"] / first["size_bytes"])
    return figures


def goals(figures):
    """The report's rows (figure, measured, goal, met) of the ship figures, if this run measured them."""
    if "ship" not in figures:
        return []
    ship = figures["ship"]
    return [
        ("myaas_ship, full: generation 1 of a physical template (%.0f MB) to another pool" % (
            ship["full_template_bytes"] / MB),
         "%.1f MB/s (%.1f MB sent in %.1f s; %.1f %% of the template, zstd)" % (
             ship["full_mb_per_s"], ship["full_bytes_sent"] / MB, ship["full_seconds"],
             100 * ship["full_of_template"]), "-", True),
        ("myaas_ship, incremental: generation 2 (a mariadb-backup incremental of %.1f MB) against generation 1" % (
            ship["incremental_backup_bytes"] / MB),
         "%.1f MB/s (%.2f MB sent in %.2f s); %.2f %% of the full ship's bytes, %.2f %% of the template" % (
             ship["incremental_mb_per_s"], ship["incremental_bytes_sent"] / MB, ship["incremental_seconds"],
             100 * ship["incremental_of_full"], 100 * ship["incremental_of_template"]),
         "< 20 % of the template", ship["incremental_of_template"] < 0.2),
    ]
