"""PostgreSQL's rules for comparing types and defaults.

Length, precision and scale matter (``VARCHAR(50)`` != ``VARCHAR(80)``); synonyms are equal:
``INT``/``INTEGER``/``INT4``/``SERIAL`` -> ``INTEGER``, ``INT8``/``BIGSERIAL`` -> ``BIGINT``, ``INT2`` ->
``SMALLINT``, ``CHARACTER VARYING`` -> ``VARCHAR``, ``CHARACTER``/``BPCHAR`` -> ``CHAR`` (no length =
``CHAR(1)``), ``BOOL`` -> ``BOOLEAN``, ``FLOAT8``/``DOUBLE``/``FLOAT``/``FLOAT(25..53)`` -> ``DOUBLE
PRECISION``, ``FLOAT4``/``FLOAT(1..24)`` -> ``REAL``, ``DECIMAL`` -> ``NUMERIC`` (``NUMERIC(p)`` =
``NUMERIC(p,0)``), ``TIMESTAMP [WITHOUT TIME ZONE]`` -> ``TIMESTAMP``, ``TIMESTAMP WITH TIME ZONE`` ->
``TIMESTAMPTZ`` (likewise ``TIME``/``TIMETZ``; precision 6 is the default and dropped), ``VARBIT`` ->
``BIT VARYING``. Array suffixes are kept (``INT4[]`` -> ``INTEGER[]``). Unknown names (enums, domains)
are compared by name.

How a column gets its values is part of its key (``value_source``): a ``SERIAL`` column (what the
snapshot calls an integer column whose default is ``nextval`` of its own sequence) keys as ``INTEGER
SERIAL``, an identity column as ``INTEGER IDENTITY ALWAYS`` / ``INTEGER IDENTITY BY DEFAULT``, a stored
generated column as ``INTEGER GENERATED(a * 2)``: each fills the column differently from a plain
``INTEGER``. A non-default collation is kept (``TEXT COLLATE "C"``). ``base_type`` gives the plain
type of such a declaration (what ``ALTER COLUMN ... TYPE`` accepts).

Defaults: a cast on a literal is dropped (``'x'::character varying`` = ``'x'``), since the column's type
applies it anyway (``NULL::text`` is no default).
"""

from __future__ import annotations

import functools
import re

from ...schema.sqltypes import canonical_text, split_type, strip_parens

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


_IDENTITY_RE = re.compile(r"^(.*?)\s+GENERATED\s+(?:ALWAYS|BY\s+DEFAULT)\s+AS\s+IDENTITY\b.*$",
                          re.IGNORECASE | re.DOTALL)
_GENERATED_RE = re.compile(r"^(.*?)\s+GENERATED\s+ALWAYS\s+AS\s*\((.*)\)\s*(?:STORED|VIRTUAL)?\s*$",
                           re.IGNORECASE | re.DOTALL)
_SERIALS = {"SERIAL": "INTEGER", "SERIAL4": "INTEGER", "BIGSERIAL": "BIGINT", "SERIAL8": "BIGINT",
            "SMALLSERIAL": "SMALLINT", "SERIAL2": "SMALLINT"}


def _value_source(declared: str) -> tuple[str, str | None, str | None]:
    """(plain type, "identity" | "generated" | None, generated expression) of a server declaration."""
    m = _IDENTITY_RE.match(declared or "")
    if m:
        return m.group(1).strip(), "identity", None
    m = _GENERATED_RE.match(declared or "")
    if m:
        return m.group(1).strip(), "generated", m.group(2).strip()
    return (declared or "").strip(), None, None


def base_type(declared: str | None) -> str:
    """The plain type of a server column declaration: ``SERIAL`` -> ``INTEGER``, ``BIGINT GENERATED ALWAYS AS
    IDENTITY`` -> ``BIGINT``, ``INTEGER GENERATED ALWAYS AS (a * 2) STORED`` -> ``INTEGER``; else unchanged."""
    plain, _, _ = _value_source(declared or "")
    return _SERIALS.get(plain.upper(), plain)




_COLLATE_RE = re.compile(r"^(.*?)\s+COLLATE\s+(.+)$", re.IGNORECASE | re.DOTALL)
_IDENTITY_KIND_RE = re.compile(r"GENERATED\s+(ALWAYS|BY\s+DEFAULT)\s+AS\s+IDENTITY", re.IGNORECASE)


def value_source(declared: str | None) -> str:
    """How a column gets its values, as a key: "" (given), "SERIAL", "IDENTITY ALWAYS", "IDENTITY BY DEFAULT" or
    "GENERATED(<expression>)"."""
    plain, source, expr = _value_source(declared or "")
    if source == "identity":
        m = _IDENTITY_KIND_RE.search(declared or "")
        return "IDENTITY " + " ".join((m.group(1) if m else "BY DEFAULT").upper().split())
    if source == "generated":
        return f"GENERATED({canonical_text(strip_parens(expr or ''))})"
    return "SERIAL" if plain.upper() in _SERIALS else ""


@functools.lru_cache(maxsize=4096)  # a pure function of the text; a schema repeats a few dozen types
def type_key(declared: str | None) -> str:
    plain, _source, _expr = _value_source(declared or "")
    m = _COLLATE_RE.match(plain)
    collation = ""
    if m:
        plain, collation = m.group(1), m.group(2).strip()
    key = _server_key(*split_type(plain))
    if collation and collation.strip('"').lower() != "default":
        key += f" COLLATE {collation}"
    source = value_source(declared)
    return f"{key} {source}" if source else key


_LITERAL_CAST_RE = re.compile(
    r"^('(?:[^']|'')*'|[+-]?\d+(?:\.\d+)?|NULL|TRUE|FALSE)\s*::\s*[A-Za-z_][\w ]*(?:\(\s*\d+(?:\s*,\s*\d+)?\s*\))?(?:\[\])*$",
    re.IGNORECASE,
)


def default_literal(text: str) -> str:
    m = _LITERAL_CAST_RE.match(text)
    return strip_parens(m.group(1)) if m else text
