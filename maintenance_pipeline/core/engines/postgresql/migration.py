"""PostgreSQL's part of one migration (``Engine.migration``): around the single transaction that
``migrate`` drives.

* first, under the maintenance lock ``migrate`` holds, the scratch databases a killed run left for this
  database are dropped (``rows.drop_stale_scratches``; ``cleaned``, for the report; not in a dry run);
* the run's backup starts restoring into a scratch database before BEGIN, in a thread
  (``rows.Scratch``), so it is ready for the rows check before COMMIT, and is dropped after;
* the transaction is REPEATABLE READ: the rows check sees the database as it was at BEGIN plus the
  migration's own changes, not the rows other sessions commit meanwhile; a revision updating a row the
  application updated meanwhile fails with a serialization error (rolled back) instead of overwriting it;
* at BEGIN: ``SET LOCAL`` of ``lock_timeout``/``statement_timeout`` and the target's ``search_path``
  (``catalog.begin_migration``), and where each table's rows are stored (``relfilenode``);
* before COMMIT: the tables whose rows the migration may have changed (``catalog.tables_written``: rows
  updated or deleted by any statement, trigger or cascade, a rewrite, a truncate, a drop, a changed
  column set), and those compared with the scratch restore inside this transaction
  (``rows.compare_in_transaction``).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from ...verify.results import RowsVerdict
from ...dburl import scrub_passwords
from .. import open_engine
from ...errors import MaintenanceError
from ..base import MigrationSession
from . import catalog
from .rows import Scratch, compare_in_transaction, drop_stale_scratches


class PostgresMigration(MigrationSession):
    # what a rows verdict cannot tell apart on PostgreSQL (README: "With an application running")
    rows_note = (" (a row another session updated or deleted between the backup and the migration counts too: "
                 "if that is what happened, rerun)")

    def __init__(self, engine, url, target, *, backup: Path | None, dry_run: bool):
        super().__init__(engine, url, target, backup=backup, dry_run=dry_run)
        self.scratch: Scratch | None = None
        self.storage_before: dict[str, int] = {}

    def __enter__(self):
        if not self.dry_run:  # under the maintenance lock: no other maintain run of this database is going
            self.cleaned = drop_stale_scratches(self.url)
        if self.backup is not None:
            self.scratch = Scratch(self.backup, self.url).start()
        return self

    def __exit__(self, *exc):
        if self.scratch is not None:
            self.scratch.drop()
        return False

    def connected(self, conn: sa.Connection) -> None:
        conn.execution_options(isolation_level="REPEATABLE READ")

    def begun(self, conn: sa.Connection, trans, begin):
        t = self.target
        catalog.begin_migration(conn, target_name=self.shown_name, schema=t.schema, lock_timeout=t.lock_timeout,
                                statement_timeout=t.statement_timeout)
        return trans

    def read_begin_state(self, conn: sa.Connection, begin_snapshot, ignore) -> None:
        super().read_begin_state(conn, begin_snapshot, ignore)
        self.storage_before = catalog.table_storage(conn, self.target.schema)

    def written(self, conn: sa.Connection, after) -> set[str] | None:
        written = catalog.tables_written(conn, self.storage_before, self.target.schema)
        if written is None:
            return None  # the server counts nothing: every table may have changed
        # also a table whose columns changed: a dropped column is a planned drop to list
        return written | {t for t, tb in self.begin_snapshot.tables.items() if after.tables.get(t) != tb}

    def rows_verdict(self, conn: sa.Connection, after, result):
        if self.scratch is None or (result.written is not None and not result.written):
            return None
        t = self.target
        try:
            scratch_url = self.scratch.wait()
            from ...schema.snapshot import take_snapshot

            engine = open_engine(scratch_url)
            try:
                backup_snap = take_snapshot(engine, ignore_tables=t.ignore_tables, schema=t.schema)
            finally:
                engine.dispose()
        except MaintenanceError as e:
            msg = scrub_passwords(str(e), t.url)
            return RowsVerdict(False, f"could not compare rows: {msg}", [], [], error=msg)
        return compare_in_transaction(conn, scratch_url, backup_snap, after, t.ignore_tables, schema=t.schema,
                                      only=result.written, declared=result.declared_rows)
