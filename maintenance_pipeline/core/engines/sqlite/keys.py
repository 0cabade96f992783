"""SQLite foreign keys read for a migration: the keys of the whole schema in one read of the catalog, and the
violations of some child tables only (what a migration judges is the keys of the tables it touched)."""

from __future__ import annotations

import sqlite3
from collections import Counter


def fk_violations_of(raw: sqlite3.Connection, tables, schema: str = "main") -> Counter:
    """``fk_violations`` of the child ``tables`` only (each ``PRAGMA <schema>.foreign_key_check(<table>)``): what a
    migration must judge is the keys of the tables it touched, not the whole database."""
    out: Counter = Counter()
    q = lambda name: '"' + name.replace('"', '""') + '"'  # noqa: E731
    for t in sorted(tables):
        try:
            out.update((r[0], r[2]) for r in raw.execute(f"PRAGMA {q(schema)}.foreign_key_check({q(t)})"))
        except sqlite3.OperationalError as e:
            if "foreign key mismatch" not in str(e):
                raise
            for fk in raw.execute(f'SELECT DISTINCT "table" FROM {q(schema)}.pragma_foreign_key_list(?)', (t,)):
                out[(t, f"{fk[0]}{MISMATCH}")] = 1
    return out


def fk_graph(raw: sqlite3.Connection, schema: str = "main") -> dict[str, tuple]:
    """{child table: its foreign keys as (parent, from, to, match) rows} of ``schema``, in one read of the catalog."""
    out: dict[str, list] = {}
    for child, parent, src, dst, match in raw.execute(
            f'SELECT m.name, p."table", p."from", p."to", p."match" FROM "{schema}".sqlite_master m '
            "JOIN pragma_foreign_key_list(m.name, ?) p WHERE m.type = 'table' ORDER BY 1, p.id, p.seq", (schema,)):
        out.setdefault(child, []).append((parent, src, dst, match))
    return {k: tuple(v) for k, v in out.items()}


MISMATCH = " (foreign key mismatch)"  # how ``fk_violations`` names a key SQLite cannot check


def unchecked_keys(violations: Counter) -> tuple[Counter, list[str]]:
    """``violations`` without the keys SQLite cannot check at all (their parent columns are not its primary key or a
    unique key: "foreign key mismatch"), and those keys as ``child -> parent``: they are no rows pointing at missing
    parents, and must not be counted as such."""
    rows = Counter({k: n for k, n in violations.items() if not str(k[1]).endswith(MISMATCH)})
    keys = sorted(f"{child} -> {parent[:-len(MISMATCH)]}" for child, parent in violations
                  if str(parent).endswith(MISMATCH))
    return rows, keys
