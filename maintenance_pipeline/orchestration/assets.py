"""Each database a Dagster asset: ``databases/<target>``, its checks declared, so the catalog shows the databases,
each check's history and the numbers of every night.

* ``database_specs``: one ``AssetSpec`` per target (kinds by engine, owners and tags from the targets file, the
  masked URL and the reference in the description, group ``databases``).
* ``database_checks``: per target, a ``multi_asset_check`` declaring the checks that apply to it:
  ``schema_matches_reference``, ``integrity``, ``foreign_keys``, ``rows_preserved``, ``backup_verified``,
  ``alembic_at_head`` (a target with ``migrations:`` only) and each user check. Run from the catalog it is
  read-only: the live database against the reference and against its newest verified backup (``verify`` mode),
  never a migration; one check can be run alone (``can_subset``).
* ``check_jobs``: per target, the job ``Checks_<target>`` holding its checks (and its drill's), tagged with its
  ``database``: the catalog's Execute button launches a target's checks through it (the UI takes the first job, by
  name, that holds every selected check: ``Checks_`` sorts before Dagster's implicit ``__ASSET_JOB``), so a check run
  waits in the run queue behind any other run of its database (``concurrency.runs.tag_concurrency_limits``).
* ``log_run_events``: what every run of a job logs on the asset, when its report is written (failed runs too):
  an ``AssetCheckEvaluation`` per check it made and, when the run read the database, an ``AssetMaterialization``
  of what it measured (size, tables, rows, drift, FK orphans, backup age, integrity duration, fingerprint,
  revision, every table's columns as ``dagster/column_schema``; a schema change's changes and SQL count) with the
  report. The asset page's header (row count, columns) reads the latest materialization, so it shows the latest
  measured state. A run that never read the database (a missing target, a reference that does not load, a restore
  of a backup that does not exist) records an ``AssetObservation`` with its status and report, and no number.

Severity: ERROR for loss, corruption and failed user checks; WARN for drift on a target that only reports it
(``align: none``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg

from ..core.shared.manifest import newest_verified
from ..core.config import MaintenanceConfig, Target
from ..core.dburl import mask_url
from ..core.engines import open_engine
from ..core.run.commands import reference_for
from ..core.run.drift import BackupFreshness
from ..core.run import drill
from ..core.run.jobs import DRILL, ON_DRIFT
from ..core.run.markdown import _cell, _code, fenced
from ..core.run.report import render_markdown
from ..core.schema.snapshot import take_snapshot
from ..core.verify.checks import verify_target

BUILT_IN_CHECKS = ("schema_matches_reference", "integrity", "foreign_keys", "rows_preserved", "backup_verified",
                   "alembic_at_head")
PRODUCT_TAGS = {"product": "maintenance_pipeline"}  # on every run of this code location's jobs (jobs.py)


def asset_key(target: str) -> dg.AssetKey:
    return dg.AssetKey(["databases", target])


def check_names(t: Target) -> list[str]:
    """The checks that apply to ``t``: ``alembic_at_head`` only with ``migrations:`` (without, nothing could ever
    evaluate it and the catalog would show it "Not evaluated" for good), then the targets file's own."""
    built_in = [c for c in BUILT_IN_CHECKS if c != "alembic_at_head" or t.migrations is not None]
    return built_in + [c.name for c in t.checks if c.name not in BUILT_IN_CHECKS]


def check_key(name: str) -> str:
    """A check's name as Dagster allows it (letters, digits, ``_``): ``no orphaned goals`` -> ``no_orphaned_goals``."""
    return _ident(name)


def severity(t: Target, check: str) -> dg.AssetCheckSeverity:
    if check == "schema_matches_reference" and t.align == "none":
        return dg.AssetCheckSeverity.WARN  # the target only reports drift
    if check == "alembic_at_head":
        return dg.AssetCheckSeverity.WARN  # drift of a kind: maintain_database applies them, nothing is lost
    return dg.AssetCheckSeverity.ERROR


def backup_key(target: str) -> dg.AssetKey:
    return dg.AssetKey(["backups", target])


def database_specs(config: MaintenanceConfig) -> list[dg.AssetSpec]:
    """``databases/<target>`` and ``backups/<target>`` (materialized by every verified backup; stale in the UI
    when the newest is older than ``backups.fresh_within_hours``)."""
    window = timedelta(hours=config.backups.fresh_within_hours)
    out = []
    for name, t in sorted(config.targets.items()):
        who = {"owners": list(t.owners), "tags": dict(t.tags)}
        out.append(dg.AssetSpec(key=asset_key(name), group_name="databases", kinds={t.engine.kind_name},
                                description=f"{_code(mask_url(t.url))}, compared with {_cell(t.reference_label)} "
                                            f"(align: {_cell(t.align)}). {_runs(config, t)}", **who))
        out.append(dg.AssetSpec(key=backup_key(name), group_name="backups", deps=[asset_key(name)],
                                freshness_policy=dg.FreshnessPolicy.time_window(fail_window=window),
                                description=f"verified backups of {_cell(name)} in "
                                            f"{_code(config.backups.dir / name)}", **who))
    return out


def _runs(config: MaintenanceConfig, t: Target) -> str:
    """What runs on the database without a person, said on its page (the jobs name no asset: Dagster would hide their
    Launchpad, so the page cannot list the schedule and the drift sensor as its automations)."""
    on_drift = ON_DRIFT[t.on_drift].name
    return (f"Verified every night by the schedule `nightly_verification` ({_cell(config.schedule_cron)}, "
            f"{_cell(config.schedule_timezone)}); `schema_drift_sensor` starts {on_drift} when its schema drifts.")


def log_backup(context, state) -> None:
    """A verified backup materializes ``backups/<target>``."""
    b = state.backup
    if b is None or not b.verified:
        return
    context.log_event(dg.AssetMaterialization(asset_key=backup_key(state.target.name), metadata={
        "path": dg.MetadataValue.path(str(b.path)), "sha256": b.sha256 or "", "bytes": b.bytes or 0,
        "label": b.label, "pinned": bool(b.pinned)}))


def recorded_sha256(instance, target: str, path, limit: int = 500) -> str | None:
    """The sha256 the newest ``backups/<target>`` materialization recorded for the backup at ``path`` (the event
    log, which a manifest edited by hand does not change), or None when none of the last ``limit`` names it."""
    want = str(path)
    records = instance.fetch_materializations(backup_key(target), limit=limit).records
    for record in records:  # newest first
        m = record.asset_materialization
        meta = m.metadata if m is not None else {}
        where = meta.get("path")
        if where is not None and str(getattr(where, "path", where)) == want:
            sha = meta.get("sha256")
            text = getattr(sha, "text", None) or getattr(sha, "value", None) or sha
            return str(text) if text else None
    return None


def _tag_database(context, name: str) -> None:
    """A check run launched without our job's tags (e.g. ``__ASSET_JOB`` through the API) is tagged with its
    database as it starts, as the ops tag runs launched with only ``dagster/partition``: runs queued after it wait."""
    if context.run.tags.get("database") != name:
        context.instance.add_run_tags(context.run.run_id, {"database": name})


def _check_fn(config: MaintenanceConfig, name: str):
    def run_checks(context):  # an AssetCheckExecutionContext (left unannotated: annotations are strings here)
        _tag_database(context, name)
        selected = {k.name for k in context.selected_asset_check_keys}
        t = config.target(name)
        newest = newest_verified(config.backups.dir, name)
        result = verify_target(t, reference_for(config, t),
                               backup_path=Path(newest["path"]) if newest else None,
                               backup_verified=bool(newest),
                               backup_detail=f"newest verified backup {newest['path']}" if newest else "",
                               mode="verify")
        found = {c.name: c for c in result.checks}
        for check in check_names(t):
            if check_key(check) not in selected:
                continue
            c = found.get(check)
            if check == "alembic_at_head":
                c = _at_head(config, t)
            if c is None:
                yield dg.AssetCheckResult(asset_key=asset_key(name), check_name=check_key(check), passed=False,
                                          severity=dg.AssetCheckSeverity.WARN,
                                          metadata={"detail": "not checked: no verified backup to compare with"})
                continue
            yield dg.AssetCheckResult(asset_key=asset_key(name), check_name=check_key(check), passed=bool(c.passed),
                                      severity=severity(t, check), metadata={"detail": c.detail, "status": c.status})

    return run_checks


def _at_head(config: MaintenanceConfig, t: Target):
    from ..core.verify.results import Check
    from ..core.run.commands import check_target

    checked = check_target(config, t.name)
    if checked.error:
        return Check("alembic_at_head", False, checked.error)
    return Check("alembic_at_head", not checked.pending,
                 "at head" if not checked.pending else f"{len(checked.pending)} pending: {', '.join(checked.pending)}")


def database_checks(config: MaintenanceConfig) -> list[dg.AssetChecksDefinition]:
    out = []
    for name, t in sorted(config.targets.items()):
        specs = [dg.AssetCheckSpec(check_key(check), asset=asset_key(name),
                                   description=_DESCRIPTIONS.get(check, f"user check: {_cell(check)}"))
                 for check in check_names(t)]
        out.append(dg.multi_asset_check(specs=specs, name=f"checks_{_ident(name)}", can_subset=True,
                                        description=f"Read-only checks of {_cell(name)} (no migration)")(
            _check_fn(config, name)))
    return out


def check_job_name(target: str) -> str:
    """``Checks_<target>``: sorts before ``__ASSET_JOB`` (upper case comes before ``_``), so the catalog's Execute
    button, which takes the first job holding every selected check, launches this one."""
    return f"Checks_{_ident(target)}"


def check_jobs(config: MaintenanceConfig) -> list:
    """Per target, a job of its checks (``databases/<target>``'s and its drill's on ``backups/<target>``), tagged
    ``database: <target>``: a check launched from the catalog queues behind any other run of that database."""
    return [dg.define_asset_job(check_job_name(name),
                                selection=dg.AssetSelection.checks_for_assets(asset_key(name), backup_key(name)),
                                tags={**PRODUCT_TAGS, "database": name},
                                description=f"The checks of {name} as the catalog runs them (read-only; the drill's "
                                            "restore into a scratch place), one run at a time per database")
            for name in sorted(config.targets)]


def _ident(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


_DESCRIPTIONS = {
    "schema_matches_reference": "the live schema equals the reference (every property the engine stores)",
    "integrity": "the engine's own corruption check",
    "foreign_keys": "no row points at a missing parent",
    "rows_preserved": "every row of the backup taken before the run is still there",
    "backup_verified": "a verified backup exists (the run's, or the newest)",
    "alembic_at_head": "no Alembic revision is pending",
}


def log_run_events(context, state, report: dict | None = None) -> None:
    """A run's checks and what it measured on ``databases/<target>``, each with the run's report: the run page and
    the asset page show it, failed runs too. A run that read the database records a materialization of the state it
    measured (the asset page's header and columns read the latest one); a run that did not records an observation
    with its status and report, and no number (a number it did not measure would plot as a fall to 0)."""
    if state.spec.about_backups:  # a drill is about the backup, never the database: ``backups/<target>``
        return log_drill_events(context, state, report)
    t = state.target
    key = asset_key(t.name)
    checks = {c.name: c for c in (state.verification.checks if state.verification else [])}
    declared = set(check_names(t))
    for name, c in checks.items():
        if name in declared:
            context.log_event(dg.AssetCheckEvaluation(asset_key=key, check_name=check_key(name), passed=bool(c.passed),
                                                      severity=severity(t, name), metadata=evidence(t, state, c)))
    revs = state.revisions or {}
    if t.migrations is not None and revs:
        pending = [] if state.migration and not state.migration.dry_run and not state.migration.rolled_back \
            else list(revs.get("pending") or [])
        detail = (f"not known: {revs['error']}" if revs.get("error") else
                  f"pending: {', '.join(pending)}" if pending else f"at head ({revs.get('after') or revs.get('before')})")
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=key, check_name="alembic_at_head", passed=not pending and not revs.get("error"),
            severity=severity(t, "alembic_at_head"), metadata={"detail": detail}))
    about: dict = {}
    if report:
        about["status"] = str(report.get("status"))
        about["report"] = dg.MetadataValue.md(render_markdown(report))
        about["report_path"] = dg.MetadataValue.path(str((report.get("report_paths") or {}).get("markdown", "")))
    meta = measured(state)
    if meta is None:
        failed = (report or {}).get("failed_step")
        context.log_event(dg.AssetObservation(asset_key=key, metadata=about, description=(
            f"not measured: the run failed at {failed} before reading the database" if failed else
            "not measured: the run did not read the database")))
        return
    mig = state.migration
    changed = mig is not None and mig.applied and not mig.dry_run and not mig.rolled_back
    extra: dict = {}
    if changed:
        extra = {"changes": dg.MetadataValue.md("\n".join(f"- {_cell(a['source'])}: {_cell(a['description'])}"
                                                          for a in mig.applied)),
                 "alembic_revision": str(mig.revision_after or ""), "sql_statements": len(mig.sql),
                 "changed_tables": ", ".join(changed_tables(state))}
    context.log_event(dg.AssetMaterialization(
        asset_key=key, metadata={**meta, **extra, **about, **column_schema(t)},
        description="the schema changed" if changed else f"measured by {state.job}"))


def measured(state) -> dict | None:
    """The numbers a run measured on its database, or None when it never read it (its tables are not known). Each
    number only when it was measured: the row count when every table's rows were counted, drift when the diff ran."""
    tables = (state.verification.tables_after if state.verification else None) or state.tables_before or {}
    if not tables:
        return None
    t = state.target
    rows = {n: v.get("rows") for n, v in tables.items() if isinstance(v.get("rows"), int)}
    meta: dict = {"tables": len(tables)}
    if len(rows) == len(tables):
        meta["dagster/row_count"] = sum(rows.values())
    if state.diffed:
        meta["drift_changes"] = len(state.drift_before)
    for n, r in sorted(rows.items(), key=lambda kv: -kv[1])[:3]:
        meta[f"rows {n}"] = r
    size = t.engine.size_bytes(t.url)
    if size is not None:
        meta["size_bytes"] = size
    if state.backup is not None:
        meta["backup_bytes"] = state.backup.bytes or 0
    age = _backup_age_hours(state)
    if age is not None:
        meta["backup_age_hours"] = age
    measures = state.verification.measures if state.verification else {}
    if "fk_orphans" in measures:
        meta["fk_orphans"] = int(measures["fk_orphans"])
    if "integrity_seconds" in measures:
        meta["integrity_seconds"] = float(measures["integrity_seconds"])
    elif state.backup is not None and state.backup.verified and "verify" in (state.backup.timings or {}):
        meta["integrity_seconds"] = float(state.backup.timings["verify"])  # checked on the run's backup copy
    fingerprint = (state.verification.fingerprint if state.verification else "") or state.live_fingerprint
    if fingerprint:
        meta["schema_fingerprint"] = fingerprint[:16]
    revs = state.revisions or {}
    if revs.get("after") or revs.get("before"):
        meta["alembic_revision"] = str(revs.get("after") or revs.get("before"))
    return meta


def evidence(t: Target, state, c) -> dict:
    """A check's metadata: its one-line detail (counts, the first offending keys) and status; a user check's SQL
    and expected value; the foreign-key check's orphan count."""
    meta: dict = {"detail": c.detail[:2000], "status": c.status}
    user = next((u for u in t.checks if u.name == c.name), None)
    if user is not None:
        meta["sql"] = dg.MetadataValue.md("\n".join(fenced(user.sql, "sql")))  # as the targets file has it
        meta["expect"] = str(user.expect)
    measures = state.verification.measures if state.verification else {}
    if c.name == "foreign_keys" and "fk_orphans" in measures:
        meta["orphan_rows"] = int(measures["fk_orphans"])
    return meta


def changed_tables(state) -> list[str]:
    """Tables the run's schema change touched: those of the drift it started from, and those whose column count
    moved (an Alembic revision the reference does not describe)."""
    after = state.verification.tables_after if state.verification else {}
    names = {c.table for c in state.drift_before if c.table}
    names |= {n for n, v in after.items() if (state.tables_before.get(n) or {}).get("columns") != v.get("columns")}
    return sorted(names)


def column_schema(t: Target) -> dict:
    """``dagster/column_schema`` of the whole database as it is now (read from the live database when the run's
    events are logged: every table's columns, one per ``table.column``, its type, NOT NULL, default and primary
    key), or nothing when it cannot be read."""
    try:
        engine = t.engine
        sa_engine = open_engine(t.url)
        try:
            with sa_engine.connect() as conn:
                live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=engine.target_schema(t))
        finally:
            sa_engine.dispose()
    except Exception:  # noqa: BLE001 - the columns are a view of the database; the run's outcome is elsewhere
        return {}
    columns = [dg.TableColumn(f"{table.name}.{c.name}", c.type or "",
                              description=f"default {c.default}" if c.default is not None else None,
                              constraints=dg.TableColumnConstraints(nullable=c.nullable,
                                                                   other=["primary key"] if c.name in table.primary_key
                                                                   else []))
               for _, table in sorted(live.tables.items()) for c in table.columns]
    return {"dagster/column_schema": dg.TableSchema(columns=columns)} if columns else {}


def _backup_age_hours(state) -> float | None:
    """Hours since the newest verified backup of the target (this run's when it made one)."""
    _, _, age = BackupFreshness().stale(state.config, state.target.name)
    return None if age is None else round(age, 3)


# ---------------------------------------------------------------------------------------------- the restore drill

_DRILL_DESCRIPTIONS = {
    drill.RESTORE_DRILL: "the newest verified backup restores into a scratch place and holds what its manifest says "
                         "(sha256, integrity, every table's rows, schema fingerprint) and passes the user checks",
    drill.REHEARSAL: "the target's pending Alembic revisions and alignment apply cleanly on the restored copy "
                     "(tomorrow's migration, rehearsed)",
}


def drill_checks(config: MaintenanceConfig) -> list[dg.AssetChecksDefinition]:
    """Per target, ``restore_drill`` and ``pending_migration_rehearsal`` declared on ``backups/<target>``: every
    ``restore_drill`` run records them (``log_drill_events``); run from the catalog on their own they run the drill
    (its report written like a run's), never touching the target."""
    out = []
    for name in sorted(config.targets):
        specs = [dg.AssetCheckSpec(check, asset=backup_key(name), description=_DRILL_DESCRIPTIONS[check])
                 for check in drill.VERDICTS]
        out.append(dg.multi_asset_check(specs=specs, name=f"drill_{_ident(name)}", can_subset=True,
                                        description=f"The restore drill of {_cell(name)}'s newest verified backup")(
            _drill_fn(config, name)))
    return out


def _drill_fn(config: MaintenanceConfig, name: str):
    def run_drill(context):  # an AssetCheckExecutionContext
        from ..core.run.pipeline import run_job

        _tag_database(context, name)
        selected = {k.name for k in context.selected_asset_check_keys}
        report = run_job(config, name, DRILL.name)  # one drill gives both verdicts; the selected ones are recorded
        verdicts = (report.get("drill") or {}).get("verdicts") or {}
        for check in drill.VERDICTS:
            if check not in selected:
                continue
            v = verdicts.get(check)
            yield dg.AssetCheckResult(
                asset_key=backup_key(name), check_name=check, passed=bool(v and v["passed"]),
                severity=dg.AssetCheckSeverity.ERROR if v else dg.AssetCheckSeverity.WARN,
                metadata={"detail": (v["detail"] if v else f"not run: {report.get('error')}")[:2000],
                          "report_path": dg.MetadataValue.path(str((report.get("report_paths") or {})
                                                                   .get("markdown", "")))})

    return run_drill


def log_drill_events(context, state, report: dict | None = None) -> None:
    """A drill on ``backups/<target>``: its two checks (a check that did not run, the rehearsal after a failed
    restore, records nothing) and an observation with RPO, RTO and the backup's size (numbers the catalog plots;
    an observation, not a materialization: the drill makes no backup, so freshness is left alone), with the report."""
    d = state.drill
    key = backup_key(state.target.name)
    if d is None:  # the step failed before the drill could say anything (a bug): the run's failure says it
        return
    for check in drill.VERDICTS:
        v = d.verdict(check)
        if v is None:
            continue
        meta = {"detail": v.detail[:2000], "status": v.status, **drill_figures(d)}
        if d.backup:
            meta["backup"] = dg.MetadataValue.path(str(d.backup["path"]))
        context.log_event(dg.AssetCheckEvaluation(asset_key=key, check_name=check, passed=bool(v.passed),
                                                  severity=dg.AssetCheckSeverity.ERROR, metadata=meta))
    meta = {**drill_figures(d), "status": "success" if not d.failed else "failed"}
    if d.backup:
        meta.update({"backup": dg.MetadataValue.path(str(d.backup["path"])), "label": str(d.backup.get("label")),
                     "created_at": str(d.backup.get("created_at"))})
    if report:
        meta["report"] = dg.MetadataValue.md(render_markdown(report))
        meta["report_path"] = dg.MetadataValue.path(str((report.get("report_paths") or {}).get("markdown", "")))
    context.log_event(dg.AssetObservation(asset_key=key, description="restore drill", metadata=meta))


def drill_figures(d) -> dict:
    """A drill's numbers as Dagster metadata (the catalog plots them): RPO, RTO, the backup's size, the parts of
    the time (a figure not known is left out, never plotted as 0)."""
    figures = {"rpo_hours": d.rpo_hours, "rto_seconds": d.rto_seconds, "backup_bytes": d.backup_bytes,
               "restore_seconds": d.restore_seconds, "verify_seconds": d.verify_seconds,
               "rehearsal_seconds": d.rehearsal_seconds}
    return {k: (dg.MetadataValue.int(v) if isinstance(v, int) else dg.MetadataValue.float(float(v)))
            for k, v in figures.items() if v is not None}
