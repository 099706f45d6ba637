# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Validation of the names that become paths, container names and labels."""

from __future__ import annotations

import hashlib
import re

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_NAME_RE = re.compile(NAME_PATTERN)


def pool_tag(pool_path):
    """A short, stable tag of a pool: container and volume names carry it, so that
    two pools on one host (a test pool next to production) never share a name."""
    return hashlib.sha256(pool_path.encode("utf-8")).hexdigest()[:8]


def container_name(pool_path, name):
    """The container (and volume) of instance ``name`` on the pool at ``pool_path``."""
    return "myaas-%s-%s" % (pool_tag(pool_path), name)


def import_container_name(pool_path, name):
    return "myaas-import-%s-%s" % (pool_tag(pool_path), name)


def check_name(kind, value):
    """Return ``value`` if it is a safe name, raise MyaasError otherwise.

    Called before a name touches a path or a command line: the pattern keeps
    out separators, dots, spaces and shell characters, and caps the length at
    63 so that derived container names stay within Docker's limits.
    """
    # fullmatch: with match, "$" would let a trailing newline through.
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise MyaasError(
            "Invalid %s name %r: use 1 to 63 characters, lowercase letters, digits, '_' and '-', "
            "starting with a letter or digit (pattern %s)." % (kind, value, NAME_PATTERN))
    return value


# An image reference as Docker takes it: [registry[:port]/]path[:tag][@digest].
_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/:-]{0,254}(@sha256:[0-9a-f]{64})?")


def check_image(value):
    """Return ``value`` if it looks like an image reference (e.g. mariadb:11.8), raise MyaasError otherwise."""
    if not isinstance(value, str) or not _IMAGE_RE.fullmatch(value) or "//" in value:
        raise MyaasError("Invalid image %r: name an image as Docker does, e.g. mariadb:11.8 or "
                         "registry.example.org/db/postgres:17." % (value,))
    return value
