# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The statements of a dump's first bytes, as the engine's command-line client splits them.

What a dump does (create its own database, switch to another) is decided from
the starts of its statements, never from a regular expression over its text:
a comment or a routine body may hold a line that reads like ``USE x``. Like
the clients, this skips comments and quoted text, keeps what MySQL's
``/*!40101 ... */`` version comments hold (the server runs it), follows
``DELIMITER`` (mysql) and skips ``COPY ... FROM stdin`` data (psql).
"""

from __future__ import annotations

import re

# Enough of a statement's start to tell what it does.
KEEP_BYTES = 1024

_WS = re.compile(rb"\s+")
# mysql's words end before "$" (a DELIMITER may be "$$"); PostgreSQL's identifiers may hold it.
_MY_WORD = re.compile(rb"[A-Za-z0-9_]+")
_PG_WORD = re.compile(rb"[A-Za-z0-9_$]+")
_LINE_END = re.compile(rb"[^\n]*")
# mysql: '--' starts a comment only before a blank or the end of the line.
_MY_LINE_COMMENT = re.compile(rb"(?:--(?=[ \t\r\n]|\Z)|#)[^\n]*")
_MY_VERSION_OPEN = re.compile(rb"/\*M?![0-9]*")
_MY_COMMENT = re.compile(rb"/\*.*?(?:\*/|\Z)", re.DOTALL)
# Quoted text, to its closing quote or the end of the data (a peek may cut it,
# also between a backslash and the character it escapes). One character per
# step, so that no input makes the match backtrack (targets' Pythons may
# predate possessive quantifiers).
_MY_STRING = re.compile(rb"'(?:[^'\\]|\\.|'')*(?:'|\\?\Z)|\"(?:[^\"\\]|\\.|\"\")*(?:\"|\\?\Z)|`(?:[^`]|``)*(?:`|\Z)",
                        re.DOTALL)
_MY_CLIENT_COMMANDS = (b"use", b"delimiter")
_PG_LINE_COMMENT = re.compile(rb"--[^\n]*")
_PG_STRING = re.compile(rb"(?<![A-Za-z0-9_])[Ee]'(?:[^'\\]|\\.|'')*(?:'|\\?\Z)|'(?:[^']|'')*(?:'|\Z)|"
                        rb"\"(?:[^\"]|\"\")*(?:\"|\Z)", re.DOTALL)
_PG_DOLLAR = re.compile(rb"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PG_COPY_DATA = re.compile(rb"^COPY\b.*\bFROM\s+stdin\b", re.IGNORECASE | re.DOTALL)
_PG_COPY_END = re.compile(rb"^\\\.\r?$", re.MULTILINE)


class _Statement:
    """The start of the statement being read, with comments turned into blanks."""

    def __init__(self):
        self.parts, self.size = [], 0
        self.started = False    # anything but blanks and comments seen

    def add(self, piece):
        self.started = self.started or bool(piece.strip())
        if self.size < KEEP_BYTES:
            self.parts.append(piece)
            self.size += len(piece)

    def text(self):
        return b"".join(self.parts).strip()[:KEEP_BYTES]


def statements(data, dialect):
    """The statements of ``data`` (bytes) as the client sends them, each cut to KEEP_BYTES.

    ``dialect`` is "mysql" (mysql and mariadb clients) or "postgresql" (psql).
    SQL statements end with ";" (the delimiter, whatever DELIMITER made it);
    psql meta-commands (``\\connect x``) are given as their line. A statement
    the data ends in the middle of comes last, as far as it goes.
    """
    return list((_postgresql if dialect == "postgresql" else _mysql)(data))


def _mysql(data):
    pos, end, delimiter, in_version = 0, len(data), b";", False
    current = _Statement()
    while pos < end:
        if data.startswith(delimiter, pos):
            text = current.text()
            if text:
                yield text + b";"
            current, pos = _Statement(), pos + len(delimiter)
            continue
        match = _WS.match(data, pos)
        if match:
            current.add(b" ")
            pos = match.end()
            continue
        if not current.started:
            word = _MY_WORD.match(data, pos)
            if word and word.group().lower() in _MY_CLIENT_COMMANDS:
                # Client commands: the rest of the line is their argument.
                line = _LINE_END.match(data, pos).group()
                if word.group().lower() == b"delimiter":
                    argument = line[len(word.group()):].split()
                    delimiter = argument[0] if argument else delimiter
                else:
                    yield line.split(delimiter, 1)[0].strip() + b";"
                current, pos = _Statement(), pos + len(line)
                continue
        for pattern, keep in ((_MY_LINE_COMMENT, False), (_MY_VERSION_OPEN, False), (_MY_COMMENT, False),
                              (_MY_STRING, True)):
            match = pattern.match(data, pos)
            if match:
                in_version = in_version or pattern is _MY_VERSION_OPEN
                current.add(match.group() if keep else b" ")
                pos = match.end()
                break
        else:
            if in_version and data.startswith(b"*/", pos):
                in_version = False
                current.add(b" ")
                pos += 2
                continue
            word = _MY_WORD.match(data, pos)
            step = word.end() if word else pos + 1
            current.add(data[pos:step])
            pos = step
    text = current.text()
    if text:
        yield text


def _pg_block_comment_end(data, pos):
    """Where a /* comment that starts at ``pos`` ends: PostgreSQL's comments nest."""
    depth = 0
    while pos < len(data):
        if data.startswith(b"/*", pos):
            depth, pos = depth + 1, pos + 2
        elif data.startswith(b"*/", pos):
            depth, pos = depth - 1, pos + 2
            if depth == 0:
                return pos
        else:
            pos += 1
    return pos


def _postgresql(data):
    pos, end = 0, len(data)
    current = _Statement()
    while pos < end:
        if data.startswith(b";", pos):
            text = current.text()
            pos += 1
            if text:
                yield text + b";"
                if _PG_COPY_DATA.match(text):
                    copy_end = _PG_COPY_END.search(data, pos)
                    pos = copy_end.end() if copy_end else end
            current = _Statement()
            continue
        match = _WS.match(data, pos)
        if match:
            current.add(b" ")
            pos = match.end()
            continue
        if data.startswith(b"\\", pos) and not current.started:
            line = _LINE_END.match(data, pos).group()
            yield line.strip()
            pos += len(line)
            continue
        if data.startswith(b"/*", pos):
            current.add(b" ")
            pos = _pg_block_comment_end(data, pos)
            continue
        dollar = _PG_DOLLAR.match(data, pos)
        if dollar:
            close = data.find(dollar.group(), dollar.end())
            stop = end if close < 0 else close + len(dollar.group())
            current.add(data[pos:stop])
            pos = stop
            continue
        for pattern, keep in ((_PG_LINE_COMMENT, False), (_PG_STRING, True)):
            match = pattern.match(data, pos)
            if match:
                current.add(match.group() if keep else b" ")
                pos = match.end()
                break
        else:
            word = _PG_WORD.match(data, pos)
            step = word.end() if word else pos + 1
            current.add(data[pos:step])
            pos = step
    text = current.text()
    if text:
        yield text
