# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a mysqldump or mariadb-dump on several client connections at once.

On one connection a logical load is bound by one server thread parsing and
inserting rows; on two cores, dealing the rows to two connections loads them
1.7 times as fast (``make bench``, a 2.2 GB dump). Everything that is not a
row keeps its place and runs on the first connection, in the dump's order:

- a table's rows are dealt only once its CREATE TABLE has run (a mark that
  the first connection echoes back);
- whatever follows them (ENABLE KEYS, triggers, the next table, views) runs
  only once every connection has loaded all of them (a mark from each).

Only the two dump tools' output is dealt: they escape newlines in values, so
an INSERT is one line (mysqldump) or one line a row (mariadb-dump 10.11 and
later, which ends the statement with the first line that ends with ";").
LOCK TABLES is left out: a write lock held by the first connection would keep
the others from inserting, and it only saves key-buffer flushes on MyISAM.
"""

from __future__ import annotations

import collections
import io
import queue
import re
import subprocess
import tempfile
import threading
import time


# What mysqldump and mariadb-dump write first.
DEALT_TOOLS_RE = re.compile(rb"^-- (MySQL|MariaDB) dump ", re.MULTILINE)
ROW_RE = re.compile(rb"^(?:INSERT|REPLACE)\s+(?:IGNORE\s+)?INTO\s")
LOCK_RE = re.compile(rb"^(LOCK TABLES .*|UNLOCK TABLES);\s*$")
# Any quoting (backticks, --skip-quote-names, ANSI double quotes): the line is replayed as it is.
USE_RE = re.compile(rb"^USE\s.*;\s*$", re.IGNORECASE)
# The session settings of the dump's header (SET NAMES, TIME_ZONE, SQL_MODE,
# UNIQUE_CHECKS, FOREIGN_KEY_CHECKS, ...), which every connection needs before
# it parses a row; a global one (GTID_PURGED) runs once, on the first.
HEADER_SET_RE = re.compile(rb"^(/\*M?!\d+\s+)?SET\s", re.IGNORECASE)
# Of those, the ones replayed on the other connections: what the tools write
# in every header. Not autocommit (--no-autocommit: the other connections
# would never commit), nor a table's character_set_client.
REPLAYED_RE = re.compile(rb"^(/\*M?!\d+\s+)?SET\s+(@OLD_\w+\s*=|NAMES\s|TIME_ZONE\s*=|@MYSQLDUMP_TEMP_LOG_BIN\s*=|"
                         rb"@@SESSION\.SQL_LOG_BIN\s*=)", re.IGNORECASE)
# Rows are sent in batches of about this many bytes (one line each with
# mysqldump's extended inserts, thousands with --skip-extended-insert).
BATCH_BYTES = 1024 * 1024
MARK = b"myaas-mark-"


def dealable(head):
    """Whether the dump, by its first bytes, was written by mysqldump or mariadb-dump."""
    return DEALT_TOOLS_RE.search(head) is not None


class Connection:
    """One client process, fed from a queue by a thread; another thread reads what it prints.

    ``mark`` asks the client to echo a line once it has run everything sent
    before; ``wait`` returns once it has, and raises ``Stopped`` if it ended first.
    """

    class Stopped(Exception):
        pass

    def __init__(self, argv):
        self.output = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        # Unbuffered: a mark must reach the client when it is sent, not when a buffer fills.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                     stderr=subprocess.STDOUT, bufsize=0)
        self.queue = queue.Queue(maxsize=4)
        self.cond = threading.Condition()
        self.marks_sent = self.marks_seen = 0
        self.ended = False
        self.statements = 0
        self.database = None
        self._threads = [threading.Thread(target=self._write, daemon=True),
                         threading.Thread(target=self._read, daemon=True)]
        for thread in self._threads:
            thread.start()

    def send(self, data):
        self.queue.put(data)

    def close(self, epilogue):
        self.queue.put(epilogue)
        self.queue.put(None)

    def mark(self):
        self.marks_sent += 1
        self.send(b"SELECT '%s%d';\n" % (MARK, self.marks_sent))

    def wait(self, deadline):
        with self.cond:
            self.cond.wait_for(lambda: self.marks_seen >= self.marks_sent or self.ended,
                               timeout=max(0.0, deadline - time.monotonic()))
            if self.marks_seen < self.marks_sent:
                if not self.ended:
                    raise subprocess.TimeoutExpired("import", 0)
                raise Connection.Stopped()

    def _write(self):
        broken = False
        while True:
            data = self.queue.get()
            if data is None:
                break
            if broken:
                continue        # keep taking from the queue: the dealer must never block on a dead client
            try:
                view = memoryview(data)
                while view:         # unbuffered: a write may take part of it
                    view = view[self.proc.stdin.write(view):]
            except (BrokenPipeError, ValueError, OSError):
                broken = True
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def _read(self):
        for line in self.proc.stdout:
            self.output.write(line)
            if line.startswith(MARK):
                with self.cond:
                    self.marks_seen = int(line[len(MARK):].strip() or 0)
                    self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def finish(self, deadline):
        """The client's exit code, once it and both threads are done (killed at ``deadline``)."""
        try:
            code = self.proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        for thread in self._threads:
            thread.join(timeout=max(1, deadline - time.monotonic()))
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass        # the writer, unblocked by the broken pipe, drains the queue to the None close() put


class Dealer:
    """Sends a dump's lines to ``connections`` (the first one gets all but rows), in the order above."""

    def __init__(self, connections, deadline):
        self.connections, self.deadline = connections, deadline
        self.main = connections[0]
        self.header, self.prologue = True, []
        self.delimiter = b";"
        self.at_boundary = True         # the main connection is between statements
        self.in_rows = False
        self.row_lines = None           # the lines so far of a row statement written over several
        self.database = None
        self.batch, self.batch_bytes = [], 0
        self.turn = 0

    def line(self, line):
        if self.row_lines is not None:
            # mariadb-dump writes a row a line: the statement ends at the first line that ends with ";".
            self.row_lines.append(line)
            if line.endswith(b";\n") or (not line.endswith(b",\n") and line.rstrip().endswith(b";")):
                statement, self.row_lines = b"".join(self.row_lines), None
                self._row(statement)
            return
        stripped = line.strip()
        if self.header and not self._header_line(line, stripped):
            self.header = False
            for connection in self.connections[1:]:
                connection.send(b"".join(self.prologue))
        if self.header:
            self.main.send(line)
            return
        if self.delimiter == b";" and self.at_boundary and ROW_RE.match(line):
            if stripped.endswith(b";"):
                self._row(line)
                return
            if stripped.endswith(b"VALUES"):
                self.row_lines = [line]
                return
        if self.in_rows:
            self._end_rows()
        if self.delimiter == b";" and LOCK_RE.match(line):
            return
        if stripped.startswith(b"DELIMITER "):
            self.delimiter = stripped.split(None, 1)[1] if len(stripped.split()) > 1 else b";"
            self.at_boundary = True
        elif stripped and not stripped.startswith(b"--"):
            self.at_boundary = stripped.endswith(self.delimiter)
            if self.delimiter == b";" and USE_RE.match(stripped):
                self.database = stripped
        self.main.send(line)

    def end(self, epilogue, complete=True):
        """Close every connection; after the whole dump (``complete``), once its last rows are loaded."""
        if self.row_lines is not None:
            # The dump ended inside a statement: the client sees it unfinished, as on one connection.
            self.main.send(b"".join(self.row_lines))
        if self.in_rows and complete:
            self._end_rows()
        if self.header:
            for connection in self.connections[1:]:
                connection.send(b"".join(self.prologue))
        for connection in self.connections:
            connection.close(epilogue)

    def _header_line(self, line, stripped):
        if not stripped or stripped.startswith(b"--") or stripped.startswith(b"/*M!999999"):
            # Blank, a comment, or MariaDB's sandbox-mode line (which every client of its own takes).
            self.prologue.append(line)
            return True
        if HEADER_SET_RE.match(stripped):
            if REPLAYED_RE.match(stripped):
                self.prologue.append(line)
            return True
        return False

    def _row(self, line):
        if not self.in_rows:
            # The table (made on the main connection) exists before another one writes to it.
            self.main.mark()
            self._wait(self.main)
            self.in_rows = True
        self.batch.append(line)
        self.batch_bytes += len(line)
        if self.batch_bytes >= BATCH_BYTES:
            self._send_batch()

    def _send_batch(self):
        if not self.batch:
            return
        # The connection with the least queued; ties go round the table.
        count = len(self.connections)
        order = [self.connections[(self.turn + index) % count] for index in range(count)]
        target = min(order, key=lambda connection: connection.queue.qsize())
        self.turn = (self.connections.index(target) + 1) % count
        if target.ended:
            raise Connection.Stopped()      # its client failed: stop dealing rather than load the rest for nothing
        if target is not self.main and target.database != self.database and self.database:
            target.send(self.database + b"\n")
            target.database = self.database
        target.send(b"".join(self.batch))
        target.statements += len(self.batch)
        self.batch, self.batch_bytes = [], 0

    def _end_rows(self):
        self._send_batch()
        for connection in self.connections[1:]:
            connection.mark()
        for connection in self.connections[1:]:
            self._wait(connection)
        self.in_rows = False

    def _wait(self, connection):
        if time.monotonic() > self.deadline:
            raise subprocess.TimeoutExpired("import", 0)
        connection.wait(self.deadline)


class Pump(threading.Thread):
    """Reads the dump line by line into the dealer, keeping its first and last bytes as dumps._Pump does."""

    def __init__(self, reader, first, dealer, epilogue, head_bytes, tail_bytes):
        super().__init__(daemon=True)
        self.reader, self.first, self.dealer, self.epilogue = reader, first, dealer, epilogue
        self.head_bytes, self.tail_bytes = head_bytes, tail_bytes
        self.head, self.sent = first[:head_bytes], 0
        self._last, self._last_bytes = collections.deque(), 0
        self.reached_end = self.timed_out = False

    @property
    def tail(self):
        return b"".join(self._last)[-self.tail_bytes:]

    def _keep(self, line):
        # The last lines that hold tail_bytes, without copying the tail for every line.
        self._last.append(line)
        self._last_bytes += len(line)
        while self._last_bytes - len(self._last[0]) >= self.tail_bytes:
            self._last_bytes -= len(self._last.popleft())

    def run(self):
        try:
            for chunk in (io.BytesIO(self.first), self.reader):       # lines end at \n only, as the client's do
                for line in chunk:
                    self._keep(line)
                    self.dealer.line(line)
                    self.sent += len(line)
            self.reached_end = True
        except subprocess.TimeoutExpired:
            self.timed_out = True
        except (Connection.Stopped, OSError, ValueError):
            pass    # a client ended early: the caller reads the exit codes
        finally:
            # Stopped early, the clients get no more: each runs what it has and ends.
            try:
                self.dealer.end(self.epilogue if self.reached_end else b"", complete=self.reached_end)
            except (Connection.Stopped, subprocess.TimeoutExpired) as exc:
                self.reached_end = False
                self.timed_out = self.timed_out or isinstance(exc, subprocess.TimeoutExpired)
                self.dealer.end(b"", complete=False)
            try:
                self.reader.close()
            except OSError:
                pass


def load(reader, first, client_argv, count, deadline, epilogue, head_bytes, tail_bytes):
    """Load the dump from ``reader`` (``first``: its first whole lines, read already) on ``count`` connections.

    Returns (the pump: head, tail, sent, reached_end; [(exit code, output file)] of each client; statements
    each connection loaded). Raises subprocess.TimeoutExpired (clients killed) past ``deadline`` (monotonic).
    """
    connections = [Connection(client_argv) for _index in range(count)]
    pump = Pump(reader, first, Dealer(connections, deadline), epilogue, head_bytes, tail_bytes)
    pump.start()
    try:
        codes = [connection.finish(deadline) for connection in connections]
        pump.join(timeout=max(1, deadline - time.monotonic()))
        if pump.timed_out:
            raise subprocess.TimeoutExpired("import", 0)
    except subprocess.TimeoutExpired:
        for connection in connections:
            connection.kill()
        raise
    return pump, [(code, connection.output) for code, connection in zip(codes, connections)], \
        [connection.statements for connection in connections]
