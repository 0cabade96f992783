"""The schedule and sensors, evaluated with Dagster's own test contexts on real SQLite files."""

from __future__ import annotations

import datetime
import json
import sqlite3

import dagster as dg
import pytest

from targets import build_demo, demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.orchestration.definitions import build_definitions


def alerts(folder) -> list[dict]:
    path = folder / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tick(defs, cursor=None, instance=None):
    sensor = defs.resolve_sensor_def("schema_drift_sensor")
    context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
    result = sensor.evaluate_tick(context)
    return result, result.cursor


def test_drift_requests_one_run_with_a_stable_key_and_alerts_once(demo_config, demo_dir):
    defs = build_definitions(demo_config)
    result, cursor = tick(defs)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    fingerprint = req.tags["drift.fingerprint"]
    assert req.run_key == f"goals:{fingerprint}" and req.partition_key == "goals"
    assert req.job_name == "verify_database"
    assert req.tags["database"] == "goals" and req.tags["trigger"] == "drift"
    sent = alerts(demo_dir)
    assert len(sent) == 1 and sent[0]["kind"] == "drift" and sent[0]["fingerprint"] == fingerprint
    assert any("completed_at" in c for c in sent[0]["changes"])

    again, cursor2 = tick(defs, cursor)  # same drift: same key (Dagster starts it once), no second alert
    assert [r.run_key for r in again.run_requests] == [req.run_key]
    assert len(alerts(demo_dir)) == 1
    assert json.loads(cursor2)["goals"]["sv"] == json.loads(cursor)["goals"]["sv"]


def test_new_drift_gets_a_new_key_and_a_new_alert(demo_config, demo_dir):
    defs = build_definitions(demo_config)
    first, cursor = tick(defs)
    with sqlite3.connect(demo_dir / "data" / "goals.db") as conn:
        conn.execute("ALTER TABLE goals ADD COLUMN surprise TEXT")
    second, _ = tick(defs, cursor)
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert [a["kind"] for a in alerts(demo_dir)] == ["drift", "drift"]
    assert any("surprise" in c for c in alerts(demo_dir)[1]["changes"])


def test_no_drift_skips_naming_what_it_checked_without_reflecting_again(demo_config, demo_dir):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    defs = build_definitions(demo_config)
    first, cursor = tick(defs)
    assert not first.run_requests
    assert "goals: no drift" in first.skip_message and "reflected" in first.skip_message
    second, _ = tick(defs, cursor)
    assert "schema_version unchanged" in second.skip_message
    assert alerts(demo_dir) == []


def test_on_drift_maintain_requests_maintain_database(demo_dir):
    config = load_config(write_config(demo_dir, {"goals": demo_target(on_drift="maintain")}))
    result, _ = tick(build_definitions(config))
    assert result.run_requests[0].job_name == "maintain_database"


def test_unreadable_target_is_reported_once_and_never_stops_the_others(demo_dir):
    build_demo.build(demo_dir / "other")
    config = load_config(write_config(demo_dir, {
        "broken": demo_target(url="sqlite:///data/missing.db"),
        "goals": demo_target(url="sqlite:///other/goals.db", reference={"url": "sqlite:///other/goals_dev.db"}),
    }))
    defs = build_definitions(config)
    result, cursor = tick(defs)
    assert [r.partition_key for r in result.run_requests] == ["goals"]  # the good target was still checked
    kinds = [(a["kind"], a["target"]) for a in alerts(demo_dir)]
    assert ("unreadable", "broken") in kinds and ("drift", "goals") in kinds
    unreadable = next(a for a in alerts(demo_dir) if a["kind"] == "unreadable")
    assert "does not exist" in unreadable["error"]
    tick(defs, cursor)
    assert [a["kind"] for a in alerts(demo_dir)].count("unreadable") == 1
    assert not (demo_dir / "data" / "missing.db").exists()


def test_schedule_requests_one_verify_run_per_target(demo_dir):
    build_demo.build(demo_dir / "other")
    config = load_config(write_config(demo_dir, {
        "a": demo_target(), "b": demo_target(url="sqlite:///other/goals.db")}, schedule={"cron": "30 3 * * *",
                                                                                       "timezone": "Europe/Berlin"}))
    defs = build_definitions(config)
    schedule = defs.resolve_schedule_def("nightly_verification")
    assert schedule.cron_schedule == "30 3 * * *" and schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "verify_database"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    when = datetime.datetime(2026, 11, 24, 3, 30, tzinfo=datetime.timezone.utc)
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def())).run_requests
    assert sorted(r.partition_key for r in requests) == ["a", "b"]
    assert all(r.tags["trigger"] == "schedule" and r.tags["database"] == r.partition_key for r in requests)
    assert all(r.run_key.endswith(when.isoformat()) for r in requests)  # one run per target per night


def test_automation_can_be_turned_off_in_the_targets_file(demo_dir):
    config = load_config(write_config(demo_dir, automation={"schedules_running": False, "sensors_running": False}))
    defs = build_definitions(config)
    assert defs.resolve_schedule_def("nightly_verification").default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_sensor_def("schema_drift_sensor").default_status == dg.DefaultSensorStatus.STOPPED


def test_run_failure_sensor_alerts_with_step_error_run_url_and_report(demo_config, demo_dir):
    defs = build_definitions(demo_config)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("verify_database").execute_in_process(
            partition_key="goals", instance=instance, raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        sensor = defs.resolve_sensor_def("alert_on_run_failure")
        context = dg.build_run_status_sensor_context(sensor_name="alert_on_run_failure", dagster_instance=instance,
                                                     dagster_run=run, dagster_event=failure)
        sensor(context.for_run_failure())
    sent = alerts(demo_dir)
    assert len(sent) == 1
    a = sent[0]
    assert a["kind"] == "run_failure" and a["job"] == "verify_database" and a["target"] == "goals"
    assert a["step"] == "verify" and a["run_id"] == result.run_id
    assert a["run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert "schema_matches_reference" in a["error"] and "\n" not in a["error"]
    assert a["report_path"].endswith(".md") and "verify_database" in a["report_path"]


@pytest.mark.parametrize("password", ["hunter2-secret"])
def test_database_password_is_collected_as_a_secret(demo_dir, password):
    from maintenance_pipeline.core.run.alerts import config_secrets as secrets

    config = load_config(write_config(demo_dir, {"goals": demo_target(
        url=f"postgresql+psycopg://app:{password}@127.0.0.1:1/app")}))
    assert password in secrets(config)


def test_every_failed_run_of_this_product_is_alerted_once_wherever_it_ran(demo_dir, home):
    """A command-line run (executed in its own process) fails: the run-failure sensor alerts it, once; a failed run
    of another code location in the same instance is not this product's to alert."""
    from maintenance_pipeline import cli

    config_path = write_config(demo_dir)
    defs = build_definitions(load_config(config_path))

    @dg.op
    def other_teams_op():
        raise RuntimeError("not ours")

    @dg.job(tags={"database": "goals"})  # even on a database of the same name
    def other_teams_job():
        other_teams_op()

    sensor = defs.resolve_sensor_def("alert_on_run_failure")
    with dg.DagsterInstance.get() as instance:
        def evaluate(cursor):
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                                definitions=defs)).cursor

        cursor = evaluate(None)  # the sensor's first tick starts from now
        assert cli.main(["--config", str(config_path), "run", "verify_database", "goals"]) == 1  # the demo's drift
        assert not other_teams_job.execute_in_process(instance=instance, raise_on_error=False).success
        for _ in range(3):
            cursor = evaluate(cursor)
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name="verify_database"))
        assert run.remote_job_origin.location_name == "maintenance_pipeline"  # a run of the code location
    sent = [a for a in alerts(demo_dir) if a["kind"] == "run_failure"]
    assert [(a["run_id"], a["job"], a["step"]) for a in sent] == [(run.run_id, "verify_database", "verify")]
    assert "schema_matches_reference" in sent[0]["error"] and sent[0]["report_path"].endswith(".md")


def test_every_verified_backup_materializes_the_backups_asset_with_a_freshness_window(demo_dir):
    config = load_config(write_config(demo_dir, backups={"dir": "backups", "fresh_within_hours": 30}))
    defs = build_definitions(config)
    spec = next(s for s in defs.assets if s.key == dg.AssetKey(["backups", "goals"]))
    assert spec.freshness_policy is not None and spec.freshness_policy.fail_window.to_timedelta() == \
        datetime.timedelta(hours=30)
    with dg.instance_for_test() as instance:
        defs.resolve_job_def("maintain_database").execute_in_process(partition_key="goals", instance=instance)
        records = instance.fetch_materializations(dg.AssetKey(["backups", "goals"]), limit=5).records
        assert len(records) == 1
        meta = records[0].asset_materialization.metadata
        assert meta["label"].value == "pre-migration" and meta["bytes"].value > 0 and len(meta["sha256"].value) == 64
