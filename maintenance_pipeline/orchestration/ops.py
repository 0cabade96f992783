"""Dagster ops: thin adapters over ``core.pipeline``.

Each op runs one step on the ``RunState`` handed down by the previous op. When a step
fails, the op writes the report (the run's report exists for failed runs too), then
raises ``dagster.Failure`` with the one-line error and the report attached, so the UI
and the alerts name the failing step.
"""


import traceback
from typing import Callable

import dagster as dg

from ..core.run import pipeline
from ..core.run.failures import failure_line, scrub
from ..core.config import ALIGN_MODES, MaintenanceConfig
from ..core.errors import ConfigError
from ..core.run.pipeline import RunState


# the concurrency pool of the backup step: the instance caps how many backups (pg_dumps) run at once across targets
# (``concurrency: pools:`` in docs/production/dagster.yaml)
BACKUP_POOL = "backups"


class MigrateConfig(dg.Config):
    """Run config of the migrate op (all optional; defaults come from the targets file)."""

    dry_run: bool = False
    align: str = ""  # none | additive | full; empty = the target's `align` setting


class RestoreConfig(dg.Config):
    backup: str = ""  # path of the backup to restore; empty = newest verified backup


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


def run_step(context: dg.OpExecutionContext, state: RunState, step: str, fn: Callable[[RunState], object]) -> None:
    """Run one pipeline step; on failure write the report and fail the op with it attached.

    Secrets never reach Dagster: the one-line error and the traceback (logged at debug level, for whoever
    debugs) pass the targets file's scrubber, and the Failure is raised outside the ``except`` block, so the
    original exception (whose text may hold a URL with its password) is not chained into the run's storage."""
    try:
        fn(state)
        return
    except Exception as e:  # noqa: BLE001 - every failure becomes a report and a clear Failure
        message = scrub(state, failure_line(state, step, e))
        trace = scrub(state, "".join(traceback.format_exception(e)))
    context.log.debug(f"{step} failed; the traceback, secrets masked:\n{trace}")
    context.log.error(f"{step} failed: {message}")
    report = pipeline.finish(state, error=message, failed_step=step)
    _log_asset_events(context, state, report)  # a failed run too: its checks, numbers and report on the asset
    raise dg.Failure(description=message, metadata=_report_metadata(report))


def make_ops(config: MaintenanceConfig) -> dict[str, dg.OpDefinition]:
    def _resume(state: RunState, context: dg.OpExecutionContext) -> RunState:
        """The state an op receives, bound to the targets file (in memory only: RunState never pickles it) and
        to this run: a run re-executed from a failed step reports under its own id."""
        state.bind(config)
        if state.run_id != context.run_id:
            state.run_id = context.run_id
            state.ui_url = f"{config.alerts.ui_base_url}/runs/{context.run_id}"
        return state

    def step(context: dg.OpExecutionContext, state: RunState, name: str, fn) -> RunState:
        """The step ``name`` on the state an op received (resumed: bound to this run and the targets file)."""
        run_step(context, _resume(state, context), name, fn)
        return state

    @dg.op(description="Back up the target (SQLite online copy / pg_dump), verify the copy, apply retention.",
           tags={"step": "backup"}, pool=BACKUP_POOL)
    def backup(context: dg.OpExecutionContext) -> RunState:
        target = context.partition_key
        tags = context.run.tags
        if "database" not in tags:  # runs launched with only dagster/partition (e.g. from the CLI)
            context.instance.add_run_tags(context.run_id, {"database": target})
        state = pipeline.start(config, target, context.job_name, run_id=context.run_id,
                               trigger=tags.get("trigger", "manual"),
                               ui_url=f"{config.alerts.ui_base_url}/runs/{context.run_id}")
        run_step(context, state, "backup", pipeline.step_backup)
        from .assets import log_backup

        log_backup(context, state)
        b = state.backup
        context.add_output_metadata({
            "backup_path": dg.MetadataValue.path(str(b.path)), "sha256": b.sha256 or "", "bytes": b.bytes,
            "verified": b.verified, "method": b.method, "pinned": b.pinned,
            "retention_removed": len(state.retention_removed),
        })
        return state

    @dg.op(description="Compare the live schema with the reference: tables, columns, keys, indexes; "
                       "each change additive or destructive.", tags={"step": "diff"})
    def diff(context: dg.OpExecutionContext, state: RunState) -> RunState:
        step(context, state, "diff", pipeline.step_diff)
        changes = [c.to_dict() for c in state.drift_before]
        context.add_output_metadata({
            "drift": _change_table(changes), "changes": len(changes),
            "destructive": sum(1 for c in changes if c["destructive"]),
            "pending_revisions": ", ".join((state.revisions or {}).get("pending") or []) or "none",
        })
        return state

    @dg.op(description="Apply pending Alembic revisions, then align what still differs (per `align`), in one "
                       "transaction under a lock; roll back on any failure.", tags={"step": "migrate"})
    def migrate(context: dg.OpExecutionContext, state: RunState, config: MigrateConfig) -> RunState:
        if config.align and config.align not in ALIGN_MODES:
            err = ConfigError(f"run config ops.migrate.config.align is {config.align!r}; use one of "
                              f"{', '.join(ALIGN_MODES)} or leave it empty for the target's setting")
            step(context, state, "migrate", lambda s: _raise(err))
        step(context, state, "migrate",
             lambda s: pipeline.step_migrate(s, dry_run=config.dry_run, align=config.align or None))
        m = state.migration
        if m.replanned:
            context.log.warning(m.replanned)
        meta = {"dry_run": m.dry_run, "align": m.align, "applied": len(m.applied), "refused": len(m.refused),
                "revision_after": m.revision_after or ""}
        if m.applied:
            meta["changes"] = dg.MetadataValue.md("\n".join(f"- {a['source']}: {a['description']} "
                                                            f"({a['seconds']:.3f} s)" for a in m.applied))
        if m.dry_run and m.sql:
            meta["sql"] = dg.MetadataValue.md("```sql\n" + ";\n".join(m.sql) + ";\n```")
        context.add_output_metadata(meta)
        return state

    @dg.op(description="Restore a backup into the target (after the safety backup), under the lock.",
           tags={"step": "restore"})
    def restore(context: dg.OpExecutionContext, state: RunState, config: RestoreConfig) -> RunState:
        step(context, state, "restore", lambda s: pipeline.step_restore(s, config.backup))
        context.add_output_metadata({"restored_from": dg.MetadataValue.path(str(state.restored_from.path))})
        return state

    @dg.op(description="Checks: schema equals reference, integrity, foreign keys, rows preserved, backup "
                       "verified, user SQL checks. Any failed check fails the run.", tags={"step": "verify"})
    def verify(context: dg.OpExecutionContext, state: RunState) -> RunState:
        step(context, state, "verify", pipeline.step_verify)
        v = state.verification
        context.add_output_metadata({"checks": _checks_table([c.to_dict() for c in v.checks]),
                                     "passed": sum(c.passed for c in v.checks), "failed": len(v.failed)})
        return state

    @dg.op(description="Write the Markdown and JSON report and attach it to the run.", tags={"step": "report"})
    def report(context: dg.OpExecutionContext, state: RunState) -> dict:
        rep = pipeline.finish(_resume(state, context))
        _log_asset_events(context, state, rep)
        context.log.info(f"report written: {rep['report_paths']['markdown']}")
        context.add_output_metadata(_report_metadata(rep))
        return {k: rep[k] for k in ("target", "job", "run_id", "status", "report_paths")}

    return {"backup": backup, "diff": diff, "migrate": migrate, "restore": restore, "verify": verify,
            "report": report}
