# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Upgrade rehearsal: an instance's fresh snapshot upgraded in place to a newer major version.

Between the snapshot and the instance's first start, the snapshot's datadir
is upgraded the way production would be: MariaDB's new server on the old
datadir, then mariadb-upgrade; MySQL's new server, which upgrades itself at
start; PostgreSQL's pg_upgrade --link into a new datadir inside the snapshot
(upgrades/postgresql.py). The upgraded server then runs once, with no network,
for the report: versions, seconds per step, what the tools and the server's
log warned about, every table's rows against the template's count, the
template's checks, and every view and routine compiled (upgrades/objects.py).
It is shut down cleanly, and the instance starts on the new image as any
clone does. The template is never touched: only the snapshot is written.

A step that fails raises MyaasError naming the problem; the caller removes
the snapshot, so nothing is left behind. Every report, finished or not, is
kept beside the template (``rehearsals/``), one per generation and image,
where myaas_info shows it.
"""

from __future__ import annotations

import glob
import os
import re
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.versions import image_version, version_key
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import read_json, write_init_file, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import labels
from ansible_collections.myaas.myaas.plugins.module_utils.instances.bookmarks import verify_clean_stop
from ansible_collections.myaas.myaas.plugins.module_utils.templates.checks import TemplateChecks
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso
from ansible_collections.myaas.myaas.plugins.module_utils.upgrades import postgresql as pg_upgrade
from ansible_collections.myaas.myaas.plugins.module_utils.upgrades.objects import objects_checker

# Seconds a clean shutdown of the upgraded server may take.
STOP_TIMEOUT = 300


def rehearsals_dir(pool, template):
    return os.path.join(pool.template_dir(template), "rehearsals")


def report_path(pool, template, generation, image):
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", image)
    return os.path.join(rehearsals_dir(pool, template), "gen-%d-%s.json" % (generation, slug))


def kept_reports(pool, template, generations):
    """The kept rehearsal reports of ``template`` whose generation is in ``generations``, newest first."""
    reports = [read_json(path) for path in glob.glob(os.path.join(rehearsals_dir(pool, template), "gen-*.json"))]
    reports = [report for report in reports if report and report.get("generation") in generations]
    return sorted(reports, key=lambda report: report.get("finished_at") or "", reverse=True)


def compare_counts(before, after):
    """{table: {before, after}} of every table, and the problems of those that differ."""
    tables, problems = {}, []
    for table in sorted(set(before or {}) | set(after)):
        old, new = (before or {}).get(table), after.get(table)
        tables[table] = {"before": old, "after": new}
        if old != new:
            problems.append({"kind": "rows", "name": table,
                             "problem": "%s rows before the upgrade, %s after" % (old, new)})
    return tables, problems


def start_throwaway_server(docker, engine, pool_path, container, image, data, role_labels, timeout, what):
    """Start ``image``'s server on the datadir ``data`` as its owner, with no network, logged in locally only
    (the engine's init file); return once it answers. ``timeout``: (option name, seconds). Raises MyaasError."""
    init_sql = engine.upgrade_init_sql()
    if init_sql:
        write_init_file(data, engine.init_file, init_sql)
    owner = os.stat(data)
    entrypoint, args = engine.command(engine.clone_args())
    docker.remove(container, pool_path)
    docker.run({
        "name": container, "image": image, "user": "%d:%d" % (owner.st_uid, owner.st_gid),
        "entrypoint": entrypoint, "args": args, "network": "none", "stop_signal": engine.stop_signal,
        "labels": labels(pool=pool_path, engine=engine.name, **role_labels),
        "mounts": [{"type": "bind", "source": data, "target": engine.datadir}],
    })
    docker.wait_until_answers(container, engine.ready_probe(), engine.exec_user, timeout, what, 0.1)


class Rehearsal:
    """One upgrade of the snapshot at ``steps.paths["data"]`` from the template's image to ``meta["upgrade_to"]``."""

    def __init__(self, steps, meta, engine, template, record):
        self.steps, self.meta, self.engine = steps, meta, engine
        self.docker, self.pool = steps.docker, steps.pool
        self.template, self.record = template, record
        self.data = steps.paths["data"]
        self.container = steps.container + "-upgrade"
        self.report = {
            "template": meta["template"], "generation": record["generation"], "instance": meta["name"],
            "image_from": template["image"], "image_to": meta["upgrade_to"], "ok": False,
            "steps": {}, "warnings": [], "errors": [], "problems": [],
        }
        self._mark = time.monotonic()

    def _lap(self, step):
        now = time.monotonic()
        self.report["steps"][step] = round(now - self._mark, 3)
        self._mark = now

    def run(self):
        """Upgrade, check, shut down cleanly; the report. Raises MyaasError (report in ``upgrade``)."""
        started = time.monotonic()
        try:
            self._upgrade()
            self.report["ok"] = not self.report["problems"]
        except MyaasError as exc:
            self.report["error"] = exc.msg
            self.report["problems"] += exc.details.pop("problems", [])
            exc.msg = "The upgrade of template %s (generation %d) from %s to %s could not finish: %s" % (
                self.meta["template"], self.record["generation"], self.report["image_from"],
                self.report["image_to"], exc.msg)
            exc.details["upgrade"] = self.report
            raise
        finally:
            self.docker.remove(self.container, self.pool.path)
            init = os.path.join(self.data, self.engine.init_file)
            if os.path.exists(init):
                os.unlink(init)
            self.report["seconds"] = round(time.monotonic() - started, 3)
            self.report["finished_at"] = iso(time.time())
            os.makedirs(rehearsals_dir(self.pool, self.meta["template"]), mode=0o755, exist_ok=True)
            write_json(report_path(self.pool, self.meta["template"], self.record["generation"],
                                   self.report["image_to"]), self.report)
        return self.report

    # -- the steps ---------------------------------------------------------
    def _upgrade(self):
        image_from, image_to = self.report["image_from"], self.report["image_to"]
        if not self.docker.image_id(image_to):
            raise MyaasError("Image %s is not on this host. Make it available with the role myaas.myaas.host "
                             "(host_images), or name another image." % image_to)
        self.report["version_from"] = image_version(self.docker, self.engine, image_from)
        self.report["version_to"] = image_version(self.docker, self.engine, image_to)
        if version_key(self.report["version_to"]) < version_key(self.report["version_from"]):
            raise MyaasError("%s has %s %s, older than the template's %s (%s): a rehearsal upgrades, it never "
                             "downgrades." % (image_to, self.engine.name, self.report["version_to"],
                                              self.report["version_from"], image_from))
        self._lap("versions")
        if self.engine.upgrade_method == "pg_upgrade":
            self._pg_upgrade(image_from, image_to)
        else:
            self._own_datadir(image_to)
        self._start(image_to)
        for step, argv in self.engine.upgrade_commands():
            rc, out, err = self.docker.exec(self.container, argv, check=False, user=self.engine.exec_user)
            said = [line.strip() for line in (out + "\n" + err).splitlines() if line.strip()]
            if rc != 0:
                raise MyaasError("%s failed (exit code %s): %s" % (step, rc, " | ".join(said[-20:])))
            self.report["warnings"] += ["%s: %s" % (step, line) for line in said]
            self._lap(step)
        running = self._query(self.engine.version_sql())
        self.report["version_to"] = running[0] if running else self.report["version_to"]
        self._check_data()
        self._stop()

    def _pg_upgrade(self, image_from, image_to):
        bundle = pg_upgrade.ensure_bundle(self.docker, self.pool, image_from, self.docker.image_id(image_from))
        self._lap("old_binaries")
        major = pg_upgrade.bundle_major(bundle)
        spec = pg_upgrade.upgrade_spec(image_to, self.engine.datadir, self.data, bundle, major)
        code, log = self.docker.run_once(spec, self.steps.params["upgrade_timeout"])
        lines = [line.rstrip() for line in log.splitlines() if line.strip()]
        if code != 0:
            problems = pg_upgrade.failure_problems(log, image_to)
            named = "; ".join(problem["problem"] for problem in problems)
            # pg_upgrade's own words when no problem could be named; all of them in upgrade_log.
            raise MyaasError("pg_upgrade refused the template (exit code %s): %s" % (
                code, named or " | ".join(lines[-15:])), problems=problems, upgrade_log=lines[-60:])
        self.report["warnings"] += ["pg_upgrade: " + line for line in lines]
        self._lap("pg_upgrade")

    def _own_datadir(self, image):
        """The datadir owned by the new image's server account (its uid may differ from the old image's)."""
        uid, gid = self.docker.account_ids(image, self.engine.account)
        data = os.stat(self.data)
        if (data.st_uid, data.st_gid) != (uid, gid):
            self.pool.chown_tree(self.data, uid, gid)
        self._lap("ownership")

    def _start(self, image):
        start_throwaway_server(self.docker, self.engine, self.pool.path, self.container, image, self.data,
                               dict(role="upgrade", instance=self.meta["name"], template=self.meta["template"]),
                               ("upgrade_timeout", self.steps.params["upgrade_timeout"]), "The upgraded server")
        log = self.docker.logs(self.container, tail=2000)
        warnings, errors = self.engine.startup_findings(log)
        self.report["server_upgrade"] = self.engine.upgrade_log(log)
        self.report["warnings"] += ["server: " + line for line in warnings]
        self.report["errors"] += ["server: " + line for line in errors]
        self.report["problems"] += [{"kind": "server_log", "name": image, "problem": line} for line in errors]
        self._lap("server_start")

    def _query(self, sql):
        out = self.docker.exec(self.container, self.engine.query_argv(sql), user=self.engine.exec_user)[1]
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _check_data(self):
        databases = self.template.get("databases") or []
        gate = TemplateChecks(self.docker, self.engine, self.container, databases, self.steps.params)
        tables, problems = compare_counts(self.record.get("row_counts"), gate.row_counts(gate.columns()))
        self.report["row_counts"] = tables
        self.report["problems"] += problems
        self._lap("row_counts")
        database = self.template["options"].get("database") or (databases or [None])[0]
        self.report["checks"] = []
        for query in self.template["options"].get("checks") or []:
            try:
                self.report["checks"] += gate.run_checks([query], database)
            except MyaasError as exc:
                self.report["checks"].append({"sql": query, "passed": False, "returned": exc.msg})
                self.report["problems"].append({"kind": "check", "name": query, "problem": exc.msg})
        self._lap("checks")
        tried, problems = objects_checker(self.docker, self.engine, self.container).check(databases)
        self.report["objects_checked"] = tried
        self.report["problems"] += problems
        self._lap("views_and_routines")

    def _stop(self):
        sql = self.engine.before_shutdown_sql()
        if sql:
            self.docker.exec(self.container, self.engine.local_client(), data=sql, user=self.engine.exec_user)
        self.docker.stop(self.container, STOP_TIMEOUT)
        verify_clean_stop(self.docker, self.container, self.engine, "the upgraded server")
        self._lap("shutdown")
