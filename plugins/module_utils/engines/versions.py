# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server versions: what an image's server says it is, and how two versions compare."""

from __future__ import annotations

import re

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

_VERSION_RE = re.compile(r"(?:\bVer|\(PostgreSQL\))\s+v?(\d+(?:\.\d+)+)")


def parse_version(text):
    """'10.11.19' from a server's --version line; None when there is none."""
    found = _VERSION_RE.search(text)
    return found.group(1) if found else None


def version_key(version):
    """(10, 11, 19) from '10.11.19': versions compare as numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def major(engine, version):
    """The part of a version that names a major release: '10.11' (MariaDB, MySQL), '17' (PostgreSQL 10+)."""
    parts = version_key(version)
    return ".".join(str(part) for part in parts[:1 if engine.name == "postgresql" and parts[0] >= 10 else 2])


def image_version(docker, engine, image):
    """The version of the engine's server in ``image``, asked of a throw-away container."""
    argv = engine.version_argv()
    code, out = docker.run_once({"name": None, "image": image, "user": "0", "network": "none",
                                 "entrypoint": argv[0], "args": argv[1:], "mounts": []}, 60)
    version = parse_version(out)
    if code != 0 or not version:
        raise MyaasError("Image %s has no %s server that tells its version (it said: %s). Name an image of "
                         "the template's engine." % (image, engine.name, out.strip()[-300:]))
    return version
