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
import re
from pathlib import Path

import sqlalchemy as sa

from ...errors import MigrationError
from . import live_file
from .files import sqlite_path
from ..base import MigrationSession, Prepare
from .rows import BACKUP_SCHEMA, RowsGuard, explain_denied


_NAMING = re.compile(r"^\s*(CREATE\s+(TEMP\w*\s+)?(TABLE|VIEW|VIRTUAL\s+TABLE)|DROP\s+(TABLE|VIEW)|ALTER\s+TABLE\s.*\sRENAME\s+TO\s)",
                     re.IGNORECASE | re.DOTALL)


def names_move(statement: str) -> bool:
    """Whether a statement can change which tables and views ``main``/``temp`` hold: the guard reads the names again
    after it (an added column or an index changes none: reading every name after each of 1,000 ``ADD COLUMN`` on a
    large schema cost seconds)."""
    return bool(_NAMING.match(statement))


class SQLiteMigration(MigrationSession):
    def __init__(self, engine, url, target, *, backup: Path | None, dry_run: bool):
        super().__init__(engine, url, target, backup=backup, dry_run=dry_run)
        self.path = sqlite_path(url)
        self.live_fd: int | None = None
        self.guard: RowsGuard | None = None
        self.raw = None
        self.fk_setting = None
        self.copy_at_begin = False  # an attempt asked for the file's copy at BEGIN (``RowsGuard.at_end``)
        self.begin_fk_graph: dict = {}  # every foreign key at BEGIN (``fk_introduced`` sees which changed)
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
        if self.lock_wait is not None:  # one attempt's wait for the write lock (BEGIN IMMEDIATE, COMMIT)
            self.raw.execute(f"PRAGMA busy_timeout = {max(1, int(self.lock_wait * 1000))}")
        self.fk_setting = self.raw.execute("PRAGMA foreign_keys").fetchone()[0]
        self.raw.execute("PRAGMA foreign_keys=OFF")
        conn.info["immediate"] = True
        if self.backup is not None and self.live_fd is not None:
            self.guard = RowsGuard.attach(self.raw, self.path, self.backup, self.live_fd,
                                          copy_at_begin=self.copy_at_begin)

    def begun(self, conn: sa.Connection, trans, begin):
        if self.guard is not None:  # may end the still empty transaction and begin again (see RowsGuard)
            trans = self.guard.settle(trans, begin)
            sa.event.listen(conn, "after_cursor_execute", self._names_moved)
        if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
            raise MigrationError("PRAGMA foreign_keys could not be switched off; a table rebuild could "
                                 "cascade deletes, so nothing was changed")
        return trans

    def _names_moved(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if names_move(statement):
            self.guard.refresh_names()

    def read_begin_state(self, conn: sa.Connection, begin_snapshot, ignore) -> None:
        super().read_begin_state(conn, begin_snapshot, ignore)
        if self.guard is not None:
            from ...shared.reading import take_snapshot
            from .keys import fk_graph

            with self.guard.reading():
                self.begin_fk_graph = fk_graph(self.raw)
                self.reference_snapshot = take_snapshot(conn, ignore_tables=ignore, schema=BACKUP_SCHEMA)

    def rows_verdict(self, conn: sa.Connection, after, result):
        if self.guard is None:
            return None
        try:
            return self.guard.at_end(self.reference_snapshot, self.begin_snapshot, after, self.target.ignore_tables,
                                result.declared_rows)
        except Prepare as p:  # the next attempt copies the file at BEGIN
            p.prepare = lambda: setattr(self, "copy_at_begin", True)
            raise

    def check_guard(self) -> dict:
        if self.guard is None:
            return {}
        return {"restore_authorizer": self.guard.authorizer, "hidden": self.guard.resolves_to_reference}

    def explain(self, message: str) -> str:
        return explain_denied(message, self.guard.last_denied if self.guard is not None else None)

    def fk_at_begin(self, conn: sa.Connection, schema: str | None):
        """With the rows guard: nothing now; ``fk_introduced`` judges the keys of the tables the migration touched
        against the state it began from (the whole database's ``foreign_key_check`` twice under the write lock would
        hold the application's writers off for a time that grows with the data)."""
        return None if self.guard is not None else super().fk_at_begin(conn, schema)

    def fk_introduced(self, conn: sa.Connection, schema: str | None, at_begin):
        """Violations the migration introduced; a key it made that SQLite cannot check at all ("foreign key
        mismatch": the parent columns are not a primary or unique key) is said as what it is, never counted as rows
        pointing at missing parents."""
        from .keys import unchecked_keys

        rows, unchecked = unchecked_keys(self._fk_introduced(conn, schema, at_begin))
        if unchecked:
            raise MigrationError(
                f"the migration would leave foreign key(s) SQLite cannot check ({', '.join(unchecked[:3])}): the "
                "parent's columns are not its primary key nor a unique key over exactly them with their collations "
                "(SQLite's \"foreign key mismatch\"), so no row can be checked, though none is known to point at a "
                "missing parent; make the parent's columns unique, or point the key at a unique column")
        return rows

    def _fk_introduced(self, conn: sa.Connection, schema: str | None, at_begin):
        if at_begin is not None or self.guard is None:
            return super().fk_introduced(conn, schema, at_begin)
        from .keys import fk_graph, fk_violations_of

        guard = self.guard
        with guard.reading():
            graph = fk_graph(self.raw)
            columns = {t: {r[0] for r in self.raw.execute("SELECT name FROM pragma_table_xinfo(?)", (t,))}
                       for t in guard.altered}
        # whose rows a new orphan can be in: a child whose rows the migration wrote, or whose keys it changed; a child
        # of a parent whose rows it wrote (deleted, updated, dropped) or which lost a column. A table that only gained
        # columns (no new key) keeps every row and every key as it was: nothing to check there.
        lost = {t for t in guard.altered if t in self.begin_snapshot.tables
                and not set(self.begin_snapshot.tables[t].column_names) <= columns[t]}
        parents_written = guard.written | lost
        begin_keys = self.begin_fk_graph
        scope = {child for child, keys in graph.items()
                 if child in guard.written or keys != begin_keys.get(child)
                 or {k[0] for k in keys} & parents_written}
        if not scope:
            return fk_violations_of(self.raw, ())
        if guard.unsettled:  # the file moved since the backup: the state at BEGIN is needed to judge
            raise Prepare("the migration touched tables with foreign keys (" + ", ".join(sorted(scope)) + ") and "
                          "another session committed since the backup: it starts again with a copy of the file "
                          "taken at BEGIN", lambda: setattr(self, "copy_at_begin", True))
        with guard.reading():
            now = fk_violations_of(self.raw, scope)
            begin = guard.fk_at_begin(scope)
        return now - begin

    WRITE_LOCK = "write lock (from BEGIN IMMEDIATE: other writers wait; readers go on until COMMIT)"

    def effects_after(self, conn: sa.Connection, before, statement: str) -> dict:
        return {"locks": [self.WRITE_LOCK], "rewrites": []}

    def transaction_lock(self) -> str | None:
        return self.WRITE_LOCK

    def blockers(self) -> list[str]:
        return ["another connection held the database's write lock (SQLite does not say which: look for a long "
                "write transaction, or a long read in rollback-journal mode, in the application)"]

    def release(self, conn: sa.Connection) -> None:
        if sa.event.contains(conn, "after_cursor_execute", self._names_moved):
            sa.event.remove(conn, "after_cursor_execute", self._names_moved)
        if self.guard is not None:
            self.guard.close()
        if self.fk_setting:
            self.raw.execute("PRAGMA foreign_keys=ON")
