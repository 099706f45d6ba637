# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metadata files and locks on the pool.

Metadata is JSON written atomically (temporary file, fsync, rename), so a
reader sees either the old or the new version, never half of one: the swap of
a template's generation is exactly one such rename.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError


def read_json(path):
    """The JSON document at ``path``, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise MyaasError("Metadata file %s is not valid JSON (%s); move it away and run again." % (path, exc))


def write_json(path, document, mode=0o644):
    """Replace ``path`` with ``document`` atomically, with the given mode."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class FileLock:
    """An exclusive flock on a file, given up by the kernel if the holder dies.

    A run killed with SIGKILL therefore never leaves a stale lock behind; what
    it leaves is cleaned up by the next holder of the same lock.
    """

    def __init__(self, path, timeout, what):
        self.path = path
        self.timeout = timeout
        self.what = what
        self._fd = None

    def __enter__(self):
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                os.close(self._fd)
                self._fd = None
                raise MyaasError(
                    "%s is busy: another run holds %s and did not finish within %d s. "
                    "Run again later, or raise lock_timeout." % (self.what, self.path, self.timeout))
            time.sleep(0.2)

    def __exit__(self, *exc_info):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        return False


def write_init_file(datadir, name, sql):
    """Write ``sql`` as the server's init file in ``datadir``: readable by the datadir's owner only, since the
    server drops root before it reads it, and the file may hold a password."""
    owner = os.stat(datadir)
    path = os.path.join(datadir, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(sql)
    os.chown(path, owner.st_uid, owner.st_gid)
