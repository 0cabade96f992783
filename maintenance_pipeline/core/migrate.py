"""Migrate: pending Alembic revisions, then alignment, in ONE transaction, under a lock; a run that
would fail commits nothing.

The flow of ``migrate()``:

1. take the maintenance lock (a second run fails fast; SQLite: a file lock, PostgreSQL: a
   session advisory lock); PostgreSQL: start restoring the run's backup into a scratch database
   in a thread (``engines.postgresql.rows.Scratch``), for the rows check before COMMIT;
2. open one connection; on SQLite pin the file (``engines.sqlite.live_file.pinned``), attach the run's backup
   (``engines.sqlite.rows.RowsGuard``) and switch ``PRAGMA foreign_keys`` off *before* the transaction (it
   cannot change inside one; off means a table rebuild's DROP never cascades), begin with ``BEGIN
   IMMEDIATE`` and let the guard settle the state at BEGIN; on PostgreSQL begin REPEATABLE READ and
   ``SET LOCAL`` ``lock_timeout``/``statement_timeout`` (and ``search_path`` for a target with a
   ``schema``);
3. stamp a pre-Alembic database at ``baseline_revision``; run the pending revisions with
   Alembic's own machinery (``revisions.py``; the user's ``env.py`` is not needed, the
   revision files are);
4. snapshot the schema as the transaction now sees it, diff it against the reference and apply
   what ``align`` allows (``align.py``; SQLite table rebuilds: ``engines/sqlite/rebuild.py``); a destructive
   difference under ``additive`` refuses the whole run instead;
5. every verdict that would fail the run, each raising (so rolling back): a foreign-key violation
   the run introduced (SQLite: ``PRAGMA foreign_key_check``; PostgreSQL: an anti-join per key the
   server does not enforce), a schema still different from the reference, a user check that does
   not run, writes or fails (``user_checks.py``), a row of a kept table lost or changed that no
   revision declared (``changes_rows``; SQLite: the guard; PostgreSQL: the scratch restore against
   this transaction, ``engines.postgresql.rows.compare_in_transaction``);
6. commit, or roll back on any error (the SQLite file is then bytewise what it was; PostgreSQL's
   DDL is transactional, so its schema and rows are exactly what they were). The error carries the
   ``MigrationResult`` (``rolled_back``): what was tried, refused and undone, for the report.

Alembic runs inside that transaction on both: the revisions see the caller's open transaction and
commit nothing (``transactional_ddl``; Alembic's per-revision transactions are no-ops inside one).
On PostgreSQL the version table lives in the target's schema (``version_table_schema``).

A dry run does all of that on a scratch copy (SQLite) or rolls back (other servers), and returns
the SQL it ran; the verdicts of step 5 are recorded for its report instead of raised.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from .engines.sqlite import live_file
from .engines.postgresql import catalog as pg_checks
from .engines.postgresql import rows as pg_rows
from .align import (
    apply_change_natively,
    blocked_by_kept_names,
    order_for_names,
    order_for_server,
    split_by_align,
)
from .checks import RowsVerdict, describe_loss, fmt_fk, introduced_violations
from .config import Target
from .dburl import check_sqlite_file, mask_url, open_engine, scrub_passwords, sqlite_path, sqlite_uri, translate_error
from .diff import diff
from .errors import (
    DatabaseDamagedError,
    DestructiveChangeRefusedError,
    MaintenanceError,
    MigrationError,
    RowsLostError,
    SchemaLeftDifferentError,
    UserCheckError,
    says_damaged,
)
from .lock import maintenance_lock
from .model import Change, Snapshot
from .revisions import MigrationPlan, current_revision, plan_revisions, run_revisions, target_schema
from .snapshot import take_snapshot
from .engines.sqlite.rebuild import broken_views, rebuild_table, working_views
from .engines.sqlite.rows import BACKUP_SCHEMA, RowsGuard, explain_denied
from .user_checks import validate_in_migration


@dataclass
class MigrationResult:
    plan: MigrationPlan
    dry_run: bool
    align: str
    applied: list[dict] = field(default_factory=list)  # {"source", "description", "seconds"}
    aligned: list[Change] = field(default_factory=list)
    refused: list[Change] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    revision_after: str | None = None
    failing_revision: str | None = None  # the revision running when a failure happened
    drift_after: list[Change] = field(default_factory=list)  # what the plan leaves (seen inside the transaction)
    rows: tuple[bool, str, list[dict]] | None = None  # rows_preserved, decided inside the transaction
    written: set[str] | None = None  # PostgreSQL: tables whose existing rows the migration may have changed
    declared_rows: dict[str, str] = field(default_factory=dict)  # table -> revision declaring changes_rows
    checks: list = field(default_factory=list)  # the user checks as run inside the transaction
    rolled_back: bool = False  # the run failed: everything in ``applied`` was undone

    def to_dict(self) -> dict:
        return {
            "revisions": {**self.plan.to_dict(), "after": self.revision_after},
            "applied": self.applied,
            "refused": [c.to_dict() for c in self.refused],
            "sql": self.sql,
            "dry_run": self.dry_run,
            "align": self.align,
        }


def fk_violations(conn: sa.Connection, schema: str | None = None, *, only_unenforced: bool = False) -> Counter:
    """Violations of declared foreign keys, counted per (table, parent).

    PostgreSQL: an anti-join per key (``engines.postgresql.catalog.fk_violations``; ``only_unenforced`` limits it to
    the keys the server does not enforce now). SQLite:

    A foreign key that SQLite cannot check at all (``foreign key mismatch``: the parent columns are
    not its primary key or a unique key) is counted once as ``(table, "parent (foreign key mismatch)")``
    instead of failing the whole check, so such a pre-existing key does not block a run, and one the
    run introduces is caught like a violation.
    """
    if conn.dialect.name == "postgresql":
        return pg_checks.fk_violations(conn, schema, only_unenforced=only_unenforced)
    if conn.dialect.name != "sqlite":
        return Counter()
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
                out[(t, f"{fk[0]} (foreign key mismatch)")] = 1
    return out


def migrate(target: Target, reference: Snapshot, *, align: str | None = None, dry_run: bool = False,
            backup: Path | None = None) -> MigrationResult:
    """``backup``: the run's verified backup; the rows of the tables the migration writes are compared with
    the state it started from inside the transaction, before COMMIT, and a loss rolls the run back
    (``result.rows``; SQLite: ``engines.sqlite.rows.RowsGuard``).

    Any failure raises a ``MaintenanceError`` after the rollback; its ``result`` attribute (when the
    plan got that far) is the ``MigrationResult`` with ``rolled_back`` set: what was tried and undone.
    """
    align = align or target.align
    path = sqlite_path(target.url)
    backup = Path(backup) if backup is not None else None
    if dry_run and path is not None:
        return _dry_run_on_copy(target, reference, align, path, backup)
    with maintenance_lock(target.url, holder=f"migrate {target.name}"):
        # PostgreSQL: the backup is restored into a scratch database beside the migration, for its rows check
        scratch = pg_rows.Scratch(backup, target.url).start() if backup is not None and path is None else None
        try:
            return _run_on(target.url, target, reference, align, dry_run, backup=backup, scratch=scratch)
        finally:
            if scratch is not None:
                scratch.drop()


def _run_on(url: str, target: Target, reference: Snapshot, align: str, dry_run: bool, *, backup: Path | None,
            named: Target | None = None, scratch=None) -> MigrationResult:
    """``_run`` on a fresh engine. A SQLite file whose rows are guarded is pinned first: its header and, when
    needed, its bytes at BEGIN are read through a descriptor opened before the engine's first connection
    and closed after its last (``engines/sqlite/live_file.py``)."""
    path = sqlite_path(url)
    with live_file.pinned(path) if backup is not None and path is not None else nullcontext() as live_fd:
        engine = open_engine(url)
        try:
            return _run(engine, dataclasses.replace(target, url=url) if named else target, reference, align,
                        dry_run, named=named, backup=backup, live_fd=live_fd, scratch=scratch)
        finally:
            engine.dispose()


def _dry_run_on_copy(target: Target, reference: Snapshot, align: str, path: Path,
                     backup: Path | None = None) -> MigrationResult:
    check_sqlite_file(path)
    with tempfile.TemporaryDirectory(prefix="maintenance-dryrun-") as tmp:
        scratch = Path(tmp) / path.name
        src = sqlite3.connect(sqlite_uri(path), uri=True)
        dst = sqlite3.connect(scratch)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        try:
            return _run_on(f"sqlite:///{scratch}", target, reference, align, True, backup=backup, named=target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# decided inside the transaction: a real run raises them (rolled back), a dry run reports them
_VERDICTS = (DestructiveChangeRefusedError, SchemaLeftDifferentError, RowsLostError)


def _run(engine: sa.Engine, target: Target, reference: Snapshot, align: str, dry_run: bool,
         named: Target | None = None, backup: Path | None = None, live_fd: int | None = None,
         scratch=None) -> MigrationResult:
    """``named``: the target that error messages name (a dry run works on a scratch copy). ``live_fd``: the
    SQLite file pinned for its rows guard; ``scratch``: PostgreSQL, the backup being restored for the rows
    check (``engines.postgresql.rows.Scratch``)."""
    sql: list[str] = []
    shown = named or target

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if head in ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "EXPLAIN", "SET"):
            return
        text = " ".join(statement.split())
        if parameters:
            text += f"  -- params {parameters!r}"
        sql.append(text)

    def no_commit(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        # a revision (or anything else) must not end the run's one transaction: what ran before would stay
        # committed whatever fails after it
        words = statement.lstrip().split(None, 2)
        head = words[0].upper().rstrip(";") if words else ""
        second = words[1].upper() if len(words) > 1 else ""
        if head in ("COMMIT", "END", "BEGIN", "START", "ABORT") or (head == "ROLLBACK" and second != "TO") \
                or (head == "PREPARE" and second == "TRANSACTION"):
            raise MigrationError(f"{' '.join(statement.split())[:60]!r} would end the migration's single "
                                 "transaction; remove it from the revision (the pipeline commits once, at the end)")

    def names_moved(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if statement.lstrip()[:6].upper() in ("CREATE", "DROP T", "DROP V", "ALTER "):
            guard.refresh_names()

    def begin():
        try:
            return conn.begin()  # SQLite: BEGIN IMMEDIATE: waits busy_timeout for another writer, then fails
        except sa.exc.DBAPIError as e:
            raise translate_error(e, shown.url) from None

    with engine.connect() as conn:
        fk_setting = None
        raw = None
        if conn.dialect.name == "sqlite":
            # PRAGMA foreign_keys is a no-op inside a transaction, and SQLAlchemy's Connection begins
            # one on its first execute: set it on the driver connection (autocommit) before BEGIN.
            # With it on, a rebuild's DROP TABLE would cascade ON DELETE to other tables' rows.
            raw = conn.connection.driver_connection
            fk_setting = raw.execute("PRAGMA foreign_keys").fetchone()[0]
            raw.execute("PRAGMA foreign_keys=OFF")
            conn.info["immediate"] = True
        elif conn.dialect.name == "postgresql":
            # the rows check sees the database as it was at BEGIN plus the migration's own changes, not the rows
            # other sessions commit meanwhile; a revision updating a row the application updated meanwhile fails
            # with a serialization error (rolled back) instead of overwriting it
            conn.execution_options(isolation_level="REPEATABLE READ")
        guard = None
        sa.event.listen(conn, "before_cursor_execute", capture)
        state = {"phase": "plan", "step": None}
        result = MigrationResult(plan=MigrationPlan(False, (), None, []), dry_run=dry_run, align=align, sql=sql)
        try:
            if backup is not None and raw is not None and live_fd is not None:
                guard = RowsGuard.attach(raw, sqlite_path(target.url), backup, live_fd)
            trans = begin()
            try:
                if guard is not None:  # may end the still empty transaction and begin again (see RowsGuard)
                    trans = guard.settle(trans, begin)
                    sa.event.listen(conn, "after_cursor_execute", names_moved)
                sa.event.listen(conn, "before_cursor_execute", no_commit)
                _migrate_in_transaction(conn, target, shown, reference, align, result, state, guard, scratch)
            except Exception as e:  # noqa: BLE001 - every failure rolls back, then is reported on one line
                _rollback(trans)
                state["denied"] = guard.last_denied if guard is not None else None
                state["backup"] = backup
                raise _failed(e, state, result, shown) from e
            if dry_run:
                trans.rollback()
                return result
            try:
                trans.commit()
            except sa.exc.DBAPIError as e:
                _rollback(trans)
                raise _commit_failed(e, result, shown, backup) from None
            return result
        finally:
            if sa.event.contains(conn, "before_cursor_execute", no_commit):
                sa.event.remove(conn, "before_cursor_execute", no_commit)
            if sa.event.contains(conn, "after_cursor_execute", names_moved):
                sa.event.remove(conn, "after_cursor_execute", names_moved)
            if guard is not None:
                guard.close()
            if fk_setting:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _rollback(trans) -> None:
    try:
        trans.rollback()
    except sa.exc.DBAPIError:  # the connection is gone: the server (or SQLite's journal) undoes the transaction
        pass


def _migrate_in_transaction(conn: sa.Connection, target: Target, shown: Target, reference: Snapshot, align: str,
                            result: MigrationResult, state: dict, guard: RowsGuard | None, scratch=None) -> None:
    """Everything between BEGIN and COMMIT: revisions, alignment, then every verdict that would fail the run
    (refused changes, a schema still different, orphans, lost rows, the user checks): raised, so nothing is
    committed; a dry run records them instead (its verify step reports them)."""
    dry_run = result.dry_run
    pg = conn.dialect.name == "postgresql"
    if conn.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise MigrationError("PRAGMA foreign_keys could not be switched off; a table rebuild could "
                             "cascade deletes, so nothing was changed")
    if pg:
        pg_checks.begin_migration(conn, target_name=shown.name, schema=target.schema,
                                  lock_timeout=target.lock_timeout, statement_timeout=target.statement_timeout)
    schema = target_schema(conn, target)
    begin_snap = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    if guard is not None:
        with guard.reading():
            reference_snap = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=BACKUP_SCHEMA)
    fk_before = fk_violations(conn, schema, only_unenforced=pg)
    if pg:
        storage_before = pg_checks.table_storage(conn, schema)
    result.plan = plan_revisions(conn, target)
    state["phase"] = "alembic"
    run_revisions(conn, target, result.plan, result)
    state["phase"] = "align"
    _align(conn, target, reference, align, result, state)
    state["phase"], state["step"] = "foreign_key_check", None
    introduced = introduced_violations(fk_violations(conn, schema, only_unenforced=pg), fk_before)
    if introduced:
        raise MigrationError("the migration would leave rows pointing at missing parents "
                             f"({fmt_fk(introduced)})")
    result.revision_after = current_revision(conn, target)
    after = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    result.drift_after = diff(after, reference, ignore_tables=target.ignore_tables)
    if result.drift_after and not dry_run:
        raise SchemaLeftDifferentError(
            f"after the revisions and align: {align} the schema would still differ from the reference in "
            f"{len(result.drift_after)} place(s) ({'; '.join(c.describe() for c in result.drift_after[:4])}); "
            "nothing was committed; add a revision for them, use align: additive or full, or update the reference")
    state["phase"] = "checks"
    result.checks = validate_in_migration(conn, target.checks, judge=not dry_run,
                                          restore_authorizer=guard.authorizer if guard is not None else None,
                                          hidden=guard.resolves_to_reference if guard is not None else None)
    if guard is not None:
        state["phase"] = "rows_preserved"
        verdict = guard.at_end(reference_snap, begin_snap, after, target.ignore_tables, result.declared_rows)
        result.rows = (verdict.passed, verdict.detail, verdict.drops)
        if not dry_run:
            _judge_rows(verdict, shown)
    if pg:  # also a table whose columns changed: a dropped column is a planned drop to list
        written = pg_checks.tables_written(conn, storage_before, schema)
        if written is not None:
            result.written = written | {t for t, tb in begin_snap.tables.items() if after.tables.get(t) != tb}
        if scratch is not None and (result.written is None or result.written):
            state["phase"] = "rows_preserved"
            verdict = _pg_rows_verdict(conn, scratch, target, after, result)
            result.rows = (verdict.passed, verdict.detail, verdict.drops)
            if not dry_run:
                _judge_rows(verdict, shown, note=" (a row another session updated or deleted between the backup and "
                                                 "the migration counts too: if that is what happened, rerun)")


def _pg_rows_verdict(conn: sa.Connection, scratch, target: Target, after: Snapshot, result: MigrationResult):
    """PostgreSQL: the backup (restored beside the migration) against the migration's own transaction."""
    try:
        scratch_url = scratch.wait()
        engine = open_engine(scratch_url)
        try:
            backup_snap = take_snapshot(engine, ignore_tables=target.ignore_tables, schema=target.schema)
        finally:
            engine.dispose()
    except MaintenanceError as e:
        msg = scrub_passwords(str(e), target.url)
        return RowsVerdict(False, f"could not compare rows: {msg}", [], [], error=msg)
    return pg_rows.compare_in_transaction(conn, scratch_url, backup_snap, after, target.ignore_tables,
                                          schema=target.schema, only=result.written, declared=result.declared_rows)


def _judge_rows(verdict, shown: Target, note: str = "") -> None:
    if verdict.error is not None:
        raise RowsLostError(f"could not compare the rows of the tables the migration wrote with the state before it "
                            f"({verdict.error}); nothing was committed; rerun, and report it if it persists")
    if verdict.losses:
        lost = "; ".join(describe_loss(x) for x in verdict.losses[:4])
        tables = ", ".join(repr(x["table"]) for x in verdict.losses[:3])
        raise RowsLostError(f"the migration would lose or change rows of kept tables ({lost}){note}; nothing was "
                            f"committed; fix the revision, or if it means to change those rows declare them in it: "
                            f"changes_rows = ({tables},)")


def _align(conn: sa.Connection, target: Target, reference: Snapshot, align: str, result: MigrationResult,
           state: dict | None = None) -> None:
    state = state if state is not None else {}
    schema = target_schema(conn, target)
    live = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    changes = diff(live, reference, ignore_tables=target.ignore_tables)
    to_apply, refused = split_by_align(changes, align)
    to_apply, blocked = blocked_by_kept_names(live, to_apply)
    result.refused = refused + blocked
    if result.refused and not result.dry_run:
        names = "; ".join(c.describe() for c in result.refused[:4])
        more = f" (+{len(result.refused) - 4} more)" if len(result.refused) > 4 else ""
        raise DestructiveChangeRefusedError(
            f"align: {align} refuses {len(result.refused)} destructive change(s): {names}{more}; the whole run was "
            "refused, nothing was committed; review them and rerun with align: full to apply them, or change "
            "the reference")
    if not to_apply:
        return
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        to_apply = order_for_names(to_apply)
        views = working_views(conn)
    else:
        to_apply = order_for_server(to_apply)
    # a single-column FK arriving with its column is added with it (natively on SQLite)
    column_fks = {}
    for ch in to_apply:
        if ch.kind == "add_foreign_key" and len(ch.reference.columns) == 1:  # type: ignore[union-attr]
            if any(c.kind == "add_column" and c.table == ch.table and c.name == ch.reference.columns[0]
                   for c in to_apply):
                column_fks[(ch.table, ch.reference.columns[0])] = ch  # type: ignore[union-attr]
    ops = Operations(MigrationContext.configure(conn, opts={"transactional_ddl": True}))
    rebuild: dict[str, list[Change]] = {}
    for ch in to_apply:
        if ch.kind == "add_foreign_key" and \
                column_fks.get((ch.table, ch.reference.columns[0])) is ch:  # type: ignore[union-attr]
            continue  # added with its column
        if sqlite and ch.kind == "drop_column" and ch.table in rebuild:
            # the table is rebuilt anyway: dropping the column natively first would rewrite it twice
            rebuild[ch.table].append(ch)
            continue
        fk_ch = column_fks.get((ch.table, ch.name)) if ch.kind == "add_column" else None
        state["step"] = ch.describe()
        t0 = time.monotonic()
        n_sql = len(result.sql)
        if apply_change_natively(ops, ch, column_fk=fk_ch.reference if fk_ch else None, schema=schema):
            desc = ch.describe() + (f" with foreign key {fk_ch.reference.describe()}" if fk_ch else "")
            result.applied.append({"source": "align", "description": desc, "seconds": round(time.monotonic() - t0, 4)})
            result.aligned.append(ch)
            if fk_ch:
                result.aligned.append(fk_ch)
        else:
            del result.sql[n_sql:]  # a native attempt that SQLite refused (rolled back) is not part of the plan
            rebuild.setdefault(ch.table, []).append(ch)
    if rebuild:
        now = take_snapshot(conn, ignore_tables=target.ignore_tables)
        for table, chs in rebuild.items():
            state["step"] = f"rebuilding table {table} (" + "; ".join(c.describe() for c in chs) + ")"
            t0 = time.monotonic()
            rebuild_table(ops, now.tables[table], chs)
            result.applied.append({"source": "align",
                                   "description": f"rebuilt table {table} (rows kept): "
                                   + "; ".join(c.describe() for c in chs),
                                   "seconds": round(time.monotonic() - t0, 4)})
            result.aligned.extend(chs)
    state["step"] = None
    if sqlite:
        # SQLite checks no view on DROP TABLE, nor during a rebuild (legacy_alter_table): check them here
        broken = broken_views(conn, views)
        if broken:
            v, err = broken[0]
            raise MigrationError(f"the alignment would break view {v} ({err}); drop or change the view first, "
                                 "or align the reference with it")


def _failed(e: Exception, state: dict, result: MigrationResult, target: Target) -> Exception:
    """The one-line error of a failed (rolled back) migration, carrying ``result`` (``rolled_back`` set)."""
    result.rolled_back = not result.dry_run
    err = _as_migration_error(e, state, result.failing_revision, target)
    err.result = result  # type: ignore[attr-defined]
    return err


def _as_migration_error(e: Exception, state: dict, failing, target: Target) -> Exception:
    phase = state.get("phase", "plan")
    if isinstance(e, MaintenanceError) and (phase == "plan" or isinstance(e, (*_VERDICTS, UserCheckError))):
        return e
    if isinstance(e, sa.exc.OperationalError) and "locked" in str(e).lower() and "timeout" not in str(e).lower():
        return translate_error(e, target.url)
    damaged = _damage(e, target, state.get("backup"))
    if damaged is not None:
        return damaged
    line = " ".join(str(getattr(e, "orig", None) or e).split())[:300] or type(e).__name__
    hint = pg_checks.timeout_hint(line) if isinstance(e, sa.exc.DBAPIError) else None
    line = re.sub(r"_alembic_tmp_", "", line)  # Alembic's temporary copy is the table itself to the reader
    line = explain_denied(line, state.get("denied"))
    if not isinstance(e, MaintenanceError):
        line = f"{type(e).__name__}: {line}"
    rolled = f"{mask_url(target.url)} was rolled back to its state before the run"
    if phase == "alembic":
        rev = failing or "?"
        return MigrationError(f"Alembic revision {rev} failed: {line}; {rolled}; "
                              f"{hint or 'fix the revision and rerun'}", revision=rev)
    if phase == "align":
        step = state.get("step")
        at = f" at {step}" if step else ""
        return MigrationError(f"alignment failed{at}: {line}; {rolled}; "
                              f"{hint or 'fix the data or the reference, or use align: none'}")
    if hint:
        return MigrationError(f"migration failed at {phase}: {line}; {rolled}; {hint}")
    return MigrationError(f"migration failed at {phase}: {line}; {rolled}")


def _damage(e: BaseException, target: Target, backup: Path | None = None) -> Exception | None:
    """A failing disk or a corrupt file met mid-run, said in one line: what happened, check the file, where
    the last good state is. None for any other error."""
    text = " ".join(str(getattr(e, "orig", None) or e).split())
    if not says_damaged(text):
        return None
    good = f"the last good state is in this run's backup {backup}" if backup is not None else \
        "restore the newest verified backup if it is"
    return DatabaseDamagedError(f"{mask_url(target.url)}: {text[:160]} during the migration, which stopped without "
                                f"committing; check the file and its disk (PRAGMA integrity_check, the system log) "
                                f"before the next run; {good}")


def _commit_failed(e: sa.exc.DBAPIError, result: MigrationResult, target: Target, backup: Path | None) -> Exception:
    result.rolled_back = True
    err = _damage(e, target, backup) or translate_error(e, target.url)
    if not isinstance(err, DatabaseDamagedError):
        err = MigrationError(f"COMMIT failed ({err}); the migration was rolled back; rerun")
    err.result = result  # type: ignore[attr-defined]
    return err
