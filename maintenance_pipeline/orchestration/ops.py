"""Dagster ops: thin adapters over ``core/run/pipeline.py``.

Each op runs one step on the ``RunState`` handed down by the previous op. The step that ends the run's work writes
the report (the job's last step before ``report`` when all went well, else the step that failed: the run's report
exists for failed runs too) and records the run on the database's asset; a failed step then fails its op with the
one-line error and the report attached (``Refusal``: no stack trace in the UI), so the UI and the alerts name the
failing step.

The ``report`` op publishes the report (attached to its step, "report written: <path>"). It hangs off the job's first
op (its ``started`` output, given before anything else) and the jobs' executor runs a step once its inputs exist
(``require_upstream_step_success: false``), at the lowest priority: it runs last, after the whole run or after the
step that failed, so a failed run's graph shows the report step done, not "not executed".
"""


import json
import traceback
from pathlib import Path
from typing import Callable

import dagster as dg
from dagster._core.errors import DagsterUserCodeProcessError
from dagster._utils.error import SerializableErrorInfo

from ..core.run import pipeline
from ..core.run.failures import failure_detail, failure_line, one_line, scrub
from ..core.config import ALIGN_MODES, MaintenanceConfig
from ..core.errors import ConfigError, ReportError
from ..core.run.markdown import _cell, bounded_sql, fenced, sql_text
from ..core.run.pipeline import STEPS, RunState, StepOptions


# the concurrency pool of the backup step: the instance caps how many backups (pg_dumps) run at once across targets
# (``concurrency: pools:`` in docs/production/dagster.yaml)
BACKUP_POOL = "backups"


class MigrateConfig(dg.Config):
    """Run config of the migrate op (all optional; defaults come from the targets file)."""

    dry_run: bool = False
    align: str = ""  # none | additive | full; empty = the target's `align` setting


class RestoreConfig(dg.Config):
    """Run config of the restore op: which backup (empty: the pre-migration backup of the newest run that changed the
    database); ``dry_run``: say what would be put back and undone, change nothing. The Launchpad offers the backups
    the code location saw when it loaded (``choose``; reload it to see newer ones); scripts name a path (``backup``)."""

    backup: str = ""
    dry_run: bool = False


class Refusal(DagsterUserCodeProcessError, dg.Failure):
    """A failed step as the UI shows it: its one line and the report (metadata), without a stack trace.

    Dagster records a ``Failure`` with the stack of the frames it passed through (the UI's "Stack Trace" block:
    framework code and ``run_step``, never the error's own, which is logged at debug level, secrets masked). An
    error from a user-code process carries the error as that process described it, and Dagster keeps that
    description as it is: this one says only the line. Caught as a ``Failure`` (its description and metadata are
    the step failure's), it is never retried."""

    def __init__(self, line: str, metadata: dict | None = None):
        dg.Failure.__init__(self, description=line, metadata=metadata or {}, allow_retries=False)
        self.user_code_process_error_infos = [SerializableErrorInfo(message=f"{line}\n", stack=[], cls_name=None)]


def _change_table(changes: list[dict]) -> dg.MetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(n, "string") for n in ("kind", "object", "destructive", "detail")])
    records = [dg.TableRecord({"kind": c["kind"], "object": f"{c['table']}.{c['name']}" if c.get("name") else c["table"],
                               "destructive": "yes" if c["destructive"] else "no", "detail": c.get("detail") or ""})
               for c in changes]
    return dg.MetadataValue.table(records=records, schema=schema)


def _checks_table(checks: list[dict]) -> dg.MetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn("check", "string"), dg.TableColumn("passed", "bool"),
                                     dg.TableColumn("detail", "string")])
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"check": c["name"], "passed": c["passed"], "detail": c["detail"]}) for c in checks],
        schema=schema,
    )


def _report_metadata(report: dict) -> dict:
    from ..core.run.report import render_markdown

    paths = report.get("report_paths") or {}
    return {
        "report": dg.MetadataValue.md(render_markdown(report)),
        "report_path": dg.MetadataValue.path(paths.get("markdown", "")),
        "report_json": dg.MetadataValue.path(paths.get("json", "")),
        "status": report["status"],
    }


def _log_asset_events(context, state: RunState, report: dict) -> None:
    from .assets import log_run_events

    try:
        log_run_events(context, state, report)
    except Exception as e:  # noqa: BLE001 - the catalog's record never fails or hides the run's own outcome
        context.log.warning(scrub(state, f"could not record the run on the database's asset: {e}"))


def _raise(error: Exception):
    raise error


def _finish(context, state: RunState, **failed) -> dict:
    """``pipeline.finish``; a report that cannot be written fails the op with the line that says what the run did
    to the database (a committed migration changed it) and where its backup is, logged at error level with the
    report's text (the run's log is then where the report is)."""
    from ..core.run.report import render_markdown

    try:
        return pipeline.finish(state, **failed)
    except ReportError as e:
        line, report = str(e), getattr(e, "report", None)
    context.log.error(line)
    metadata = {}
    if report is not None:
        text = render_markdown(report)
        context.log.info(f"the report that could not be written:\n{text}")
        metadata["report"] = dg.MetadataValue.md(text)
        _log_asset_events(context, state, report)
    raise Refusal(one_line(line, rest=" (the rest is in the run's log)"), metadata)


def run_step(context: dg.OpExecutionContext, state: RunState, step: str, fn: Callable[[RunState], object]) -> None:
    """Run one pipeline step; on failure write the report and fail the op with it attached.

    Secrets never reach Dagster: the one-line error, the whole error (logged at error level, as it is: the log row
    names the step) and the traceback (at debug level, for whoever debugs) pass the targets file's scrubber, and the
    ``Refusal`` is raised outside the ``except`` block, so the original exception (whose text may hold a URL with its
    password) is not chained into the run's storage."""
    try:
        fn(state)
        return
    except Exception as e:  # noqa: BLE001 - every failure becomes a report and a clear Failure
        message = failure_line(state, step, e)  # scrubbed, at most failures.MAX_LINE characters
        detail = failure_detail(state, step, e)  # scrubbed, whole
        trace = scrub(state, "".join(traceback.format_exception(e)))
    context.log.debug(f"the traceback, secrets masked:\n{trace}")
    context.log.error(detail)
    report = _finish(context, state, error=message, detail=detail, failed_step=step)
    _log_asset_events(context, state, report)  # a failed run too: its checks, numbers and report on the asset
    raise Refusal(message, _report_metadata(report))


def wrap_up(context: dg.OpExecutionContext, state: RunState) -> dict:
    """The job's last step succeeded: write the report and record the run on the database's asset (the report op
    publishes it; a run re-executed from that step writes its own here too)."""
    rep = _finish(context, state)
    _log_asset_events(context, state, rep)
    return rep


def run_report(config: MaintenanceConfig, target: str, job: str, run_id: str) -> tuple[Path, dict] | None:
    """The report this run wrote (its Markdown path and its JSON), or None when none was written."""
    found = sorted((config.reports_dir / target).glob(f"*_{job}_{run_id[:8]}.json"))
    if not found:
        return None
    report = json.loads(found[-1].read_text())
    markdown = found[-1].with_suffix(".md")
    report["report_paths"] = {"markdown": str(markdown), "json": str(found[-1])}
    return markdown, report


def _written(state: RunState) -> dict:
    """The report's path as the metadata of the step that wrote it (nothing when it wrote none)."""
    if state.report_paths is None:
        return {}
    return {"report_path": dg.MetadataValue.path(str(state.report_paths[0]))}


def _restore_config(context) -> dict:
    """The restore op's run config, read by the backup op of restore_database (it checks that backup first)."""
    ops = (context.run_config or {}).get("ops") or {}
    return ((ops.get("restore") or {}).get("config")) or {}


NEWEST_CHANGE = "undo the newest change (the pre-migration backup of the newest run that changed the database)"
CHOICES_PER_TARGET = 30  # the newest verified backups of each target the Launchpad lists


def restore_config_class(config: MaintenanceConfig) -> type[RestoreConfig]:
    """``RestoreConfig`` with ``choose``: a list the Launchpad shows (Dagster renders an Enum as a drop-down) of the
    default and every target's newest verified backups, as the code location found them when it loaded (reload it
    in the UI to list newer ones); a path outside the list still goes in ``backup``."""
    import enum
    import hashlib

    from ..core.backup import list_backups

    choices = {NEWEST_CHANGE: NEWEST_CHANGE}
    for name in config.targets:
        try:
            found = [m for m in list_backups(config.backups.dir, name) if m.get("verified")][:CHOICES_PER_TARGET]
        except OSError:
            continue
        for m in found:
            choices.setdefault(str(m["path"]), str(m["path"]))
    # Dagster keys config types by name: one name per list, or a later load would show an earlier load's list
    digest = hashlib.sha256("\n".join(choices).encode()).hexdigest()[:12]
    Choice = enum.Enum(f"BackupChoice_{digest}", choices)  # noqa: N806 - a type made at load time
    return type("RestoreConfig", (RestoreConfig,), {"__annotations__": {"choose": Choice},
                                                     "choose": Choice[NEWEST_CHANGE]})


def _chosen(config) -> str:
    """The backup a restore's run config names: ``choose`` (the Launchpad's list) or ``backup`` (a path)."""
    choice = getattr(config, "choose", None)
    picked = str(getattr(choice, "value", choice) or "")
    if picked and picked != NEWEST_CHANGE and config.backup and picked != config.backup:
        raise ConfigError("run config ops.restore.config names a backup twice (choose and backup); keep one")
    return config.backup or ("" if picked in ("", NEWEST_CHANGE) else picked)


def _step(name: str, **options) -> Callable[[RunState], object]:
    """The pipeline's step ``name`` (``pipeline.STEPS``) with this op's options."""
    return lambda state: STEPS[name](state, StepOptions(**options))


def _recorded(context, state: RunState):
    """``path -> sha256`` that the event log recorded when this pipeline made the backup at ``path`` (its
    ``backups/<target>`` materialization), or None when it holds no record of it."""
    from .assets import recorded_sha256

    return lambda path: recorded_sha256(context.instance, state.target_name, path)


def _started(context, config: MaintenanceConfig) -> RunState:
    """The run state of a job's first op that takes no backup (restore_drill), the run tagged with its database."""
    if "database" not in context.run.tags:  # runs launched with only dagster/partition (e.g. from the CLI)
        context.instance.add_run_tags(context.run_id, {"database": context.partition_key})
    return pipeline.start(config, context.partition_key, context.job_name, run_id=context.run_id,
                          trigger=context.run.tags.get("trigger", "manual"),
                          ui_url=f"{config.alerts.ui_base_url}/runs/{context.run_id}")


def _resume(config: MaintenanceConfig, state: RunState, context: dg.OpExecutionContext) -> RunState:
    """The state an op receives, bound to the targets file (in memory only: RunState never pickles it) and to this
    run: a run re-executed from a failed step reports under its own id."""
    state.bind(config)
    if state.run_id != context.run_id:
        state.run_id = context.run_id
        state.ui_url = f"{config.alerts.ui_base_url}/runs/{context.run_id}"
    return state


def _stepper(config: MaintenanceConfig) -> Callable[..., RunState]:
    """``step(context, state, name, fn)``: the step ``name`` on the state an op received (resumed: bound to this run
    and the targets file); the job's last step before ``report`` then writes the report."""

    def step(context: dg.OpExecutionContext, state: RunState, name: str, fn) -> RunState:
        run_step(context, _resume(config, state, context), name, fn)
        if state.spec.last_work_step == name:
            wrap_up(context, state)
        return state

    return step


# the first op of each job: ``started`` (for the report op, before anything else), then its state
_FIRST_OUTS = {"result": dg.Out(RunState), "started": dg.Out(dg.Nothing)}


def _backup_op(config: MaintenanceConfig) -> dg.OpDefinition:
    @dg.op(description="Back up the target (SQLite online copy / pg_dump), verify the copy, apply retention "
                       "(restore_database: check the backup to restore; its safety copy is the restore's).",
           tags={"step": "backup"}, pool=BACKUP_POOL, out=_FIRST_OUTS)
    def backup(context: dg.OpExecutionContext):
        yield dg.Output(None, "started")
        target = context.partition_key
        tags = context.run.tags
        if "database" not in tags:  # runs launched with only dagster/partition (e.g. from the CLI)
            context.instance.add_run_tags(context.run_id, {"database": target})
        state = pipeline.start(config, target, context.job_name, run_id=context.run_id,
                               trigger=tags.get("trigger", "manual"),
                               ui_url=f"{config.alerts.ui_base_url}/runs/{context.run_id}")
        if state.spec.restores:  # the safety copy is taken by the restore, under its lock
            chosen = _restore_config(context)
            state.restore_backup = chosen.get("backup") or (
                "" if chosen.get("choose") in (None, NEWEST_CHANGE) else str(chosen["choose"]))
            run_step(context, state, "backup", _step("backup", recorded=_recorded(context, state)))
            yield dg.Output(state, "result",
                            metadata={"restore_from": dg.MetadataValue.path(str(state.restore_choice[0]))})
            return
        run_step(context, state, "backup", _step("backup"))
        from .assets import log_backup

        log_backup(context, state)
        b = state.backup
        yield dg.Output(state, "result", metadata={
            "backup_path": dg.MetadataValue.path(str(b.path)), "sha256": b.sha256 or "", "bytes": b.bytes,
            "verified": b.verified, "method": b.method, "pinned": b.pinned,
            "retention_removed": len(state.retention_removed),
        })

    return backup


def _diff_op(config: MaintenanceConfig) -> dg.OpDefinition:
    step = _stepper(config)

    @dg.op(description="Compare the live schema with the reference: tables, columns, keys, indexes; "
                       "each change additive or destructive.", tags={"step": "diff"})
    def diff(context: dg.OpExecutionContext, state: RunState) -> RunState:
        step(context, state, "diff", _step("diff"))
        changes = [c.to_dict() for c in state.drift_before]
        context.add_output_metadata({
            "drift": _change_table(changes), "changes": len(changes),
            "destructive": sum(1 for c in changes if c["destructive"]),
            "pending_revisions": ", ".join((state.revisions or {}).get("pending") or []) or "none",
        })
        return state

    return diff


def _migrate_op(config: MaintenanceConfig) -> dg.OpDefinition:
    step = _stepper(config)  # the op's own ``config`` is its run config

    @dg.op(description="Apply pending Alembic revisions, then align what still differs (per `align`), in one "
                       "transaction under a lock; roll back on any failure.", tags={"step": "migrate"})
    def migrate(context: dg.OpExecutionContext, state: RunState, config: MigrateConfig) -> RunState:
        if config.align and config.align not in ALIGN_MODES:
            err = ConfigError(f"run config ops.migrate.config.align is {config.align!r}; use one of "
                              f"{', '.join(ALIGN_MODES)} or leave it empty for the target's setting")
            step(context, state, "migrate", lambda s: _raise(err))
        step(context, state, "migrate", _step("migrate", dry_run=config.dry_run, align=config.align or None))
        m = state.migration
        if m.replanned:
            context.log.warning(m.replanned)
        meta = {"dry_run": m.dry_run, "align": m.align, "applied": len(m.applied), "refused": len(m.refused),
                "revision_after": m.revision_after or ""}
        if m.applied:
            meta["changes"] = dg.MetadataValue.md("\n".join(f"- {_cell(a['source'])}: {_cell(a['description'])} "
                                                            f"({a['seconds']:.3f} s)" for a in m.applied))
        if m.dry_run and m.sql:
            shown, left, _ = bounded_sql(m.sql)  # a sample: a revision's rows of parameters are no metadata
            meta["sql"] = dg.MetadataValue.md("\n".join(fenced(sql_text(shown), "sql"))
                                              + (f"\n\n(+{left} more statements in the report)" if left else ""))
        context.add_output_metadata(meta)
        return state

    return migrate


def _restore_op(config: MaintenanceConfig) -> dg.OpDefinition:
    Choosing = restore_config_class(config)  # noqa: N806 - the restore op's config type, with today's backups
    step = _stepper(config)  # the op's own ``config`` is its run config

    @dg.op(description="Under the lock: a safety copy of the target, then the chosen backup put in its place "
                       "(SQLite: both inside one write transaction).",
           tags={"step": "restore"})
    def restore(context: dg.OpExecutionContext, state: RunState, config: Choosing) -> RunState:
        step(context, state, "restore", _step("restore", backup=_chosen(config), dry_run=config.dry_run,
                                               recorded=_recorded(context, state)))
        from .assets import log_backup

        log_backup(context, state)  # the safety copy the restore took
        if state.restored_from is not None:
            context.add_output_metadata({"restored_from": dg.MetadataValue.path(str(state.restored_from.path))})
        elif state.restore_preview:
            context.add_output_metadata({"dry_run": True, "would_restore": dg.MetadataValue.path(
                state.restore_preview["would_restore"]), "would_undo": len(state.restore_preview["would_undo"])})
        return state

    return restore


def _drill_op(config: MaintenanceConfig) -> dg.OpDefinition:
    step = _stepper(config)

    @dg.op(description="Restore the newest verified backup into a scratch place (SQLite: a temporary copy; "
                       "PostgreSQL: a scratch database, dropped after), check it against its manifest, rehearse the "
                       "pending migration on it; RPO and RTO. Never touches the target.",
           tags={"step": "drill"}, pool=BACKUP_POOL, out=_FIRST_OUTS)
    def drill(context: dg.OpExecutionContext):
        yield dg.Output(None, "started")
        state = _started(context, config)
        step(context, state, "drill", _step("drill", recorded=_recorded(context, state)))
        from .assets import drill_figures

        d = state.drill
        yield dg.Output(state, "result", metadata={"backup_path": dg.MetadataValue.path(str(d.backup["path"])),
                                                   **drill_figures(d), **_written(state)})

    return drill


def _verify_op(config: MaintenanceConfig) -> dg.OpDefinition:
    step = _stepper(config)

    @dg.op(description="Checks: schema equals reference, integrity, foreign keys, rows preserved, backup "
                       "verified, user SQL checks. Any failed check fails the run.", tags={"step": "verify"})
    def verify(context: dg.OpExecutionContext, state: RunState) -> RunState:
        step(context, state, "verify", _step("verify"))
        v = state.verification
        context.add_output_metadata({"checks": _checks_table([c.to_dict() for c in v.checks]),
                                     "passed": sum(c.passed for c in v.checks), "failed": len(v.failed),
                                     **_written(state)})
        return state

    return verify


def _report_op(config: MaintenanceConfig) -> dg.OpDefinition:
    @dg.op(description="Publish the run's Markdown and JSON report (written by the step that ended the run: the "
                       "last one, or the one that failed) and attach it to the run. Runs last, after the whole run "
                       "or after a failed step.",
           ins={"started": dg.In(dg.Nothing)}, tags={"step": "report", "dagster/priority": "-1"})
    def report(context: dg.OpExecutionContext) -> dict:
        found = run_report(config, context.partition_key, context.job_name, context.run_id)
        if found is None:
            raise Refusal("no report was written for this run: the failed step's line says why and the report's text "
                          "is in the run's log; fix what it names and run again")
        markdown, rep = found
        context.log.info(f"report written: {markdown}")
        context.add_output_metadata(_report_metadata(rep))
        return {k: rep.get(k) for k in ("target", "job", "run_id", "status", "report_paths")}

    return report


# each op's factory, by its name: the step it runs (a ``Job``'s ``steps`` in ``core/run/jobs.py`` name its ops)
_OPS: dict[str, Callable[[MaintenanceConfig], dg.OpDefinition]] = {
    "backup": _backup_op, "diff": _diff_op, "migrate": _migrate_op, "restore": _restore_op, "verify": _verify_op,
    "report": _report_op, "drill": _drill_op}


def make_ops(config: MaintenanceConfig) -> dict[str, dg.OpDefinition]:
    """Every op, by name, built for the targets file ``config``."""
    return {name: build(config) for name, build in _OPS.items()}
