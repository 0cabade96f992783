"""Schedules and sensors: the pipeline runs without a person.

- ``nightly_verification``: one ``verify_database`` run per target each night.
- ``nightly_restore_drill``: one ``restore_drill`` run per target each night, after the verification.
- ``schema_drift_sensor``: a cheap fingerprint per target per tick; drift requests one run
  (``run_key = "<target>:<fingerprint>"``) and sends one drift alert per new fingerprint.
- ``alert_on_run_failure``: a run-failure sensor over every job of this code location.

Each drift sensor tick first fails the runs of its host whose process is gone (``liveness``: a command-line run
killed with SIGKILL would stay STARTED and hold its database's place in the run queue) and alerts them itself: the
run-failure sensor only sees runs launched from this code location (the UI, the schedule, the sensors), not runs
executed in process by the command line.

All of them are RUNNING by default here (Dagster's own default is STOPPED); the targets file's
``automation:`` section turns them off.

Why not ``make_email_on_run_failure_sensor``: it covers one channel; our alert goes to the
webhook, email and the alerts log with one content, one retry policy and one secret scrubber
(``core.alerts``), so a single run-failure sensor calls that instead.
"""

import json

import dagster as dg

from ..core.run import alerts as alerts_mod
from ..core.config import MaintenanceConfig
from ..core.run.drift import BackupFreshness, ReferenceCache, probe_target
from ..core.engines import engine_for
from . import liveness

ON_DRIFT_JOB = {"verify": "verify_database", "maintain": "maintain_database"}


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


def make_sensors(config: MaintenanceConfig, jobs: list[dg.JobDefinition]) -> list[dg.SensorDefinition]:
    by_name = {j.name: j for j in jobs}
    references = ReferenceCache()
    freshness = BackupFreshness()
    secret_values = alerts_mod.config_secrets(config)
    sensor_status = (dg.DefaultSensorStatus.RUNNING if config.sensors_running else dg.DefaultSensorStatus.STOPPED)

    def send(alert: alerts_mod.Alert, log) -> None:
        outcome = alerts_mod.send_alert(alert, config.alerts, secrets=secret_values)
        log.info(f"{alert.kind} alert for {alert.target}: {outcome}")

    def fail_dead_runs(context: dg.SensorEvaluationContext) -> list[str]:
        """Each tick, first: fail the runs of this host whose process is gone (``liveness``), and alert them: the
        run-failure sensor does not see runs executed from the command line. Returns a note per run."""
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
            send(run.alert(config.alerts.ui_base_url), context.log)
        return [f"failed run {run.run_id[:8]} ({run.job} on {run.target}): its process is gone" for run in dead]

    @dg.sensor(name="schema_drift_sensor", jobs=[by_name["verify_database"], by_name["maintain_database"]],
               minimum_interval_seconds=config.sensor_interval_seconds, default_status=sensor_status,
               description="Each tick: a cheap schema version per target (reflect only when it moved); drift "
                           "starts the target's on_drift job once per drift fingerprint and sends one alert.")
    def schema_drift_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, notes = [], fail_dead_runs(context)
        references.new_tick()
        for name in sorted(config.targets):
            target = config.targets[name]
            probe, entry = probe_target(target, cursor.get(name), references, search_paths=(config.root,))
            if probe.status == "unreadable":
                notes.append(f"{name}: unreadable ({probe.error})")
                context.log.warning(f"target {name} unreadable: {probe.error}")
                if entry.get("error_alerted") != probe.error:
                    send(alerts_mod.Alert(kind="unreadable", target=name, error=probe.error), context.log)
                    entry["error_alerted"] = probe.error
            elif probe.status == "drift":
                job = ON_DRIFT_JOB[target.on_drift]
                notes.append(f"{name}: drift {probe.fingerprint} ({len(probe.changes)} change(s))")
                requests.append(dg.RunRequest(
                    run_key=f"{name}:{probe.fingerprint}", job_name=job, partition_key=name,
                    tags={"database": name, "trigger": "drift", "drift.fingerprint": probe.fingerprint}))
                if entry.get("alerted") != probe.fingerprint:
                    send(alerts_mod.Alert(kind="drift", job=job, target=name, fingerprint=probe.fingerprint,
                                          changes=probe.changes,
                                          error=f"{len(probe.changes)} difference(s) from the reference; "
                                                f"starting {job}"), context.log)
                    entry["alerted"] = probe.fingerprint
            else:
                what, short = engine_for(target.url).version_words(probe.schema_version)
                how = "reflected" if probe.reflected else f"{short} unchanged"
                notes.append(f"{name}: no drift ({what}, {how})")
            # open-source Dagster sends no freshness alerts: one per stale period (per newest backup) from here
            # (a target without any backup yet is not alerted: nothing ran yet; the catalog shows it unknown)
            stale, newest, age = freshness.stale(config, name)
            if stale and newest is not None and entry.get("stale_alerted") != newest:
                send(alerts_mod.Alert(kind="stale_backup", target=name, error=(
                    f"the newest verified backup of {name} is {age:.1f} h old (window "
                    f"{config.backups.fresh_within_hours} h); check the nightly schedule and the last runs")),
                     context.log)
                entry["stale_alerted"] = newest
            elif not stale:
                entry.pop("stale_alerted", None)
            cursor[name] = entry
        new_cursor = json.dumps(cursor, sort_keys=True)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=new_cursor)
        return dg.SensorResult(skip_reason="; ".join(notes) or "no targets", cursor=new_cursor)

    @dg.run_failure_sensor(name="alert_on_run_failure", default_status=sensor_status,
                           minimum_interval_seconds=min(config.sensor_interval_seconds, 30),
                           description="Any failed run of this code location: webhook, email and the alerts log.")
    def alert_on_run_failure(context: dg.RunFailureSensorContext):
        run = context.dagster_run
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
        if error is None:
            error = (context.failure_event.message or "run failed").strip().splitlines()[0]
        send(alerts_mod.Alert(kind="run_failure", job=run.job_name, target=run.tags.get("database"),
                              run_id=run.run_id, step=step, error=error, report_path=report,
                              run_url=alerts_mod.run_link(config.alerts.ui_base_url, run.run_id)), context.log)

    return [schema_drift_sensor, alert_on_run_failure]
