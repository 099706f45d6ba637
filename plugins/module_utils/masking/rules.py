# Copyright: MyAAS team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Masking rules: what they may say, and which columns look personal.

Rules name columns as ``database.table.column`` (MariaDB) or
``schema.table.column`` (PostgreSQL), and tables as ``database.table`` or
``schema.table``. A column looks personal by its name (its words, split at
``_``, ``-`` and case changes) or by a sample of its values (classified by
the import server, see masking/sql.py). Every column that looks personal must
be covered by a rule - masked, in a truncated table, or kept with a reason -
or the import fails: rules fail closed.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.myaas.myaas.plugins.module_utils.errors import MyaasError

TRANSFORMS = ("email", "name", "phone", "credit_card", "ip", "date", "text", "hash", "null")
FIXED_PREFIX = "fixed:"
# Words of a column name that make it personal, and the transform to suggest.
NAME_WORDS = {
    "email": "email", "mail": "email", "emailaddress": "email",
    "phone": "phone", "phonenumber": "phone", "mobile": "phone", "tel": "phone", "telephone": "phone", "fax": "phone",
    "name": "name", "firstname": "name", "lastname": "name", "surname": "name", "fullname": "name",
    "givenname": "name", "familyname": "name", "middlename": "name", "username": "name",
    "address": "text", "addr": "text", "street": "text", "zip": "text", "zipcode": "text", "postcode": "text",
    "birth": "date", "birthday": "date", "birthdate": "date", "dob": "date",
    "ssn": "hash", "iban": "hash", "bic": "hash", "passport": "hash", "taxid": "hash",
    "card": "credit_card", "cardnumber": "credit_card", "creditcard": "credit_card", "cc": "credit_card",
    "ip": "ip", "ipaddress": "ip", "ipaddr": "ip",
}
# Kinds of values the import server looks for, and the transform to suggest.
VALUE_KINDS = {"email": "email", "phone": "phone", "credit_card": "credit_card", "iban": "hash", "ip": "ip"}
_WORD_RE = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_COLUMN_RE = re.compile(r"^[^.\s]+\.[^.\s]+\.[^.\s]+$")
_TABLE_RE = re.compile(r"^[^.\s]+\.[^.\s]+$")


def name_words(column):
    return [word.lower() for word in _WORD_RE.findall(column)]


def personal_by_name(column):
    """The transform a column's name suggests, or None when its name says nothing personal."""
    for word in name_words(column):
        if word in NAME_WORDS:
            return NAME_WORDS[word]
    return None


def check_rules(rules):
    """Validate a ``masking`` dict; returns it normalised (columns, truncate, keep)."""
    if not isinstance(rules, dict):
        raise MyaasError("masking must be a dict with columns, truncate and keep.")
    unknown = sorted(set(rules) - {"columns", "truncate", "keep"})
    if unknown:
        raise MyaasError("masking has unknown keys %s; use columns, truncate and keep." % ", ".join(unknown))
    columns = rules.get("columns") or {}
    truncate = rules.get("truncate") or []
    keep = rules.get("keep") or {}
    if not isinstance(columns, dict) or not isinstance(keep, dict) or not isinstance(truncate, list):
        raise MyaasError("masking: columns and keep are dicts (name: transform, name: reason); truncate is a list.")
    problems = []
    for name, transform in columns.items():
        if not _COLUMN_RE.match(str(name)):
            problems.append("%s is not database.table.column (or schema.table.column)" % name)
        if not (transform in TRANSFORMS or str(transform).startswith(FIXED_PREFIX)):
            problems.append("%s: %r is not a transform (%s, or fixed:VALUE)" % (name, transform, ", ".join(TRANSFORMS)))
    for name, reason in keep.items():
        if not _COLUMN_RE.match(str(name)):
            problems.append("keep: %s is not database.table.column (or schema.table.column)" % name)
        if not str(reason or "").strip():
            problems.append("keep: %s needs a reason (why it is not personal data)" % name)
        if name in columns:
            problems.append("%s is both masked and kept" % name)
    for name in truncate:
        if not _TABLE_RE.match(str(name)):
            problems.append("truncate: %s is not database.table (or schema.table)" % name)
    if problems:
        raise MyaasError("The masking rules are not valid: %s." % "; ".join(problems))
    return {"columns": dict((str(k), str(v)) for k, v in columns.items()),
            "truncate": sorted(str(name) for name in truncate),
            "keep": dict((str(k), str(v)) for k, v in keep.items())}


def rules_hash(rules):
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode("utf-8")).hexdigest()


def covered(rules, column):
    """Whether a rule covers ``column`` (database.table.column)."""
    table = column.rsplit(".", 1)[0]
    return column in rules["columns"] or column in rules["keep"] or table in rules["truncate"]


def check_names(rules, columns):
    """Fail when a rule names a column or table the template does not have (a typo masks nothing)."""
    tables = set(column.rsplit(".", 1)[0] for column in columns)   # columns: their names
    missing = [name for name in list(rules["columns"]) + list(rules["keep"]) if name not in columns]
    missing += [name for name in rules["truncate"] if name not in tables]
    if missing:
        raise MyaasError("The masking rules name what the dump does not have: %s. Fix the names "
                         "(database.table.column; schema.table.column for PostgreSQL)." % ", ".join(sorted(missing)))


def snippet(findings):
    """A YAML rules snippet for uncovered personal columns, ready to paste and review."""
    lines = ["columns:"]
    for finding in findings:
        lines.append("  %s: %s   # %s" % (finding["column"], finding["suggest"], "; ".join(finding["why"])))
    return "\n".join(lines) + "\n"
