# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy-on-write pool: where things live on it, and btrfs operations.

Layout, readable by a person:
  templates/NAME/template.json        the current generation and its source
  templates/NAME/gen-N                read-only subvolumes (server datadirs)
  templates/NAME/.importing-gen-N     an import in progress (removed on failure)
  instances/NAME/data                 writable snapshot of a generation
  instances/NAME/instance.json        what the instance is (no secrets)
  instances/NAME/secret.json          its credentials, root-only
  locks/                              flock files
  host.json                           what the host role provisioned (images by engine)
  masking.key                         the key of deterministic masking, root-only
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.host.metadata import read_json

STAGING_PREFIX = ".importing-"
# The secret that keys masking: one original value, one replacement, pool-wide.
MASKING_KEY = "masking.key"


class Pool:
    def __init__(self, path, runner):
        self.path = os.path.abspath(path)
        self._run = runner.run

    # -- layout ---------------------------------------------------------
    def template_dir(self, name):
        return os.path.join(self.path, "templates", name)

    def generation_path(self, name, generation):
        return os.path.join(self.template_dir(name), "gen-%d" % generation)

    def staging_path(self, name, generation):
        return os.path.join(self.template_dir(name), "%sgen-%d" % (STAGING_PREFIX, generation))

    def instance_dir(self, name):
        return os.path.join(self.path, "instances", name)

    def lock_path(self, kind, name):
        return os.path.join(self.path, "locks", "%s-%s.lock" % (kind, name))

    def ensure_layout(self):
        """Fail unless the pool is on btrfs; create its folders if missing."""
        if not os.path.isdir(self.path):
            raise MyaasError("The pool %s does not exist. Provision the host first "
                             "(role myaas.myaas.host, playbook myaas.myaas.provision)." % self.path)
        fstype = self._run(["stat", "--file-system", "--format", "%T", self.path])[1].strip()
        if fstype != "btrfs":
            raise MyaasError("The pool %s is on %s, not btrfs: mount the MyAAS pool there "
                             "(role myaas.myaas.host) or pass the right pool path." % (self.path, fstype))
        for sub, mode in (("templates", 0o755), ("instances", 0o711), ("locks", 0o700)):
            path = os.path.join(self.path, sub)
            if not os.path.isdir(path):
                os.mkdir(path, mode)

    def provisioned_image(self, engine):
        """The image the host role provisioned for ``engine``, or None."""
        record = read_json(os.path.join(self.path, "host.json")) or {}
        return record.get("images", {}).get(engine)

    def masking_key(self):
        """The pool's masking key (made on first use): root-only, never logged, never in argv."""
        path = os.path.join(self.path, MASKING_KEY)
        if not os.path.exists(path):
            # Written whole under another name, then linked into place: two
            # first imports at once agree on one key, and none reads half of it.
            fd, tmp = tempfile.mkstemp(prefix=".tmp-key-", dir=self.path)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as handle:
                    handle.write(secrets.token_hex(32) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    pass
            finally:
                os.unlink(tmp)
        with open(path, encoding="ascii") as handle:
            key = handle.read().strip()
        if len(key) != 64:
            raise MyaasError("The masking key %s is damaged; restore it from a backup (masked values change "
                             "without it)." % path)
        return key

    def sync(self):
        """Wait for deleted subvolumes to be cleaned up and write out what is pending, so that the pool's free
        space is final (btrfs frees a deleted subvolume's space in the background)."""
        self._run(["btrfs", "subvolume", "sync", self.path])
        self._run(["btrfs", "filesystem", "sync", self.path])

    def free_bytes(self):
        stat = os.statvfs(self.path)
        return stat.f_bavail * stat.f_frsize

    # -- subvolumes ----------------------------------------------------
    def create_subvolume(self, path):
        self._run(["btrfs", "subvolume", "create", path])

    def snapshot(self, source, dest, readonly=False):
        argv = ["btrfs", "subvolume", "snapshot"] + (["-r"] if readonly else []) + [source, dest]
        self._run(argv)

    def delete_subvolume(self, path):
        """Delete a subvolume; a missing one is not an error (cleanup is idempotent)."""
        if not os.path.lexists(path):
            return False
        if self.is_readonly(path):
            # Forced: a received generation (myaas_ship) refuses the flip otherwise, for its Received UUID.
            self._run(["btrfs", "property", "set", "-f", "-ts", path, "ro", "false"])
        rc, _out, _err = self._run(["btrfs", "subvolume", "delete", path], check=False)
        if rc != 0:
            # A subvolume inside this one (a snapshot taken into a leftover
            # datadir) blocks the delete: remove the inner ones first.
            for inner in nested_subvolumes(path):
                self.delete_subvolume(inner)
            self._run(["btrfs", "subvolume", "delete", path])
        return True

    # -- files of physical backups --------------------------------------
    def copy_tree(self, source, dest):
        """Copy a folder's content (or a file) into ``dest``, sharing blocks where the file system can."""
        self._run(["cp", "--archive", "--reflink=auto", source.rstrip("/") + ("/." if os.path.isdir(source) else ""),
                   dest])

    def extract_tar(self, archive, dest):
        """Unpack a tar (gzip, bzip2, xz or zstd compressed, found by its content) into ``dest``."""
        self._run(["tar", "--extract", "--file", archive, "--directory", dest, "--no-same-owner"])

    def chown_tree(self, path, uid, gid):
        self._run(["chown", "--recursive", "--no-dereference", "%d:%d" % (uid, gid), path])

    def set_readonly(self, path, readonly):
        self._run(["btrfs", "property", "set", "-ts", path, "ro", "true" if readonly else "false"])

    def is_readonly(self, path):
        out = self._run(["btrfs", "property", "get", "-ts", path, "ro"])[1]
        return out.strip() == "ro=true"

    # -- quota groups ------------------------------------------------------
    def quota_enabled(self):
        rc, _out, err = self._run(["btrfs", "qgroup", "show", self.path], check=False)
        if rc != 0 and "not enabled" not in err:
            raise MyaasError("Could not read the quota groups of the pool %s: %s" % (self.path, err.strip()))
        return rc == 0

    def enable_quota(self):
        """Turn btrfs quota groups on, and wait until what the pool already holds is counted (once per pool:
        on a new pool it is instant, on a full one it reads every extent)."""
        self._run(["btrfs", "quota", "enable", self.path])
        self._run(["btrfs", "quota", "rescan", "--wait", self.path])

    def limit_exclusive(self, path, max_bytes):
        """Cap the bytes only subvolume ``path`` holds (its own writes); None lifts the cap."""
        self._run(["btrfs", "qgroup", "limit", "-e", str(max_bytes) if max_bytes else "none", path])

    def qgroup(self, path):
        """(exclusive bytes, exclusive limit or None) of subvolume ``path``'s own quota group."""
        out = self._run(["btrfs", "qgroup", "show", "-ref", "--raw", path])[1]
        for line in out.splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[0].startswith("0/") and fields[2].isdigit():
                return int(fields[2]), int(fields[4]) if fields[4].isdigit() else None
        raise MyaasError("Could not read the quota group of %s from btrfs: %r" % (path, out[-500:]))

    def usage(self, path):
        """(total, exclusive) bytes of a subvolume, as btrfs counts them."""
        out = self._run(["btrfs", "filesystem", "du", "-s", "--raw", path])[1]
        return parse_du(out)


def nested_subvolumes(path):
    """Subvolumes below ``path``, deepest first (on btrfs a subvolume's root is inode 256)."""
    found = []
    for directory, subdirs, _files in os.walk(path):
        for sub in subdirs:
            full = os.path.join(directory, sub)
            if not os.path.islink(full) and os.stat(full).st_ino == 256:
                found.append(full)
    return sorted(found, key=lambda inner: inner.count(os.sep), reverse=True)


def parse_du(output):
    """Parse `btrfs filesystem du -s --raw`: the last line holds Total, Exclusive."""
    for line in reversed(output.strip().splitlines()):
        fields = line.split()
        if len(fields) >= 3 and re.match(r"^\d+$", fields[0]) and re.match(r"^\d+$", fields[1]):
            return int(fields[0]), int(fields[1])
    raise MyaasError("Could not read the size of a subvolume from btrfs: %r" % output[-500:])
