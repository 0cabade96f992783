"""SQLite: the rows of a backup compared with a live database inside SQLite (the backup ATTACHed, so
no row crosses into Python), for verify's ``rows_preserved`` and for the migration's own check.

``RowsGuard`` makes ``rows_preserved`` of a maintain run exact and decides it before COMMIT: a row the
migration loses or changes, in a table no revision declared (``changes_rows``), rolls the run back.
It compares inside the migration's transaction, while ``BEGIN IMMEDIATE`` keeps every other writer
out, only the tables the migration wrote to (the others cannot have changed), against the state the
migration started from (the run's backup, or the file as it was at BEGIN when another session wrote
since the backup: see the class), so the application's writes never count as the run's.

SQLite cannot ATTACH inside a transaction, so the reference is attached before BEGIN, read-only, under
a schema name of its own; an authorizer denies every statement that touches it except the guard's
own reads, so a revision that names a table missing from ``main`` fails as it would without the
attachment instead of reading the backup's copy.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from contextlib import contextmanager
from pathlib import Path

from ...shared.files import FILE_MODE, check_free_space, remove_quietly
from ...shared.verdicts import SAMPLE_KEYS, RowsVerdict, compare_kept_rows, describe_loss, merge_counted, merge_keyed
from .files import sqlite_uri
from ...errors import MaintenanceError, MigrationError
from ...shared.leftovers import FolderHold
from .live_file import HEADER_BYTES, header, unchanged_rollback_copy
from .backup import copy_bytes
from ...schema.model import Snapshot
from ..base import Prepare

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

    def missing_rows(self, name: str, kept: list[str], keys: list[str] | None) -> tuple[int, list[str]]:
        bk = self.bk
        if keys:
            join = " AND ".join(f"m.{_q(c)} = b.{_q(c)}" for c in keys)
            same = " AND ".join(f"m.{_q(c)} IS b.{_q(c)}" for c in kept if c not in keys) or "1"
            where = (f"FROM {bk}.{_q(name)} AS b WHERE NOT EXISTS "
                     f"(SELECT 1 FROM main.{_q(name)} AS m WHERE {join} AND {same})")
            n = self.count(f"SELECT count(*) {where}")
            sample = [r[0] for r in self.conn.execute(
                f"SELECT {key_text(keys, 'b.')} {where} LIMIT {SAMPLE_KEYS}")] if n else []
            return n, sample
        # no primary key: whole rows of kept columns as multisets (a lost duplicate counts)
        cols = ", ".join(_q(c) for c in kept)
        on = " AND ".join(f"m.{_q(c)} IS b.{_q(c)}" for c in kept)
        return self.count(f"SELECT coalesce(sum(b.mp_n_ - coalesce(m.mp_n_, 0)), 0) FROM "
                          f"(SELECT {cols}, count(*) AS mp_n_ FROM {bk}.{_q(name)} GROUP BY {cols}) AS b LEFT JOIN "
                          f"(SELECT {cols}, count(*) AS mp_n_ FROM main.{_q(name)} GROUP BY {cols}) AS m ON {on} "
                          f"WHERE coalesce(m.mp_n_, 0) < b.mp_n_"), []


def key_text(keys: list[str], prefix: str = "") -> str:
    """SQL for a row's key as one text value (``quote()`` of each part): sortable, and readable in a message."""
    return " || ', ' || ".join(f"quote({prefix}{_q(k)})" for k in keys)


def _rows_in_order(conn: sqlite3.Connection, schema: str, name: str, kept: list[str], keys: list[str] | None):
    """The table's rows for ``checks.merge_keyed`` / ``merge_counted``: ``(key text, kept values…)`` ordered by
    the key's text, or ``(row text, n)`` ordered by the row's text for a table without a usable key."""
    table = f"{_q(schema)}.{_q(name)}"
    if keys:
        cols = ", ".join(_q(c) for c in kept)
        return conn.execute(f"SELECT {key_text(keys)} AS mp_key_, {cols} FROM {table} ORDER BY 1")
    return conn.execute(f"SELECT {key_text(kept)} AS mp_row_, count(*) FROM {table} GROUP BY 1 ORDER BY 1")


def compare_attached(conn: sqlite3.Connection, bk: str, backup_snapshot: Snapshot, live_snapshot: Snapshot,
                     ignore, drops: list[dict], **kw) -> tuple[bool, str]:
    """``checks.compare_kept_rows`` (``kw``: its options) with the backup attached to ``conn`` as ``bk``."""
    q = _Queries(conn, bk)
    return compare_kept_rows(backup_snapshot, live_snapshot, ignore, drops, count_rows=q.count_rows,
                             count_values=q.count_values, missing_rows=q.missing_rows, **kw)


def explain_denied(message: str, table: str | None = None) -> str:
    """The authorizer's refusal said the way SQLite says it without the attachment: no such table.
    ``table``: the one the guard last denied (SQLite's own message then says only "not authorized")."""
    m = re.search(rf"access to {BACKUP_SCHEMA}\.([^.\s]+)(?:\.\S+)? is prohibited", message)
    if not m:
        if table and message.endswith("not authorized"):
            return f"{message[:-len('not authorized')]}no such table: {table} (only the run's backup still has it)"
        return message
    return message.replace(m.group(0), f"no such table: {m.group(1)} (only the run's backup still has it)")


_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_TABLE}
SETTLE_ATTEMPTS = 5


class RowsGuard:
    """The state before the migration attached to its connection; ``settle`` / ``at_end`` inside its transaction.

    The attached reference is the run's backup, or, when another session committed since that backup,
    a copy of the file taken at BEGIN: every row is then judged against the state the migration
    started from, so the application's writes never count as the run's and the run's own losses are
    always seen.

    * rollback journal: the live header's change counter (read through the descriptor pinned before
      the migration's first connection, ``live_file.py``) says whether anything committed since the
      byte-copy backup; if so, the file is copied at BEGIN under the write lock (``cp`` speed, the
      pinned descriptor) and attached instead (SQLite cannot ATTACH inside a transaction: the empty
      transaction is rolled back, the copy attached, BEGIN IMMEDIATE again, and the header must not
      have moved meanwhile);
    * WAL: a second, read-only connection still sees the database as it was at BEGIN; at the end it
      compares the written tables with the backup, and the tables another session changed since the
      backup are compared with that state at BEGIN instead (both connections' rows merged in order).

    The authorizer also records every table of ``main`` a statement writes to (SQLite asks it for
    each INSERT/UPDATE/DELETE/DROP/ALTER when a statement is prepared, including what a trigger the
    statement fires does, and re-prepares statements prepared before it was set). Under the write
    lock no one else can change a table the migration did not write to, so only written tables are
    compared: the cost follows what the migration touched, not the size of the database.
    """

    def __init__(self, raw: sqlite3.Connection, live: Path, backup: Path, live_fd: int, copy_at_begin: bool = False):
        self.raw, self.live, self.backup, self.live_fd = raw, live, backup, live_fd
        self.copy_at_begin = copy_at_begin  # copy the file at BEGIN when it moved since the backup (see ``settle``)
        self.unsettled = False  # it moved, and was not copied: a written table cannot be judged in this attempt
        self.altered: set[str] = set()  # tables of main an ALTER TABLE changed (added columns keep every row)
        self.reference = backup  # the attached file: the backup, or the copy taken at BEGIN
        self.backup_header = b""  # the backup's first 100 bytes, read before it was attached
        self.allowed = False
        self.written: set[str] = set()
        self.wal = False
        self.begin_copy: Path | None = None
        self.hold: FolderHold | None = None  # the backup folder, held while a copy at BEGIN is in it
        self.last_denied: str | None = None  # the table of the last read the authorizer denied
        self.main_names: set[str] = set()  # tables and views of main and temp (refresh_names after DDL)
        self.backup_names: set[str] = set()  # tables and views only the attached reference would resolve

    @classmethod
    def attach(cls, raw: sqlite3.Connection, live: Path, backup: Path, live_fd: int,
               copy_at_begin: bool = False) -> "RowsGuard":
        """Attach ``backup`` to ``raw`` (outside any transaction) and guard it; MigrationError if it cannot be.

        ``live_fd``: the live file's descriptor, pinned before the migration's first connection."""
        guard = cls(raw, live, backup, live_fd, copy_at_begin)
        guard.backup_header = guard._file_header(backup)  # before ATTACH: no connection has the file open yet
        guard._attach(backup)
        raw.set_authorizer(guard._authorize)
        guard.refresh_names(reference=True)
        return guard

    _NAMES = "SELECT lower(name) FROM {}.sqlite_master WHERE type IN ('table', 'view')"

    def refresh_names(self, *, reference: bool = False) -> None:
        """Read which names ``main``/``temp`` hold (call it after DDL that creates, drops or renames a table or view;
        ``reference``: also the attached reference's, which change only when another file is attached): an
        unqualified name only the attached reference holds must not resolve to it (see ``_authorize``)."""
        with self.reading():
            self.main_names = {r[0] for s in ("main", "temp") for r in self.raw.execute(self._NAMES.format(s))}
            if reference:
                self.backup_names = {r[0] for r in self.raw.execute(self._NAMES.format(BACKUP_SCHEMA))}

    def resolves_to_reference(self, action, table, column, db_name) -> bool:  # noqa: ANN001
        """A read the authorizer must deny: of the attached reference, by name (``db_name``) or because an
        unqualified name only it holds resolves there (SQLite names no database for ``count(*)`` of one)."""
        if db_name == BACKUP_SCHEMA:
            return True
        return (action == sqlite3.SQLITE_READ and db_name is None and bool(table)
                and table.lower() in self.backup_names and table.lower() not in self.main_names)

    def _attach(self, path: Path) -> None:
        try:
            self.raw.execute(f"ATTACH DATABASE ? AS {BACKUP_SCHEMA}", (sqlite_uri(path),))
        except sqlite3.Error as e:
            raise MigrationError(f"cannot open the run's backup {path} to compare rows ({e}); nothing was "
                                 "changed; run the backup step again") from None
        self.reference = path

    @property
    def authorizer(self):
        """The guard's authorizer, for code that sets another one for a while and puts this one back."""
        return self._authorize

    def _authorize(self, action, arg1, arg2, db_name, inner):  # noqa: ANN001 - sqlite3's callback
        if self.allowed:
            return sqlite3.SQLITE_OK
        if self.resolves_to_reference(action, arg1, arg2, db_name):
            self.last_denied = arg1
            return sqlite3.SQLITE_DENY
        if action in _WRITES and db_name == "main":
            self.written.add(arg1)
        elif action == sqlite3.SQLITE_ALTER_TABLE and arg1 == "main":
            self.altered.add(arg2)
        return sqlite3.SQLITE_OK

    @contextmanager
    def reading(self):
        self.allowed = True
        try:
            yield
        finally:
            self.allowed = False

    def settle(self, trans, begin):
        """Right after BEGIN IMMEDIATE (``trans``), before any change: make the attached reference the
        state the migration starts from (see the class). ``begin()`` opens the transaction again; returns
        the transaction to go on with."""
        if unchanged_rollback_copy(header(self.live_fd), self.backup_header):
            return trans
        with self.reading():
            self.wal = self.raw.execute("PRAGMA main.journal_mode").fetchone()[0].lower() == "wal"
        if self.wal:
            return trans
        if not self.copy_at_begin:  # copied only if the migration writes a table's rows: ``at_end`` asks for it
            self.unsettled = True
            return trans
        for _ in range(SETTLE_ATTEMPTS):
            copy, copied_header = self._copy_at_begin()
            trans.rollback()
            self.raw.execute(f"DETACH DATABASE {BACKUP_SCHEMA}")
            self._drop_begin_copy()
            self.begin_copy = copy
            self._attach(copy)
            self.refresh_names(reference=True)
            trans = begin()
            if unchanged_rollback_copy(header(self.live_fd), copied_header):
                return trans
        trans.rollback()
        raise Prepare(f"another session committed to {self.live} each time the migration reopened its transaction "
                      f"to copy the file at BEGIN ({SETTLE_ATTEMPTS} times)", lambda: None)  # a later attempt again

    @staticmethod
    def _file_header(path: Path) -> bytes:
        # read before the file is attached: no connection of this process has it open yet (live_file.py)
        try:
            with open(path, "rb") as f:
                return f.read(HEADER_BYTES)
        except OSError:
            return b""

    def _copy_at_begin(self) -> tuple[Path, bytes]:
        """A byte copy of the live file, taken under the migration's write lock before it changed anything
        (in the backup's folder, which it holds meanwhile: no backup takes the copy for a leftover), and
        its header (the live header as copied)."""
        folder = self.backup.parent
        if self.hold is None:
            self.hold = FolderHold(folder)
            self.hold.acquire(clean=False)
        copy = folder / f".{self.backup.stem}.begin.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        size = os.fstat(self.live_fd).st_size
        try:
            check_free_space(folder, size)
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
            try:
                copy_bytes(self.live_fd, fd, size)
            finally:
                os.close(fd)
        except (OSError, MaintenanceError) as e:
            remove_quietly(copy)
            reason = e.strerror if isinstance(e, OSError) else str(e)
            raise MigrationError(f"cannot copy {self.live} at the start of the migration to compare its rows "
                                 f"({reason}); nothing was changed; free space in {folder} and rerun") from None
        return copy, header(self.live_fd)

    def _drop_begin_copy(self) -> None:
        if self.begin_copy is not None:
            remove_quietly(self.begin_copy)
            self.begin_copy = None

    def at_end(self, reference_snapshot: Snapshot, begin_snapshot: Snapshot, live_snapshot: Snapshot, ignore,
               declared: dict[str, str] | None = None) -> RowsVerdict:
        """Just before COMMIT: every kept row of a table the migration wrote to still there with the same
        values, unless a revision declared that it changes that table's rows (``declared``)."""
        drops: list[dict] = []
        losses: list[dict] = []
        kept = {n for n in reference_snapshot.tables if n not in ignore}
        # an ALTER that only added columns keeps every kept value; one that dropped or renamed one is compared
        lost_columns = {t for t in self.altered if t in begin_snapshot.tables and (
            t not in live_snapshot.tables
            or not set(begin_snapshot.tables[t].column_names) <= set(live_snapshot.tables[t].column_names))}
        written = kept & (self.written | lost_columns)
        # a table the migration drops is a planned drop, counted from the backup: only kept tables it still has
        # must be judged against the exact state at BEGIN
        judged = {t for t in written if t in live_snapshot.tables}
        if judged and self.unsettled:
            raise Prepare("the migration writes rows of " + ", ".join(sorted(judged)) + " and another session "
                          "committed since the backup: it starts again with a copy of the file taken at BEGIN",
                          lambda: None)  # the session sets what the next attempt does
        try:
            changed_since_backup = self._changed_since_backup(reference_snapshot, begin_snapshot, ignore, written) \
                if self.wal and written else {}
            begin_losses = self._compare_with_begin_state(begin_snapshot, live_snapshot, changed_since_backup,
                                                          declared or {})
            with self.reading():
                passed, detail = compare_attached(self.raw, BACKUP_SCHEMA, reference_snapshot, live_snapshot, ignore,
                                                  drops, only=written - set(changed_since_backup),
                                                  declared=declared, losses=losses)
        except sqlite3.DatabaseError as e:
            return RowsVerdict(False, f"could not compare rows: {e}", drops, [], error=str(e))
        if begin_losses:
            lost = "; ".join(describe_loss(x) for x in begin_losses[:5])
            detail = f"{lost}; {detail}" if not passed else f"{lost}; other written tables: {detail}"
            passed = False
            losses.extend(begin_losses)
        gained = sorted(kept & self.altered - written)
        untouched = len(kept - written - set(gained))
        if gained:
            detail += (f"; {len(gained)} kept table(s) only gained columns ({', '.join(gained)}): no row of them was "
                       "written, so every kept value is unchanged (proven from the schema: nothing to compare)")
        if changed_since_backup:
            detail += (f"; compared with the state at BEGIN (another session wrote since the backup): "
                       f"{', '.join(sorted(changed_since_backup))}")
        elif self.begin_copy is not None:
            detail += "; compared with the file as it was at BEGIN (another session wrote since the backup)"
        if untouched:
            detail += (f"; {untouched} other table(s) not written by the migration, so unchanged under its "
                       "write lock")
        return RowsVerdict(passed, detail, drops, losses)

    def _begin_reader(self, backup: Path | None = None) -> sqlite3.Connection:
        """WAL: a read-only connection that sees the database as it was at BEGIN (the migration holds the
        write lock, so nothing committed since); ``backup`` attached as ``bk`` (before its BEGIN)."""
        reader = sqlite3.connect(sqlite_uri(self.live), uri=True, timeout=30, isolation_level=None)
        if backup is not None:
            reader.execute("ATTACH DATABASE ? AS bk", (sqlite_uri(backup),))
        reader.execute("BEGIN")
        return reader

    def _changed_since_backup(self, backup_snapshot: Snapshot, begin_snapshot: Snapshot, ignore,
                              only: set[str]) -> dict[str, int]:
        """WAL: the written tables whose rows at BEGIN differ from the backup's (another session wrote)."""
        changed: dict[str, int] = {}
        reader = self._begin_reader(self.backup)
        try:
            q = _Queries(reader, "bk")

            def record(name: str, kept: list[str], keys: list[str] | None) -> tuple[int, list[str]]:
                n, sample = q.missing_rows(name, kept, keys)
                if n:
                    changed[name] = n
                return n, sample

            compare_kept_rows(backup_snapshot, begin_snapshot, ignore, [], count_rows=q.count_rows,
                              count_values=lambda name, col: 0, missing_rows=record, only=only)
        finally:
            reader.close()
        return changed

    def _compare_with_begin_state(self, begin_snapshot: Snapshot, live_snapshot: Snapshot,
                                  tables: dict[str, int], declared: dict[str, str]) -> list[dict]:
        """The rows of ``tables`` at BEGIN (a reader) against the migration's (this connection), merged in order."""
        losses: list[dict] = []
        if not tables:
            return losses
        reader = self._begin_reader()
        try:
            for name in sorted(tables):
                bt, lt = begin_snapshot.tables.get(name), live_snapshot.tables.get(name)
                if bt is None or lt is None or name in declared:
                    continue
                kept = [c for c in bt.data_column_names if c in set(lt.data_column_names)]
                if not kept:
                    continue
                keys = list(bt.primary_key) if bt.primary_key and set(bt.primary_key) <= set(kept) else None
                merge = merge_keyed if keys else merge_counted
                with self.reading():
                    n, sample = merge(_rows_in_order(reader, "main", name, kept, keys),
                                      _rows_in_order(self.raw, "main", name, kept, keys))
                if n:
                    losses.append({"table": name, "rows": n, "keys": sample})
        finally:
            reader.close()
        return losses

    def fk_at_begin(self, tables: set[str]):
        """``fk_violations`` of the child ``tables`` as the migration began: a reader of the state at BEGIN (WAL), or the
        attached reference (the backup, or the copy taken at BEGIN: call it only when that is the state at BEGIN)."""
        from .keys import fk_violations_of

        if self.wal:
            reader = self._begin_reader()
            try:
                present = {r[0] for r in reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                return fk_violations_of(reader, tables & present)
            finally:
                reader.close()
        present = {r[0] for r in self.raw.execute(f"SELECT name FROM {BACKUP_SCHEMA}.sqlite_master "
                                                  "WHERE type = 'table'")}
        return fk_violations_of(self.raw, tables & present, BACKUP_SCHEMA)

    def close(self) -> None:
        self.raw.set_authorizer(None)
        try:
            self.raw.execute(f"DETACH DATABASE {BACKUP_SCHEMA}")
        except sqlite3.Error:
            pass
        self._drop_begin_copy()
        if self.hold is not None:
            self.hold.release()
