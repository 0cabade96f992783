"""One run, step by step, without Dagster.

``RunState`` carries what the steps learn; each ``step_*`` function does one op's
work and records it in the state and the timeline. The Dagster ops are thin
adapters over these functions, and ``run_job`` chains them for scripts and tests.
When a step fails, ``finish`` still writes the report, naming the step and error.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import backup as backup_mod
from ..config import MaintenanceConfig, Target, load_config
from ..dburl import mask_url
from ..engines import open_engine
from ..schema.diff import diff
from ..errors import (
    RestoreError,
    DestructiveChangeRefusedError,
    MaintenanceError,
    ReportError,
    VerificationFailedError,
)
from ..lock import maintenance_lock
from ..shared.manifest import BackupResult, RestoreResult
from ..migrate.executor import MigrationResult, migrate, plan_revisions
from ..schema.model import Change, Snapshot
from ..schema.reference import reference_snapshot
from .jobs import Job, job_named
from .failures import failure_detail, failure_line, fix_hint, report_line, report_not_written, scrub
from .report import write_report
from ..schema.snapshot import table_counts, take_snapshot
from ..verify.checks import VerifyResult, verify_target
from ..verify.results import Check



def _drift_with_fixes(state: RunState) -> list[dict]:
    """The drift found, each difference with what fixed it: ``revision`` (gone after the Alembic revisions),
    ``alignment`` (aligned), or nothing (it remains, or nothing was applied)."""
    mig = state.migration
    out = []
    judged = mig is not None and not mig.dry_run and not mig.rolled_back and mig.after_revisions is not None
    left = {x.describe() for x in mig.after_revisions} if judged else set()  # once: not once per difference
    remains = {x.describe() for x in mig.drift_after} if judged else set()
    for c in state.drift_before:
        d = c.to_dict()
        if judged:
            if c.describe() not in left:
                d["fixed_by"] = "revision"
            elif c.describe() not in remains:
                d["fixed_by"] = "alignment"
        out.append(d)
    return out


def _after_rollback(state: RunState) -> dict | None:
    """A rolled-back run on a database that is one file: the file's sha256 now, beside the backup's (a bytewise
    copy taken under the lock before the run). Read after the run closed every connection to it (the live-file
    rule), so only when the report is written."""
    b = state.backup
    path = state.target.engine.file(state.target.url)
    if b is None or not b.sha256 or path is None or not Path(path).is_file():
        return None
    try:
        now = backup_mod.sha256_file(path)
    except OSError:
        return None
    return {"sha256": now, "backup_sha256": b.sha256,
            "bytewise_copy": state.target.engine.is_bytewise_copy(b.method), "unchanged": now == b.sha256}


def product_version() -> str:
    try:
        from importlib.metadata import version

        return version("maintenance_pipeline")
    except Exception:  # noqa: BLE001 - a checkout that is not installed
        return "unknown"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class RunState:
    """What the steps of one run learn, handed from op to op (pickled by Dagster's IO manager between steps,
    so a failed run can be re-executed from its failed step).

    It holds no secret: the targets file is named by path and the target by name; the loaded targets file
    (its passwords, the webhook token) is bound in memory only (``bind``), never pickled, and loaded again
    from ``config_path`` where a step meets an unbound state.
    """

    config_path: Path
    target_name: str
    job: str
    run_id: str
    trigger: str = "manual"
    ui_url: str | None = None
    started_at: datetime = field(default_factory=_now)
    timeline: list[dict] = field(default_factory=list)
    backup: BackupResult | None = None
    restore_backup: str = ""  # restore_database: the backup asked for (empty: the newest verified one)
    restore_choice: tuple | None = None  # restore_database: (path, manifest, sha256 the event log recorded)
    restore_preview: dict | None = None  # restore_database dry run: what would be put back and undone
    retention_removed: list[str] = field(default_factory=list)
    backup_problems: list[str] = field(default_factory=list)  # manifests left alone: invalid, or dated in the future
    reference: Snapshot | None = None
    live_fingerprint: str | None = None  # the schema the diff step saw (migrate says if it moved since)
    drift_before: list[Change] = field(default_factory=list)
    tables_before: dict = field(default_factory=dict)
    revisions: dict | None = None
    diffed: bool = False  # the diff step ran (an empty drift_before then means "in sync", not "not checked")
    migration: MigrationResult | None = None
    verification: VerifyResult | None = None
    restored_from: RestoreResult | None = None
    align: str | None = None
    dry_run: bool = False
    report_paths: tuple[Path, Path] | None = None
    drill: object | None = None  # restore_drill: the ``drill.DrillResult``
    _config: MaintenanceConfig | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_config"] = None  # the targets file stays out of any pickle: it holds the secrets
        return state

    def bind(self, config: MaintenanceConfig) -> RunState:
        """Attach the loaded targets file (in memory only)."""
        self._config = config
        return self

    @property
    def config(self) -> MaintenanceConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def target(self) -> Target:
        return self.config.target(self.target_name)

    @property
    def spec(self) -> Job:
        """What this run's job is (``jobs.py``)."""
        return job_named(self.job)


def reference_of(state: RunState) -> Snapshot:
    """The reference's snapshot, read once per run (kept in the state: it holds no secret)."""
    if state.reference is None:
        t = state.target
        state.reference = reference_snapshot(
            url=t.reference_url, metadata=t.reference_metadata, target_dialect=t.engine.name,
            ignore_tables=t.ignore_tables, search_paths=(state.config.root,), schema=t.reference_schema,
            target_url=t.url,
        )
    return state.reference


def start(config: MaintenanceConfig, target: str, job: str, *, run_id: str | None = None, trigger: str = "manual",
          ui_url: str | None = None) -> RunState:
    config.target(target)  # an unknown target is a clear error here
    return RunState(config_path=config.path, target_name=target, job=job, run_id=run_id or uuid.uuid4().hex,
                    trigger=trigger, ui_url=ui_url).bind(config)


@contextmanager
def timed(state: RunState, step: str):
    entry = {"step": step, "started_at": _now().isoformat(timespec="seconds"), "seconds": None}
    state.timeline.append(entry)
    t0 = time.monotonic()
    try:
        yield entry
    finally:
        entry["seconds"] = round(time.monotonic() - t0, 3)


def step_backup(state: RunState, recorded=None) -> dict:
    """A verified backup before anything else; retention only after it succeeded. The state keeps the typed
    ``BackupResult``; the return value is its dict (what a report shows).

    ``restore_database`` takes its safety copy inside the restore (under the restore's own lock: no commit falls
    between the copy and the restore); its backup step chooses the backup to restore and checks it against
    its manifest and ``recorded`` (``path -> sha256`` the event log recorded for it, or None) first."""
    if state.spec.restores:
        with timed(state, "backup"):
            _choose_restore(state, recorded)
        return {"restore_from": str(state.restore_choice[0])}
    cfg, t = state.config, state.target
    label = state.spec.label_for(state.trigger)
    pinned = cfg.backups.pin_pre_migration and state.spec.pins_backup
    with timed(state, "backup"):
        b = cfg.backups
        result = backup_mod.backup_database(t.url, b.dir, t.name, label=label, pinned=pinned, schema=t.schema,
                                            options=b.options_for(t.engine))
        backup_mod.annotate(result.path, run_id=state.run_id, job=state.job)  # which run: what restore names
        state.backup = result
        _retention(state, result)
    return state.backup.to_dict()


def _retention(state: RunState, own: BackupResult) -> None:
    """Retention after a verified backup (never removing ``own``), and the manifests it left alone."""
    cfg, t = state.config, state.target
    removed = backup_mod.apply_retention(cfg.backups.dir, t.name, keep_last=cfg.backups.keep_last,
                                         keep_days=cfg.backups.keep_days, keep=(own.path,))
    state.retention_removed = [str(p) for p in removed]
    state.backup_problems = backup_mod.problems(Path(cfg.backups.dir) / t.name)


def _choose_restore(state: RunState, recorded=None) -> None:
    """The backup a restore puts back (``state.restore_backup``, or the pre-migration backup of the newest run that
    changed the database), its manifest valid, what the event log recorded of it; refused when it holds what the
    database holds now (nothing to undo). All before anything is copied or changed."""
    t = state.target
    path, manifest = backup_mod.backup_to_restore(t.name, state.config.backups.dir, state.config.root,
                                                  state.restore_backup)
    path = Path(path)
    chosen = backup_mod.describe_choice(manifest)
    same = t.engine.equals_backup(t.url, path, manifest, schema=t.schema,
                                            strict=bool(state.restore_backup))
    if same:
        raise RestoreError(f"nothing to undo: {path.name} ({chosen}) equals the database ({same}); pick another with "
                           f"`maintenance-pipeline backups list {t.name}` and --backup")
    state.restore_choice = (path, dict(manifest), recorded(path) if recorded else None)


def step_diff(state: RunState) -> list[Change]:
    t = state.target
    with timed(state, "diff"):
        reference = reference_of(state)
        engine = open_engine(t.url)
        try:
            with engine.connect() as conn:
                live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=t.schema)
                if t.migrations is not None:
                    state.revisions = _revisions(conn, t, state.spec)
        finally:
            engine.dispose()
        state.live_fingerprint = live.fingerprint
        state.drift_before = diff(live, reference, ignore_tables=t.ignore_tables, renames=t.renames, ignore=t.ignore)
        state.diffed = True
        rows = state.backup.row_counts if state.backup else {}
        state.tables_before = {n: {"columns": len(tb.columns), "rows": rows.get(n)} for n, tb in sorted(live.tables.items())}
    return state.drift_before


def _revisions(conn, t: Target, job: Job) -> dict:
    """The Alembic plan: what a job that applies revisions will apply; for the other jobs only whether revisions are
    pending (the ``alembic_at_head`` check), which never fails their run: an unreadable plan is said instead."""
    if job.plans_revisions:
        return plan_revisions(conn, t).to_dict()
    try:
        return plan_revisions(conn, t).status()
    except MaintenanceError as e:
        return {"error": str(e).splitlines()[0][:300]}


def step_migrate(state: RunState, *, dry_run: bool = False, align: str | None = None) -> MigrationResult:
    state.align = align or state.target.align
    state.dry_run = dry_run
    if state.backup is None or not state.backup.verified:
        raise MaintenanceError("refusing to migrate without a verified backup; run the backup step first")
    with timed(state, "migrate"):
        try:
            state.migration = migrate(state.target, reference_of(state), align=state.align, dry_run=dry_run,
                                      backup=Path(state.backup.path),
                                      planned=(state.live_fingerprint, state.drift_before))
        except MaintenanceError as e:
            # rolled back: the report shows what was tried and undone, and what was refused
            state.migration = getattr(e, "result", None)
            if state.migration is not None:
                state.revisions = state.migration.to_dict()["revisions"]
                m = state.migration
                if m.rolled_back or not (m.applied or (m.plan and m.plan.stamp)):
                    _unpin(state)  # refused or rolled back: nothing was committed
            raise
        state.revisions = state.migration.to_dict()["revisions"]
        m = state.migration
        if dry_run or not (m.applied or (m.plan and m.plan.stamp)):
            _unpin(state)
        else:  # what restore_database undoes by default: the newest run that changed the database
            backup_mod.annotate(state.backup.path, changed_database=True)
    return state.migration


def _unpin_unless_changed(state: RunState) -> None:
    """A maintain run that committed nothing (it failed before its migration, a dry run, a refusal, a rollback)
    leaves its pre-migration backup to retention: only the backup of a run that changed the database stays pinned."""
    m = state.migration
    changed = m is not None and not m.dry_run and not m.rolled_back and bool(m.applied or (m.plan and m.plan.stamp))
    if state.spec.plans_revisions and state.backup is not None and state.backup.pinned and not changed:
        try:
            _unpin(state)
        except MaintenanceError:  # the manifest is gone or unreadable: the report says what the backup is
            pass


def _unpin(state: RunState) -> None:
    """The run changed nothing: its pre-migration backup is an ordinary one, left to retention."""
    if state.backup.pinned:
        backup_mod.set_pinned(state.backup.path, False)
        state.backup = dataclasses.replace(state.backup, pinned=False)


def step_restore(state: RunState, backup_path: str = "", recorded=None, *, dry_run: bool = False) -> dict:
    """Under the maintenance lock: the safety copy of the live database, then the chosen backup put in its place
    (the engine does both: ``backup.restore_database(safety=…)``), then retention. ``dry_run``: what would be put
    back and what it would undo (the schema's differences and each table's rows, now against the backup)."""
    t, cfg = state.target, state.config
    if backup_path and backup_path != state.restore_backup:
        state.restore_backup, state.restore_choice = backup_path, None
    state.dry_run = state.dry_run or dry_run
    with timed(state, "restore"):
        if state.restore_choice is None:
            _choose_restore(state, recorded)
        path, manifest, sha = state.restore_choice
        if state.dry_run:
            state.restore_preview = _restore_preview(state, path, manifest)
            return {"dry_run": True, **state.restore_preview}
        safety = backup_mod.SafetyCopy(cfg.backups.dir, t.name, label=state.spec.label_for(state.trigger),
                                       pinned=cfg.backups.pin_pre_migration,
                                       settings=cfg.backups.options_for(t.engine))
        try:
            with maintenance_lock(t.url, holder=f"restore {t.name}"):
                measured = backup_mod.restore_database(path, t.url, schema=t.schema, safety=safety, recreate=True,
                                                       recorded_sha256=sha)
        except MaintenanceError as e:
            copy = getattr(e, "safety", None)
            if copy is not None:
                state.backup = copy
                _unpin(state)  # nothing was restored: the safety copy is an ordinary backup
            raise
        state.backup = measured.pop("safety", None) or state.backup
        # "measured": the restored database as the restore itself saw it (verify compares that with the manifest)
        state.restored_from = RestoreResult(path=Path(path), manifest=dict(manifest), measured=measured)
        if state.backup is not None:
            _retention(state, state.backup)
    return state.restored_from.to_dict()


def _restore_preview(state: RunState, path: Path, manifest: dict) -> dict:
    """What a restore of ``path`` would put back and undo: the database now against the backup (its schema's
    differences, each table's rows), read without changing anything."""
    t = state.target
    backup_snap = t.engine.backup_snapshot(path, t.url, t)
    engine = open_engine(t.url)
    try:
        with engine.connect() as conn:
            live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=t.schema)
            counts = table_counts(conn, sorted(live.tables), schema=t.schema)
    finally:
        engine.dispose()
    rows_then = manifest.get("row_counts") or {}
    return {"would_restore": str(path), "chosen": backup_mod.describe_choice(manifest),
            # what putting the backup back changes: the database now made into the backup (a column added since is
            # dropped: destructive, its values lost)
            "would_undo": [c.to_dict() for c in diff(live, backup_snap, ignore_tables=t.ignore_tables,
                                                      ignore=t.ignore)],
            "rows_now_then": {n: [(counts.get(n) or {}).get("rows"), rows_then.get(n)]
                              for n in sorted(set(counts) | set(rows_then)) if n not in t.ignore_tables}}


def step_verify(state: RunState) -> VerifyResult:
    t = state.target
    mode = state.spec.verify_mode
    if state.spec.restores and state.dry_run:  # nothing was restored: nothing to verify
        with timed(state, "verify"):
            state.verification = VerifyResult(checks=[Check("matches_restored_backup", True,  # skipped: no failure
                                                             "skipped: a dry run restores nothing")])
        return state.verification
    refused = state.migration.refused if state.migration else []
    with timed(state, "verify"):
        b = state.backup
        verified, detail = bool(b and b.verified), (b.verify_detail if b else "") or ""
        was = state.restored_from.measured.get("target_was") if state.restored_from else None
        if b is None and was in ("missing", "not a database"):  # nothing there a safety copy could have been made of
            kept = state.restored_from.measured.get("kept_aside")
            verified, detail = True, ("skipped: the database file was missing: there was nothing to back up"
                                      if was == "missing" else f"skipped: the file was not a database: no backup of "
                                      f"it can be made; its bytes are kept as they were in {kept}")
        state.verification = verify_target(
            t, reference_of(state), backup_path=Path(b.path) if b else None,
            backup_verified=verified, backup_detail=detail,
            mode=mode, refused=refused,
            restored_manifest=state.restored_from.to_dict() if state.restored_from else None,
            migration=state.migration,
        )
    failed = state.verification.failed
    if failed:
        names = ", ".join(c.name for c in failed)
        first = failed[0]
        if refused and any(c.name == "schema_matches_reference" for c in failed):
            # a dry run's refusal, said as the real run's is (migrate/align.py), with what a dry run did
            dry = bool(state.migration and state.migration.dry_run)
            names = "; ".join(c.describe() for c in refused[:4])
            more = f" (+{len(refused) - 4} more)" if len(refused) > 4 else ""
            raise DestructiveChangeRefusedError(
                f"align: {state.align or t.align} {'would refuse' if dry else 'refuses'} {len(refused)} destructive "
                f"change(s): {names}{more}; " + ("dry run, nothing was changed; " if dry else "")
                + "review them and rerun with align: full to apply them, or change the reference")
        hint = fix_hint(state, first.name)
        detail = first.detail
        drift = state.verification.drift_after
        if first.name == "schema_matches_reference" and drift:  # the line names the first; the report has them all
            detail = f"{len(drift)} difference(s), the first: {drift[0].drift_text()}"
        raise VerificationFailedError(f"verification failed: {names}{f' ({hint})' if hint else ''} — {detail}")
    return state.verification



def step_drill(state: RunState, recorded=None):
    """restore_drill (``drill.drill_target``; the target is never changed). ``recorded``: ``path -> sha256`` the event
    log recorded for a backup, or None. The result is kept whatever it found; a failure then fails the step."""
    from .drill import drill_target

    with timed(state, "drill"):
        state.drill = drill_target(state.config, state.target_name, recorded=recorded)
    if state.drill.failed:
        raise state.drill.exception()
    return state.drill


def _tables_before(state: RunState) -> dict:
    """Each table's columns and rows before the run: what the diff step read; a restore's (it has no diff step) from
    its safety copy's manifest, the database just before the restore (tables the target ignores left out, as after)."""
    if state.tables_before or not state.spec.restores or state.backup is None:
        return state.tables_before
    ignored = set(state.target.ignore_tables)
    return {n: {"columns": _dict_of(v).get("columns"), "rows": _dict_of(v).get("rows")}
            for n, v in sorted(state.backup.tables.items()) if n not in ignored}


def _dict_of(value) -> dict:
    return value if isinstance(value, dict) else {}


def report_dict(state: RunState, *, error: str | None = None, failed_step: str | None = None,
                error_detail: str | None = None) -> dict:
    t = state.target
    mig = state.migration
    ver = state.verification
    applied = mig.applied if mig and not mig.dry_run and not mig.rolled_back else []
    planned = []
    if mig and (mig.dry_run or mig.rolled_back):  # a rolled-back run shows what it tried, and its SQL
        planned = [{"source": a["source"], "description": a["description"]} for a in mig.applied]
        if mig.sql:
            planned.append({"source": "sql", "description": "statements", "sql": mig.sql})
    return {
        "version": product_version(),
        "target": t.name,
        "job": state.job,
        "run_id": state.run_id,
        "status": "failed" if error else "success",
        "error": error,  # the short line (at most failures.MAX_LINE characters)
        "error_detail": error_detail if error else None,  # the whole text: the line uncut, what the server said
        "failed_step": failed_step,
        "trigger": state.trigger,
        "started_at": state.started_at.isoformat(timespec="seconds"),
        "finished_at": _now().isoformat(timespec="seconds"),
        "database": mask_url(t.url),
        "reference": t.reference_label,
        "align": state.align or t.align,
        "dry_run": state.dry_run,
        "ui_url": state.ui_url,
        "backup": state.backup.to_dict() if state.backup else None,
        "retention_removed": state.retention_removed,
        "backup_problems": state.backup_problems,
        "migration_cleaned": list(getattr(mig, "cleaned", ())),  # PostgreSQL: scratch databases killed runs left
        "revisions": state.revisions,
        "drift_before": _drift_with_fixes(state) if state.diffed else None,
        "planned": planned,
        "sql": mig.sql if mig else [],  # what the migration executed (or would have), in order
        "rolled_back": bool(mig and mig.rolled_back),
        "after_rollback": _after_rollback(state) if mig and mig.rolled_back else None,
        "replanned": mig.replanned if mig else None,
        "measured": mig.measured if mig else None,  # each statement's lock, rewrite, rows, time; the longest lock
        "attempts": mig.attempts if mig else [],
        "applied": applied,
        "refused": [c.to_dict() for c in mig.refused] if mig else [],
        "drift_after": [c.to_dict() for c in ver.drift_after] if ver else None,
        "checks": [c.to_dict() for c in ver.checks] if ver else [],
        "planned_drops": ver.planned_drops if ver else [],
        "restored_from": {**{k: state.restored_from.to_dict().get(k) for k in ("path", "sha256", "created_at", "label",
                                                                               "run_id", "job")},
                          "chosen": backup_mod.describe_choice(state.restored_from.manifest),
                          # a lost file made again, a damaged one replaced (its bytes kept aside, not a backup)
                          "target_was": state.restored_from.measured.get("target_was"),
                          "kept_aside": state.restored_from.measured.get("kept_aside")}
        if state.restored_from else None,
        "restore_preview": state.restore_preview,
        "tables_before": _tables_before(state),
        "tables_after": ver.tables_after if ver else {},
        "timeline": state.timeline,
        **(state.drill.report_fields() if state.drill is not None else {}),  # restore_drill (drill.py)
    }


def finish(state: RunState, *, error: BaseException | str | None = None, failed_step: str | None = None,
           detail: str | None = None) -> dict:
    """Write the Markdown and JSON report (for failed runs too); returns the report dict. ``error`` is the failed
    step's exception (its short line and its whole text, ``detail``, are made here) or its line already made;
    both are scrubbed of the targets file's secrets. A report that cannot be written raises ``ReportError``, whose
    line says first what the run did to the database (a committed migration changed it) and where its backup is;
    it carries the report dict (``report``) for whoever can still show it."""
    _unpin_unless_changed(state)
    with timed(state, "report"):
        if isinstance(error, BaseException):
            detail = failure_detail(state, failed_step or "?", error)
            error = failure_line(state, failed_step or "?", error)
        message = None if error is None else scrub(state, str(error) or "the step failed without a message")
        report = report_dict(state, error=report_line(message), failed_step=failed_step,
                             error_detail=scrub(state, detail or message) if message else None)
        try:
            state.report_paths = write_report(report, state.config.reports_dir)
        except OSError as e:
            err = ReportError(report_not_written(state, e, message, failed_step))
            report.pop("report_paths", None)  # not written
            err.report = report  # type: ignore[attr-defined]
            raise err from None
    report["report_paths"] = {**(report.get("report_paths") or {}),  # with the whole SQL's file, if it was cut
                              "markdown": str(state.report_paths[0]), "json": str(state.report_paths[1])}
    return report


def run_job(config: MaintenanceConfig, target: str, job: str, *, dry_run: bool = False, align: str | None = None,
            restore_backup: str = "", run_id: str | None = None, trigger: str = "manual") -> dict:
    """Run a whole job without Dagster; returns the report dict (``status`` says how it went)."""
    spec = job_named(job)
    state = start(config, target, job, run_id=run_id, trigger=trigger)
    state.restore_backup = restore_backup
    options = StepOptions(dry_run=dry_run, align=align)
    for name in spec.steps[:-1]:  # the last step, report, is finish
        try:
            STEPS[name](state, options)
        except Exception as e:  # noqa: BLE001 - a report exists for every run, whatever failed
            return finish(state, error=e, failed_step=name)
    return finish(state)


@dataclass(frozen=True)
class StepOptions:
    """What a step takes beyond the run's state: the run's options, and what the event log recorded of backups
    (``path -> sha256`` or None)."""

    dry_run: bool = False
    align: str | None = None
    backup: str = ""  # restore: the backup chosen at launch (empty: the state's choice)
    recorded: object = None


# each step's function, once: ``run_job`` and the Dagster ops (``orchestration/ops.py``) both call a step through it
STEPS = {
    "backup": lambda s, o: step_backup(s, recorded=o.recorded),
    "diff": lambda s, o: step_diff(s),
    "migrate": lambda s, o: step_migrate(s, dry_run=o.dry_run, align=o.align),
    "restore": lambda s, o: step_restore(s, o.backup, recorded=o.recorded, dry_run=o.dry_run),
    "verify": lambda s, o: step_verify(s),
    "drill": lambda s, o: step_drill(s, recorded=o.recorded),
}
