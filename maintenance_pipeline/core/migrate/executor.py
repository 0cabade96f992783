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
6. confirm the maintenance lock is still this run's (``LockLostError`` otherwise: its session ended, its file
   was replaced), commit, or roll back on any error (the SQLite file is then bytewise what it was; PostgreSQL's
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
from collections import Counter
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from .align import align_in_transaction
from .attempts import Attempts, LockWait, pause
from .measure import Recorder
from ..verify.results import fmt_fk
from ..config import Target
from ..dburl import mask_url, short_name, translate_error
from ..engines import open_engine
from ..engines import engine_for, engine_of
from ..engines.base import Prepare
from ..schema.diff import diff
from ..errors import (
    DatabaseDamagedError,
    DestructiveChangeRefusedError,
    LockLostError,
    LockTimeoutError,
    UnalignableChangeError,
    MaintenanceError,
    MigrationError,
    RowsLostError,
    SchemaLeftDifferentError,
    UserCheckError,
    says_damaged,
)
from ..lock import maintenance_lock
from ..schema.model import Change, Snapshot
from .results import MigrationPlan, MigrationRecord, MigrationResult
from .revisions import current_revision, plan_revisions, run_revisions, target_schema
from ..schema.snapshot import take_snapshot
from ..verify.user_checks import validate_in_migration

_E = TypeVar("_E", bound=MaintenanceError)  # an error of ours, given a ``detail`` (``_with_detail``)


def fk_violations(conn: sa.Connection, schema: str | None = None, *, only_unenforced: bool = False) -> Counter:
    """Violations of declared foreign keys, counted per (table, parent): the engine's check
    (``Engine.fk_violations``)."""
    return engine_of(conn).fk_violations(conn, schema, only_unenforced=only_unenforced)


def migrate(target: Target, reference: Snapshot, *, align: str | None = None, dry_run: bool = False,
            backup: Path | None = None, planned: tuple[str | None, list[Change]] | None = None) -> MigrationResult:
    """``backup``: the run's verified backup; the rows of the tables the migration writes are compared with
    the state it started from inside the transaction, before COMMIT, and a loss rolls the run back
    (``result.rows``; the engine's ``MigrationSession.rows_verdict``).

    ``planned``: what the diff step saw (the schema's fingerprint, the drift). The migration plans again
    under its lock, from the database as its transaction sees it; when that moved, ``result.replanned``
    says what differs from the diff step's plan.

    Any failure raises a ``MaintenanceError`` after the rollback; its ``result`` attribute (when the
    plan got that far) is the ``MigrationResult`` with ``rolled_back`` set: what was tried and undone.
    """
    align = align or target.align
    backup = Path(backup) if backup is not None else None
    engine = engine_for(target.url)
    if dry_run:
        with engine.dry_run_copy(target.url, backup) as scratch_url:
            if scratch_url is not None:  # a copy: nothing to lock; a rehearsal of the real run
                result = _run_on(engine, scratch_url, target, reference, align, True, backup=backup, named=target,
                                 planned=planned)
                return dataclasses.replace(result, on_copy=True)
    with maintenance_lock(target.url, holder=f"migrate {target.name}") as lock:
        return _run_on(engine, target.url, target, reference, align, dry_run, backup=backup, planned=planned,
                       lock=lock)


def _run_on(engine, url: str, target: Target, reference: Snapshot, align: str, dry_run: bool, *,
            backup: Path | None, named: Target | None = None, planned=None, lock=None) -> MigrationResult:
    """``_run`` on a fresh SQLAlchemy engine per attempt, inside the engine's migration session (its resources
    come before the first connection and go after the last: ``MigrationSession``). An attempt that waited its
    ``lock_timeout`` for a lock is rolled back and tried again (``attempts.py``)."""
    run_target = dataclasses.replace(target, url=url) if named else target
    shown = named or target
    attempts = Attempts.of(target, mask_url(shown.url))
    with engine.migration(url, run_target, backup=backup, dry_run=dry_run) as session:
        session.shown_name = shown.name
        session.lock_wait = attempts.wait
        while True:
            since = attempts.begun()
            sa_engine = open_engine(url)
            try:
                result = _run(sa_engine, session, run_target, reference, align, dry_run, named=named, backup=backup,
                              planned=planned, lock=lock)
            except Prepare as p:  # rolled back: do the slow part holding nothing, then the attempt again
                attempts.prepared(p.reason, since)
                p.prepare()
                continue
            except LockWait as e:
                try:
                    wait = attempts.timed_out(e, since)
                except LockTimeoutError as err:
                    if e.result is not None:
                        err.result = dataclasses.replace(e.result, attempts=list(attempts.log))
                    raise err from None
                pause(wait)
                continue
            finally:
                sa_engine.dispose()
            attempts.succeeded(since)
            return dataclasses.replace(result, attempts=list(attempts.log))


# decided inside the transaction: a real run raises them (rolled back), a dry run reports them
_VERDICTS = (DestructiveChangeRefusedError, UnalignableChangeError, SchemaLeftDifferentError, RowsLostError)


def _capture_into(sql: list[str]):
    """A ``before_cursor_execute`` listener that records each statement that changes something, as it ran."""
    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if head in ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "EXPLAIN", "SET"):
            return
        text = statement.strip()  # as it ran, inside too (a name may hold a newline): the report shows it whole
        if parameters:
            text += f"  -- params {parameters!r}"
        sql.append(text)
    return capture


def _no_commit(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
    """A revision (or anything else) must not end the run's one transaction: what ran before would stay committed
    whatever fails after it."""
    words = statement.lstrip().split(None, 2)
    head = words[0].upper().rstrip(";") if words else ""
    second = words[1].upper() if len(words) > 1 else ""
    if head in ("COMMIT", "END", "BEGIN", "START", "ABORT") or (head == "ROLLBACK" and second != "TO") \
            or (head == "PREPARE" and second == "TRANSACTION"):
        raise MigrationError(f"{' '.join(statement.split())[:60]!r} would end the migration's single "
                             "transaction; remove it from the revision (the pipeline commits once, at the end)")


def _run(sa_engine: sa.Engine, session, target: Target, reference: Snapshot, align: str, dry_run: bool,
         named: Target | None = None, backup: Path | None = None, planned=None, lock=None) -> MigrationResult:
    """``named``: the target that error messages name (a dry run may work on a scratch copy); ``lock``: the
    maintenance lock's handle, confirmed on this connection right before COMMIT (``core/lock.py``)."""
    sql: list[str] = []
    shown = named or target

    capture, no_commit = _capture_into(sql), _no_commit

    def begin():
        try:
            return conn.begin()  # SQLite: BEGIN IMMEDIATE: waits the attempt's lock_timeout for another writer
        except sa.exc.DBAPIError as e:
            if session.engine.is_lock_wait(e):
                raise LockWait(" ".join(str(e.orig).split()), session.blockers()) from None
            raise translate_error(e, shown.url) from None

    with sa_engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", capture)
        recorder = None
        state = {"phase": "plan", "step": None, "engine": session.engine}
        result = MigrationRecord(plan=MigrationPlan(False, (), None, []), dry_run=dry_run, align=align, sql=sql,
                                 cleaned=list(session.cleaned))
        try:
            session.connected(conn)
            trans = begin()
            try:
                trans = session.begun(conn, trans, begin)
                sa.event.listen(conn, "before_cursor_execute", no_commit)
                recorder = Recorder(session, state)
                state["recorder"] = recorder  # what alignment applied without sending it is noted there too
                sa.event.listen(conn, "before_cursor_execute", recorder.before)
                sa.event.listen(conn, "after_cursor_execute", recorder.after)
                _migrate_in_transaction(conn, session, target, shown, reference, align, result, state, planned)
            except Exception as e:  # noqa: BLE001 - every failure rolls back, then is reported on one line
                _rollback(trans)
                if isinstance(e, Prepare):
                    raise
                if session.engine.is_lock_wait(e):  # this attempt waited its lock_timeout: try again
                    result.rolled_back = not dry_run
                    raise LockWait(" ".join(str(getattr(e, "orig", None) or e).split()), session.blockers(),
                                   result.freeze()) from None
                state["explain"] = session.explain
                state["backup"] = backup
                raise _failed(e, state, result, shown) from e
            _stop_recording(conn, recorder)
            if dry_run:
                trans.rollback()
                result.measured = recorder.finish()
                return result.freeze()
            try:
                if lock is not None:
                    lock.confirm(conn)  # the lock ended during the run (session gone, file replaced): no COMMIT
                trans.commit()
                result.measured = recorder.finish()
            except sa.exc.DBAPIError as e:
                _rollback(trans)
                if session.engine.is_lock_wait(e):  # SQLite: COMMIT waited for readers: nothing was committed
                    result.rolled_back = True
                    raise LockWait(" ".join(str(e.orig).split()), session.blockers(), result.freeze()) from None
                raise _commit_failed(e, result, shown, backup) from None
            except LockLostError as e:
                _rollback(trans)
                result.rolled_back = True
                e.result = result.freeze()
                raise
            return result.freeze()
        finally:
            if sa.event.contains(conn, "before_cursor_execute", no_commit):
                sa.event.remove(conn, "before_cursor_execute", no_commit)
            _stop_recording(conn, recorder)
            session.release(conn)


def _stop_recording(conn: sa.Connection, recorder) -> None:
    if recorder is not None and sa.event.contains(conn, "before_cursor_execute", recorder.before):
        sa.event.remove(conn, "before_cursor_execute", recorder.before)
        sa.event.remove(conn, "after_cursor_execute", recorder.after)


def _rollback(trans) -> None:
    try:
        trans.rollback()
    except sa.exc.DBAPIError:  # the connection is gone: the server (or SQLite's journal) undoes the transaction
        pass


def _migrate_in_transaction(conn: sa.Connection, session, target: Target, shown: Target, reference: Snapshot,
                            align: str, result: MigrationRecord, state: dict, planned=None) -> None:
    """Everything between BEGIN and COMMIT: revisions, alignment, then every verdict that would fail the run
    (refused changes, a schema still different, orphans, lost rows, the user checks): raised, so nothing is
    committed; a dry run records them instead (its verify step reports them)."""
    dry_run = result.dry_run
    schema = target_schema(conn, target)
    begin_snap = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    result.replanned = _moved_since_diff(planned, begin_snap, reference, target)
    session.read_begin_state(conn, begin_snap, target.ignore_tables)
    fk_before = session.fk_at_begin(conn, schema)
    result.plan = plan_revisions(conn, target)
    state["phase"] = "alembic"
    unchanged = _unchanged_since(conn, session.engine, result)  # then begin_snap is the schema still: not read again
    run_revisions(conn, target, result.plan, result)
    state["phase"] = "align"
    align_in_transaction(conn, target, reference, align, result, state, live=begin_snap if unchanged() else None)
    state["phase"], state["step"] = "foreign_key_check", None
    introduced = session.fk_introduced(conn, schema, fk_before)
    if introduced:
        raise MigrationError("the migration would leave rows pointing at missing parents "
                             f"({fmt_fk(introduced)})")
    result.revision_after = current_revision(conn, target)
    after = begin_snap if unchanged() else take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    result.drift_after = diff(after, reference, ignore_tables=target.ignore_tables, renames=target.renames,
                              ignore=target.ignore)
    if result.drift_after and not dry_run:
        raise SchemaLeftDifferentError(
            f"after the revisions and align: {align} the schema would still differ from the reference in "
            f"{len(result.drift_after)} place(s) ({'; '.join(c.describe() for c in result.drift_after[:4])}); "
            "nothing was committed; add a revision for them, use align: additive or full, or update the reference")
    state["phase"] = "checks"
    result.checks = validate_in_migration(conn, target.checks, judge=not dry_run, **session.check_guard())
    result.written = session.written(conn, after)
    state["phase"] = "rows_preserved"
    verdict = _renames_are_not_drops(session.rows_verdict(conn, after, result), result.aligned)
    if verdict is not None:
        result.rows = (verdict.passed, verdict.detail, verdict.drops)
        if not dry_run:
            _judge_rows(verdict, shown, note=session.rows_note,
                        revisions=any(a.get("source") == "alembic" for a in result.applied))


def _unchanged_since(conn: sa.Connection, engine, result: MigrationRecord):
    """A test of "nothing changed the schema since now": no statement but reads sent (every other one is captured in
    ``result.sql``) and the engine's schema token the same (SQLite's schema cookie; an engine without one: never)."""
    token, sent = engine.schema_token(conn), len(result.sql)
    return lambda: token is not None and len(result.sql) == sent and engine.schema_token(conn) == token


def _moved_since_diff(planned, begin_snap: Snapshot, reference: Snapshot, target: Target) -> str | None:
    """What differs between the diff step's drift and the drift the migration finds under its lock, said in
    one line; None when the schema did not move in between."""
    if not planned or not planned[0] or planned[0] == begin_snap.fingerprint:
        return None
    before = {c.describe() for c in planned[1]}
    now = {c.describe() for c in diff(begin_snap, reference, ignore_tables=target.ignore_tables, renames=target.renames,
                                      ignore=target.ignore)}
    appeared, gone = sorted(now - before), sorted(before - now)
    parts = [f"{len(appeared)} difference(s) appeared ({'; '.join(appeared[:3])})" if appeared else "",
             f"{len(gone)} went away ({'; '.join(gone[:3])})" if gone else ""]
    what = ", ".join(p for p in parts if p) or "its schema moved but the differences from the reference are the same"
    return f"the database changed between diff and migrate: {what}; the migration planned again under its lock"


def _renames_are_not_drops(verdict, aligned: list[Change]):
    """A renamed column is not a planned drop (RENAME COLUMN keeps its values): the verdict says so instead."""
    renamed = {(c.table, c.name): c.ref_column.name for c in aligned if c.kind == "rename_column"}
    if verdict is None or not renamed:
        return verdict
    drops = [d for d in verdict.drops if (d["table"], d.get("column")) not in renamed]
    said = ", ".join(f"{t}.{old} -> {new}" for (t, old), new in sorted(renamed.items()))
    return dataclasses.replace(verdict, drops=drops, detail=f"{verdict.detail}; renamed (values kept): {said}")


def _judge_rows(verdict, shown: Target, note: str = "", revisions: bool = True) -> None:
    """``revisions``: Alembic revisions ran (they may have written the rows); else only alignment did, and the fix
    is not a revision's ``changes_rows``."""
    if verdict.error is not None:
        raise RowsLostError(f"nothing was committed: the rows the migration wrote could not be compared with the "
                            f"state before it: {verdict.error}")
    if verdict.losses:
        # one short line (the counts, a key each); every table with its keys is in the report's rows check
        def short(x: dict) -> str:
            key = str((x.get("keys") or [""])[0])
            if len(key) > 16:  # a quoted key keeps its closing quote
                key = key[:13] + "…" + (key[-1] if key[0] in "'\"" else "")
            key = f" (key {key})" if key else ""
            return f"{x['table']} {x['rows']}{key}"

        more = f", +{len(verdict.losses) - 3} more" if len(verdict.losses) > 3 else ""
        lost = ", ".join(short(x) for x in verdict.losses[:3]) + more
        tables = ", ".join(repr(x["table"]) for x in verdict.losses[:3])
        if not revisions:
            raise RowsLostError(f"alignment would lose or change rows of kept tables: {lost}{note}; nothing was "
                                "committed; write a revision that moves the data (it can declare the tables it means "
                                f"to change: changes_rows = ({tables},)), or change the reference")
        raise RowsLostError(f"the migration would lose or change rows of kept tables: {lost}{note}; nothing was "
                            f"committed; fix the revision, or declare the tables it means to change: "
                            f"changes_rows = ({tables},)")


def _failed(e: Exception, state: dict, result: MigrationRecord, target: Target) -> MaintenanceError:
    """The one-line error of a failed (rolled back) migration, carrying ``result`` (``rolled_back`` set)."""
    result.rolled_back = not result.dry_run
    err = _as_migration_error(e, state, result.failing_revision, target)
    err.result = result.freeze()
    return err


def _as_migration_error(e: Exception, state: dict, failing, target: Target) -> MaintenanceError:
    phase = state.get("phase", "plan")
    if isinstance(e, MaintenanceError) and (phase == "plan" or isinstance(e, (*_VERDICTS, UserCheckError))):
        return e
    damaged = _damage(e, target, state.get("backup"))
    if damaged is not None:
        return damaged
    said = str(getattr(e, "orig", None) or e)  # whole, for the report (``detail``); the line holds its start
    line = " ".join(said.split())[:300] or type(e).__name__
    if isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated:  # the driver's dialect: the session is gone
        return _with_detail(MigrationError(
            f"the server ended the migration's session ({line}): {mask_url(target.url)} lost its connection at "
            f"{phase}; nothing was committed; check the server (its log: a restart, a crash, a terminated "
            "session) and rerun"), said)
    engine = state.get("engine")
    where = engine.environment_error(line) if isinstance(e, sa.exc.DBAPIError) and engine is not None else None
    if where:  # not the revision's fault, nor the reference's: say what is wrong where the database lives
        return _with_detail(MigrationError(f"{mask_url(target.url)} cannot be changed: {where}; nothing was committed"),
                            said)
    hint = engine.error_hint(line) if isinstance(e, sa.exc.DBAPIError) and engine is not None else None
    line = re.sub(r"_alembic_tmp_", "", line)  # Alembic's temporary copy is the table itself to the reader
    line = state.get("explain", lambda text: text)(line)
    if not isinstance(e, MaintenanceError):
        line = f"{type(e).__name__}: {line}"
    rolled = f"{mask_url(target.url)} was rolled back to its state before the run"
    if phase == "alembic":
        rev = failing or "?"
        return _with_detail(MigrationError(f"Alembic revision {rev} failed: {line}; {rolled}; "
                                           f"{hint or 'fix the revision and rerun'}", revision=rev), said)
    if phase == "align":
        step = state.get("step")
        at = f" at {step}" if step else ""
        return _with_detail(MigrationError(f"alignment failed{at}: {line}; {rolled}; "
                                           f"{hint or 'fix the data or the reference, or use align: none'}"), said)
    if hint:
        return _with_detail(MigrationError(f"migration failed at {phase}: {line}; {rolled}; {hint}"), said)
    return _with_detail(MigrationError(f"migration failed at {phase}: {line}; {rolled}"), said)


def _with_detail(err: _E, said: str) -> _E:
    """``err`` carrying the driver's whole text (``detail``: the report and the run's log show it; the line is
    cut)."""
    err.detail = said
    return err


def _damage(e: BaseException, target: Target, backup: Path | None = None) -> DatabaseDamagedError | None:
    """A failing disk or a corrupt file met mid-run, said in one line: what happened, check the file, where
    the last good state is. None for any other error."""
    text = " ".join(str(getattr(e, "orig", None) or e).split())
    if not says_damaged(text):
        return None
    good = f"the last good state is in this run's backup {backup}" if backup is not None else \
        "restore the newest verified backup if it is"
    return _with_detail(DatabaseDamagedError.met(short_name(target.url), text, "during the migration, which stopped "
                                                 "without committing", good), str(getattr(e, "orig", None) or e))


def _commit_failed(e: sa.exc.DBAPIError, result: MigrationRecord, target: Target, backup: Path | None) -> Exception:
    result.rolled_back = True
    err = _damage(e, target, backup) or translate_error(e, target.url)
    if not isinstance(err, DatabaseDamagedError):
        err = _with_detail(MigrationError(f"COMMIT failed ({err}); the migration was rolled back; rerun"),
                           str(getattr(e, "orig", None) or e))
    err.result = result.freeze()
    return err
