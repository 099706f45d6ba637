# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical backups as template sources: recognised by content, restored into the staging datadir, prepared.

What the engines' own backup tools write, and how each becomes a datadir a
server starts on:

- MariaDB: ``mariadb-backup --backup --stream=xbstream`` (a file: plain, gz,
  zst, xz, bz2) or ``--target-dir`` (a folder): unpacked by mbstream, or
  copied, then ``mariadb-backup --prepare``.
- PostgreSQL: ``pg_basebackup -Ft`` (a folder of base.tar and pg_wal.tar,
  compressed or not), ``-Fp`` (a folder, checked with pg_verifybackup first),
  or a base.tar alone (-X fetch): unpacked or copied; the server's first
  start recovers to consistency with the WAL the backup carries.
- MySQL: ``CLONE LOCAL DATA DIRECTORY`` (a folder, or a tar of it): copied;
  a clone is consistent as it is.

The tools run in the template's image, which ships them, as the server's
account. Folders are copied with reflinks where the pool allows, so the
backup itself is never changed. Production's local superuser may be locked
or have a password: MariaDB and MySQL get an init file that gives the
import server its local root login, and PostgreSQL MyAAS's own pg_hba.conf;
every production account that may log in is then locked, as for a
whole-server dump. A backup from another major version than the image's
server is refused with both versions named.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re

from ansible_collections.myaas.myaas.plugins.module_utils.engines.versions import major
from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import write_init_file
from ansible_collections.myaas.myaas.plugins.module_utils.templates import dumps

XBSTREAM_MAGIC = b"XBSTCK01"
# Where a backup folder or file is mounted (read-only) in the restore container.
BACKUP_MOUNT = "/myaas/backup"
# Which engine writes which kind.
ENGINES = {"mariadb-backup": "mariadb", "pg_basebackup": "postgresql", "mysql-clone": "mysql"}
TOOLS = {"mariadb-backup": "mariadb-backup", "pg_basebackup": "pg_basebackup", "mysql-clone":
         "CLONE LOCAL DATA DIRECTORY"}
_MARIADB_INFO = ("mariadb_backup_info", "xtrabackup_info")
_SERVER_VERSION_RE = re.compile(r"^server_version\s*=\s*(\S+)", re.MULTILINE)
# pg_hba.conf of a restored cluster: the import's local superuser by OS user,
# and TCP logins with a password only (which no production role keeps).
PG_HBA = "local all all peer\nhost all all all scram-sha-256\n"
# The server's own tools first in PATH (Debian keeps them out of it).
PG_BINDIR = 'for bin in /usr/lib/postgresql/*/bin; do PATH=$bin:$PATH; done; '


class Backup:
    """A physical backup at ``path``: ``kind`` (a key of ENGINES), ``layout`` (xbstream, folder, tar) and the
    compression ``fmt`` of a file."""

    def __init__(self, path, kind, layout, fmt="plain"):
        self.path, self.kind, self.layout, self.fmt = path, kind, layout, fmt

    @property
    def engine(self):
        return ENGINES[self.kind]


def _tar_in(folder, name):
    found = sorted(glob.glob(os.path.join(folder, name + ".tar*")))
    return found[0] if found else None


def detect(path, engine):
    """The Backup at ``path``, or None when it is a dump; a backup of another engine is an error."""
    backup = None
    if os.path.isdir(path):
        names = set(os.listdir(path))
        if names & {"xtrabackup_checkpoints", "mariadb_backup_checkpoints"}:
            backup = Backup(path, "mariadb-backup", "folder")
        elif _tar_in(path, "base"):
            backup = Backup(path, "pg_basebackup", "tar")
        elif {"PG_VERSION", "backup_label"} <= names:
            backup = Backup(path, "pg_basebackup", "folder")
        elif "mysql.ibd" in names:
            backup = Backup(path, "mysql-clone", "folder")
        else:
            raise MyaasError("%s is a folder but no backup MyAAS knows: a mariadb-backup --target-dir (with "
                             "xtrabackup_checkpoints), a pg_basebackup folder (base.tar or PG_VERSION and "
                             "backup_label) or a MySQL CLONE LOCAL DATA DIRECTORY (with mysql.ibd). Give one of "
                             "those, or a dump file." % path)
    else:
        fmt = dumps.detect_format(path)
        head = dumps.peek(path, fmt, 1024)
        if head.startswith(XBSTREAM_MAGIC):
            backup = Backup(path, "mariadb-backup", "xbstream", fmt)
        elif head[257:262] == b"ustar" and engine.name in ("postgresql", "mysql"):
            # A tar: pg_basebackup's base.tar with its WAL fetched into it, or a MySQL clone's folder.
            backup = Backup(path, "pg_basebackup" if engine.name == "postgresql" else "mysql-clone", "tar", fmt)
    if backup and backup.engine != engine.name:
        raise MyaasError("%s is a %s backup (%s), not one of %s: import it with engine: %s." % (
            path, backup.engine, TOOLS[backup.kind], engine.name, backup.engine))
    return backup


def _text(path):
    """A small file's text; "" when there is no such file."""
    if not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def checkpoints(folder):
    """mariadb-backup's checkpoints file of a backup folder, as a dict ({} when there is none)."""
    for name in ("xtrabackup_checkpoints", "mariadb_backup_checkpoints"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                return dict(line.split(" = ", 1) for line in handle.read().splitlines() if " = " in line)
    return {}


def fingerprint(path):
    """(bytes, mtime, sha256 callable) of a backup file or folder, for the import's up-to-date check.

    A folder's sha256 is that of its listing (paths, sizes, mtimes): a new
    backup writes new files, and hashing hundreds of GB nightly to learn
    nothing changed would cost what the physical import saves.
    """
    if not os.path.isdir(path):
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime, lambda: dumps.file_sha256(path)
    entries = []
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            stat = os.lstat(full)
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    entries.sort()
    listing = "\n".join("%s\t%d\t%d" % entry for entry in entries).encode("utf-8", "surrogateescape")
    return (sum(entry[1] for entry in entries), max([entry[2] for entry in entries] or [0]) / 1e9,
            lambda: hashlib.sha256(listing).hexdigest())


class Restorer:
    """Fills the (empty, server-owned) staging datadir from a backup and prepares it, in a helper container."""

    def __init__(self, pool, docker, engine, backup, staging, image, owner, timeout, container, labels,
                 bases=(None, None)):
        self.pool, self.docker, self.engine, self.backup = pool, docker, engine, backup
        self.staging, self.image, self.owner, self.timeout = staging, image, owner, timeout
        self.container, self.labels = container, labels
        # (the current generation's base: the backup as restored, before any server ran on it; the LSN its
        # backups reached; where this generation's base goes). Incremental backups apply to the one and make
        # the other.
        self.base, self.base_lsn, self.new_base = bases
        self.kept_base = None
        # The LSN this backup reached (MariaDB): the next incremental must start there.
        self.lsn = None

    def restore(self, image_version):
        """Restore and prepare; returns the backup's server version where it says one."""
        self._start_helper()
        try:
            try:
                self._unpack()
            except MyaasError as exc:
                raise MyaasError("The backup %s could not be unpacked: it is cut short or damaged (%s)."
                                 % (self.backup.path, exc.msg))
            self.pool.chown_tree(self.staging, *self.owner)
            version = getattr(self, "_prepare_" + self.backup.kind.replace("-", "_"))(image_version)
        finally:
            self.docker.remove(self.container, self.pool.path)
        login = self.engine.physical_login_sql()
        if login:
            # Production's local root may be locked or have a password: the import server's first start
            # gives it the login the import uses. The importer removes the file before the freeze.
            write_init_file(self.staging, self.engine.init_file, login)
        return version

    def _unpack(self):
        if self.backup.layout == "xbstream":
            dumps.stream_into(self.backup.path, self.backup.fmt, ["docker", "exec", "--interactive", self.container,
                              "mbstream", "-x", "-C", self.engine.datadir], self.timeout, label=self.backup.path,
                              sql_client=False)
        elif self.backup.layout == "folder":
            self.pool.copy_tree(self.backup.path, self.staging)
        elif self.backup.kind == "pg_basebackup" and os.path.isdir(self.backup.path):
            self.pool.extract_tar(_tar_in(self.backup.path, "base"), self.staging)
            wal = _tar_in(self.backup.path, "pg_wal")
            if wal:
                os.makedirs(os.path.join(self.staging, "pg_wal"), exist_ok=True)
                self.pool.extract_tar(wal, os.path.join(self.staging, "pg_wal"))
            manifest = os.path.join(self.backup.path, "backup_manifest")
            if os.path.exists(manifest):
                # Checked against the unpacked files: a damaged tar fails there.
                self.pool.copy_tree(manifest, self.staging)
        else:
            self.pool.extract_tar(self.backup.path, self.staging)

    def _start_helper(self, extra_mounts=()):
        self.docker.remove(self.container, self.pool.path)
        self.docker.run({
            "name": self.container, "image": self.image, "user": "%d:%d" % self.owner, "network": "none",
            "entrypoint": "sleep", "args": ["infinity"], "labels": self.labels,
            "mounts": [{"type": "bind", "source": self.staging, "target": self.engine.datadir}] + list(extra_mounts),
        })

    # -- incremental backups -------------------------------------------------
    def _base_or_fail(self, what):
        if not self.base or not os.path.isdir(self.base):
            raise MyaasError("%s is an incremental backup; it applies to the backup the template's current "
                             "generation was made from, and the template has none (it is new, or was made from a "
                             "dump, a branch, or a full backup MyAAS keeps no base of). Import the full backup "
                             "first, then the incremental ones in order." % what)
        return self.base

    def _swap_in_base(self, copy_base):
        """Move the unpacked delta aside (it is returned, mounted at /myaas/delta) and put a writable snapshot of
        the base (``copy_base``) or an empty subvolume into staging."""
        delta = self.staging + ".delta"
        os.rename(self.staging, delta)
        if copy_base:
            self.pool.snapshot(self.base, self.staging)
            # The base may come from an image whose server account has another uid.
            self.pool.chown_tree(self.staging, *self.owner)
        else:
            self.pool.create_subvolume(self.staging)
            os.chown(self.staging, *self.owner)
            os.chmod(self.staging, 0o700)
        # mariadb-backup opens the delta files for writing: it is our own copy.
        self._start_helper([{"type": "bind", "source": delta, "target": "/myaas/delta"},
                            {"type": "bind", "source": self.base, "target": "/myaas/base", "readonly": True}])
        return delta

    def _keep_base(self):
        """This generation's base: the restored backup as the backup tool left it, frozen, sharing every block."""
        if self.new_base:
            self.pool.delete_subvolume(self.new_base)
            self.pool.snapshot(self.staging, self.new_base, readonly=True)
            self.kept_base = self.new_base

    def _run(self, argv, what):
        rc, out, err = self.docker.exec(self.container, argv, check=False)
        if rc != 0:
            said = [line for line in (out + "\n" + err).splitlines() if line.strip()]
            raise MyaasError("%s failed (exit code %s): %s" % (what, rc, " | ".join(said[-12:])))
        return out + err

    def _same_major(self, backup_version, image_version):
        if major(self.engine, backup_version) != major(self.engine, image_version):
            raise MyaasError("The backup was taken from %s %s, and image %s runs %s: a physical backup needs "
                             "the same major version. Import it with an image of %s %s (e.g. image: %s:%s), or "
                             "take a dump instead." % (
                                 self.engine.name, backup_version, self.image, image_version, self.engine.name,
                                 major(self.engine, backup_version), self.engine.default_image.split(":")[0],
                                 major(self.engine, backup_version)))

    def _prepare_mariadb_backup(self, image_version):
        info = next((os.path.join(self.staging, name) for name in _MARIADB_INFO
                     if os.path.exists(os.path.join(self.staging, name))), None)
        found = None
        if info:
            with open(info, encoding="utf-8", errors="replace") as handle:
                found = _SERVER_VERSION_RE.search(handle.read())
        if not found:
            raise MyaasError("%s holds no %s: it is no complete mariadb-backup backup (a truncated stream?)."
                             % (self.backup.path, " or ".join(_MARIADB_INFO)))
        self._same_major(found.group(1), image_version)
        # Read before --prepare, which rewrites the file with the LSN it recovered to.
        increment = checkpoints(self.staging)
        self.lsn = increment.get("to_lsn")
        if increment.get("backup_type") == "incremental":
            self._base_or_fail(self.backup.path)
            if self.base_lsn != increment.get("from_lsn"):
                raise MyaasError("The incremental backup %s starts at LSN %s, and the template's last backup ends at "
                                 "LSN %s: it was taken from another backup. Import the backups in the order they "
                                 "were taken, or a full one." % (self.backup.path, increment.get("from_lsn"),
                                                                 self.base_lsn))
            delta = self._swap_in_base(copy_base=True)
            try:
                self._run(["mariadb-backup", "--prepare", "--target-dir=" + self.engine.datadir,
                           "--incremental-dir=/myaas/delta"], "mariadb-backup --prepare of %s" % self.backup.path)
            finally:
                self.pool.delete_subvolume(delta)
        else:
            self._run(["mariadb-backup", "--prepare", "--target-dir=" + self.engine.datadir],
                      "mariadb-backup --prepare of %s" % self.backup.path)
        self._keep_base()
        return found.group(1)

    def _prepare_pg_basebackup(self, image_version):
        path = os.path.join(self.staging, "PG_VERSION")
        if not os.path.exists(path):
            raise MyaasError("%s holds no PG_VERSION: it is no complete pg_basebackup backup." % self.backup.path)
        with open(path, encoding="utf-8") as handle:
            version = handle.read().strip()
        self._same_major(version, image_version)
        if "INCREMENTAL FROM LSN" in _text(os.path.join(self.staging, "backup_label")):
            self._base_or_fail(self.backup.path)
            delta = self._swap_in_base(copy_base=False)
            try:
                # copy_file_range, which btrfs answers with reflinks, for whole files and for the unchanged
                # blocks of changed ones (without manifest checksums, which would make it read every block):
                # the combined backup shares every unchanged block with the base.
                self._run(["sh", "-c", PG_BINDIR + 'exec pg_combinebackup --copy-file-range --manifest-checksums=NONE '
                           '--output="$1" /myaas/base /myaas/delta', "combine", self.engine.datadir],
                          "pg_combinebackup of %s" % self.backup.path)
            finally:
                self.pool.delete_subvolume(delta)
        if int(version) >= 17:
            # PostgreSQL 17's incremental backups apply to this one.
            self._keep_base()
        if os.path.isdir(os.path.join(self.staging, "pg_tblspc")) and os.listdir(
                os.path.join(self.staging, "pg_tblspc")):
            raise MyaasError("The backup %s has tablespaces outside its data directory; MyAAS restores one data "
                             "directory. Move them into pg_default in production's copy first." % self.backup.path)
        if os.path.exists(os.path.join(self.staging, "backup_manifest")):
            # What pg_verifybackup can read (a plain backup; a tar one from PostgreSQL 18 on).
            self._run(["sh", "-c", PG_BINDIR + 'exec pg_verifybackup --no-parse-wal --quiet "$1"', "verify",
                       self.engine.datadir], "pg_verifybackup of %s" % self.backup.path)
        for name in ("standby.signal", "recovery.signal", "postgresql.auto.conf", "backup_manifest"):
            if os.path.exists(os.path.join(self.staging, name)):
                os.unlink(os.path.join(self.staging, name))
        with open(os.path.join(self.staging, "pg_hba.conf"), "w", encoding="utf-8") as handle:
            handle.write(PG_HBA)
        os.chown(os.path.join(self.staging, "pg_hba.conf"), *self.owner)
        os.chmod(self.staging, 0o700)
        return version

    def _prepare_mysql_clone(self, image_version):
        # The clone says no version; a newer server upgrades it at start,
        # which the importer reads in the log (engine.upgrade_log).
        del image_version
        return None


def refuse_upgraded(docker, engine, container, backup, image):
    """Fail when the import server upgraded the backup's data at start (MySQL): it came from another version."""
    upgraded = engine.upgrade_log(docker.logs(container, tail=2000))
    if upgraded:
        raise MyaasError("The backup %s is from another %s version than image %s: its server upgraded the data at "
                         "start (%s). Import it with an image of the version that took it."
                         % (backup.path, engine.name, image, upgraded[0]))
