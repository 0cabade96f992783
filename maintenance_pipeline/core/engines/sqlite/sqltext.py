"""SQLite's SQL text, read the way SQLite reads it: ``sqlite_master.sql`` is the only place SQLite keeps CHECK
constraints, generated-column expressions, collations, partial-index WHERE clauses, ``STRICT`` / ``WITHOUT
ROWID``, views and triggers, so the snapshot takes them from there.

* ``scan``: the characters of a statement outside quotes and comments, with the parenthesis depth;
* ``definitions``: the top-level parts of a ``CREATE TABLE`` body (column definitions, table constraints),
  ``table_options``: what follows the body (``STRICT``, ``WITHOUT ROWID``);
* ``checks``: every CHECK, column- or table-level; ``column_clause``: a column's COLLATE / generated clause;
* ``canonical``: a statement as a comparison key: tokens, identifiers unquoted and lower-cased (SQLite
  compares names without case), keywords lower-cased, one space between tokens, comments dropped. Two
  spellings of one definition (``"a"`` / ``a`` / ``[a]``, line breaks, case) give one key.
"""

from __future__ import annotations

import re

_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}
IDENT = r'(?:"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[^\s(),]+)'
_TABLE_CONSTRAINT = re.compile(r"^(CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", re.IGNORECASE)
_SIMPLE = re.compile(r"^[a-z_][a-z0-9_$]*$")


def scan(sql: str, start: int = 0):
    """Yield (index, char, depth) over ``sql`` outside quotes/comments; depth counts parentheses."""
    depth, i, n = 0, start, len(sql)
    while i < n:
        ch = sql[i]
        if ch in _CLOSERS:
            end = sql.find(_CLOSERS[ch], i + 1)
            while end != -1 and ch in "'\"`" and end + 1 < n and sql[end + 1] == ch:  # doubled quote
                end = sql.find(_CLOSERS[ch], end + 2)
            i = n if end == -1 else end + 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        yield i, ch, depth
        i += 1


def _body(create_sql: str) -> tuple[int, int] | None:
    """(start, end) of a CREATE TABLE's parenthesised body (end: the closing parenthesis)."""
    open_at = None
    for i, ch, depth in scan(create_sql):
        if ch == "(" and depth == 1 and open_at is None:
            open_at = i + 1
        elif open_at is not None and ch == ")" and depth == 0:
            return open_at, i
    return None


def definitions(create_sql: str) -> list[str]:
    """The top-level comma-separated parts of a CREATE TABLE's body (column defs and table constraints)."""
    span = _body(create_sql or "")
    if span is None:
        return []
    parts, begin = [], span[0]
    for i, ch, depth in scan(create_sql, span[0]):
        if i >= span[1]:
            break
        if ch == "," and depth == 0:
            parts.append(create_sql[begin:i])
            begin = i + 1
    parts.append(create_sql[begin:span[1]])
    return [p.strip() for p in parts if p.strip()]


def is_table_constraint(part: str) -> bool:
    return bool(_TABLE_CONSTRAINT.match(part))


def table_options(create_sql: str) -> tuple[str, ...]:
    """``STRICT`` / ``WITHOUT ROWID`` after the body, upper case, in a stable order."""
    text = (create_sql or "").rstrip().rstrip(";").rstrip()
    if text.endswith(")") or not re.search(r"\b(STRICT|ROWID)\s*$", text, re.IGNORECASE):
        return ()  # the statement ends with its body: no option (the common case, decided without parsing)
    span = _body(create_sql)
    if span is None:
        return ()
    tail = canonical(create_sql[span[1] + 1:]).rstrip(";").strip()
    return tuple(sorted(" ".join(o.split()).upper() for o in tail.split(",") if o.strip()))


def flat(part: str) -> str:
    """``part`` with quoted text and anything inside parentheses blanked (keeps positions)."""
    keep = [" "] * len(part)
    for i, ch, depth in scan(part):
        if depth == 0 and ch != ")":
            keep[i] = ch
    return "".join(keep)


def unquote(ident: str) -> str:
    ident = ident.strip()
    if len(ident) >= 2 and ident[0] in "\"`[" and ident[-1] in "\"`]":
        inner = ident[1:-1]
        return inner.replace('""', '"') if ident[0] == '"' else inner
    return ident


def _paren_after(part: str, at: int) -> tuple[int, int] | None:
    """(open, close) of the parenthesis that starts at or after ``at``."""
    open_at = part.find("(", at)
    if open_at < 0:
        return None
    close = next((i for i, ch, depth in scan(part, open_at) if ch == ")" and depth == 0), None)
    return None if close is None else (open_at, close)


def checks(create_sql: str) -> list[tuple[str | None, str]]:
    """Every CHECK of a CREATE TABLE, column-level or table-level, as (constraint name or None, expression)."""
    out = []
    for part in definitions(create_sql):
        for m in re.finditer(r"\bCHECK\b", flat(part), re.IGNORECASE):
            span = _paren_after(part, m.end())
            if span is None:
                continue
            named = re.search(r"\bCONSTRAINT\s+(" + IDENT + r")\s*$", part[:m.start()], re.IGNORECASE)
            out.append((unquote(named.group(1)) if named else None, part[span[0] + 1:span[1]].strip()))
    return out


_KEY_WORDS = re.compile(r"\b(PRIMARY\s+KEY|UNIQUE|FOREIGN\s+KEY|REFERENCES)\b", re.IGNORECASE)


def keys(create_sql: str) -> list[tuple[str, tuple[str, ...], str | None]]:
    """Every PRIMARY KEY, UNIQUE and foreign key of a CREATE TABLE, column- or table-level, in declaration order, as
    (``"primary key"`` | ``"unique"`` | ``"foreign key"``, its columns in lower case, its constraint name or None)."""
    out: list[tuple[str, tuple[str, ...], str | None]] = []
    for part in definitions(create_sql):
        text = flat(part)
        if is_table_constraint(part):
            named = re.match(r"CONSTRAINT\s+(" + IDENT + r")\s*", part, re.IGNORECASE)
            at = named.end() if named else 0
            m = _KEY_WORDS.match(text, at)
            span = _paren_after(part, m.end()) if m and m.group(1).upper() != "REFERENCES" else None
            if span is None:
                continue  # a CHECK (``checks``)
            cols = tuple(unquote(c.group(0)).lower() for c in
                         (re.match(IDENT, x.strip()) for x in part[span[0] + 1:span[1]].split(",")) if c)
            out.append((" ".join(m.group(1).lower().split()), cols, unquote(named.group(1)) if named else None))
            continue
        column = re.match(IDENT, part)
        if column is None:
            continue
        for m in _KEY_WORDS.finditer(text, column.end()):
            named = re.search(r"\bCONSTRAINT\s+(" + IDENT + r")\s*$", part[:m.start()], re.IGNORECASE)
            kind = "foreign key" if m.group(1).upper() == "REFERENCES" else " ".join(m.group(1).lower().split())
            out.append((kind, (unquote(column.group(0)).lower(),), unquote(named.group(1)) if named else None))
    return out


def column_parts(create_sql: str) -> dict[str, str]:
    """{column name (lower case): its definition} of a CREATE TABLE."""
    out = {}
    for part in definitions(create_sql):
        if is_table_constraint(part):
            continue
        m = re.match(IDENT, part)
        if m:
            out[unquote(m.group(0)).lower()] = part
    return out


def collation(part: str) -> str | None:
    """The COLLATE name of a column definition, upper case (None: the default, BINARY)."""
    at = re.search(r"\bCOLLATE\b", flat(part), re.IGNORECASE)
    coll = re.match(IDENT, part[at.end():].lstrip()) if at else None
    return unquote(coll.group(0)) if coll else None


def generated(part: str) -> str | None:
    """The expression of a generated column's definition (``[GENERATED ALWAYS] AS (expr)``), None otherwise."""
    m = re.search(r"\bAS\b", flat(part), re.IGNORECASE)
    span = _paren_after(part, m.end()) if m else None
    return None if span is None else part[span[0] + 1:span[1]].strip()


_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?(?:\*/|$)|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|"""
    r"""[A-Za-z_][\w$]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+|x'[0-9a-fA-F]*'|<>|<=|>=|==|!=|\|\||<<|>>|.""",
    re.DOTALL)


def tokens(sql: str) -> list[str]:
    out = []
    for m in _TOKEN.finditer(sql or ""):
        t = m.group(0)
        if t.isspace() or t.startswith("--") or t.startswith("/*"):
            continue
        if t[0] in "\"`[":
            name = unquote(t).lower()
            t = name if _SIMPLE.match(name) else '"' + name.replace('"', '""') + '"'
        elif t[0] != "'":
            t = t.lower()
        out.append(t)
    return out


def join(toks: list[str]) -> str:
    text = ""
    for t in toks:
        if text and not text.endswith("(") and t not in (",", ")") and not (t == "(" and text[-1:].isalnum()):
            text += " "
        text += t
    return text


def canonical(sql: str) -> str:
    """A comparison key of SQL text (see the module's doc)."""
    return join(tokens(sql)).rstrip(";").strip()


def index_definition(create_index_sql: str) -> str:
    """What a ``CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table (...) [WHERE ...]`` covers: from its
    parenthesis on, canonical."""
    toks = tokens(create_index_sql)
    try:
        at = toks.index("on")
    except ValueError:
        return canonical(create_index_sql)
    return join(toks[at + 2:]).rstrip(";").strip()


def object_definition(create_sql: str) -> str:
    """A view's or trigger's statement, canonical, without ``TEMP`` / ``IF NOT EXISTS`` noise."""
    toks = [t for t in tokens(create_sql)]
    for noise in (["if", "not", "exists"], ["temp"], ["temporary"]):
        for i in range(len(toks) - len(noise) + 1):
            if toks[i:i + len(noise)] == noise and i < 6:
                del toks[i:i + len(noise)]
                break
    return join(toks).rstrip(";").strip()


def deferred_foreign_keys(create_sql: str) -> set[tuple[str, ...]]:
    """The (lower-case) columns of each foreign key declared ``DEFERRABLE INITIALLY DEFERRED`` (the only form that
    changes what SQLite does: the key is checked at COMMIT; ``MATCH`` is parsed and ignored by SQLite)."""
    out: set[tuple[str, ...]] = set()
    if "DEFERRED" not in (create_sql or "").upper():
        return out
    for part in definitions(create_sql):
        text = canonical(part)
        if "deferrable initially deferred" not in text or "not deferrable" in text:
            continue
        m = re.search(r"\bFOREIGN\s+KEY\b", flat(part), re.IGNORECASE)
        if m:
            span = _paren_after(part, m.end())
            if span:
                out.add(tuple(unquote(c).lower() for c in part[span[0] + 1:span[1]].split(",")))
        elif not is_table_constraint(part):
            name = re.match(IDENT, part)
            if name:
                out.add((unquote(name.group(0)).lower(),))
    return out


def conflict_clauses(create_sql: str) -> tuple[str, ...]:
    """``ON CONFLICT <algorithm>`` clauses of NOT NULL / UNIQUE / PRIMARY KEY / CHECK constraints, each with the
    definition it belongs to (they change what an INSERT or UPDATE does)."""
    out = []
    for part in definitions(create_sql):
        text = canonical(part)
        for m in re.finditer(r"\b(not null|unique|primary key|check)\b[^,]*?\bon conflict (\w+)", text):
            out.append(f"ON CONFLICT {m.group(2).upper()} ({text.split(' ', 1)[0]} {m.group(1).upper()})")
    return tuple(out)
