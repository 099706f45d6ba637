# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Templates: plan whether a dump must be imported, then import it atomically.

The import goes into a staging subvolume; only after the server loaded the
dump, shut down cleanly (verified from its log) and the subvolume was frozen
read-only does one atomic metadata rename make it the current generation.
Whatever fails before that is removed, and the previous generation serves on.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time

from ansible_collections.myaas.myaas.plugins.module_utils.engines.versions import image_version
from ansible_collections.myaas.myaas.plugins.module_utils.templates import dumps, folder, physical
from ansible_collections.myaas.myaas.plugins.module_utils.templates import roles as dump_roles
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates.generations import add_generation
from ansible_collections.myaas.myaas.plugins.module_utils.masking.rules import rules_hash
from ansible_collections.myaas.myaas.plugins.module_utils.templates.checks import TemplateChecks, dialect
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import FileLock, read_json, write_json
from ansible_collections.myaas.myaas.plugins.module_utils.names import import_container_name
from ansible_collections.myaas.myaas.plugins.module_utils.host.runtime import exec_argv, labels
from ansible_collections.myaas.myaas.plugins.module_utils.timespec import iso

METADATA = "template.json"
# Where an archive dump is mounted (read-only) in the import container.
DUMP_MOUNT = "/myaas/dump"
# Below this much free space after a failed import, the pool is called full.
LOW_SPACE_BYTES = 64 * 2 ** 20
# How MyAAS lays out and starts a template's server. Part of the options, so
# templates made by an older MyAAS (started by the image's entrypoint, which
# may have left a known superuser password in the data) are imported again.
TEMPLATE_FORMAT = 2


def host_memory_bytes():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def metadata_path(pool, name):
    return os.path.join(pool.template_dir(name), METADATA)


def import_reason(current, source, wanted, force, sha256_of):
    """Why the template must be (re)imported, or None when it is up to date.

    The dump is hashed only when its size or mtime moved (or with force);
    ``sha256_of`` is called at most once and its result stored in ``source``.
    """
    if current is None:
        return "the template does not exist yet"
    for key in ("engine", "image_id", "options"):
        if current.get(key) != wanted[key]:
            return "its %s changed" % key.replace("_", " ")
    old = current["source"]
    if "sha256" not in old:
        return "its current generation is a branch, not a dump"
    if not force and old["bytes"] == source["bytes"] and old["mtime"] == source["mtime"]:
        source["sha256"] = old["sha256"]
        return None
    source["sha256"] = sha256_of()
    if source["sha256"] != old["sha256"]:
        return "the dump changed"
    return "force is set" if force else None


class TemplateManager:
    def __init__(self, pool, docker, engine, params, check_mode):
        self.pool = pool
        self.docker = docker
        self.engine = engine
        self.params = params
        self.check_mode = check_mode
        self.name = params["name"]

    # -- shared ---------------------------------------------------------
    def lock(self):
        return FileLock(self.pool.lock_path("template", self.name), self.params["lock_timeout"],
                        "Template %s" % self.name)

    def remove_leftovers(self, current):
        """Remove what a killed or failed earlier import left (we hold the lock)."""
        return folder.remove_leftovers(self.pool, self.docker, self.name, current)

    # -- state=present --------------------------------------------------
    def present(self):
        params = self.params
        src = params["src"]
        backup = physical.detect(src, self.engine)
        # A physical backup holds its own schemas, like a dump that names them.
        fmt, own_schema = ("physical", True) if backup else dumps.inspect_dump(src, self.engine)
        image = params["image"] or self.pool.provisioned_image(self.engine.name) or self.engine.default_image
        image_id = self.docker.image_id(image)
        if not image_id:
            raise MyaasError("Image %s is not on this host. Make it available with the role myaas.myaas.host "
                             "(host_images), or pass another image." % image)
        post_sql = []
        for path in params["post_import_sql"]:
            dumps.inspect_dump(path, self.engine)
            post_sql.append({"path": path, "sha256": dumps.file_sha256(path)})
        wanted = {
            "engine": self.engine.name,
            "image_id": image_id,
            "options": {
                "format": TEMPLATE_FORMAT,
                "database": None if own_schema else params["database"] or self.name,
                "post_import_sql": post_sql,
                "tuning": dict(params["tuning"] or {}),
            },
        }
        # Only when given, so that templates made without them are not imported again.
        if params.get("masking") is not None:
            wanted["options"]["masking"] = rules_hash(params["masking"])
        if params.get("checks"):
            wanted["options"]["checks"] = list(params["checks"])
        size, mtime, sha256_of = physical.fingerprint(src)
        source = {"path": src, "bytes": size, "mtime": mtime}

        self.pool.ensure_layout()
        with self.lock():
            current = read_json(metadata_path(self.pool, self.name))
            if current and current.get("masking") and params.get("masking") is None:
                # Fail closed: lost rules (a missing NAME.masking.yml) must not bring production's values back.
                raise MyaasError("Template %s is masked, and this import has no masking rules; it was not changed. "
                                 "Give its rules, or remove the template first to import it unmasked."
                                 % self.name)
            reason = import_reason(current, source, wanted, params["force"], sha256_of)
            if reason is None:
                if current["source"] != source and not self.check_mode:
                    current["source"] = source  # same bytes, touched file: remember the new mtime
                    write_json(metadata_path(self.pool, self.name), current)
                return {"changed": False, "template": current, "diff": {"before": current, "after": current}}
            if "sha256" not in source:
                source["sha256"] = sha256_of()
            if backup:
                source["backup"] = backup.kind
            generation = (current["generation"] if current else 0) + 1
            planned = dict(wanted, name=self.name, image=image, generation=generation, source=source,
                           path=self.pool.generation_path(self.name, generation))
            result = {"changed": True, "reason": reason, "diff": {"before": current or {}, "after": planned}}
            if self.check_mode:
                result["template"] = planned
                return result
            os.makedirs(self.pool.template_dir(self.name), mode=0o755, exist_ok=True)
            result["removed_leftovers"] = self.remove_leftovers(current)
            result["template"] = self._import(planned, fmt, [] if backup else dumps.switched_schemas(
                src, fmt, self.engine), current, backup)
            result["diff"]["after"] = result["template"]
            personal = result["template"].get("personal_columns")
            if params.get("masking") is None and personal:
                result["warnings"] = ["Template %s is not masked, and these columns look personal: %s. Give masking "
                                      "rules if it leaves the production environment."
                                      % (self.name, ", ".join(finding["column"] for finding in personal))]
            return result

    def _import(self, planned, fmt, dump_order, current, backup=None):
        params = self.params
        generation = planned["generation"]
        staging = self.pool.staging_path(self.name, generation)
        container = import_container_name(self.pool.path, self.name)
        database = planned["options"]["database"]
        # Space freed by earlier deletions (btrfs cleans deleted subvolumes in the background) would count
        # against this import's cost: wait for it, outside the import's own time.
        self.pool.sync()
        free_before = self.pool.free_bytes()
        started = time.monotonic()
        try:
            uid, gid = self.docker.account_ids(planned["image"], self.engine.account)
            self.pool.create_subvolume(staging)
            # The server runs as the image's own account, never as root, and
            # initialises the empty datadir itself.
            os.chown(staging, uid, gid)
            os.chmod(staging, 0o700)
            laps = []
            if backup:
                self._restore(backup, staging, planned, (uid, gid), current)
                laps.append(("restore", time.monotonic()))
            self.docker.run(self._import_spec(container, staging, planned, fmt, "%d:%d" % (uid, gid)))
            self.docker.wait_until_answers(container, self.engine.ready_probe(), self.engine.exec_user,
                                           ("start_timeout", params["start_timeout"]), "The import server", 0.25)
            deadline = started + params["import_timeout"]
            laps.append(("start", time.monotonic()))
            engine = self.engine
            if backup:
                physical.refuse_upgraded(self.docker, engine, container, backup, planned["image"])
            if database:
                self.docker.exec(container, engine.local_client(), data=engine.create_database_sql(database),
                                 user=engine.exec_user)
            roles, skip = ([], []) if backup else dump_roles.create_missing(
                self.docker, engine, container, params["src"], fmt, DUMP_MOUNT)
            client = exec_argv(container, engine.local_client(database), interactive=True, user=engine.exec_user)
            loader = exec_argv(container, engine.skip_create_role_argv(skip, engine.local_client(database)),
                               interactive=True, user=engine.exec_user) if skip else client
            load_connections = 0 if backup else self._load(container, fmt, database, loader, deadline)
            for script in planned["options"]["post_import_sql"]:
                dumps.stream_into(script["path"], dumps.detect_format(script["path"]), client,
                                  max(1, deadline - time.monotonic()), engine.error_re)
            laps.append(("load", time.monotonic()))
            databases = self._databases(container, database, dump_order)
            gate = TemplateChecks(self.docker, engine, container, databases, params)
            report = gate.run(params.get("masking"), self.pool.masking_key() if params.get("masking") else None,
                              (current or {}).get("row_counts"), params["max_shrink"], params.get("checks") or [],
                              database or (databases or [None])[0])
            laps.append(("checks_and_masking", time.monotonic()))
            # Before the definers are made: those are MyAAS's, locked with a password nobody knows.
            passwords = dump_roles.remove_passwords(self.docker, engine, container)
            definers = self._create_definers(container, databases)
            self._shutdown(container)
            if os.path.exists(os.path.join(staging, engine.init_file)):
                os.unlink(os.path.join(staging, engine.init_file))
            # Removed passwords: the WAL that saw production's verifiers goes too.
            scrub = (report["masking"] or passwords) and gate.sql.after_shutdown_script()
            for script in (scrub, engine.after_import_script()):
                if script:
                    self._after_shutdown(script, staging, planned["image"], uid, gid)
            laps.append(("shutdown_and_scrub", time.monotonic()))
            self.pool.set_readonly(staging, True)
            os.rename(staging, planned["path"])
            # What the new generation (and its base) cost the pool: with an incremental backup, only what changed.
            self.pool.sync()
            planned["pool_bytes_added"] = max(0, free_before - self.pool.free_bytes())
        except BaseException as exc:
            log = self.docker.logs(container, tail=30)
            state = self.docker.state(container)
            free = self.pool.free_bytes()
            self.docker.remove(container, self.pool.path)
            self.pool.delete_subvolume(staging)
            self.pool.delete_subvolume(staging + ".delta")
            self.pool.delete_subvolume(self._base_path(generation))
            if isinstance(exc, MyaasError):
                advice = self.engine.load_error_advice(exc.msg)
                exc.msg = "Template %s was not changed: %s%s" % (self.name, exc.msg, advice)
                if state.get("Status") == "exited" and state.get("ExitCode") not in (0, None):
                    exc.msg += " The import server died (exit code %s); see server_log." % state["ExitCode"]
                if free < LOW_SPACE_BYTES or "is full" in exc.msg or "No space left" in exc.msg:
                    exc.msg += (" The pool %s ran out of space (%d MiB were free): remove templates or instances "
                                "you no longer need, or grow the pool." % (self.pool.path, free // 2 ** 20))
                exc.details.setdefault("server_log", log.splitlines())
            raise
        seconds = time.monotonic() - started
        template = dict(planned)
        template.update({
            "databases": databases,
            "definers_created": definers,
            "roles_created": roles,
            "passwords_removed": passwords,
            "personal_columns": report["personal_columns"],
            "masking": report["masking"],
            "row_counts": report["row_counts"],
            "checks": report["checks"],
            "import_seconds": round(seconds, 3),
            "load_connections": load_connections,
            # Seconds per step, so that the slow one is visible: server start, load, checks and masking, shutdown.
            "timings": dict([(laps[0][0], round(laps[0][1] - started, 3))] + [
                (step, round(mark - laps[index][1], 3)) for index, (step, mark) in enumerate(laps[1:])]),
            "rate": int(planned["source"]["bytes"] / seconds) if seconds else 0,
        })
        return self.commit(template, current)

    def commit(self, template, current):
        """Make the frozen generation at template["path"] current (one atomic rename of
        template.json), then prune the generations keep_generations lets go."""
        template.update(imported_at=iso(time.time()), size_bytes=self.pool.usage(template["path"])[0])
        template = add_generation(current, template, self.params["keep_generations"])
        try:
            write_json(metadata_path(self.pool, self.name), template)
        except BaseException:
            # Not named by template.json, the new generation serves nobody.
            self.pool.delete_subvolume(template["path"])
            raise
        folder.prune(self.pool, self.name, template["generation"], self.params["keep_generations"])
        return template

    def _load(self, container, fmt, database, loader, deadline):
        """Stream the dump into the import server (an archive: restored by the engine's tool from its mount).

        Returns how many connections loaded it (an archive: the jobs its restore tool was given).
        """
        engine, params = self.engine, self.params
        if fmt in engine.archive_magic.values():
            # Archives are read by the engine's restore tool from a read-only
            # mount, which lets it restore in parallel jobs.
            restore = engine.restore_argv(fmt, database, DUMP_MOUNT, params["restore_jobs"])
            dumps.stream_into(os.devnull, "plain", exec_argv(container, restore, user=engine.exec_user),
                              max(1, deadline - time.monotonic()), engine.error_re, label=params["src"],
                              sql_client=False)
            return params["restore_jobs"]
        return dumps.stream_into(params["src"], fmt, loader, max(1, deadline - time.monotonic()), engine.error_re,
                                 connections=params["restore_jobs"] if engine.deals_rows else 1)

    def _restore(self, backup, staging, planned, owner, current):
        """Fill the staging datadir from a physical backup (an incremental one: on the current generation's
        base); notes the backup's server version and this generation's base in ``planned``."""
        restorer = physical.Restorer(
            self.pool, self.docker, self.engine, backup, staging, planned["image"], owner,
            self.params["import_timeout"], import_container_name(self.pool.path, self.name) + "-restore",
            labels(role="import", template=self.name, generation=planned["generation"], pool=self.pool.path,
                   engine=self.engine.name),
            bases=((current or {}).get("base"), ((current or {}).get("source") or {}).get("to_lsn"),
                   self._base_path(planned["generation"])))
        planned["source"]["server_version"] = restorer.restore(image_version(self.docker, self.engine,
                                                                             planned["image"]))
        planned["base"] = restorer.kept_base
        if restorer.lsn:
            planned["source"]["to_lsn"] = restorer.lsn

    def _base_path(self, generation):
        return os.path.join(self.pool.template_dir(self.name), "base-%d" % generation)

    def _after_shutdown(self, script, staging, image, uid, gid):
        """Run ``script`` (with the datadir as $1) on the stopped datadir, in a throw-away container."""
        spec = {"name": None, "image": image, "user": "%d:%d" % (uid, gid), "network": "none",
                "entrypoint": "/bin/sh", "args": ["-c", script, "myaas-scrub", self.engine.datadir],
                "mounts": [{"type": "bind", "source": staging, "target": self.engine.datadir}]}
        code, log = self.docker.run_once(spec, self.params["stop_timeout"])
        if code != 0:
            raise MyaasError("Scrubbing the stopped datadir failed (exit code %s): %s" % (code, log.strip()[-1000:]))

    def _import_spec(self, container, staging, planned, fmt, user):
        mounts = [{"type": "bind", "source": staging, "target": self.engine.datadir}]
        if fmt in self.engine.archive_magic.values():
            mounts.append({"type": "bind", "source": self.params["src"], "target": DUMP_MOUNT, "readonly": True})
        server_args = self.engine.bulk_load_args(self.params["tuning"], host_memory_bytes())
        if self.params.get("masking") is not None:
            server_args += dialect(self.engine).import_args()
        entrypoint, args = self.engine.command(server_args)
        return {
            "name": container,
            "image": planned["image"],
            "labels": labels(role="import", template=self.name, generation=planned["generation"],
                             pool=self.pool.path, engine=self.engine.name),
            "mounts": mounts,
            "stop_signal": self.engine.stop_signal,
            # Imports talk to the server through `docker exec` and the local
            # socket: no port, no network, no password.
            "network": "none",
            "user": user,
            "entrypoint": entrypoint,
            "args": args,
        }

    def _query(self, container, sql):
        out = self.docker.exec(container, self.engine.query_argv(sql), user=self.engine.exec_user)[1]
        return [line for line in out.splitlines() if line.strip()]

    def _databases(self, container, loaded_into, dump_order):
        """The databases the template holds, as the server lists them: the one the
        dump was loaded into first, then those the dump switched to, in its order."""
        names = self._query(container, self.engine.list_databases_sql())
        first = ([loaded_into] if loaded_into else []) + dump_order
        return sorted(names, key=lambda name: (first.index(name) if name in first else len(first), names.index(name)))

    def _create_definers(self, container, databases):
        """Make the accounts that the template's objects name as DEFINER, locked."""
        sql = self.engine.missing_definers_sql()
        definers = self._query(container, sql) if sql else []
        if definers:
            self.docker.exec(container, self.engine.local_client(), user=self.engine.exec_user,
                             data=self.engine.create_definers_sql(definers, databases, secrets.token_urlsafe(24)))
        return definers

    def _shutdown(self, container):
        sql = self.engine.before_shutdown_sql()
        if sql:
            self.docker.exec(container, self.engine.local_client(), data=sql, user=self.engine.exec_user)
        self.docker.stop(container, self.params["stop_timeout"])
        log = self.docker.logs(container, tail=400)
        code = self.docker.state(container).get("ExitCode")
        if code != 0 or not self.engine.clean_shutdown(log):
            raise MyaasError("The import server's clean shutdown could not be verified (exit code %s); a clone of "
                             "this data could need crash recovery, so it was not frozen. Raise stop_timeout if the "
                             "server was killed before it finished." % code)
        self.docker.remove(container, self.pool.path)

    # -- state=absent ---------------------------------------------------
    def absent(self):
        directory = self.pool.template_dir(self.name)
        if not os.path.isdir(directory):
            return {"changed": False, "template": None}
        before = read_json(metadata_path(self.pool, self.name)) or {}
        result = {"changed": True, "template": None, "diff": {"before": before, "after": {}}}
        if self.check_mode:
            return result
        with self.lock():
            self.remove_leftovers(before)
            folder.delete_subvolumes(self.pool, self.name)
            shutil.rmtree(directory)
        return result
