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

from ...shared.verdicts import RowsVerdict
from ...dburl import scrub_passwords
from .. import open_engine
from ...errors import MaintenanceError
from ..base import MigrationSession, Prepare
from . import catalog
from .blockers import BlockerWatch
from .rows import Scratch, compare_in_transaction, drop_stale_scratches


# What a statement did is read around it from this backend's own locks, at a cost that does not grow with the schema:
# the relations it holds a lock on in the target's schema, each with its storage (``relfilenode``: a rewrite, e.g.
# ALTER TABLE's, TRUNCATE, VACUUM FULL, gives a table a new one, always under ACCESS EXCLUSIVE), as three arrays,
# whose difference is taken here; then the names of the relations newly locked or rewritten. Where every table is
# stored is read once per attempt, at BEGIN, for a table the statement is the first to lock. (Reading every table's storage
# around each statement made 1,000 ALTERs at 10,000 tables cost 41 s inside the transaction.)
_OWN_LOCKS = ("SELECT coalesce(array_agg(l.relation::int8), '{}'), coalesce(array_agg(l.mode), '{}'), "
              "coalesce(array_agg(c.relfilenode::int8), '{}') "
              "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_class c ON c.oid = l.relation "
              "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE l.pid = pg_backend_pid() AND l.granted "
              "AND l.locktype = 'relation' AND c.relkind IN ('r', 'p', 'm', 'f') AND n.nspname = %s")
_NAMES = "SELECT oid::int8, relname FROM pg_catalog.pg_class WHERE oid = ANY(%s::oid[])"
_STORAGE = ("SELECT c.oid::int8, c.relname, c.relkind::text, c.relfilenode::int8 FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') "
            "AND n.nspname = %s")
_REWRITING = "AccessExclusiveLock"
_STRENGTH = {"AccessShareLock": 1, "RowShareLock": 2, "RowExclusiveLock": 3, "ShareUpdateExclusiveLock": 4,
             "ShareLock": 5, "ShareRowExclusiveLock": 6, "ExclusiveLock": 7, "AccessExclusiveLock": 8}
# what each table lock holds off, for the report
_MODE_NAME = {"AccessShareLock": "ACCESS SHARE (blocks only ACCESS EXCLUSIVE)",
              "RowShareLock": "ROW SHARE (blocks EXCLUSIVE DDL)",
              "RowExclusiveLock": "ROW EXCLUSIVE (blocks DDL, not reads or writes)",
              "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE (blocks DDL and VACUUM, not reads or writes)",
              "ShareLock": "SHARE (blocks writes)", "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE (blocks writes)",
              "ExclusiveLock": "EXCLUSIVE (blocks writes)",
              "AccessExclusiveLock": "ACCESS EXCLUSIVE (blocks reads and writes)"}


class PostgresMigration(MigrationSession):
    # what a rows verdict cannot tell apart on PostgreSQL (README: "With an application running")
    rows_note = (" (a row another session updated or deleted between the backup and the migration counts too: "
                 "if that is what happened, rerun)")

    def __init__(self, engine, url, target, *, backup: Path | None, dry_run: bool):
        super().__init__(engine, url, target, backup=backup, dry_run=dry_run)
        self.scratch: Scratch | None = None
        self.watch: BlockerWatch | None = None
        self.schema_name = "public"
        self.seen: list[str] = []
        self.storage_before: dict[str, int] = {}
        self.nodes: dict[int, int] | None = None  # {table oid: relfilenode} at the attempt's BEGIN
        self.sent = 0  # statements sent on the migration's connection in this attempt (``_count``)
        self.last_after: tuple | None = None  # (``sent`` then, the locks read after the last measured statement)

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

    def release(self, conn: sa.Connection) -> None:
        self.blockers()  # the attempt is over: stop watching
        if sa.event.contains(conn, "before_cursor_execute", self._count):
            sa.event.remove(conn, "before_cursor_execute", self._count)

    def _count(self, *_args) -> None:
        """Every statement sent on the migration's connection: the locks read after one statement are those before the
        next when nothing else was sent between them (``effects_before``)."""
        self.sent += 1

    def begun(self, conn: sa.Connection, trans, begin):
        t = self.target
        catalog.begin_migration(conn, target_name=self.shown_name, schema=t.schema, lock_timeout=t.lock_timeout,
                                statement_timeout=t.statement_timeout)
        self.schema_name = catalog.schema_of(conn, t.schema)
        self.nodes = None  # read again before this attempt's first statement
        self.sent, self.last_after = 0, None
        if not sa.event.contains(conn, "before_cursor_execute", self._count):
            sa.event.listen(conn, "before_cursor_execute", self._count)  # before the recorder's: it is made after
        if self.watch is None:  # who blocks this attempt, watched from a connection of its own
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            self.watch = BlockerWatch(self.url, pid).start()
        return trans

    def _read_storage(self, conn: sa.Connection) -> None:
        """Where every table's rows are stored, read once per attempt: by name for ``written`` (tables and partitioned
        tables, as ``catalog.table_storage``), by oid for the statements' rewrites (tables and materialized views)."""
        rows = conn.connection.driver_connection.execute(_STORAGE, (self.schema_name,)).fetchall()
        self.storage_before = {name: node for _oid, name, kind, node in rows if kind in ("r", "p")}
        self.nodes = {oid: node for oid, _name, kind, node in rows if kind in ("r", "m")}

    def effects_before(self, conn: sa.Connection):
        if self.nodes is None:  # a statement before the BEGIN state was read (``read_begin_state`` reads it first)
            self._read_storage(conn)
        if self.last_after is not None and self.last_after[0] == self.sent - 1:
            return self.last_after[1]  # nothing was sent since the last statement's read but this statement
        return self._own_locks(conn)

    def effects_after(self, conn: sa.Connection, before, statement: str) -> dict:
        if before is None:
            return {}
        locks_before, nodes_before = before
        locks_after, nodes_after = read = self._own_locks(conn)
        self.last_after = (self.sent, read)
        new = locks_after - locks_before
        rewritten = set()
        for oid, mode in locks_after:  # a rewrite holds ACCESS EXCLUSIVE; a table created in the transaction is not one
            was = nodes_before.get(oid, (self.nodes or {}).get(oid))
            if mode == _REWRITING and was is not None and nodes_after[oid] != was:
                rewritten.add(oid)
        names = self._names(conn, {oid for oid, _ in new} | rewritten)
        strongest: dict[str, str] = {}
        for oid, mode in sorted(new, key=lambda x: (-_STRENGTH.get(x[1], 0), names.get(x[0], ""))):
            strongest.setdefault(names.get(oid, str(oid)), mode)  # sorted strongest first
        locks = [f"{_MODE_NAME.get(m, m)} on {rel}" for rel, m in strongest.items()]
        return {"locks": locks, "rewrites": sorted(names.get(oid, str(oid)) for oid in rewritten)}

    def _own_locks(self, conn: sa.Connection) -> tuple[set[tuple[int, str]], dict[int, int]]:
        """({(relation oid, mode)}, {relation oid: relfilenode}) of the relations of the target's schema this backend
        holds a lock on."""
        oids, modes, nodes = conn.connection.driver_connection.execute(_OWN_LOCKS, (self.schema_name,)).fetchone()
        return set(zip(oids, modes)), dict(zip(oids, nodes))

    def _names(self, conn: sa.Connection, oids: set[int]) -> dict[int, str]:
        if not oids:
            return {}
        return dict(conn.connection.driver_connection.execute(_NAMES, (sorted(oids),)).fetchall())

    def blockers(self) -> list[str]:
        if self.watch is not None:
            self.seen, self.watch = self.watch.stop(), None
        return list(self.seen)

    def read_begin_state(self, conn: sa.Connection, begin_snapshot, ignore) -> None:
        super().read_begin_state(conn, begin_snapshot, ignore)
        self._read_storage(conn)

    def written(self, conn: sa.Connection, after) -> set[str] | None:
        written = catalog.tables_written(conn, self.storage_before, self.target.schema)
        if written is None:
            return None  # the server counts nothing: every table may have changed
        # also a table that lost (or renamed) a column: a dropped column is a planned drop to list. A table whose
        # columns were only added to keeps every kept value unless a statement updated, deleted or rewrote its rows,
        # which the counters and the storage above see: an added column costs no row compare.
        return written | {t for t, tb in self.begin_snapshot.tables.items()
                          if t not in after.tables or not set(tb.column_names) <= set(after.tables[t].column_names)}

    def rows_verdict(self, conn: sa.Connection, after, result):
        if self.scratch is None or (result.written is not None and not result.written):
            return None
        t = self.target
        if not self.scratch.ready():  # never wait for the restore while holding the migration's locks
            raise Prepare("the rows check needs the scratch restore of the backup, still running: the migration "
                          "waits for it holding no lock, then runs again", self.scratch.wait)
        try:
            scratch_url = self.scratch.wait()
            from ...shared.reading import take_snapshot

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
