"""Comparison keys for declared column types and server defaults: types and defaults compare by meaning,
not spelling. Two columns have the same type when their ``Engine.type_key`` is equal.

The rules are the engine's (``engines/sqlite/types.py``: affinity first, lengths ignored;
``engines/postgresql/types.py``: synonyms, lengths and precision kept, serial/identity keyed as their
integer type). This module holds what every engine shares: splitting a declaration into name,
arguments and array suffix, and the default-text canonical form.

Defaults (``default_key``)
    A server default is SQL text; the key makes spelling differences disappear:
    whitespace is collapsed and everything outside quoted strings/identifiers is upper-cased,
    redundant outer parentheses are removed (SQLite and SQLAlchemy add or drop them:
    ``(datetime('now'))`` = ``datetime('now')``), ``DEFAULT NULL`` is the same as no default
    (key ``None``), a leading ``+`` on a number is dropped, and a quoted number equals the bare
    number (``'0'`` = ``0``) because every engine stores the default through the column's
    type/affinity, which turns one into the other, unless the engine says the column keeps them apart
    (SQLite, BLOB affinity). An engine may first drop what it adds itself (PostgreSQL: a cast on a
    literal, ``'x'::character varying`` = ``'x'``) and map its own spellings (SQLite: ``TRUE``/``FALSE``
    are ``1``/``0``). Nothing else is interpreted: ``1`` and ``1.0`` stay different.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["default_key", "canonical_type", "split_type", "canonical_text", "strip_parens"]

# --------------------------------------------------------------------------- types


_ARGS_RE = re.compile(r"\(([^()]*)\)")


def split_type(declared: str) -> tuple[str, tuple[str, ...], str]:
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


# ------------------------------------------------------------------------ defaults

_TOKEN_RE = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|\s+|[^'\"`\[\s(),]+|.")
NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def strip_parens(s: str) -> str:
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


def canonical_text(s: str) -> str:
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


def number(s: str) -> str:
    return s[1:] if s.startswith("+") else s


def canonical_type(declared: str | None) -> str:
    """A declared type as one spelling: upper case, blanks collapsed, arguments without blanks."""
    base, args, suffix = split_type(declared or "")
    return base + (f"({','.join(args)})" if args else "") + suffix


@lru_cache(maxsize=4096)
def default_key(engine, text: str | None, declared_type: str | None = None) -> str | None:
    """The comparison key of a server default's SQL text on ``engine`` (an ``engines.Engine``), ``None`` for
    no default.

    ``declared_type`` (optional) is the column's declared type; an engine may need it (SQLite: a
    BLOB-affinity column keeps ``'0'`` and ``0`` apart).
    """
    if text is None:
        return None
    s = canonical_text(engine.default_literal(strip_parens(str(text).strip())))
    if not s or s == "NULL":
        return None
    s = engine.default_key(s, declared_type)
    if NUMBER_RE.match(s):
        return number(s)
    if s.startswith("'") and s.endswith("'") and len(s) >= 2:
        inner = s[1:-1]
        if NUMBER_RE.match(inner) and not engine.keeps_quoted_number(declared_type):
            return number(inner)
    return s
