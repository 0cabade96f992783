"""The restore drill: every night, for every target, the newest verified backup restored into a scratch place and
checked there, so that a backup is proven by a restore before anyone needs it.

``drill_target(config, name)``, one target:

1. **the backup**: the newest verified one (``manifest.newest_verified``: the highest sequence number, never the
   latest date); when the event log recorded its sha256 (``recorded``), the manifest must still say the same;
2. **the restore**: ``Engine.scratch_restore`` checks it against its manifest (sha256) and restores it where it
   never touches the target (SQLite: a copy in a private temporary folder; PostgreSQL: a scratch database beside
   the target, dropped after);
3. **the checks**, on the restored copy: the engine's integrity check (``integrity_check``, amcheck where the
   scratch database has it), the schema fingerprint and every table's row count against the manifest, and the
   targets file's own checks (read-only, as verify runs them);
4. **the rehearsal of tomorrow's migration** (``pending_migration_rehearsal``): the target's pending Alembic
   revisions and alignment applied for real on the restored copy (``migrate``: one transaction, every verdict of a
   real run; it is a copy, so applying is the rehearsal), with the backup as the state the rows are judged against;
5. **the figures**: RPO (the backup's age when the drill began, in hours; a backup dated in the future is reported,
   not trusted), RTO (seconds to restore and check it), the backup's size.

The target itself is never opened on SQLite; on PostgreSQL its server is only asked whether the role may create
databases. A models reference is created on the scratch database, not on the target's. What the drill found is a
``DrillResult``: the report (``pipeline.report_dict``), the catalog's checks ``restore_drill`` and
``pending_migration_rehearsal`` on ``backups/<target>``, and ``status`` read it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from ..shared.manifest import FUTURE_SLACK, newest_verified, parse_time, problems, utc
from ..shared.reading import describe_tables
from ..config import MaintenanceConfig, Target
from ..dburl import mask_url, scrub_passwords, translate_error
from ..engines import engine_for, open_engine
from ..errors import (DestructiveChangeRefusedError, MaintenanceError, RestoreError, SchemaLeftDifferentError,
                      UnalignableChangeError, VerificationFailedError)
from ..migrate.executor import migrate
from ..migrate.revisions import plan_revisions
from ..schema.diff import diff
from ..schema.reference import reference_snapshot
from ..schema.snapshot import take_snapshot
from ..verify.results import Check
from ..verify.user_checks import run_user_check

RESTORE_DRILL = "restore_drill"  # the backup restores and holds what its manifest says
REHEARSAL = "pending_migration_rehearsal"  # the pending revisions and alignment apply cleanly on the restored copy
VERDICTS = (RESTORE_DRILL, REHEARSAL)
ON_COPY = "the restored copy"  # how the rehearsal's errors name the scratch database


@dataclass(frozen=True)
class DrillResult:
    """What one drill found. ``checks``: each measurement on the restored copy (``integrity``, ``row_counts``,
    ``schema_fingerprint``, the user checks, ``pending_migration_rehearsal``); ``error``: why the backup could not
    be restored at all (no verified backup, altered bytes, no CREATEDB); the two verdicts the catalog shows are
    derived from both (``verdict``)."""

    target: str
    backup: dict | None = None  # path, name, label, seq, created_at, sha256, bytes, pinned
    scratch: str | None = None  # where it was restored (masked URL), removed after
    checks: tuple[Check, ...] = ()
    error: str | None = None
    rehearsal: dict | None = None  # pending revisions, what was applied, revision after, statements
    restore_seconds: float | None = None
    verify_seconds: float | None = None
    rehearsal_seconds: float | None = None
    rpo_hours: float | None = None
    rpo_note: str | None = None  # why the RPO is not known (a backup dated in the future)
    tables: dict = field(default_factory=dict)  # the restored copy's {table: {"columns", "rows"}}
    problems: tuple[str, ...] = ()  # manifests of the folder left alone (invalid, dated in the future)

    @property
    def rto_seconds(self) -> float | None:
        """Seconds from nothing to a restored, checked copy: the restore and the checks (not the rehearsal)."""
        if self.restore_seconds is None or self.verify_seconds is None:
            return None
        return round(self.restore_seconds + self.verify_seconds, 3)

    @property
    def backup_bytes(self) -> int | None:
        return int(self.backup["bytes"]) if self.backup and isinstance(self.backup.get("bytes"), int) else None

    @property
    def backup_name(self) -> str:
        return Path(self.backup["path"]).name if self.backup else "none"

    def verdict(self, name: str) -> Check | None:
        """``restore_drill``: the backup restored and every check on the copy but the rehearsal passed;
        ``pending_migration_rehearsal``: the rehearsal's check (None: it did not run, the restore failed)."""
        if name == REHEARSAL:
            return next((c for c in self.checks if c.name == REHEARSAL), None)
        if self.error is not None:
            return Check(RESTORE_DRILL, False, self.error)
        failed = [c for c in self.checks if c.name != REHEARSAL and not c.passed]
        if failed:
            more = f" (+{len(failed) - 1} more failed: {', '.join(c.name for c in failed[1:])})" if failed[1:] else ""
            return Check(RESTORE_DRILL, False, f"backup {self.backup_name}: {failed[0].name}: {failed[0].detail}{more}")
        ran = [c for c in self.checks if c.name != REHEARSAL and c.status == "passed"]
        rpo = f"RPO {self.rpo_hours:.2f} h" if self.rpo_hours is not None else f"RPO unknown ({self.rpo_note})"
        rto = f"RTO {self.rto_seconds:.2f} s" if self.rto_seconds is not None else "RTO unknown"
        return Check(RESTORE_DRILL, True, f"backup {self.backup_name} restored and checked ({len(ran)} checks passed: "
                                          f"{', '.join(c.name for c in ran)}); {rpo}, {rto}")

    @property
    def failed(self) -> list[Check]:
        """The verdicts that failed (the run fails on any)."""
        return [v for v in (self.verdict(n) for n in VERDICTS) if v is not None and not v.passed]

    def exception(self) -> MaintenanceError:
        """The failed drill as one error: its line names the backup and the first failed verdict (the whole text of
        every failed verdict is its ``detail``: the report's error section and the run's log)."""
        failed = self.failed
        first = failed[0]
        what = "could not be restored" if self.error is not None else f"failed {first.name}"
        cls = RestoreError if self.error is not None else VerificationFailedError
        if self.backup is None:  # nothing to drill: the error says why
            err = cls(f"restore drill of {self.target}: {first.detail}")
        else:  # the backup named first (a cut line keeps it), said once
            said = first.detail.removeprefix(f"backup {self.backup_name}: ").removeprefix(f"backup {self.backup_name} ")
            err = cls(f"restore drill of {self.target}: backup {self.backup_name} {what}: {said}")
        if len(failed) > 1:
            err.detail = "\n".join(f"{c.name}: {c.detail}" for c in failed)
        return err

    def report_fields(self) -> dict:
        """The drill's part of a run's report (``pipeline.report_dict``): ``drill`` (the backup, RPO, RTO, size, both
        verdicts, the rehearsal), its checks as ``checks``, the manifests left alone as ``backup_problems``."""
        return {"drill": self.to_dict(), "checks": [c.to_dict() for c in self.checks],
                "backup_problems": list(self.problems)}

    def to_dict(self) -> dict:
        verdicts = {n: (v.to_dict() if v is not None else None) for n, v in ((n, self.verdict(n)) for n in VERDICTS)}
        return {
            "backup": dict(self.backup) if self.backup else None,
            "scratch": self.scratch,
            "rpo_hours": self.rpo_hours,
            "rpo_note": self.rpo_note,
            "rto_seconds": self.rto_seconds,
            "backup_bytes": self.backup_bytes,
            "restore_seconds": self.restore_seconds,
            "verify_seconds": self.verify_seconds,
            "rehearsal_seconds": self.rehearsal_seconds,
            "verdicts": verdicts,
            "checks": [c.to_dict() for c in self.checks],
            "error": self.error,
            "rehearsal": dict(self.rehearsal) if self.rehearsal else None,
            "tables": {k: dict(v) for k, v in self.tables.items()},
            "problems": list(self.problems),
        }


def drill_target(config: MaintenanceConfig, name: str, *, recorded: Callable[[Path], str | None] | None = None,
                 now: datetime | None = None) -> DrillResult:
    """The restore drill of target ``name`` (see the module). Never raises for what the drill finds (a backup that
    cannot be restored, a failed check): that is in the result; ``DrillResult.exception`` is the run's error."""
    t = config.target(name)
    now = utc(now)
    folder = Path(config.backups.dir) / name
    result = DrillResult(target=name, problems=tuple(problems(folder, now=now)))
    m = newest_verified(config.backups.dir, name)
    if m is None:
        return dataclasses.replace(result, error=(
            f"no verified backup of {name!r} in {folder} to drill; the nightly verify_database makes one "
            f"(`maintenance-pipeline run verify_database {name}`)"))
    backup = Path(m["path"])
    result = dataclasses.replace(result, backup={
        "path": str(backup), "name": backup.name, "label": m.get("label"), "seq": m.get("seq"),
        "created_at": m.get("created_at"), "sha256": m.get("sha256"), "bytes": m.get("bytes"),
        "pinned": m.get("pinned")}, **_rpo(m, now))
    known = recorded(backup) if recorded is not None else None
    if known and known != m.get("sha256"):
        return dataclasses.replace(result, error=(
            f"the manifest of backup {backup.name} says sha256 {str(m.get('sha256'))[:12]}…, but this pipeline "
            f"recorded {known[:12]}… when it made that backup: the manifest was edited; find out who edited it, and "
            "take a new backup"))
    engine = t.engine
    t0 = time.perf_counter()
    try:
        with engine.scratch_restore(backup, t.url, schema=engine.target_schema(t)) as scratch_url:
            restored = round(time.perf_counter() - t0, 3)
            result = dataclasses.replace(result, scratch=mask_url(scratch_url), restore_seconds=restored)
            t1 = time.perf_counter()
            checks, tables = _measure(engine, scratch_url, t, m)
            result = dataclasses.replace(result, verify_seconds=round(time.perf_counter() - t1, 3), tables=tables)
            t2 = time.perf_counter()
            rehearsal, rehearsed = _rehearse(config, t, scratch_url, backup)
            return dataclasses.replace(result, checks=(*checks, rehearsal), rehearsal=rehearsed,
                                       rehearsal_seconds=round(time.perf_counter() - t2, 3))
    except MaintenanceError as e:  # the backup could not be checked or restored (the scratch place is gone)
        return dataclasses.replace(result, error=" ".join(str(e).split()))


def _rpo(m: dict, now: datetime) -> dict:
    """The backup's age when the drill began (hours), or why it is not known: a date later than this host's clock
    (beyond the two hosts' usual difference) is reported, never trusted."""
    created = parse_time(m.get("created_at"))
    if created is None:
        return {"rpo_note": f"its manifest's created_at {m.get('created_at')!r} is not a time"}
    if created > now + FUTURE_SLACK:
        return {"rpo_note": f"it says it was made at {m.get('created_at')}, later than this host's clock "
                            f"({now:%Y-%m-%d %H:%M} UTC): a clock ran ahead"}
    return {"rpo_hours": round(max(0.0, (now - created).total_seconds()) / 3600, 3)}


def _measure(engine, scratch_url: str, t: Target, manifest: dict) -> tuple[list[Check], dict]:
    """The restored copy checked: the engine's integrity check, every table's row count and the schema fingerprint
    against the manifest, the targets file's own checks (read-only)."""
    schema = engine.target_schema(t)
    checks: list[Check] = []
    tables: dict = {}
    try:
        sa_engine = open_engine(scratch_url)
        try:
            with sa_engine.connect() as conn:
                ok, detail = engine.integrity(conn, schema)
                checks.append(Check("integrity", ok, detail))
                fingerprint, tables = describe_tables(conn, schema)
                checks += [_row_counts(tables, manifest), _fingerprint(fingerprint, manifest)]
                engine.prepare_checks(conn, schema)
                checks += [run_user_check(conn, c) for c in t.checks]
        finally:
            sa_engine.dispose()
    except sa.exc.DBAPIError as e:
        checks.append(Check("readable", False, f"the restored copy cannot be read: "
                                               f"{_on_copy(str(translate_error(e, scratch_url)), scratch_url)}"))
    except MaintenanceError as e:
        checks.append(Check("readable", False, f"the restored copy cannot be read: {_on_copy(str(e), scratch_url)}"))
    return checks, tables


def _row_counts(tables: dict, manifest: dict) -> Check:
    got = {n: v["rows"] for n, v in tables.items()}
    want = manifest.get("row_counts") or {}
    if got == want:
        return Check("row_counts", True, f"{len(got)} tables, {sum(got.values())} rows: every table's row count is "
                                         "its manifest's")
    differ = sorted(n for n in set(got) | set(want) if got.get(n) != want.get(n))
    what = ", ".join(f"{n} {want.get(n, '—')} → {got.get(n, '—')}" for n in differ[:5])
    more = f" (+{len(differ) - 5} more)" if len(differ) > 5 else ""
    return Check("row_counts", False, f"rows, manifest → restored: {what}{more}; the backup does not hold what its "
                                      "manifest says: take a new backup and find what changed this one")


def _fingerprint(fingerprint: str | None, manifest: dict) -> Check:
    want = manifest.get("fingerprint")
    if not want:
        return Check("schema_fingerprint", True, "skipped: the manifest records no schema fingerprint",
                     status="skipped")
    if fingerprint == want:
        return Check("schema_fingerprint", True, f"schema fingerprint {str(want)[:12]}… is its manifest's")
    return Check("schema_fingerprint", False,
                 f"the restored schema's fingerprint {str(fingerprint)[:12]}… is not its manifest's {str(want)[:12]}…; "
                 "take a new backup and find what changed this one")


def _rehearse(config: MaintenanceConfig, t: Target, scratch_url: str, backup: Path) -> tuple[Check, dict | None]:
    """Tomorrow's migration on the restored copy: the target's pending Alembic revisions and alignment (its
    ``align``) applied for real, in one transaction with every verdict of a real run (the rows judged against the
    backup). Nothing pending: nothing is run."""
    on_copy = dataclasses.replace(t, url=scratch_url)
    pending: list[str] = []
    try:
        reference = reference_snapshot(
            url=t.reference_url, metadata=t.reference_metadata, target_dialect=t.engine.name,
            ignore_tables=t.ignore_tables, search_paths=(config.root,), schema=t.reference_schema,
            target_url=scratch_url)
        sa_engine = open_engine(scratch_url)
        try:
            with sa_engine.connect() as conn:
                plan = plan_revisions(conn, on_copy) if t.migrations is not None else None
                live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=t.schema)
        finally:
            sa_engine.dispose()
        drift = diff(live, reference, ignore_tables=t.ignore_tables, renames=t.renames, ignore=t.ignore)
        pending = [r for r, _ in plan.pending] if plan else []
        if not pending and not drift and not (plan and plan.stamp):
            at = f"at {','.join(plan.current)}" if plan and plan.current else "no Alembic revision pending"
            return Check(REHEARSAL, True, f"nothing pending ({at}; the schema equals the reference)"), \
                {"pending": [], "drift": 0, "applied": [], "revision_after": None, "statements": 0}
        done = migrate(on_copy, reference, align=t.align, backup=backup)
    except sa.exc.DBAPIError as e:
        return Check(REHEARSAL, False, f"the restored copy could not be read: "
                                       f"{_on_copy(str(translate_error(e, scratch_url)), scratch_url)}"), None
    except (DestructiveChangeRefusedError, SchemaLeftDifferentError, UnalignableChangeError) as e:
        # not a failure of the backup, nor of a revision: the drift verify_database reports every night, which a
        # maintain run would refuse as well; said, never a failed drill (it would look like a backup problem)
        return Check(REHEARSAL, True, f"skipped: a maintain run would be refused, nothing to rehearse "
                                      f"({_on_copy(str(e), scratch_url)})", status="skipped"), \
            {"pending": pending, "refused": _on_copy(str(e), scratch_url)}
    except MaintenanceError as e:
        result = getattr(e, "result", None)
        return Check(REHEARSAL, False, f"tomorrow's migration would fail: {_on_copy(str(e), scratch_url)}"), \
            {"pending": pending, "error": _on_copy(str(e), scratch_url),
             "tried": [a["description"] for a in (result.applied if result is not None else [])]}
    revisions = [a["description"] for a in done.applied if a["source"] == "alembic"]
    aligned = [a["description"] for a in done.applied if a["source"] != "alembic"]
    seconds = sum(a["seconds"] for a in done.applied)
    stamped = f"stamped at baseline {plan.stamp}, " if plan and plan.stamp else ""
    which = f" ({', '.join(pending)})" if pending else ""
    detail = (f"{stamped}{len(revisions)} pending revision(s){which} and {len(aligned)} alignment change(s) (align: "
              f"{t.align}) applied cleanly on {ON_COPY} in {seconds:.2f} s, every verdict of a real run passed; "
              f"revision after: {done.revision_after or 'none'}")
    return Check(REHEARSAL, True, detail), {
        "pending": pending, "drift": len(drift), "applied": [dict(a) for a in done.applied],
        "revision_after": done.revision_after, "statements": len(done.sql)}


def _on_copy(text: str, scratch_url: str) -> str:
    """An error of the rehearsal or the checks as the drill says it: the scratch copy named as such (its URL is a
    temporary path or a scratch database), no password."""
    text = scrub_passwords(" ".join(text.split()), scratch_url).replace(mask_url(scratch_url), ON_COPY)
    path = engine_for(scratch_url).file(scratch_url)
    text = text.replace(str(path), ON_COPY) if path is not None else text
    return text.replace(f"; {ON_COPY} was rolled back to its state before the run", "")  # it is dropped anyway
