"""Markdown primitives of the run reports: tolerant readers of a report dict's values (any key may be missing
or odd) and the escaping of what they show.

Every value that comes from the database, the targets file or a check is data, never Markdown: ``_cell`` (text)
and ``_code`` (a code span) keep it on one line (a control character is shown as its escape, ``\\n``) and
escape what Markdown or HTML would read (``\\ ` * _ [ ] # | ! ~``, ``<`` ``>`` ``&`` as entities, a bare URL's
``://``), so a name can add no heading, link, image or HTML to a page; ``fenced`` holds SQL byte for byte in a
fence longer than any backtick run in it. ``bounded_sql`` is the sample of a migration's SQL a page shows: a report
does not grow with the data a revision writes (the whole SQL is in a file beside it)."""

from __future__ import annotations

import re
from datetime import datetime, timezone


def _dict(x) -> dict:
    return x if isinstance(x, dict) else {}


def _dicts(x) -> list[dict]:
    return [i for i in x if isinstance(i, dict)] if isinstance(x, (list, tuple)) else []


def _dt(value) -> datetime | None:
    """A datetime or ISO-8601 string as an aware UTC datetime (naive = UTC); None if it is neither."""
    try:
        d = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d.astimezone(timezone.utc)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Markdown's punctuation; ``_`` inside a word (``rows_preserved``) cannot start or end emphasis and stays as it is
_PUNCT = re.compile(r"([\\`*\[\]#|!~]|(?<![^\W_])_|_(?![^\W_]))")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BARE_LINK = re.compile(r"(?<=[A-Za-z0-9])\\?:(?=//)|(?<=\bwww)\.|@", re.IGNORECASE)  # GFM autolinks a bare URL


def one_line_visible(value) -> str:
    """``value`` as text on one line: a control character (a newline in a table's name) shown as its escape."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), str(value))


def escape_text(value) -> str:
    """``value`` as inline Markdown text that renders as itself: one line, Markdown punctuation backslash-escaped,
    ``<`` ``>`` ``&`` as HTML entities, a bare URL or e-mail address broken so no renderer links it."""
    text = _PUNCT.sub(r"\\\1", one_line_visible(value))
    text = "".join(_HTML.get(ch, ch) for ch in text)
    return _BARE_LINK.sub(lambda m: "\\" + m.group().lstrip("\\"), text)


def _cell(value, empty: str = "—") -> str:
    """Text safe in a Markdown table cell and in prose (one line, escaped: see ``escape_text``)."""
    if value is None or value == "":
        return empty
    return escape_text(value)


def _code(value, *, cell: bool = False) -> str:
    """``value`` in a code span that holds it whole: delimited by more backticks than any run in it, on one line
    (control characters shown as escapes); in a table (``cell``) its pipes escaped as tables require."""
    if value in (None, ""):
        return "—"
    text = one_line_visible(value)
    if cell:
        text = text.replace("|", "\\|")
    ticks = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fenced(text: str, info: str = "") -> list[str]:
    """``text`` in a fenced code block, byte for byte: a fence of more backticks than any run in it (at least 3)."""
    text = str(text)
    ticks = "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    body = text[:-1] if text.endswith("\n") else text
    return [f"{ticks}{info}", *body.split("\n"), ticks]


def sql_text(statements) -> str:
    """The statements that ran, each as it ran and ended by ``;`` (added when it has none), one after another."""
    out = []
    for s in statements or []:
        s = str(s)
        if s.strip():
            out.append(s if s.rstrip().endswith(";") else s + ";")
    return "".join(x + "\n" for x in out)


MAX_SQL_STATEMENTS = 200  # statements a report lists (the whole SQL goes to a file beside it: report.write_report)
MAX_SQL_LINE = 1_000  # characters of one line of a statement (bound parameters of many rows make one huge line)
MAX_STATEMENT_LINES = 200  # lines of one statement


_CUT_SAID = 40  # room for what a cut line ends with: a sample cut again (an old report's) is left as it is


def _bounded_statement(statement: str) -> tuple[str, bool]:
    """``statement`` with each line at most ``MAX_SQL_LINE`` characters and at most ``MAX_STATEMENT_LINES`` lines,
    what is cut said where it was cut; (text, whether anything was cut)."""
    lines, cut = str(statement).split("\n"), False
    if len(lines) > MAX_STATEMENT_LINES + 1:
        lines, cut = lines[:MAX_STATEMENT_LINES] + [f"-- … ({len(lines) - MAX_STATEMENT_LINES} more lines)"], True
    out = []
    for line in lines:
        if len(line) > MAX_SQL_LINE + _CUT_SAID:
            line, cut = f"{line[:MAX_SQL_LINE]}… ({len(line) - MAX_SQL_LINE} more characters)", True
        out.append(line)
    return "\n".join(out), cut


def bounded_sql(statements) -> tuple[list[str], int, int]:
    """A readable sample of ``statements`` (what a migration ran, in order): the first ``MAX_SQL_STATEMENTS``, each
    cut to lines of ``MAX_SQL_LINE`` characters (``executemany``'s parameters: a sample of the rows) and
    ``MAX_STATEMENT_LINES`` lines; (the sample, how many statements were left out, how many were cut)."""
    statements = [str(s) for s in statements or [] if s is not None]
    shown, cut = [], 0
    for s in statements[:MAX_SQL_STATEMENTS]:
        text, was_cut = _bounded_statement(s)
        shown.append(text)
        cut += was_cut
    return shown, len(statements) - len(shown), cut


def _secs(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    return f"{m}m {s}s" if m < 60 else f"{m // 60}h {m % 60}m {s}s"


def human_bytes(n) -> str:
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "—"
    size, unit = float(n), "B"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            break
        size /= 1024
    return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _yes(value) -> str:
    return "✅ yes" if value is True else ("❌ no" if value is False else "—")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]
