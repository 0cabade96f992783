"""SQLite checks' primitives: integrity (``PRAGMA integrity_check``), foreign keys (``PRAGMA
foreign_key_check``), the rows of a backup against a live file after a commit, and the read-only
authorizer of user checks."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from .keys import MISMATCH

_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def read_only_authorizer(hidden, seen: dict):
    """An authorizer that allows reads only; ``hidden(action, table, column, db)``: reads it must deny too
    (the migration's attached reference, ``rows.RowsGuard.resolves_to_reference``). ``seen`` gets the
    table of a hidden read ("hidden") or that a write was refused ("write")."""

    def authorize(action, arg1, arg2, db_name, inner):  # noqa: ANN001 - sqlite3's callback
        if db_name not in (None, "main", "temp") or (hidden is not None and hidden(action, arg1, arg2, db_name)):
            seen.setdefault("hidden", arg1)
            return sqlite3.SQLITE_DENY
        if action in _READS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and arg2 is None:  # reading a pragma, not setting one
            return sqlite3.SQLITE_OK
        seen.setdefault("write", action)
        return sqlite3.SQLITE_DENY

    return authorize


def fk_violations(conn: sa.Connection) -> Counter:
    """Rows whose declared foreign key points at a missing parent, counted per (table, parent), enforced or
    not (``PRAGMA foreign_key_check``).

    A foreign key that SQLite cannot check at all (``foreign key mismatch``: the parent columns are
    not its primary key or a unique key) is counted once as ``(table, "parent (foreign key mismatch)")``
    instead of failing the whole check, so such a pre-existing key does not block a run, and one the
    run introduces is caught like a violation.
    """
    try:
        rows = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        return Counter((r[0], r[2]) for r in rows)
    except sa.exc.OperationalError as e:
        if "foreign key mismatch" not in str(e.orig):
            raise
    out: Counter = Counter()
    tables = [r[0] for r in conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
    quote = conn.dialect.identifier_preparer.quote
    for t in tables:
        try:
            out.update((r[0], r[2]) for r in conn.exec_driver_sql(f"PRAGMA foreign_key_check({quote(t)})"))
        except sa.exc.OperationalError as e:
            if "foreign key mismatch" not in str(e.orig):
                raise
            for fk in conn.exec_driver_sql('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', (t,)):
                out[(t, f"{fk[0]}{MISMATCH}")] = 1
    return out


MMAP_BYTES = 2147483648  # reads of a big file go through the page cache, not read() calls


def integrity(conn: sa.Connection) -> tuple[bool, str]:
    """``PRAGMA integrity_check`` (at most 20 problems): (ok, "PRAGMA integrity_check: …")."""
    conn.exec_driver_sql(f"PRAGMA mmap_size={MMAP_BYTES}")
    rows = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check(20)")]
    ok = rows == ["ok"]
    return ok, "PRAGMA integrity_check: " + ("ok" if ok else f"{len(rows)} problem(s): " + "; ".join(rows[:3]))


def fk_check(path: Path) -> Counter:
    """``fk_violations`` of the SQLite file at ``path`` (e.g. a backup)."""
    from .. import open_engine

    engine = open_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return fk_violations(conn)
    finally:
        engine.dispose()


def rows_preserved(live: Path, backup: Path, backup_snapshot, live_snapshot, ignore: tuple[str, ...]):
    """Every row of every kept table of the backup is still in the live file with the same kept values,
    compared now on a connection of its own (the migration itself compares inside its transaction:
    ``rows.RowsGuard``): (``checks.Check``, planned drops)."""
    from ...shared.verdicts import AFTER_COMMIT_NOTE, Check
    from .files import sqlite_uri
    from .rows import compare_attached

    conn = sqlite3.connect(sqlite_uri(live), uri=True)
    drops: list[dict] = []
    try:
        conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        conn.execute("ATTACH DATABASE ? AS bk", (sqlite_uri(backup),))
        passed, detail = compare_attached(conn, "bk", backup_snapshot, live_snapshot, ignore, drops,
                                          failure_note=AFTER_COMMIT_NOTE)
    except sqlite3.DatabaseError as e:
        return Check("rows_preserved", False, f"could not compare rows: {e}"), drops
    finally:
        conn.close()
    return Check("rows_preserved", passed, detail), drops
