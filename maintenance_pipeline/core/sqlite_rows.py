"""SQLite: the rows of a backup compared with a live database inside SQLite (the backup ATTACHed, so
no row crosses into Python), for verify's ``rows_preserved`` and for the migration's own check.

``RowsGuard`` makes ``rows_preserved`` of a maintain run exact. Compared after the commit, a row
the application edited between the run's backup and the check looks like a row the run changed.
The guard compares inside the migration's transaction instead, just before COMMIT, while
``BEGIN IMMEDIATE`` keeps every other writer out, and only the tables the migration wrote to (the
others cannot have changed). Writes another session made between the backup and the BEGIN are
found first and those tables named, not judged: nothing to do when the backup is a byte copy whose
header, change counter included, still equals the live file's (rollback-journal mode bumps that
counter on every commit; the live header is read through a descriptor pinned before the migration's
first connection, never opened beside it: ``live_file.py``); in WAL mode a second, read-only connection still sees the database as it
was at BEGIN and compares the written tables at the end; otherwise every table is compared at BEGIN.

SQLite cannot ATTACH inside a transaction, so the backup is attached before BEGIN, read-only, under
a schema name of its own; an authorizer denies every statement that touches it except the guard's
own reads, so a revision that names a table missing from ``main`` fails as it would without the
attachment instead of reading the backup's copy.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from .checks import compare_kept_rows
from .dburl import sqlite_uri
from .errors import MigrationError
from .live_file import HEADER_BYTES, unchanged_rollback_copy
from .model import Snapshot

BACKUP_SCHEMA = "mp_run_backup"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Queries:
    """The three queries ``checks.compare_kept_rows`` needs, backup schema ``bk`` against ``main``."""

    def __init__(self, conn: sqlite3.Connection, bk: str):
        self.conn, self.bk = conn, _q(bk)

    def count(self, sql: str) -> int:
        return self.conn.execute(sql).fetchone()[0]

    def count_rows(self, name: str) -> int:
        return self.count(f"SELECT count(*) FROM {self.bk}.{_q(name)}")

    def count_values(self, name: str, col: str) -> int:
        return self.count(f"SELECT count({_q(col)}) FROM {self.bk}.{_q(name)}")

    def missing_rows(self, name: str, kept: list[str], keys: list[str] | None) -> int:
        bk = self.bk
        if keys:
            join = " AND ".join(f"m.{_q(c)} = b.{_q(c)}" for c in keys)
            same = " AND ".join(f"m.{_q(c)} IS b.{_q(c)}" for c in kept if c not in keys) or "1"
            return self.count(f"SELECT count(*) FROM {bk}.{_q(name)} AS b WHERE NOT EXISTS "
                              f"(SELECT 1 FROM main.{_q(name)} AS m WHERE {join} AND {same})")
        # no primary key: whole rows of kept columns as multisets (a lost duplicate counts)
        cols = ", ".join(_q(c) for c in kept)
        on = " AND ".join(f"m.{_q(c)} IS b.{_q(c)}" for c in kept)
        return self.count(f"SELECT coalesce(sum(b.mp_n_ - coalesce(m.mp_n_, 0)), 0) FROM "
                          f"(SELECT {cols}, count(*) AS mp_n_ FROM {bk}.{_q(name)} GROUP BY {cols}) AS b LEFT JOIN "
                          f"(SELECT {cols}, count(*) AS mp_n_ FROM main.{_q(name)} GROUP BY {cols}) AS m ON {on} "
                          f"WHERE coalesce(m.mp_n_, 0) < b.mp_n_")


def compare_attached(conn: sqlite3.Connection, bk: str, backup_snapshot: Snapshot, live_snapshot: Snapshot,
                     ignore, drops: list[dict], **kw) -> tuple[bool, str]:
    """``checks.compare_kept_rows`` (``kw``: its options) with the backup attached to ``conn`` as ``bk``."""
    q = _Queries(conn, bk)
    return compare_kept_rows(backup_snapshot, live_snapshot, ignore, drops, count_rows=q.count_rows,
                             count_values=q.count_values, missing_rows=q.missing_rows, **kw)


def explain_denied(message: str) -> str:
    """The authorizer's refusal said the way SQLite says it without the attachment: no such table."""
    m = re.search(rf"access to {BACKUP_SCHEMA}\.([^.\s]+)(?:\.\S+)? is prohibited", message)
    if not m:
        return message
    return message.replace(m.group(0), f"no such table: {m.group(1)} (only the run's backup still has it)")


_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_TABLE}


class RowsGuard:
    """The backup attached to the migration's connection; ``at_begin`` / ``at_end`` inside its transaction.

    The authorizer also records every table of ``main`` a statement writes to (SQLite asks it for
    each INSERT/UPDATE/DELETE/DROP/ALTER when a statement is prepared, including what a trigger the
    statement fires does, and re-prepares statements prepared before it was set). Under the write
    lock no one else can change a table the migration did not write to, so only written tables are
    compared: the cost follows what the migration touched, not the size of the database.
    """

    def __init__(self, raw: sqlite3.Connection, live: Path, backup: Path, *,
                 live_header: Callable[[], bytes] | None = None, backup_header: bytes = b""):
        self.raw, self.live, self.backup = raw, live, backup
        self.live_header, self.backup_header = live_header, backup_header
        self.allowed = False
        self.written: set[str] = set()
        self.changed_before: dict[str, int] = {}
        self.begin_snapshot: Snapshot | None = None  # set when the check at BEGIN is left to a WAL reader
        self.checked_at_begin = False

    @classmethod
    def attach(cls, raw: sqlite3.Connection, live: Path, backup: Path, *,
               live_header: Callable[[], bytes] | None = None) -> "RowsGuard":
        """Attach ``backup`` to ``raw`` (outside any transaction) and guard it; MigrationError if it cannot be.

        ``live_header``: reads the live file's header through a descriptor pinned before the migration's
        first connection (``live_file.pinned``); without it the free check at BEGIN is skipped.
        """
        backup_header = b""
        if live_header is not None:
            try:  # before ATTACH: no connection of this process has the backup open yet (live_file.py)
                with open(backup, "rb") as f:
                    backup_header = f.read(HEADER_BYTES)
            except OSError:
                live_header = None
        try:
            raw.execute(f"ATTACH DATABASE ? AS {BACKUP_SCHEMA}", (sqlite_uri(backup),))
        except sqlite3.Error as e:
            raise MigrationError(f"cannot open the run's backup {backup} to compare rows ({e}); nothing was "
                                 "changed; run the backup step again") from None
        guard = cls(raw, live, backup, live_header=live_header, backup_header=backup_header)
        raw.set_authorizer(guard._authorize)
        return guard

    def _authorize(self, action, arg1, arg2, db_name, inner):  # noqa: ANN001 - sqlite3's callback
        if self.allowed:
            return sqlite3.SQLITE_OK
        if db_name == BACKUP_SCHEMA:
            return sqlite3.SQLITE_DENY
        if action in _WRITES and db_name == "main":
            self.written.add(arg1)
        elif action == sqlite3.SQLITE_ALTER_TABLE and arg1 == "main":
            self.written.add(arg2)
        return sqlite3.SQLITE_OK

    @contextmanager
    def reading(self):
        self.allowed = True
        try:
            yield
        finally:
            self.allowed = False

    def at_begin(self, backup_snapshot: Snapshot, live_snapshot: Snapshot, ignore) -> None:
        """Right after BEGIN IMMEDIATE, before any change: did another session write since the backup?

        Free when the backup is a byte copy with the live file's header; in WAL mode the question is
        answered at the end, for the written tables only, by a reader (it still sees the database as it
        was at BEGIN); otherwise every table is compared now.
        """
        if self.live_header is not None and unchanged_rollback_copy(self.live_header(), self.backup_header):
            return
        with self.reading():
            wal = self.raw.execute("PRAGMA main.journal_mode").fetchone()[0].lower() == "wal"
        if wal:
            self.begin_snapshot = live_snapshot
            return
        self.checked_at_begin = True
        self._record_changed(self.raw, BACKUP_SCHEMA, backup_snapshot, live_snapshot, ignore, None)

    def _record_changed(self, conn: sqlite3.Connection, bk: str, backup_snapshot: Snapshot, live_snapshot: Snapshot,
                        ignore, only) -> None:
        q = _Queries(conn, bk)

        def record(name: str, kept: list[str], keys: list[str] | None) -> int:
            n = q.missing_rows(name, kept, keys)
            if n:
                self.changed_before[name] = n
            return n

        with self.reading():
            compare_kept_rows(backup_snapshot, live_snapshot, ignore, [], count_rows=q.count_rows,
                              count_values=lambda name, col: 0, missing_rows=record, only=only)

    def _check_begin_state_with_a_reader(self, backup_snapshot: Snapshot, ignore, only: set[str]) -> None:
        reader = sqlite3.connect(sqlite_uri(self.live), uri=True, timeout=30)
        try:
            reader.execute("ATTACH DATABASE ? AS bk", (sqlite_uri(self.backup),))
            reader.execute("BEGIN")
            self._record_changed(reader, "bk", backup_snapshot, self.begin_snapshot, ignore, only)
        finally:
            reader.close()

    def at_end(self, backup_snapshot: Snapshot, live_snapshot: Snapshot, ignore) -> tuple[bool, str, list[dict]]:
        """Just before COMMIT: every kept row of a table the migration wrote to still there, same values."""
        drops: list[dict] = []
        kept = {n for n in backup_snapshot.tables if n not in ignore}
        written = kept & self.written
        try:
            if self.begin_snapshot is not None and written:
                self._check_begin_state_with_a_reader(backup_snapshot, ignore, written)
            not_compared = {t: f"{n} row(s) changed by another session between the backup and the migration"
                            for t, n in self.changed_before.items() if t in written}
            with self.reading():
                passed, detail = compare_attached(self.raw, BACKUP_SCHEMA, backup_snapshot, live_snapshot, ignore,
                                                  drops, not_compared=not_compared, only=written)
        except sqlite3.DatabaseError as e:  # the check fails; the migration itself is not undone for it
            return False, f"could not compare rows: {e}", drops
        untouched = len(kept - written)
        if untouched:
            detail += (f"; {untouched} other table(s) not written by the migration, so unchanged under its "
                       "write lock")
        return passed, detail, drops

    def close(self) -> None:
        self.raw.set_authorizer(None)
        try:
            self.raw.execute(f"DETACH DATABASE {BACKUP_SCHEMA}")
        except sqlite3.Error:
            pass
