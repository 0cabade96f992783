"""SQLite's part of one migration (``Engine.migration``): around the single transaction that
``migrate`` drives.

* the file is pinned first (``live_file.pinned``): the rows guard reads its header, and may copy it at
  BEGIN, through that descriptor, never through one opened beside a connection;
* ``PRAGMA foreign_keys`` is switched off on the driver connection before BEGIN (it is a no-op inside a
  transaction; on, a table rebuild's DROP would cascade ON DELETE into other tables' rows) and back on
  after; the transaction is ``BEGIN IMMEDIATE`` (the write lock from the start);
* the run's backup is attached and guarded (``rows.RowsGuard``): the state at BEGIN is settled right
  after BEGIN, the rows of the tables the migration wrote are judged before COMMIT, and a name only the
  attached backup holds never resolves to it (the guard refreshes the names after each DDL statement).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import sqlalchemy as sa

from ...errors import MigrationError
from ..base import MigrationSession
from . import live_file
from .files import sqlite_path
from .rows import BACKUP_SCHEMA, RowsGuard, explain_denied


class SQLiteMigration(MigrationSession):
    def __init__(self, engine, url, target, *, backup: Path | None, dry_run: bool):
        super().__init__(engine, url, target, backup=backup, dry_run=dry_run)
        self.path = sqlite_path(url)
        self.live_fd: int | None = None
        self.guard: RowsGuard | None = None
        self.raw = None
        self.fk_setting = None
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        if self.backup is not None and self.path is not None:
            self.live_fd = self._stack.enter_context(live_file.pinned(self.path))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        return False

    def connected(self, conn: sa.Connection) -> None:
        self.raw = conn.connection.driver_connection
        self.fk_setting = self.raw.execute("PRAGMA foreign_keys").fetchone()[0]
        self.raw.execute("PRAGMA foreign_keys=OFF")
        conn.info["immediate"] = True
        if self.backup is not None and self.live_fd is not None:
            self.guard = RowsGuard.attach(self.raw, self.path, self.backup, self.live_fd)

    def begun(self, conn: sa.Connection, trans, begin):
        if self.guard is not None:  # may end the still empty transaction and begin again (see RowsGuard)
            trans = self.guard.settle(trans, begin)
            sa.event.listen(conn, "after_cursor_execute", self._names_moved)
        if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise MigrationError("PRAGMA foreign_keys could not be switched off; a table rebuild could "
                                 "cascade deletes, so nothing was changed")
        return trans

    def _names_moved(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip()[:6].upper() in ("CREATE", "DROP T", "DROP V", "ALTER "):
            self.guard.refresh_names()

    def read_begin_state(self, conn: sa.Connection, begin_snapshot, ignore) -> None:
        super().read_begin_state(conn, begin_snapshot, ignore)
        if self.guard is not None:
            from ...schema.snapshot import take_snapshot

            with self.guard.reading():
                self.reference_snapshot = take_snapshot(conn, ignore_tables=ignore, schema=BACKUP_SCHEMA)

    def rows_verdict(self, conn: sa.Connection, after, result):
        if self.guard is None:
            return None
        return self.guard.at_end(self.reference_snapshot, self.begin_snapshot, after, self.target.ignore_tables,
                                 result.declared_rows)

    def check_guard(self) -> dict:
        if self.guard is None:
            return {}
        return {"restore_authorizer": self.guard.authorizer, "hidden": self.guard.resolves_to_reference}

    def explain(self, message: str) -> str:
        return explain_denied(message, self.guard.last_denied if self.guard is not None else None)

    def release(self, conn: sa.Connection) -> None:
        if sa.event.contains(conn, "after_cursor_execute", self._names_moved):
            sa.event.remove(conn, "after_cursor_execute", self._names_moved)
        if self.guard is not None:
            self.guard.close()
        if self.fk_setting:
            self.raw.execute("PRAGMA foreign_keys=ON")
