"""Verify: the checks, each passed/failed with a one-line detail.

The live database is read once (``_read``: schema, table counts, drift, integrity, foreign keys, user
checks, through the engine's primitives); then each check of the run's mode is one small function of
that reading (``CHECKS``). After a change (maintain, restore) it is read where the engine says
(``Engine.reading_copy``): SQLite in rollback-journal mode reads a consistent copy taken after the commit,
since a reader there keeps the application's writers from committing for as long as it reads; the
integrity check's detail says so. The wording and the rules of a check live here, once; an engine only
measures (``Engine.integrity``, ``fk_violations``, ``not_valid_keys``, ``backup_fk_violations``, ...).

* ``schema_matches_reference``: the drift left; a dry run judges its plan (the drift the planned changes
  would leave, computed inside its transaction); a restore only reports it.
* ``integrity``: the engine's own check of the live database; ``verify_database`` reads it off the run's
  backup when that is a readable copy (SQLite: the backup is a database file whose integrity check just
  passed), so the live file is not read twice.
* ``foreign_keys``: rows pointing at a missing parent. ``verify_database`` fails on any; after a
  migration (or a restore) only orphans this run introduced fail: the migration checked its own inside
  its transaction, so the ones found now were there before (counted in the backup) or were written by
  another session since.
* ``rows_preserved``: after a migration, its own verdict, made inside its transaction before COMMIT
  (the application's writes after the commit do not count); ``verify_database`` writes no row, so it
  compares none: the check is skipped with that reason (``results.UNCHANGED_ROWS``), never a passed comparison.
* ``matches_restored_backup`` (restore): the backup's manifest against the restored database as the
  restore measured it (``checks.matches_manifest``).
* ``backup_verified`` and the targets file's own checks (read-only: ``user_checks.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .results import UNCHANGED_ROWS, Check, Verification, VerifyResult, fmt_fk, introduced_violations, matches_manifest
from ..config import Target
from ..dburl import scrub_passwords, translate_error
from ..engines import open_engine
from ..schema.diff import diff
from ..engines.base import ReadFrom
from ..schema.model import Change, Snapshot
from ..schema.snapshot import table_counts, take_snapshot
from .user_checks import run_user_check

if TYPE_CHECKING:
    from ..migrate.results import MigrationResult

__all__ = ["Check", "VerifyResult", "verify_target", "CHECKS"]


@dataclass
class Reading:
    """What the checks read: the live database once, and what the run knows."""

    target: Target
    mode: Mode
    backup_path: Path | None
    backup_verified: bool
    backup_detail: str
    refused: list[Change]
    restored_manifest: dict | None
    migration: MigrationResult | None
    engine: object = None
    live: Snapshot | None = None
    integrity: tuple[bool, str] = (True, "")
    fk: Counter = field(default_factory=Counter)
    not_valid: list[str] = field(default_factory=list)
    full_fingerprint: str | None = None
    user: list[Check] = field(default_factory=list)
    source: ReadFrom | None = None  # where the rows were read (``_source``)

    @property
    def planned_drift(self) -> list[Change] | None:
        m = self.migration
        return m.drift_after if m is not None and m.dry_run else None


def _read(r: Reading, reference: Snapshot, out: Verification) -> None:
    r.engine = r.target.engine
    started = time.monotonic()
    with _source(r) as source:
        r.source = source
        if source.copied:  # how long the copy took (the application's writers waited at most that long)
            out.measures["copy_seconds"] = round(time.monotonic() - started, 3)
        _read_database(r, source.url, reference, out)
    out.measures["fk_orphans"] = sum(r.fk.values())


def _source(r: Reading):
    """Where the database's rows are read. After a change (maintain, restore): where the engine says
    (``Engine.reading_copy``; SQLite in rollback-journal mode: a consistent copy taken now, equal to the live
    database at that moment, so the application's writers wait for the copy, not for every check). A verify
    run reads the live database: its integrity and foreign keys come off the run's backup."""
    if not r.mode.changed:
        return contextlib.nullcontext(ReadFrom(r.target.url))
    return r.engine.reading_copy(r.target.url, r.backup_path.parent if r.backup_path is not None else None)


def _read_database(r: Reading, url, reference: Snapshot, out: Verification) -> None:
    t, engine = r.target, r.engine
    schema = engine.target_schema(t)
    copy_url = engine.readable_copy(r.backup_path) if r.mode.checks_backup and r.backup_path is not None else None
    sa_engine = open_engine(url)
    try:
        with sa_engine.connect() as conn:
            engine.prepare_checks(conn, schema)  # unqualified names in user checks resolve in the target's schema
            r.live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=schema)
            out.fingerprint = r.live.fingerprint
            out.tables_after = table_counts(conn, sorted(r.live.tables), schema=schema)
            out.drift_after = diff(r.live, reference, ignore_tables=t.ignore_tables, renames=t.renames, ignore=t.ignore)
            if copy_url is None or not r.backup_verified:
                started = time.monotonic()
                r.integrity = engine.integrity(conn, schema)
                out.measures["integrity_seconds"] = round(time.monotonic() - started, 3)
            if copy_url is None:
                r.fk = engine.fk_violations(conn, schema)
            r.not_valid = engine.not_valid_keys(conn, schema)
            if r.mode.compares_manifest and r.restored_manifest is not None:
                # the manifest's fingerprint covers every table (ignored ones too): compare like with like
                r.full_fingerprint = take_snapshot(conn, schema=schema).fingerprint
            r.user = [run_user_check(conn, c) for c in t.checks]
    except sa.exc.DBAPIError as e:
        raise translate_error(e, t.url) from None
    finally:
        sa_engine.dispose()
    if copy_url is not None:  # verify_database: the backup is the live database at this run's start
        r.fk = _fk_of(copy_url, schema, engine)


def _read_where(r: Reading) -> str:
    """What the checks read, when it is not simply the live database (said in the integrity check)."""
    s = r.source
    if s is None:
        return ""
    if s.copied:
        m = r.migration
        after = r.mode.after or ("the dry run" if m is not None and m.dry_run else "the migration's commit"
                                 if m is not None and (m.applied or m.aligned) else "the migration")
        return (f" (read, with the row counts, foreign keys and checks, from a consistent copy of the live database "
                f"taken after {after}; the application's writers waited only while it was copied)")
    if s.note:
        return f" (read on the live database, whose writers waited meanwhile: {s.note})"
    return ""


def _fk_of(url: str, schema: str | None, engine) -> Counter:
    sa_engine = open_engine(url)
    try:
        with sa_engine.connect() as conn:
            return engine.fk_violations(conn, schema)
    finally:
        sa_engine.dispose()


# ------------------------------------------------------------------------------ the checks


def schema_check(r: Reading, out: Verification) -> Check:
    drift = out.drift_after
    if drift:
        names = "; ".join(c.drift_text() for c in drift[:8])  # what differs, then the fix
        more = f" (+{len(drift) - 8} more)" if len(drift) > 8 else ""
        hint = " — destructive changes refused under align: additive" if r.refused else ""
        check = Check("schema_matches_reference", False, f"{len(drift)} difference(s): {names}{more}{hint}")
    else:
        kinds = sorted({o.kind for o in r.live.objects.values()})
        objects = f" and {len(r.live.objects)} other object(s) ({', '.join(kinds)})" if r.live.objects else ""
        check = Check("schema_matches_reference", True,
                      f"{len(r.live.tables)} tables{objects} equal the reference (every table property, index, "
                      "constraint and schema object the engine stores was compared)")
    if not r.mode.schema_decides:
        return Check(check.name, True, f"reported only in {r.mode.name}: " + check.detail)
    planned = r.planned_drift
    if planned is not None:
        left = "; ".join(c.describe() for c in planned[:8])
        return Check(check.name, not planned,
                     "dry run, nothing changed: the planned changes would make the schema equal the reference"
                     if not planned else f"dry run: the planned changes would leave {len(planned)} "
                     f"difference(s): {left}")
    return check


def integrity_check(r: Reading, out: Verification) -> Check:
    if r.mode.checks_backup and r.backup_verified and r.backup_path is not None \
            and r.engine.readable_copy(r.backup_path) is not None:
        return Check("integrity", True, f"ok ({r.engine.integrity_name} on this run's backup, a consistent copy "
                                        "of the live file; the live file was not read twice)")
    ok, detail = r.integrity
    return Check("integrity", ok, detail + _read_where(r))


def fk_check(r: Reading, out: Verification) -> Check:
    now, how = r.fk, r.engine.fk_how
    nv = (f"; NOT VALID (not enforced for old rows, their rows checked too): {', '.join(r.not_valid[:5])}"
          + (f" (+{len(r.not_valid) - 5} more)" if len(r.not_valid) > 5 else "")) if r.not_valid else ""
    if not now:
        return Check("foreign_keys", True, f"no row points at a missing parent{how}{nv}")
    if not r.mode.changed:  # nothing changed: every orphan is one
        return Check("foreign_keys", False, f"{sum(now.values())} orphan row(s): {fmt_fk(now)}{nv}")
    # after this run's migration, which checked the keys the engine does not enforce inside its own
    # transaction, a new orphan was written by another session since the backup, not by the run
    migrated = r.migration is not None
    ours = "the migration introduced no orphan (checked inside its transaction); "
    if r.backup_path is None:
        before: Counter | None = Counter()
    else:
        try:
            before = r.engine.backup_fk_violations(r.backup_path, r.target)
        except Exception as e:  # noqa: BLE001 - any failure is said in the detail, never a crash
            return Check("foreign_keys", migrated,
                         f"{ours if migrated else ''}{sum(now.values())} orphan row(s): {fmt_fk(now)}; could not "
                         f"compare with the backup ({_error_text(e, r.target)}){nv}")
    introduced = introduced_violations(now, before)
    if introduced and migrated:
        pre = f"; {sum(before.values())} existed before this run" if before else ""
        return Check("foreign_keys", True, f"{ours}{sum(introduced.values())} orphan row(s) written by another "
                                           f"session since the backup: {fmt_fk(introduced)}{pre}{nv}")
    if introduced:
        return Check("foreign_keys", False, f"this run introduced {sum(introduced.values())} orphan row(s): "
                                            f"{fmt_fk(introduced)}{nv}")
    return Check("foreign_keys", True, f"no new orphans; {sum(now.values())} orphan row(s) existed before this "
                                       f"run: {fmt_fk(now)}{nv}")


def _error_text(e: BaseException, target: Target) -> str:
    from ..errors import MaintenanceError

    if isinstance(e, sa.exc.DBAPIError):
        e = translate_error(e, target.url)
    text = str(e) if isinstance(e, MaintenanceError) else f"{type(e).__name__}: {e}"
    return scrub_passwords(text, target.url)


def rows_check(r: Reading, out: Verification) -> Check | None:
    return r.mode.rows(r, out)


def _rows_unchanged(r: Reading, out: Verification) -> Check | None:
    return UNCHANGED_ROWS if r.backup_path is not None else None


def _rows_restored(r: Reading, out: Verification) -> Check | None:
    if r.restored_manifest is None:
        return None
    return matches_manifest(r.target, out, r.restored_manifest, r.full_fingerprint)


def _rows_migrated(r: Reading, out: Verification) -> Check | None:
    if r.migration is None:
        return None
    if r.migration.rows is None:
        return Check("rows_preserved", True, "the migration changed no existing table's rows (no update, delete, "
                                             "rewrite or column change inside its transaction)")
    passed, detail, drops = r.migration.rows
    out.planned_drops = list(drops or [])
    if not r.migration.dry_run:
        where = "compared inside the migration's transaction, before its commit"
    elif r.migration.on_copy:
        where = "dry run, compared on the scratch copy after the planned changes"
    else:
        where = "dry run, compared inside its transaction before the rollback"
    return Check("rows_preserved", bool(passed), f"{scrub_passwords(str(detail), r.target.url)} ({where})")


def backup_check(r: Reading, out: Verification) -> Check:
    return Check("backup_verified", bool(r.backup_verified),
                 r.backup_detail or ("verified" if r.backup_verified else "backup not verified"))


# the checks, in report order (the targets file's own checks come last); each reads the run's ``Mode``
CHECKS: list[Callable[[Reading, Verification], Check | None]] = [schema_check, integrity_check, fk_check, rows_check,
                                                                 backup_check]


@dataclass(frozen=True)
class Mode:
    """How a run's checks read and judge, by what the run did (a job's ``verify_mode``)."""

    name: str
    changed: bool  # the run changed the database: read from a copy taken now; else the live database, and every
    #                orphan fails (nothing to tell its own from others')
    checks_backup: bool  # integrity and foreign keys off the run's backup (the live database at the run's start)
    schema_decides: bool  # a difference from the reference fails the schema check (a restore only reports it)
    compares_manifest: bool  # the database is compared with the manifest of the backup put back
    after: str | None  # what the copy read is taken after, when it is always the same
    rows: Callable[[Reading, Verification], Check | None]


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("maintain", changed=True, checks_backup=False, schema_decides=True, compares_manifest=False, after=None,
         rows=_rows_migrated),
    Mode("verify", changed=False, checks_backup=True, schema_decides=True, compares_manifest=False, after=None,
         rows=_rows_unchanged),
    Mode("restore", changed=True, checks_backup=False, schema_decides=False, compares_manifest=True,
         after="the restore", rows=_rows_restored),
)}


def verify_target(target: Target, reference: Snapshot, *, backup_path: Path | None, backup_verified: bool,
                  backup_detail: str = "", mode: str = "maintain", refused: list[Change] = (),
                  restored_manifest: dict | None = None, migration: MigrationResult | None = None) -> VerifyResult:
    """Run the checks of ``mode``: maintain (changes were made), verify (nothing changed), restore.

    ``migration``: this run's migration, when it ran. Its own checks, made inside its transaction, are
    used instead of comparing again now, when the application may have written since the commit: a dry
    run's ``drift_after`` (what the planned changes would leave: the schema check judges the plan), its
    ``rows`` (``rows_preserved`` before COMMIT); and its foreign-key check let nothing through that it
    introduced, so orphans found now were there before or were written by another session.
    """
    out = Verification()
    r = Reading(target, MODES[mode], backup_path, backup_verified, backup_detail, list(refused), restored_manifest,
                migration)
    _read(r, reference, out)
    for check in CHECKS:
        result = check(r, out)
        if result is not None:
            out.checks.append(result)
    out.checks.extend(r.user)
    return out.freeze()
