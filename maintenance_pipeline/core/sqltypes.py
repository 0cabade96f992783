"""Comparison keys for declared column types and server defaults.

Two columns have the same type when their ``type_key`` is equal: types compare by
meaning, not spelling.

SQLite (enforces no length or precision; https://www.sqlite.org/datatype3.html §3.1)
    The key always starts with the column's *affinity*, so a change of affinity is always
    a change (``STRING`` has NUMERIC affinity, ``TEXT`` has TEXT affinity). Within one
    affinity, arguments (length, precision) are ignored and synonyms are equal:

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

    NUMERIC-affinity names keep their meaning because SQLAlchemy reads them as different
    Python types (bool, datetime, date, Decimal ...), although SQLite stores them alike.

PostgreSQL and other servers
    Length, precision and scale matter (``VARCHAR(50)`` != ``VARCHAR(80)``); synonyms are
    equal: ``INT``/``INTEGER``/``INT4``/``SERIAL`` -> ``INTEGER``, ``INT8``/``BIGSERIAL`` ->
    ``BIGINT``, ``INT2`` -> ``SMALLINT``, ``CHARACTER VARYING`` -> ``VARCHAR``,
    ``CHARACTER``/``BPCHAR`` -> ``CHAR`` (no length = ``CHAR(1)``), ``BOOL`` -> ``BOOLEAN``,
    ``FLOAT8``/``DOUBLE``/``FLOAT``/``FLOAT(25..53)`` -> ``DOUBLE PRECISION``,
    ``FLOAT4``/``FLOAT(1..24)`` -> ``REAL``, ``DECIMAL`` -> ``NUMERIC`` (``NUMERIC(p)`` =
    ``NUMERIC(p,0)``), ``TIMESTAMP [WITHOUT TIME ZONE]`` -> ``TIMESTAMP``,
    ``TIMESTAMP WITH TIME ZONE`` -> ``TIMESTAMPTZ`` (likewise ``TIME``/``TIMETZ``; precision 6
    is the default and dropped), ``VARBIT`` -> ``BIT VARYING``. Array suffixes are kept
    (``INT4[]`` -> ``INTEGER[]``). Unknown names (enums, domains) are compared by name.

Defaults (``default_key``)
    A server default is SQL text; the key makes spelling differences disappear:
    whitespace is collapsed and everything outside quoted strings/identifiers is upper-cased,
    redundant outer parentheses are removed (SQLite and SQLAlchemy add or drop them:
    ``(datetime('now'))`` = ``datetime('now')``), ``DEFAULT NULL`` is the same as no default
    (key ``None``), a leading ``+`` on a number is dropped, and a quoted number equals the bare
    number (``'0'`` = ``0``) because every dialect stores the default through the column's
    type/affinity, which turns one into the other. The one exception is a SQLite column with
    BLOB affinity (no conversion happens there), when the declared type is passed. On SQLite
    ``TRUE``/``FALSE`` are ``1``/``0`` (that is what SQLite stores). On PostgreSQL a cast on a
    literal is dropped (``'x'::character varying`` = ``'x'``), since the column's type applies it
    anyway (``NULL::text`` is no default). Nothing else is interpreted: ``1`` and ``1.0`` stay different.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["sqlite_affinity", "type_key", "default_key"]

# --------------------------------------------------------------------------- types


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


_ARGS_RE = re.compile(r"\(([^()]*)\)")


def _split(declared: str) -> tuple[str, tuple[str, ...], str]:
    """``"character varying (50) []"`` -> ("CHARACTER VARYING", ("50",), "[]")."""
    s = (declared or "").strip().upper().replace('"', "").replace("`", "")
    suffix = ""
    while s.endswith("[]"):
        suffix += "[]"
        s = s[:-2].rstrip()
    m = re.search(r"(\[\d*\])+$", s)  # INTEGER[3] is INTEGER[] to PostgreSQL
    if m:
        suffix += "[]" * m.group(0).count("[")
        s = s[: m.start()].rstrip()
    args: tuple[str, ...] = ()
    m = _ARGS_RE.search(s)
    if m:
        args = tuple(a.strip() for a in m.group(1).split(",") if a.strip())
        s = s[: m.start()] + " " + s[m.end():]
    base = " ".join(s.split())
    return base, args, suffix


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


_PG_SYNONYMS = {
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INTEGER": "INTEGER",
    "SERIAL": "INTEGER",
    "SERIAL4": "INTEGER",
    "MEDIUMINT": "INTEGER",
    "BIGINT": "BIGINT",
    "INT8": "BIGINT",
    "BIGSERIAL": "BIGINT",
    "SERIAL8": "BIGINT",
    "SMALLINT": "SMALLINT",
    "INT2": "SMALLINT",
    "SMALLSERIAL": "SMALLINT",
    "SERIAL2": "SMALLINT",
    "CHARACTER VARYING": "VARCHAR",
    "VARCHAR": "VARCHAR",
    "CHAR VARYING": "VARCHAR",
    "NVARCHAR": "VARCHAR",
    "CHARACTER": "CHAR",
    "CHAR": "CHAR",
    "BPCHAR": "CHAR",
    "NCHAR": "CHAR",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    "FLOAT8": "DOUBLE PRECISION",
    "DOUBLE": "DOUBLE PRECISION",
    "DOUBLE PRECISION": "DOUBLE PRECISION",
    "FLOAT4": "REAL",
    "REAL": "REAL",
    "DECIMAL": "NUMERIC",
    "NUMERIC": "NUMERIC",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "TIMESTAMPTZ": "TIMESTAMPTZ",
    "TIME": "TIME",
    "TIME WITHOUT TIME ZONE": "TIME",
    "TIME WITH TIME ZONE": "TIMETZ",
    "TIMETZ": "TIMETZ",
    "VARBIT": "BIT VARYING",
    "BIT VARYING": "BIT VARYING",
}


def _server_key(base: str, args: tuple[str, ...], suffix: str) -> str:
    name = _PG_SYNONYMS.get(base, base)
    if base == "FLOAT":
        # FLOAT(p): p <= 24 is REAL, otherwise (and without p) DOUBLE PRECISION
        name = "REAL" if args and args[0].isdigit() and int(args[0]) <= 24 else "DOUBLE PRECISION"
        args = ()
    elif name == "CHAR" and not args:
        args = ("1",)
    elif name == "NUMERIC" and len(args) == 1:
        args = (args[0], "0")
    elif name in ("TIMESTAMP", "TIMESTAMPTZ", "TIME", "TIMETZ") and args == ("6",):
        args = ()
    return name + (f"({','.join(args)})" if args else "") + suffix


@lru_cache(maxsize=4096)
def type_key(dialect: str, declared: str | None) -> str:
    """The comparison key of ``declared`` on ``dialect`` (see the module docstring)."""
    base, args, suffix = _split(declared or "")
    if (dialect or "").lower() == "sqlite":
        affinity = sqlite_affinity(declared)
        if affinity != "NUMERIC":
            return affinity
        meaning = _sqlite_meaning(base)
        return "NUMERIC" if meaning == "NUMERIC" else f"NUMERIC:{meaning}"
    return _server_key(base, args, suffix)


# ------------------------------------------------------------------------ defaults

_TOKEN_RE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|\s+|[^'\"`\[\s(),]+|.")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_PG_LITERAL_CAST_RE = re.compile(
    r"^('(?:[^']|'')*'|[+-]?\d+(?:\.\d+)?|NULL|TRUE|FALSE)\s*::\s*[A-Za-z_][\w ]*(?:\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])*$",
    re.IGNORECASE,
)


def _strip_parens(s: str) -> str:
    while s.startswith("(") and s.endswith(")"):
        depth = 0
        toks = _TOKEN_RE.findall(s)
        closes_at_end = False
        for i, tok in enumerate(toks):
            if tok == "(":
                depth += 1
            elif tok == ")":
                depth -= 1
                if depth == 0:
                    closes_at_end = i == len(toks) - 1
                    break
        if not closes_at_end:
            break
        s = s[1:-1].strip()
    return s


def _canonical_text(s: str) -> str:
    """Upper-case outside quotes, whitespace collapsed, no spaces next to punctuation."""
    out: list[str] = []
    for tok in _TOKEN_RE.findall(s):
        if tok[0] in "'\"`[":
            out.append(tok)
        elif tok.isspace():
            out.append(" ")
        else:
            out.append(tok.upper())
    text = "".join(out).strip()
    # drop blanks around punctuation, outside quotes
    result: list[str] = []
    toks = _TOKEN_RE.findall(text)
    for i, tok in enumerate(toks):
        if tok == " ":
            prev = toks[i - 1] if i > 0 else ""
            nxt = toks[i + 1] if i + 1 < len(toks) else ""
            if prev[-1:] in "(),=<>+-*/|" or nxt[:1] in "(),=<>+-*/|":
                continue
        result.append(tok)
    return "".join(result)


def _number(s: str) -> str:
    return s[1:] if s.startswith("+") else s


@lru_cache(maxsize=4096)
def default_key(dialect: str, text: str | None, declared_type: str | None = None) -> str | None:
    """The comparison key of a server default's SQL text, ``None`` for no default.

    ``declared_type`` (optional) is the column's declared type; it only matters on SQLite, where
    a BLOB-affinity column keeps ``'0'`` and ``0`` apart.
    """
    if text is None:
        return None
    d = (dialect or "").lower()
    s = _strip_parens(str(text).strip())
    if d != "sqlite":
        m = _PG_LITERAL_CAST_RE.match(s)
        if m:
            s = _strip_parens(m.group(1))
    s = _canonical_text(s)
    if not s or s == "NULL":
        return None
    if d == "sqlite":
        if s == "TRUE":
            return "1"
        if s == "FALSE":
            return "0"
    if _NUMBER_RE.match(s):
        return _number(s)
    if s.startswith("'") and s.endswith("'") and len(s) >= 2:
        inner = s[1:-1]
        keep_quoted = d == "sqlite" and declared_type is not None and sqlite_affinity(declared_type) == "BLOB"
        if _NUMBER_RE.match(inner) and not keep_quoted:
            return _number(inner)
    return s
