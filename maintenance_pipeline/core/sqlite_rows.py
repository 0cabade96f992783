"""SQLite: the rows of a backup compared with a live database inside SQLite (the backup ATTACHed, so
no row crosses into Python), for verify's ``rows_preserved`` and for the migration's own check.

``RowsGuard`` makes ``rows_preserved`` of a maintain run exact. Compared after the commit, a row
the application edited between the run's backup and the check looks like a row the run changed.
The guard compares inside the migration's transaction instead, just before COMMIT, while
``BEGIN IMMEDIATE`` keeps every other writer out; so only writes between the backup and the
BEGIN can still mix in, and the guard finds those first (one compare at BEGIN, skipped when the
backup is a byte copy whose header, change counter included, still equals the live file's: in
rollback-journal mode every commit bumps that counter). Tables another session changed in that
window are named and not judged.

SQLite cannot ATTACH inside a transaction, so the backup is attached before BEGIN, read-only, under
a schema name of its own; an authorizer denies every statement that touches it except the guard's
own reads, so a revision that names a table missing from ``main`` fails as it would without the
attachment instead of reading the backup's copy.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from .checks import compare_kept_rows
from .dburl import sqlite_uri
from .errors import MigrationError
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


def _byte_copy_unchanged(live: Path, backup: Path) -> bool:
    """``backup`` is a byte copy of ``live`` in rollback-journal mode and nothing committed since."""
    try:
        with open(live, "rb") as a, open(backup, "rb") as b:
            head = a.read(100)
            return len(head) == 100 and head[18] == 1 and head == b.read(100)
    except OSError:
        return False


class RowsGuard:
    """The backup attached to the migration's connection; ``at_begin`` / ``at_end`` inside its transaction."""

    def __init__(self, raw: sqlite3.Connection, live: Path, backup: Path):
        self.raw, self.live, self.backup = raw, live, backup
        self.allowed = False
        self.changed_before: dict[str, int] = {}

    @classmethod
    def attach(cls, raw: sqlite3.Connection, live: Path, backup: Path) -> "RowsGuard":
        """Attach ``backup`` to ``raw`` (outside any transaction) and guard it; MigrationError if it cannot be."""
        try:
            raw.execute(f"ATTACH DATABASE ? AS {BACKUP_SCHEMA}", (sqlite_uri(backup),))
        except sqlite3.Error as e:
            raise MigrationError(f"cannot open the run's backup {backup} to compare rows ({e}); nothing was "
                                 "changed; run the backup step again") from None
        guard = cls(raw, live, backup)
        raw.set_authorizer(guard._authorize)
        return guard

    def _authorize(self, action, arg1, arg2, db_name, inner):  # noqa: ANN001 - sqlite3's callback
        return sqlite3.SQLITE_DENY if db_name == BACKUP_SCHEMA and not self.allowed else sqlite3.SQLITE_OK

    @contextmanager
    def reading(self):
        self.allowed = True
        try:
            yield
        finally:
            self.allowed = False

    def at_begin(self, backup_snapshot: Snapshot, live_snapshot: Snapshot, ignore) -> None:
        """Right after BEGIN IMMEDIATE, before any change: the tables another session changed since the backup."""
        if _byte_copy_unchanged(self.live, self.backup):
            return
        q = _Queries(self.raw, BACKUP_SCHEMA)

        def record(name: str, kept: list[str], keys: list[str] | None) -> int:
            n = q.missing_rows(name, kept, keys)
            if n:
                self.changed_before[name] = n
            return n

        with self.reading():
            compare_kept_rows(backup_snapshot, live_snapshot, ignore, [], count_rows=q.count_rows,
                              count_values=lambda name, col: 0, missing_rows=record)

    def at_end(self, backup_snapshot: Snapshot, live_snapshot: Snapshot, ignore) -> tuple[bool, str, list[dict]]:
        """Just before COMMIT: every kept row of the backup still there with the same values."""
        drops: list[dict] = []
        not_compared = {t: f"{n} row(s) changed by another session between the backup and the migration"
                        for t, n in self.changed_before.items()}
        try:
            with self.reading():
                passed, detail = compare_attached(self.raw, BACKUP_SCHEMA, backup_snapshot, live_snapshot, ignore,
                                                  drops, not_compared=not_compared)
        except sqlite3.DatabaseError as e:  # the check fails; the migration itself is not undone for it
            return False, f"could not compare rows: {e}", drops
        return passed, detail, drops

    def close(self) -> None:
        self.raw.set_authorizer(None)
        try:
            self.raw.execute(f"DETACH DATABASE {BACKUP_SCHEMA}")
        except sqlite3.Error:
            pass
