# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL dumps: what they are (by content), and streaming them into a server.

Decompression runs as its own process piped straight into the client in the
server's container: nothing is staged on disk or held in memory, so a dump
larger than memory and than /tmp imports, and the two processes use two cores.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import threading
import time

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError
from ansible_collections.myaas.myaas.plugins.module_utils.templates import parallel
from ansible_collections.myaas.myaas.plugins.module_utils.templates.statements import statements

MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
DECOMPRESSORS = {
    "gzip": ["gzip", "--decompress", "--stdout"],
    "bzip2": ["bzip2", "--decompress", "--stdout"],
    "xz": ["xz", "--decompress", "--stdout"],
    "zstd": ["zstd", "--decompress", "--stdout", "--quiet"],
}
PEEK_BYTES = 256 * 1024
_SQL_START_RE = re.compile(
    rb"^\s*(--|/\*|#|SET\s|CREATE\s|DROP\s|USE\s|INSERT\s|LOCK\s|START\s|BEGIN|DELIMITER\s|ALTER\s|"
    rb"SELECT\s|COPY\s|\\connect\s|UPDATE\s|DELETE\s|REPLACE\s|GRANT\s|REVOKE\s|TRUNCATE\s|WITH\s|CALL\s|"
    rb"RENAME\s|COMMENT\s|ANALYZE|VACUUM|\\set\s)", re.IGNORECASE)


def detect_format(path, archives=None):
    """'plain', 'gzip', 'bzip2', 'xz', 'zstd' or an engine's archive format, from the first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise MyaasError("Dump %s does not exist on the target." % path)
    except IsADirectoryError:
        raise MyaasError("Dump %s is a directory; give the path of a dump file." % path)
    if not head:
        raise MyaasError("Dump %s is empty; it was not imported and the template was left as it was." % path)
    for magic, name in MAGIC + tuple((archives or {}).items()):
        if head.startswith(magic):
            return name
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
        # A zstd skippable frame (magic 0x184D2A5?), which pzstd writes first.
        return "zstd"
    return "plain"


def peek(path, fmt, size=PEEK_BYTES):
    """The first ``size`` bytes of the dump's SQL, decompressed."""
    if fmt == "plain":
        with open(path, "rb") as handle:
            return handle.read(size)
    proc = subprocess.Popen(DECOMPRESSORS[fmt] + [path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        return proc.stdout.read(size)
    finally:
        proc.kill()
        proc.wait()


def inspect_dump(path, engine):
    """Check that a file is a dump the engine loads; return (format, names_own_schema)."""
    fmt = detect_format(path, engine.archive_magic)
    if fmt in engine.archive_magic.values():
        return fmt, False
    head = peek(path, fmt)
    if not head.strip():
        raise MyaasError("Dump %s (%s) holds no SQL; it was not imported and the template was left as it was."
                         % (path, fmt))
    if b"\x00" in head or not _SQL_START_RE.search(head.lstrip(b"\xef\xbb\xbf")):
        raise MyaasError("%s is not an SQL dump (%s data that does not start like SQL). Give a plain SQL dump, "
                         "compressed or not (gzip, bzip2, xz, zstd)%s." % (
                             path, fmt, "".join(" or a %s archive" % name for name in engine.archive_magic.values())))
    return fmt, any(engine.own_schema_re.match(text) for text in dump_statements(head, engine))


def dump_statements(head, engine):
    """The starts of the statements in a dump's first bytes, split as the engine's client splits them."""
    return statements(head, "postgresql" if engine.name == "postgresql" else "mysql")


def switched_schemas(path, fmt, engine):
    """The schemas a dump switches to (USE, \\connect) in its first bytes, in its order."""
    if fmt in engine.archive_magic.values():
        return []
    names = []
    for text in dump_statements(peek(path, fmt), engine):
        match = engine.schema_switch_re.match(text)
        name = match and match.group(1).decode("utf-8", "replace")
        if name and name not in names:
            names.append(name)
    return names


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def client_error(handle, error_re):
    """The client's last error line (it names the line of the dump), shortened.

    Read line by line: the output may echo statements of many megabytes.
    """
    handle.seek(0)
    error = last = ""
    for raw in handle:
        line = raw.decode("utf-8", "replace")
        last = line if line.strip() else last
        if error_re.search(line):
            error = line
    line = (error or last).strip() or "the client said nothing"
    return line if len(line) <= 500 else line[:250] + " [...] " + line[-250:]


def _tail(handle, limit=4000):
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")[-limit:]


# Dump tools that close their output with a line of their own: (tool, header, trailer).
# A dump whose header names one of them and whose trailer is missing was cut short.
DUMP_TOOLS = (
    ("mysqldump", re.compile(rb"^-- MySQL dump ", re.MULTILINE), b"-- Dump completed"),
    ("mariadb-dump", re.compile(rb"^-- MariaDB dump ", re.MULTILINE), b"-- Dump completed"),
    ("pg_dump", re.compile(rb"^-- PostgreSQL database dump\s*$", re.MULTILINE), b"-- PostgreSQL database dump complete"),
)
TAIL_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
# Sent after the dump; the client prints it only if it read the dump to the end.
END_MARKER = "MYAAS-END-OF-DUMP"
END_SQL = ("\nSELECT '%s';\n" % END_MARKER).encode()


def cut_short(head, tail):
    """(tool, closing line) of the tool that wrote the dump if that line is missing, else None."""
    for tool, header, trailer in DUMP_TOOLS:
        if header.search(head[:PEEK_BYTES]) and trailer not in tail:
            return tool, trailer.decode()
    return None


class _Pump(threading.Thread):
    """Copies the dump into the client, keeping its first and last bytes.

    Python in the middle costs little next to the server's work, and it sees
    what a plain pipe cannot: the dump's last line, and a client that stopped
    reading before the end.
    """

    def __init__(self, source, first, sink, epilogue):
        super().__init__(daemon=True)
        self.source, self.first, self.sink, self.epilogue = source, first, sink, epilogue
        self.head, self.tail, self.sent = b"", b"", 0
        self.reached_end = False

    def run(self):
        try:
            chunk = self.first
            while True:
                if not chunk:
                    self.reached_end = True
                    self.sink.write(self.epilogue)
                    break
                if len(self.head) < PEEK_BYTES:
                    self.head += chunk[:PEEK_BYTES - len(self.head)]
                self.tail = (self.tail + chunk)[-TAIL_BYTES:]
                self.sink.write(chunk)
                self.sent += len(chunk)
                chunk = self.source.read(CHUNK_BYTES)
        except (BrokenPipeError, ValueError, OSError):
            pass    # the client went away; the caller reads its exit code
        finally:
            for handle in (self.sink, self.source):
                try:
                    handle.close()
                except OSError:
                    pass


def _load_one(reader, first, client_argv, deadline, epilogue):
    """The dump into one client: (pump, [(exit code, output file)], [statements: unknown])."""
    output = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
    client = subprocess.Popen(client_argv, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
    pump = _Pump(reader, first, client.stdin, epilogue)
    pump.start()
    try:
        code = client.wait(timeout=max(1, deadline - time.monotonic()))
        pump.join(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        client.kill()
        client.wait()
        raise
    return pump, [(code, output)], [None]


def stream_into(path, fmt, client_argv, timeout, error_re=re.compile(r"^ERROR"), label=None, sql_client=True,
                connections=1):
    """Pipe the dump, decompressed, into ``client_argv``; raise on any failure.

    Both ends are checked: a truncated archive fails here even when the
    client happily ran every statement it was given, and so does a dump whose
    tool's closing line is missing, or one the client stopped reading early
    (``sql_client``: the client runs SQL and prints what a SELECT returns).
    With ``connections`` above 1, a dump written by mysqldump or mariadb-dump
    has its rows loaded on that many clients at once (templates/parallel.py).
    Returns how many connections loaded rows.
    """
    label = label or path
    deadline = time.monotonic() + timeout
    epilogue = END_SQL if sql_client else b""
    outputs = []
    with tempfile.TemporaryFile() as dec_err, open(path, "rb") as source:
        decompressor = None
        if fmt != "plain":
            decompressor = subprocess.Popen(DECOMPRESSORS[fmt], stdin=source, stdout=subprocess.PIPE,
                                            stderr=dec_err)
        reader = decompressor.stdout if decompressor else source
        try:
            first = reader.read(CHUNK_BYTES)
            if connections > 1 and sql_client and parallel.dealable(first[:PEEK_BYTES]):
                # Whole lines: the dealer splits the dump at line ends.
                first += reader.readline() if first and not first.endswith(b"\n") else b""
                pump, clients, dealt = parallel.load(reader, first, client_argv, connections, deadline, epilogue,
                                                     PEEK_BYTES, TAIL_BYTES)
            else:
                pump, clients, dealt = _load_one(reader, first, client_argv, deadline, epilogue)
            outputs = [output for _code, output in clients]
            dec_rc = decompressor.wait(timeout=max(1, deadline - time.monotonic())) if decompressor else 0
        except subprocess.TimeoutExpired:
            if decompressor:
                decompressor.kill()
                decompressor.wait()
            raise MyaasError("Import of %s did not finish within import_timeout (%d s)." % (label, timeout))
        try:
            _check(label, fmt, dec_rc, dec_err, pump, clients, error_re, sql_client)
        finally:
            for output in outputs:
                output.close()
    return sum(1 for count in dealt if count is None or count > 0) or 1


def _check(label, fmt, dec_rc, dec_err, pump, clients, error_re, sql_client):
    # A client that stopped early breaks the decompressor's pipe; only a
    # decompressor that failed on its own means the archive is damaged.
    dec_message = _tail(dec_err).strip()
    if dec_rc != 0 and dec_rc != -13 and "broken pipe" not in dec_message.lower():
        raise MyaasError("Dump %s is damaged: %s could not decompress it to the end (%s)."
                         % (label, fmt, dec_message))
    for code, output in clients:
        if code != 0:
            raise MyaasError("Import of %s failed: %s" % (label, client_error(output, error_re)),
                             client_output=_tail(output, 2000).splitlines())
    if not pump.reached_end or (sql_client and any(END_MARKER not in _tail(output, 4096) for _code, output in clients)):
        raise MyaasError("Import of %s failed: the client stopped reading after %d bytes of SQL, before the "
                         "end of the dump. The dump ends the session early (\\q, quit or exit): remove that "
                         "line." % (label, pump.sent))
    short = cut_short(pump.head, pump.tail)
    if short:
        raise MyaasError("Dump %s was cut short: it was written by %s, but its closing line (%r) is missing. "
                         "The backup job probably stopped early; the template was left as it was. Give a "
                         "complete dump." % ((label,) + short))
