"""SQLite's own view of a database file after a crash trial's kill: its schema, its rows, the invariants.

Plain ``sqlite3`` only, never the product's code: the judge of ``crash_harness``'s trials (and of the
checks' own self-test in ``tests/safety/test_crash.py``).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from live_app import ids, integrity

TARGET = "goals"  # the demo's target every trial runs on
DROPPED_BY_MIGRATION = {"scheduled_sessions"}  # revision 0002; only ever gone with the migrated schema


def recover(db: Path) -> None:
    """Open the file read-write and read it once, as the application's next connection would: that
    rolls a hot journal back (rollback mode) or recovers the WAL index (WAL mode) after a crash."""
    conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    finally:
        conn.close()


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def schema_rows(db: Path) -> list[tuple]:
    """SQLite's own ``sqlite_master`` rows (type, name, tbl_name, sql), sorted: no snapshot code of ours."""
    conn = _ro(db)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    finally:
        conn.close()
    return sorted(rows, key=lambda r: tuple("" if v is None else v for v in r))


def table_rows(db: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table (but ``sqlite_*``): its columns and all its rows."""
    conn = _ro(db)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
        out = {}
        for t in names:
            cols = [r[1] for r in conn.execute("SELECT * FROM pragma_table_info(?)", (t,))]
            quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
            out[t] = (cols, conn.execute(f'SELECT {quoted} FROM "{t}"').fetchall())
        return out
    finally:
        conn.close()


def schema_state(schema: list[tuple], pre: list[tuple], migrated: list[tuple]) -> str:
    if schema == pre:
        return "pre-run"
    if schema == migrated:
        return "migrated"
    return "neither"


def _schema_difference(schema: list[tuple], other: list[tuple]) -> str:
    a, b = set(schema), set(other)
    extra = sorted(f"{r[0]} {r[1]}" for r in a - b)
    missing = sorted(f"{r[0]} {r[1]}" for r in b - a)
    return f"extra {extra[:4]}, missing {missing[:4]}"


def lost_rows(pre: dict, now: dict, state: str) -> list[str]:
    """Rows of the pre-run file not present with the same values in the columns that still exist."""
    problems = []
    for table, (pre_cols, pre_rows) in sorted(pre.items()):
        if table not in now:
            if not (state == "migrated" and table in DROPPED_BY_MIGRATION):
                problems.append(f"table {table} ({len(pre_rows)} rows) is gone, schema {state}")
            continue
        cols, rows = now[table]
        common = [c for c in pre_cols if c in cols]
        pi = [pre_cols.index(c) for c in common]
        ni = [cols.index(c) for c in common]
        missing = Counter(tuple(r[i] for i in pi) for r in pre_rows)
        missing.subtract(Counter(tuple(r[i] for i in ni) for r in rows))
        gone = [k for k, n in missing.items() if n > 0]
        if gone:
            problems.append(f"{table}: {sum(missing[k] for k in gone)} pre-run row(s) lost or changed, "
                            f"e.g. {dict(zip(common, gone[0]))}"[:400])
    return problems


def check_database(db: Path, *, pre_schema, migrated_schema, pre_rows, app_ids: set[str],
                   must_be: str | None = None) -> tuple[str, list[str]]:
    """The invariants of a database after a kill (or after the next run, ``must_be="migrated"``):
    returns (schema state, broken invariants)."""
    broken = []
    ok = integrity(db)
    if ok != "ok":
        broken.append(f"integrity_check: {ok}")
        return "unreadable", broken
    schema = schema_rows(db)
    state = schema_state(schema, pre_schema, migrated_schema)
    if state == "neither":
        broken.append("schema is neither the pre-run one nor the migrated one: vs pre-run "
                      f"{_schema_difference(schema, pre_schema)}; "
                      f"vs migrated {_schema_difference(schema, migrated_schema)}")
    elif must_be and state != must_be:
        broken.append(f"schema is the {state} one, expected the {must_be} one")
    broken += lost_rows(pre_rows, table_rows(db), state)
    if app_ids:
        missing = app_ids - ids(db)
        if missing:
            broken.append(f"{len(missing)} row(s) the application committed are gone, e.g. {sorted(missing)[:3]}")
    return state, broken


def stale_backup_temp_files(folder: Path, target: str = TARGET) -> list[str]:
    """Temp files (``.<name>.tmp``) left in the target's backup folder ``<folder>/backups/<target>/``:
    a killed backup leaves them; the next run is expected to clean them up."""
    d = Path(folder) / "backups" / target
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))
