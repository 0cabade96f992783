"""SQL text split into statements, without a parser: what a user check holds before it runs.

A check is one read-only query. Its text is an input (the targets file is edited by hand, copied between
hosts), so before it runs we count its statements and read its first keyword: ``;`` inside a string literal
(``'…'``, ``E'…'`` with backslash escapes), a quoted identifier (``"…"``, `` `…` ``, ``[…]``), a dollar-quoted
body (``$tag$…$tag$``) or a comment (``--``, nested ``/* */``) does not end a statement. The engines enforce
the same on their side (SQLite's driver runs one statement per call; PostgreSQL's check runs through the
extended protocol, which refuses a second command), so a text that fools this count still runs one
statement at most.
"""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_]+")


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql`` (each without its ``;``), comments kept; empty ones left out."""
    out: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            i = _end_of_comment(sql, i)
        elif c == "'":
            escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not (sql[i - 2].isalnum() or sql[i - 2] == "_"))
            i = _end_of_quote(sql, i, "'", backslash=escapes)
        elif c in "\"`":
            i = _end_of_quote(sql, i, c)
        elif c == "[":
            j = sql.find("]", i + 1)
            i = n if j < 0 else j + 1
        elif c == "$" and (m := _DOLLAR.match(sql, i)) and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            j = sql.find(m.group(0), m.end())
            i = n if j < 0 else j + len(m.group(0))
        elif c == ";":
            out.append(sql[start:i])
            start = i = i + 1
        else:
            i += 1
    out.append(sql[start:])
    return [s for s in out if has_code(s)]


def has_code(text: str) -> bool:
    """Whether ``text`` holds anything but whitespace and comments."""
    return bool(strip_comments(text).strip())


def strip_comments(text: str) -> str:
    """``text`` with its leading comments (and whitespace) removed."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j + 1
        elif text.startswith("/*", i):
            i = _end_of_comment(text, i)
        else:
            break
    return text[i:]


def first_keyword(sql: str) -> str:
    """The first word of ``sql`` in upper case (after comments and opening parentheses), or ``""``."""
    text = strip_comments(sql)
    while text.startswith("("):
        text = strip_comments(text[1:])
    m = _WORD.match(text)
    return m.group(0).upper() if m else ""


def _end_of_comment(sql: str, i: int) -> int:
    depth, i, n = 0, i, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _end_of_quote(sql: str, i: int, q: str, *, backslash: bool = False) -> int:
    i, n = i + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == q:
            if i + 1 < n and sql[i + 1] == q:  # a doubled quote is the quote itself
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n
