"""Schedules and sensors: the pipeline runs without a person.

- ``nightly_verification``: one ``verify_database`` run per target each night.
- ``nightly_restore_drill``: one ``restore_drill`` run per target each night, after the verification.
- ``schema_drift_sensor``: a cheap fingerprint per target per tick; drift requests one run
  (``run_key = "<target>:<fingerprint>"``) and sends one drift alert per new fingerprint.
- ``alert_on_run_failure``: a run-failure sensor over every failed run of this product (``monitor_all_code_locations``
  with a filter on the ``product`` tag and the targets: a run of ``maintenance-pipeline run``, executed in its own
  process, is matched like one the daemon launched), one alert per run.
- ``alert_on_checks_and_freshness``: what open-source Dagster does not alert by itself, read from Dagster's own
  state so the alert and the UI agree: a check whose latest evaluation turns failing (ERROR severity), and its
  "resolved" notice when it passes again; a ``backups/<target>`` whose freshness (the freshness daemon's
  ``FRESHNESS_STATE_CHANGE`` events) turns FAIL, and its "resolved" notice when it is PASS again.

Each drift sensor tick first fails the runs of its host whose process is gone (``liveness``: a command-line run
killed with SIGKILL would stay STARTED and hold its database's place in the run queue); its RUN_FAILURE event is
alerted by ``alert_on_run_failure``, like any other failed run.

All of them are RUNNING by default here (Dagster's own default is STOPPED); the targets file's
``automation:`` section turns them off.

Why not ``make_email_on_run_failure_sensor``: it covers one channel; our alert goes to the
webhook, email and the alerts log with one content, one retry policy and one secret scrubber
(``core/run/alerts.py``), so a single run-failure sensor calls that instead.
"""

import json
import time
from dataclasses import dataclass

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from ..core.run import alerts as alerts_mod
from ..core.run.jobs import ON_DRIFT
from ..core.config import MaintenanceConfig
from ..core.run.drift import Probe, ReferenceCache, probe_target
from ..core.engines import engine_for
from . import liveness
from .assets import PRODUCT_TAGS, asset_key, backup_key, check_key, check_names, database_checks, drill_checks



def _status(running: bool) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


def make_schedules(config: MaintenanceConfig, verify_job: dg.JobDefinition) -> list[dg.ScheduleDefinition]:
    @dg.schedule(name="nightly_verification", cron_schedule=config.schedule_cron, job=verify_job,
                 execution_timezone=config.schedule_timezone, default_status=_status(config.schedules_running),
                 description="One verify_database run per target, every night (cron from the targets file).")
    def nightly_verification(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time.isoformat()
        return [
            dg.RunRequest(run_key=f"{name}:{when}", partition_key=name,
                          tags={"database": name, "trigger": "schedule"})
            for name in sorted(config.targets)
        ]

    return [nightly_verification]


def make_drill_schedules(config: MaintenanceConfig, drill_job: dg.JobDefinition) -> list[dg.ScheduleDefinition]:
    """``nightly_restore_drill``: one ``restore_drill`` run per target at ``drill.cron`` (default: an hour after the
    nightly verification, whose backup it then restores) in ``schedule.timezone``. RUNNING by default; ``drill:
    {enabled: false}`` (or ``automation.schedules_running: false``) makes it STOPPED."""
    running = config.schedules_running and config.drill_enabled

    @dg.schedule(name="nightly_restore_drill", cron_schedule=config.drill_cron, job=drill_job,
                 execution_timezone=config.schedule_timezone, default_status=_status(running),
                 description="One restore_drill run per target, every night after the verification: the newest "
                             "verified backup restored into a scratch place and checked (cron: drill.cron).")
    def nightly_restore_drill(context: dg.ScheduleEvaluationContext):
        when = context.scheduled_execution_time.isoformat()
        return [dg.RunRequest(run_key=f"{name}:{when}", partition_key=name,
                              tags={"database": name, "trigger": "schedule"})
                for name in sorted(config.targets)]

    return [nightly_restore_drill]


@dataclass(frozen=True)
class DriftDecision:
    """What the drift sensor does for one target this tick (``decide_drift``)."""

    entry: dict  # the target's new cursor entry
    note: str  # its part of the tick's skip reason
    request: dict | None = None  # a run to request: ``dg.RunRequest``'s arguments
    alert: alerts_mod.Alert | None = None  # to send
    warning: str | None = None  # to log at warning level


def decide_drift(name: str, probe: Probe, entry: dict, on_drift: str,
                 version_words: tuple[str, str] | None = None) -> DriftDecision:
    """The drift sensor's decision for target ``name`` from this tick's ``probe`` and the cursor entry
    ``probe_target`` returned with it; ``on_drift`` is the target's setting (which job drift starts, ``ON_DRIFT``),
    ``version_words`` how its engine names the cheap version (``Engine.version_words``; for a probe that is ok).

    Drift requests the job with ``run_key = "<target>:<fingerprint>"`` every tick it lasts (Dagster starts one run
    per key) and alerts once per fingerprint (``alerted``). Back in sync ends the episode: the same drift coming back
    later is a new one, alerted again and run again (its key gets the episode's number, ``:<n>``). An unreadable target
    is a warning, alerted once per error (``error_alerted``), and requests nothing. The input entry is not changed."""
    entry = {k: v for k, v in entry.items() if k != "stale_alerted"}  # alert_on_checks_and_freshness's now
    if probe.status == "unreadable":
        alert = None
        if entry.get("error_alerted") != probe.error:
            alert = alerts_mod.Alert(kind="unreadable", target=name, error=probe.error)
            entry["error_alerted"] = probe.error
        return DriftDecision(entry, f"{name}: unreadable ({probe.error})", alert=alert,
                             warning=f"target {name} unreadable: {probe.error}")
    if probe.status == "drift":
        job = ON_DRIFT[on_drift].name
        episode = int(entry.get("episode") or 0)
        key = f"{name}:{probe.fingerprint}" + (f":{episode}" if episode else "")
        request = dict(run_key=key, job_name=job, partition_key=name,
                       tags={"database": name, "trigger": "drift", "drift.fingerprint": probe.fingerprint})
        alert = None
        if entry.get("alerted") != probe.fingerprint:
            alert = alerts_mod.Alert(kind="drift", job=job, target=name, fingerprint=probe.fingerprint,
                                     changes=probe.changes, error=f"{len(probe.changes)} difference(s) from the "
                                                                  f"reference; starting {job}")
            entry["alerted"] = probe.fingerprint
        return DriftDecision(entry, f"{name}: drift {probe.fingerprint} ({len(probe.changes)} change(s))",
                             request=request, alert=alert)
    if entry.get("alerted"):  # back in sync after an alerted drift: that episode is over
        entry["alerted"] = None
        entry["episode"] = int(entry.get("episode") or 0) + 1
    what, short = version_words or ("schema version", "schema version")
    how = "reflected" if probe.reflected else f"{short} unchanged"
    return DriftDecision(entry, f"{name}: no drift ({what}, {how})")


def _fail_dead_runs(context: dg.SensorEvaluationContext, config: MaintenanceConfig) -> list[str]:
    """Each drift tick, first: fail the runs of this host whose process is gone (``liveness``; the run-failure sensor
    alerts them). Returns a note per run."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a test context built without an instance
        return []
    try:
        dead = liveness.fail_dead_runs(instance, config.reports_dir)
    except Exception as e:  # noqa: BLE001 - the drift check of this tick goes on whatever happens here
        context.log.warning(f"could not look for runs whose process is gone: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:160]}")
        return []
    for run in dead:
        context.log.warning(run.line())
    return [f"failed run {run.run_id[:8]} ({run.job} on {run.target}): its process is gone" for run in dead]


def _ours(run: dg.DagsterRun, config: MaintenanceConfig) -> bool:
    """A run of this product on one of this targets file's databases (the sensor sees every code location's)."""
    target = run.tags.get("database") or run.tags.get("dagster/partition")
    return all(run.tags.get(k) == v for k, v in PRODUCT_TAGS.items()) and target in config.targets


def make_sensors(config: MaintenanceConfig, jobs: list[dg.JobDefinition]) -> list[dg.SensorDefinition]:
    by_name = {j.name: j for j in jobs}
    references = ReferenceCache()
    secret_values = alerts_mod.config_secrets(config)
    sensor_status = (dg.DefaultSensorStatus.RUNNING if config.sensors_running else dg.DefaultSensorStatus.STOPPED)

    def send(alert: alerts_mod.Alert, log) -> None:
        outcome = alerts_mod.send_alert(alert, config.alerts, secrets=secret_values)
        log.info(f"{alert.kind} alert for {alert.target}: {outcome}")

    @dg.sensor(name="schema_drift_sensor", jobs=[by_name[j.name] for j in ON_DRIFT.values()],
               minimum_interval_seconds=config.sensor_interval_seconds, default_status=sensor_status,
               description="Each tick: a cheap schema version per target (reflect only when it moved); drift "
                           "starts the target's on_drift job once per drift fingerprint and sends one alert.")
    def schema_drift_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, notes = [], _fail_dead_runs(context, config)
        references.new_tick()
        for name in sorted(config.targets):
            target = config.targets[name]
            probe, entry = probe_target(target, cursor.get(name), references, search_paths=(config.root,))
            words = engine_for(target.url).version_words(probe.schema_version) if probe.status == "ok" else None
            decision = decide_drift(name, probe, entry, target.on_drift, words)
            notes.append(decision.note)
            if decision.warning:
                context.log.warning(decision.warning)
            if decision.request:
                requests.append(dg.RunRequest(**decision.request))
            if decision.alert:
                send(decision.alert, context.log)
            cursor[name] = decision.entry
        new_cursor = json.dumps(cursor, sort_keys=True)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        return dg.SensorResult(skip_reason="; ".join(notes) or "no targets", cursor=new_cursor)

    @dg.run_failure_sensor(name="alert_on_run_failure", default_status=sensor_status,
                           minimum_interval_seconds=min(config.sensor_interval_seconds, 30),
                           monitor_all_code_locations=True,
                           description="Every failed run of this product on these targets (launched by the daemon, "
                                       "the UI or maintenance-pipeline run): webhook, email and the alerts log.")
    def alert_on_run_failure(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        if not _ours(run, config):
            return
        step, error, report = None, None, None
        for event in context.get_step_failure_events():
            step = event.step_key
            data = event.step_failure_data
            user = data.user_failure_data  # our ops raise Failure(description=<one line>, metadata=report)
            if user is not None and user.description:
                error = user.description.strip().splitlines()[0]
            elif data.error and data.error.message:
                error = data.error.message.strip().splitlines()[0]
            meta = user.metadata if user is not None else {}
            if "report_path" in meta:
                report = str(meta["report_path"].value)
            break
        if error is None:  # no step failed: the run ended otherwise (its process died, its start timed out)
            error = (context.failure_event.message or "run failed").strip().splitlines()[0]
            step, report = liveness.where_it_stopped(context.instance, run, config.reports_dir)
        send(alerts_mod.Alert(kind="run_failure", job=run.job_name,
                              target=run.tags.get("database") or run.tags.get("dagster/partition"),
                              run_id=run.run_id, step=step, error=error, report_path=report,
                              run_url=alerts_mod.run_link(config.alerts.ui_base_url, run.run_id)), context.log)

    return [schema_drift_sensor, alert_on_run_failure, checks_and_freshness_sensor(config, send, sensor_status)]


# ---------------------------------------------------------------- checks and freshness, as Dagster holds them
def _declared_checks(config: MaintenanceConfig) -> dict[dg.AssetCheckKey, tuple[str, str]]:
    """Every declared check's key -> (target, the check's name as the targets file and the report write it)."""
    names = {}
    for target, t in config.targets.items():
        for name in check_names(t):
            names[(target, check_key(name))] = name
    out = {}
    for defs in database_checks(config) + drill_checks(config):
        for spec in defs.check_specs:
            target = spec.asset_key.path[-1]
            out[spec.key] = (target, names.get((target, spec.key.name), spec.key.name))
    return out


def checks_and_freshness_sensor(config: MaintenanceConfig, send, status) -> dg.SensorDefinition:
    """``alert_on_checks_and_freshness``: alerts on transitions of what the catalog shows.

    Checks: each tick reads the latest completed evaluation of every declared check (one query); a new one that fails
    with ERROR severity after passing (or first seen failing) sends ``check_failed``, one that passes after that
    ``check_resolved``. WARN failures (``alembic_at_head``, drift on an ``align: none`` target) are shown, not
    alerted: the drift sensor alerts drift. Freshness: the freshness daemon of ``dagster-daemon`` evaluates each
    ``backups/<target>``'s policy and records a ``FRESHNESS_STATE_CHANGE`` event when its state changes (what the UI
    shows); each tick reads the events after the cursor: FAIL sends ``stale_backup``, PASS after it ``backup_fresh``.
    The first tick only takes the state as it is (a check failing then was alerted with its run; a backup stale then
    is alerted once)."""
    backups = {backup_key(name): name for name in config.targets}
    declared = _declared_checks(config)
    window = config.backups.fresh_within_hours

    # the assets it watches, so their pages list it among their automations (it never requests a run of them)
    watched = dg.AssetSelection.assets(*[asset_key(name) for name in sorted(config.targets)], *sorted(backups))

    @dg.sensor(name="alert_on_checks_and_freshness", default_status=status, asset_selection=watched,
               minimum_interval_seconds=min(config.sensor_interval_seconds, 30),
               description="A check that starts failing, a backup that turns stale (Dagster's freshness state), and "
                           "a resolved notice when either is fine again: webhook, email and the alerts log.")
    def alert_on_checks_and_freshness(context: dg.SensorEvaluationContext):
        instance = context.instance
        first = context.cursor is None
        cursor = json.loads(context.cursor) if context.cursor else {}
        notes = _freshness(instance, cursor, first, backups, window, send, context.log)
        notes += _checks(instance, cursor, first, declared, config, send, context.log)
        return dg.SensorResult(skip_reason="; ".join(notes) or "no change", cursor=json.dumps(cursor, sort_keys=True))

    return alert_on_checks_and_freshness


def _freshness(instance, cursor: dict, first: bool, backups: dict, window: int, send, log) -> list[str]:
    storage = instance.event_log_storage
    state: dict = cursor.setdefault("fresh", {})
    kind = dg.DagsterEventType.FRESHNESS_STATE_CHANGE
    if first:  # no history: the state now; a stale one is alerted once
        latest = storage.get_event_records(dg.EventRecordsFilter(event_type=kind), limit=1, ascending=False)
        cursor["fresh_after"] = latest[0].storage_id if latest else 0
        changes = [(key, record.freshness_state) for key, record in
                   instance.get_freshness_state_records(list(backups)).items()]
    else:
        records = storage.get_event_records(dg.EventRecordsFilter(event_type=kind,
                                                                   after_cursor=cursor.get("fresh_after", 0)),
                                            limit=1000, ascending=True)
        changes = []
        for record in records:
            cursor["fresh_after"] = record.storage_id
            change = record.event_log_entry.dagster_event.asset_freshness_state_change_data
            changes.append((change.key, change.new_state))
    notes = []
    for key, new in changes:
        target = backups.get(key)
        if target is None:
            continue
        was = state.get(target)
        state[target] = new.value
        if new == FreshnessState.FAIL and was != FreshnessState.FAIL.value:
            age = _hours_since_materialized(instance, key)
            made = f"was made {age:.1f} h ago" if age is not None else "is not known to Dagster"
            send(alerts_mod.Alert(kind="stale_backup", target=target, error=(
                f"the newest verified backup of {target} {made} (freshness window {window} h: backups/{target} is "
                "stale); check the nightly schedule and the last runs")), log)
            notes.append(f"{target}: backups stale")
        elif new == FreshnessState.PASS and was == FreshnessState.FAIL.value:
            send(alerts_mod.Alert(kind="backup_fresh", target=target, error=(
                f"backups/{target} is fresh again: a verified backup was made within {window} h")), log)
            notes.append(f"{target}: backups fresh again")
    return notes


def _hours_since_materialized(instance, key: dg.AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(key)
    return None if event is None else (time.time() - event.timestamp) / 3600


def _checks(instance, cursor: dict, first: bool, declared: dict, config: MaintenanceConfig, send, log) -> list[str]:
    seen: dict = cursor.setdefault("checks", {})
    summaries = instance.event_log_storage.get_asset_check_summary_records(list(declared))
    notes = []
    for key, (target, name) in declared.items():
        summary = summaries.get(key)
        record = summary.last_completed_check_execution_record if summary else None
        if record is None or record.event is None or record.event.dagster_event is None:
            continue
        slot = f"{key.asset_key.to_user_string()}:{key.name}"
        before = seen.get(slot) or {}
        if before.get("id") == record.id:
            continue
        evaluation = record.event.dagster_event.event_specific_data
        passed = record.status == AssetCheckExecutionRecordStatus.SUCCEEDED
        error = getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.ERROR
        failing = not passed and (error or bool(before.get("failing")))
        seen[slot] = {"id": record.id, "failing": failing}
        if first:
            continue
        detail = (getattr(evaluation, "metadata", None) or {}).get("detail")
        text = str(getattr(detail, "value", detail) or "")
        run = instance.get_run_by_id(record.run_id)
        common = dict(target=target, check=name, run_id=record.run_id, job=run.job_name if run else None,
                      run_url=alerts_mod.run_link(config.alerts.ui_base_url, record.run_id))
        if failing and not before.get("failing"):
            send(alerts_mod.Alert(kind="check_failed", error=text or "the check failed", **common), log)
            notes.append(f"{target}: {name} failing")
        elif passed and before.get("failing"):
            send(alerts_mod.Alert(kind="check_resolved", error=text or "the check passes", **common), log)
            notes.append(f"{target}: {name} passes again")
    return notes
