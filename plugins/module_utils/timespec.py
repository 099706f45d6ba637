# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durations (ttl) and timestamps as MyAAS writes them."""

from __future__ import annotations

import datetime
import re

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TTL_RE = re.compile(r"\s*(\d+)\s*([smhdw]?)\s*")
# Ten years: longer is a mistake (and past year 9999 no date can be written).
MAX_TTL = 3650 * 86400


def parse_ttl(value):
    """'8h', '2d', '90m', '3600' or 3600 -> seconds; 0 means no expiry."""
    match = _TTL_RE.fullmatch(str(value))
    if not match:
        raise MyaasError("ttl %r is not a duration: give seconds, or a number with s, m, h, d or w "
                         "(e.g. 8h, 2d); 0 means no expiry." % (value,))
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds > MAX_TTL:
        raise MyaasError("ttl %r is more than ten years (3650d); give a shorter one, or 0 for no expiry." % (value,))
    return seconds


# How `protected` may be given as a yes/no (Ansible's own spellings, -e gives strings).
_YES = ("true", "yes", "on", "1", "y", "t")
_NO = ("false", "no", "off", "0", "n", "f")


def parse_protection(value):
    """``protected`` as (protected, lease seconds): true/false, or a lease such as '7d'.

    None (not given) -> (None, None). True means no end; a lease means
    protected for that long from when it was granted (its end is the
    caller's to work out, from the moment it counts from).
    """
    if value is None or isinstance(value, bool):
        return value, None
    text = str(value).strip().lower()
    if text in _YES or text in _NO:
        return text in _YES, None
    try:
        seconds = parse_ttl(text)
    except MyaasError:
        raise MyaasError("protected %r is neither true/false nor a duration: give true (no end), false, or how "
                         "long the protection lasts (7d, 12h, 2w)." % (value,))
    return (True, seconds) if seconds else (False, None)


def iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(timespec="seconds")


def parse_iso(text):
    return datetime.datetime.fromisoformat(text).timestamp()


def parse_moment(value, now):
    """A point in time as a timestamp: ISO 8601 (UTC unless it says otherwise), or a
    duration such as '1d' meaning that long before ``now``."""
    text = str(value).strip()
    # A unit is required: a bare number (2025, 20261124) is more likely a date than seconds.
    if re.fullmatch(r"\d+\s*[smhdw]", text):
        return now - parse_ttl(text)
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise MyaasError("as_of %r is not a time: give an ISO 8601 date or date and time (2026-11-24, "
                         "2026-11-24T06:00, UTC unless an offset is given), or a duration ago (12h, 1d)." % (value,))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()
