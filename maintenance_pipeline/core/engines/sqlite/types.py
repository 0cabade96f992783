"""SQLite's rules for comparing types and defaults (https://www.sqlite.org/datatype3.html §3.1).

SQLite enforces no length or precision. A type's key always starts with the column's *affinity*, so a
change of affinity is always a change (``STRING`` has NUMERIC affinity, ``TEXT`` has TEXT affinity).
Within one affinity, arguments (length, precision) are ignored and synonyms are equal:

=========  ======================================================  ====================
affinity   declared (examples)                                      key
=========  ======================================================  ====================
INTEGER    INT INTEGER BIGINT SMALLINT TINYINT MEDIUMINT INT8 ...   ``INTEGER``
TEXT       TEXT VARCHAR(n) CHAR(n) NVARCHAR CLOB CHARACTER ...      ``TEXT``
BLOB       BLOB, no type at all                                     ``BLOB``
REAL       REAL FLOAT DOUBLE DOUBLE PRECISION                       ``REAL``
NUMERIC    NUMERIC DECIMAL(p,s)                                     ``NUMERIC``
NUMERIC    BOOLEAN BOOL                                             ``NUMERIC:BOOLEAN``
NUMERIC    DATETIME TIMESTAMP                                       ``NUMERIC:DATETIME``
NUMERIC    DATE / TIME                                              ``NUMERIC:DATE`` / ``NUMERIC:TIME``
NUMERIC    anything else, by its name (STRING, JSON, UUID ...)      ``NUMERIC:STRING`` ...
=========  ======================================================  ====================

NUMERIC-affinity names keep their meaning because SQLAlchemy reads them as different Python types
(bool, datetime, date, Decimal ...), although SQLite stores them alike. Defaults: ``TRUE``/``FALSE``
are ``1``/``0`` (what SQLite stores), and a BLOB-affinity column keeps ``'0'`` and ``0`` apart (no
conversion happens there).
"""

from __future__ import annotations

import functools
import re

from ...schema.sqltypes import split_type


def sqlite_affinity(declared: str | None) -> str:
    """SQLite's affinity of a declared type: INTEGER, TEXT, BLOB, REAL or NUMERIC (rules of §3.1)."""
    t = (declared or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"




def _sqlite_meaning(base: str) -> str:
    if base in ("NUMERIC", "DECIMAL"):
        return "NUMERIC"
    if base in ("BOOLEAN", "BOOL"):
        return "BOOLEAN"
    if base.startswith("DATETIME") or base.startswith("TIMESTAMP"):
        return "DATETIME"
    if base == "DATE":
        return "DATE"
    if base.startswith("TIME"):
        return "TIME"
    return base




_CLAUSES_RE = re.compile(r"^(.*?)(?:\s+COLLATE\s+(\S+))?(?:\s+GENERATED\s+ALWAYS\s+AS\s*\((.*)\)\s*(STORED|VIRTUAL)?)?\s*$",
                         re.IGNORECASE | re.DOTALL)


def split_clauses(declared: str | None) -> tuple[str, str | None, str | None, str | None]:
    """(type, collation, generated expression, STORED|VIRTUAL) of a snapshot's column declaration."""
    m = _CLAUSES_RE.match(declared or "")
    if m is None:  # pragma: no cover - the pattern matches any text
        return declared or "", None, None, None
    kind = (m.group(4) or "VIRTUAL").upper() if m.group(3) is not None else None
    return m.group(1).strip(), m.group(2), m.group(3), kind


def _plain_key(declared: str) -> str:
    base, _args, _suffix = split_type(declared or "")
    affinity = sqlite_affinity(declared)
    if affinity != "NUMERIC":
        return affinity
    meaning = _sqlite_meaning(base)
    return "NUMERIC" if meaning == "NUMERIC" else f"NUMERIC:{meaning}"


@functools.lru_cache(maxsize=4096)  # a pure function of the text; a schema repeats a few dozen types
def type_key(declared: str | None) -> str:
    plain, coll, expr, kind = split_clauses(declared)
    key = _plain_key(plain)
    if coll and coll.strip('"').upper() != "BINARY":
        key += f" COLLATE {coll.strip(chr(34)).upper()}"
    if expr is not None:
        from .sqltext import canonical

        key += f" GENERATED({canonical(expr)}) {kind}"
    return key


def default_key(text: str) -> str:
    return {"TRUE": "1", "FALSE": "0"}.get(text, text)


def keeps_quoted_number(declared_type: str | None) -> bool:
    return declared_type is not None and sqlite_affinity(declared_type) == "BLOB"
