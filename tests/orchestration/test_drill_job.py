"""The restore drill in Dagster: the ``restore_drill`` job (partitioned, tagged), its checks ``restore_drill`` and
``pending_migration_rehearsal`` on ``backups/<target>`` with their history, RPO / RTO / size on an observation of
that asset (never on ``databases/<target>``, never a materialization: freshness is the backups' own), a failed drill
failing its run and alerting with the backup named, and the ``nightly_restore_drill`` schedule, on by default."""

from __future__ import annotations

import datetime
import json

import dagster as dg
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from targets import sha256, write_config
from maintenance_pipeline.core.backup import sha256_file
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConfigError
from maintenance_pipeline.orchestration.definitions import build_definitions

BACKUPS = dg.AssetKey(["backups", "goals"])
DATABASE = dg.AssetKey(["databases", "goals"])
CHECKS = ("restore_drill", "pending_migration_rehearsal")


def _history(instance, check: str) -> list:
    return instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(BACKUPS, check), limit=10)


def _run(defs, job: str, instance, **kw):
    return defs.resolve_job_def(job).execute_in_process(partition_key="goals", instance=instance,
                                                        raise_on_error=False, **kw)


def _alerts(folder) -> list[dict]:
    path = folder / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_drill_job_records_its_checks_and_figures_on_the_backups_asset(demo_config, demo_dir):
    defs = build_definitions(demo_config)
    job = defs.resolve_job_def("restore_drill")
    assert job.partitions_def.get_partition_keys() == ["goals"] and job.executor_def.name == "in_process"
    assert {n.name for n in job.nodes} == {"drill", "report"} and all(n.definition.description for n in job.nodes)
    assert {k.name: {i: v.node for i, v in d.items()} for k, d in job.dependencies.items()} == \
        {"drill": {}, "report": {"started": "drill"}}
    declared = {c.key.name for cd in defs.asset_checks for c in cd.check_specs if c.asset_key == BACKUPS}
    assert set(CHECKS) <= declared
    db = demo_dir / "data" / "goals.db"
    with dg.instance_for_test() as instance:
        _run(defs, "verify_database", instance)  # the nightly's backup (the run fails on the demo's drift)
        observed = len(instance.fetch_observations(DATABASE, limit=10).records)
        made = len(instance.fetch_materializations(BACKUPS, limit=10).records)
        before = sha256(db)
        result = _run(defs, "restore_drill", instance)
        assert result.success
        assert sha256(db) == before
        assert instance.get_run_by_id(result.run_id).tags["database"] == "goals"
        for check in CHECKS:
            history = _history(instance, check)
            assert [h.status for h in history] == [AssetCheckExecutionRecordStatus.SUCCEEDED], check
        evaluation = _history(instance, "restore_drill")[0].event.dagster_event.event_specific_data
        assert "RPO" in evaluation.metadata["detail"].value and evaluation.metadata["backup"].value.endswith(".db")
        observation = instance.fetch_observations(BACKUPS, limit=10).records[0].asset_observation
        meta = observation.metadata
        assert isinstance(meta["rpo_hours"], dg.FloatMetadataValue) and 0 <= meta["rpo_hours"].value < 1
        assert isinstance(meta["rto_seconds"], dg.FloatMetadataValue) and meta["rto_seconds"].value > 0
        assert isinstance(meta["backup_bytes"], dg.IntMetadataValue) and meta["backup_bytes"].value > 0
        assert "## Drill" in meta["report"].value
        # nothing on the database's asset, and no materialization of the backups' (their freshness is untouched)
        assert len(instance.fetch_observations(DATABASE, limit=10).records) == observed
        assert len(instance.fetch_materializations(BACKUPS, limit=10).records) == made
        drill_step = next(e for e in result.all_events if e.step_key == "drill" and e.is_successful_output
                          and e.event_specific_data.step_output_handle.output_name == "result")
        assert drill_step.event_specific_data.metadata["rto_seconds"].value == meta["rto_seconds"].value


def test_a_failed_drill_fails_its_run_and_alerts_naming_the_backup(demo_config, demo_dir):
    defs = build_definitions(demo_config)
    with dg.instance_for_test() as instance:
        _run(defs, "verify_database", instance)
        backup = next((demo_dir / "backups" / "goals").glob("*.db"))
        size = backup.stat().st_size
        with open(backup, "r+b") as f:  # bytes flipped after its manifest was written
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        result = _run(defs, "restore_drill", instance)
        assert not result.success
        history = _history(instance, "restore_drill")
        assert history[0].status == AssetCheckExecutionRecordStatus.FAILED
        detail = history[0].event.dagster_event.event_specific_data.metadata["detail"].value
        assert backup.name in detail and "does not match its manifest" in detail
        assert _history(instance, "pending_migration_rehearsal") == []  # nothing restored: nothing rehearsed
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        sensor = defs.resolve_sensor_def("alert_on_run_failure")
        context = dg.build_run_status_sensor_context(sensor_name="alert_on_run_failure", dagster_instance=instance,
                                                     dagster_run=run, dagster_event=failure)
        sensor(context.for_run_failure())
    sent = [a for a in _alerts(demo_dir) if a["kind"] == "run_failure"]
    assert len(sent) == 1
    a = sent[0]
    assert a["job"] == "restore_drill" and a["target"] == "goals" and a["step"] == "drill"
    assert backup.name in a["error"] and "\n" not in a["error"] and "does not match its manifest" in a["error"]
    assert a["report_path"].endswith(".md") and "restore_drill" in a["report_path"]


def test_a_manifest_edited_to_match_its_tampered_backup_is_caught_by_the_event_log(demo_config, demo_dir):
    defs = build_definitions(demo_config)
    with dg.instance_for_test() as instance:
        _run(defs, "verify_database", instance)  # the event log records the backup's sha256
        backup = next((demo_dir / "backups" / "goals").glob("*.db"))
        old = sha256_file(backup)
        with open(backup, "r+b") as f:
            f.seek(backup.stat().st_size // 2)
            byte = f.read(1)
            f.seek(backup.stat().st_size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        assert sha256_file(backup) != old
        manifest = backup.with_suffix(".json")
        m = json.loads(manifest.read_text())
        m["sha256"] = sha256_file(backup)  # the manifest now vouches for the altered bytes
        manifest.write_text(json.dumps(m))
        result = _run(defs, "restore_drill", instance)
        assert not result.success
        detail = _history(instance, "restore_drill")[0].event.dagster_event.event_specific_data.metadata["detail"]
        assert "the manifest was edited" in detail.value and backup.name in detail.value


def test_the_nightly_restore_drill_schedule_is_on_by_default_after_the_verification(demo_dir):
    defs = build_definitions(load_config(write_config(demo_dir, schedule={"cron": "30 1 * * *",
                                                                          "timezone": "Europe/Berlin"})))
    schedule = defs.resolve_schedule_def("nightly_restore_drill")
    assert schedule.job_name == "restore_drill" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "30 2 * * *"  # an hour after the nightly verification's 30 1 * * *
    assert schedule.execution_timezone == "Europe/Berlin"
    when = datetime.datetime(2026, 11, 24, 1, 30, tzinfo=datetime.timezone.utc)
    requests = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when,
                                                                repository_def=defs.get_repository_def())).run_requests
    assert [r.partition_key for r in requests] == ["goals"]
    assert requests[0].tags["database"] == "goals" and requests[0].tags["trigger"] == "schedule"
    assert requests[0].run_key == f"goals:{when.isoformat()}"


@pytest.mark.parametrize("drill, status, cron", [
    ({"enabled": False}, dg.DefaultScheduleStatus.STOPPED, "0 3 * * *"),
    ({"cron": "15 4 * * 1-5"}, dg.DefaultScheduleStatus.RUNNING, "15 4 * * 1-5"),
])
def test_the_drill_is_turned_off_or_moved_in_the_targets_file(demo_dir, drill, status, cron):
    defs = build_definitions(load_config(write_config(demo_dir, drill=drill)))
    schedule = defs.resolve_schedule_def("nightly_restore_drill")
    assert schedule.default_status == status and schedule.cron_schedule == cron


def test_a_bad_drill_section_fails_the_load_naming_the_key(demo_dir):
    with pytest.raises(ConfigError, match=r"drill\.cron .*not a valid cron"):
        load_config(write_config(demo_dir, drill={"cron": "0 25 * * *"}))
    with pytest.raises(ConfigError, match=r"drill\.enable .*not a known key"):
        load_config(write_config(demo_dir, drill={"enable": False}))
    with pytest.raises(ConfigError, match=r"drill\.enabled must be true or false"):
        load_config(write_config(demo_dir, drill={"enabled": "no"}))


def test_schedules_running_false_stops_the_drill_too(demo_dir):
    defs = build_definitions(load_config(write_config(demo_dir, automation={"schedules_running": False})))
    assert defs.resolve_schedule_def("nightly_restore_drill").default_status == dg.DefaultScheduleStatus.STOPPED


def test_the_declared_drill_checks_run_from_the_catalog_without_touching_the_target(demo_config, demo_dir):
    from maintenance_pipeline.core.run.pipeline import run_job

    run_job(demo_config, "goals", "verify_database")  # a verified backup to drill
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    job = dg.define_asset_job("drill_checks_only", selection=dg.AssetSelection.checks_for_assets(BACKUPS))
    defs = dg.Definitions.merge(build_definitions(demo_config), dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("drill_checks_only").execute_in_process(instance=instance)
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(CHECKS) and all(e.passed for e in evaluations.values())
    assert sha256(db) == before
    assert list((demo_dir / "reports" / "goals").glob("*_restore_drill_*.md"))  # its report, like a run's
