"""Physical against logical import of one database, next to the disk's floor (bench.py calls it).

The database is the bench's large template. Its physical backup is taken by
mariadb-backup from a running instance of it (as production's backup job
would take it from the server), then imported as a template of its own. The
floor is a plain copy of the template's datadir on the same disk (cp
--reflink=never, synced): no import can write the same bytes faster.
"""

import os
import shutil
import subprocess
import time

from rig import sh


def _timed(argv):
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def logical_phases(rig, dump):
    """Where a logical import's time goes, from outside: decompressing the dump, and the import's own steps."""
    packed = dump + ".gz"
    with open(packed, "wb") as out:
        subprocess.run(["gzip", "-1", "-c", dump], stdout=out, check=True)
    decompress = _timed(["sh", "-c", "gzip -dc '%s' > /dev/null" % packed])
    os.unlink(packed)
    return {"decompress_gzip_seconds": decompress}


def physical_vs_logical(rig, template, logical_seconds, timings):
    """Seconds of the logical import, the physical import of the same database, and the floor; and ratios."""
    instance = rig.instance("physical-source", template=template)
    assert not instance.get("failed"), instance.get("msg")
    backup = os.path.join(rig.base, "%s.xbstream" % template)
    try:
        with open(backup, "wb") as out:
            subprocess.run(["docker", "exec", instance["instance"]["container"], "mariadb-backup", "--backup",
                            "--stream=xbstream", "--user=root", "--target-dir=/tmp"],
                           stdout=out, stderr=subprocess.DEVNULL, check=True)
    finally:
        rig.instance("physical-source", state="absent")
    physical = rig.template(template + "-physical", backup)
    assert not physical.get("failed"), physical.get("msg")
    made = physical["template"]
    floor_dir = os.path.join(rig.pool, "floor-copy")
    sh("sync")
    started = time.monotonic()
    sh("cp", "-a", "--reflink=never", made["path"], floor_dir)
    sh("sync")
    floor = time.monotonic() - started
    shutil.rmtree(floor_dir)
    os.unlink(backup)
    rig.template(template + "-physical", None, state="absent")
    return {"logical_seconds": logical_seconds, "physical_seconds": made["import_seconds"], "copy_floor_seconds": floor,
            "physical_steps": made["timings"], "logical_steps": timings, "bytes": made["size_bytes"],
            "speedup": logical_seconds / made["import_seconds"], "floor_ratio": made["import_seconds"] / floor}
