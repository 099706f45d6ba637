# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The roles a dump names, made before it loads; the passwords a dump brings, taken after.

PostgreSQL's form of MariaDB's missing DEFINER: a production dump says
`ALTER TABLE ... OWNER TO app_owner`, `GRANT ... TO reporting`, and each
fails while the role does not exist. Only engines whose adapter has
``role_lines_ere`` take part.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates.dumps import DECOMPRESSORS


# Prints the lines that match the extended regular expression `ere`, except
# the data of COPY blocks (a row's text may read like a statement). The end
# of a block, a backslash and a dot, is made with sprintf: awks differ in
# what an escaped dot in a string means (gawk reads "\." as ".").
_STATEMENT_LINES_AWK = r"""
BEGIN { end_of_copy = sprintf("%c.", 92) }
copy && $0 == end_of_copy { copy = 0; next }
copy { next }
/^COPY .* FROM stdin;$/ { copy = 1; next }
$0 ~ ere { print }
"""


def matching_lines(path, fmt, ere):
    """The lines (text) of a dump, decompressed, that match the extended regular expression ``ere``,
    outside the data of COPY blocks.

    awk reads the stream: a pre-pass over a dump of many GB costs one more
    read of it (and its decompression), no Python per line.
    """
    with open(path, "rb") as source, tempfile.TemporaryFile() as found:
        decompressor = None
        if fmt != "plain":
            decompressor = subprocess.Popen(DECOMPRESSORS[fmt], stdin=source, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL)
        grep = subprocess.Popen(["awk", "-v", "ere=" + ere.replace("\\", "\\\\"), _STATEMENT_LINES_AWK],
                                stdin=decompressor.stdout if decompressor else source, stdout=found,
                                env=dict(os.environ, LC_ALL="C"))
        if decompressor:
            decompressor.stdout.close()
        code = grep.wait()
        if decompressor and decompressor.wait() not in (0, -13):
            raise MyaasError("Dump %s is damaged: %s could not decompress it to the end." % (path, fmt))
        if code:
            raise MyaasError("Reading the roles that dump %s names failed (awk exit code %d)." % (path, code))
        found.seek(0)
        return [line.decode("utf-8", "replace") for line in found]


def _query(docker, engine, container, sql):
    out = docker.exec(container, engine.query_argv(sql), user=engine.exec_user)[1]
    return [line for line in out.splitlines() if line.strip()]


def create_missing(docker, engine, container, src, fmt, archive_path):
    """Make the roles the dump names but neither creates nor finds, NOLOGIN, before it loads.

    Returns (roles made, roles the dump creates that exist already: its
    `CREATE ROLE` of them must be skipped). Of an archive (at
    ``archive_path`` in the container) only the DDL is read.
    """
    ere = getattr(engine, "role_lines_ere", None)
    if not ere:
        return [], []
    if fmt in engine.archive_magic.values():
        out = docker.exec(container, engine.schema_only_argv(archive_path), user=engine.exec_user)[1]
        pattern = re.compile(ere)
        lines = [line for line in out.splitlines() if pattern.match(line)]
    else:
        lines = matching_lines(src, fmt, ere)
    named, created = engine.dump_roles(lines)
    existing = set(_query(docker, engine, container, engine.existing_roles_sql()))
    missing = [role for role in named if role not in existing and role not in created]
    if missing:
        docker.exec(container, engine.local_client(), data=engine.create_roles_sql(missing), user=engine.exec_user)
    return missing, [role for role in created if role in existing]


def remove_passwords(docker, engine, container):
    """Take every password the dump brought (pg_dumpall's roles): production's never opens a clone.

    Returns the roles whose password was removed.
    """
    sql = getattr(engine, "login_passwords_sql", None)
    roles = _query(docker, engine, container, sql()) if sql else []
    if roles:
        docker.exec(container, engine.local_client(), data=engine.remove_passwords_sql(roles), user=engine.exec_user)
    return roles
