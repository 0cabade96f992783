"""Markdown primitives of the run reports: tolerant readers of a report dict's values (any key may be missing
or odd) and one-line, pipe-safe table cells."""

from __future__ import annotations

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


def _cell(value, empty: str = "—") -> str:
    """Text safe inside a Markdown table cell (one line, no bare pipes)."""
    if value is None or value == "":
        return empty
    return " ".join(str(value).split()).replace("|", "\\|")


def _code(value) -> str:
    return f"`{_cell(value).replace('`', chr(39))}`" if value not in (None, "") else "—"


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
