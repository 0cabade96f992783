"""What open-source Dagster does not alert by itself, read from what the catalog shows: a backups asset whose freshness
turns FAIL (and fresh again), a check that starts failing (and passes again). Real runs on a real instance; the
freshness state is the one Dagster's own freshness daemon records (its evaluation run here, on the code location
loaded as the daemon loads it)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import dagster as dg
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.freshness import FreshnessDaemon

from targets import demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration.definitions import build_definitions

BACKUPS = dg.AssetKey(["backups", "goals"])


def alerts(folder, *kinds) -> list[dict]:
    path = folder / "alerts.jsonl"
    sent = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [a for a in sent if a["kind"] in kinds]


def tick(defs, instance, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
    result = defs.resolve_sensor_def("alert_on_checks_and_freshness").evaluate_tick(context)
    return result.cursor


def backup_recorded(instance, hours_ago: float) -> None:
    """A verified backup's materialization as the backup op records it, made ``hours_ago`` (the nightly of then)."""
    materialization = dg.AssetMaterialization(asset_key=BACKUPS, metadata={"label": "nightly"})
    instance.store_event(EventLogEntry(
        error_info=None, level="INFO", user_message="", run_id=RUNLESS_RUN_ID, timestamp=time.time() - hours_ago * 3600,
        dagster_event=DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, RUNLESS_JOB_NAME,
                                   event_specific_data=StepMaterializationData(materialization))))


def freshness_daemon_iteration(instance, config_path) -> None:
    """One evaluation of Dagster's freshness daemon over the code location (as ``dagster-daemon`` loads it)."""
    module = config_path.parent / "location.py"
    module.write_text("from maintenance_pipeline.core.config import load_config\n"
                      "from maintenance_pipeline.orchestration.definitions import build_definitions\n"
                      f"defs = build_definitions(load_config({str(config_path)!r}))\n")
    target = InProcessTestWorkspaceLoadTarget(InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(module), attribute="defs")))
    with WorkspaceProcessContext(instance, target) as workspace:
        asyncio.run(FreshnessDaemon()._evaluate_assets(workspace))  # noqa: SLF001 - the daemon's own iteration


def test_the_stale_backup_alert_follows_dagsters_freshness_state(demo_dir):
    config_path = write_config(demo_dir, backups={"dir": "backups", "fresh_within_hours": 26})
    defs = build_definitions(load_config(config_path))
    with dg.instance_for_test() as instance:
        cursor = tick(defs, instance)  # the first tick takes the state as it is: nothing known yet
        backup_recorded(instance, hours_ago=27)  # the last nightly backup was 27 hours ago: a night was missed
        freshness_daemon_iteration(instance, config_path)
        [record] = instance.get_freshness_state_records([BACKUPS]).values()
        assert record.freshness_state == FreshnessState.FAIL  # what the UI shows
        assert alerts(demo_dir, "stale_backup") == []  # not before the sensor reads it
        for _ in range(3):
            cursor = tick(defs, instance, cursor)
        [stale] = alerts(demo_dir, "stale_backup")
        assert stale["target"] == "goals" and "was made 27.0 h ago (freshness window 26 h" in stale["error"]

        # the next night: a verified backup materializes the asset, the daemon says PASS, one resolved notice
        defs.resolve_job_def("verify_database").execute_in_process(partition_key="goals", instance=instance,
                                                                   raise_on_error=False)
        freshness_daemon_iteration(instance, config_path)
        assert instance.get_freshness_state_records([BACKUPS])[BACKUPS].freshness_state == FreshnessState.PASS
        cursor = tick(defs, instance, cursor)
        cursor = tick(defs, instance, cursor)
        [fresh] = alerts(demo_dir, "backup_fresh")
        assert fresh["target"] == "goals" and len(alerts(demo_dir, "stale_backup")) == 1
        assert fresh["error"] == "backups/goals is fresh again: a verified backup was made within 26 h"

    # and the drift sensor no longer judges freshness from the manifests on its own
    with dg.instance_for_test() as instance:
        drift = defs.resolve_sensor_def("schema_drift_sensor")
        drift.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert len(alerts(demo_dir, "stale_backup")) == 1


def test_a_check_that_starts_failing_is_alerted_once_and_resolved_once(demo_dir):
    # the demo's reference is the live file itself: verify passes; a flag table makes a user check fail
    flag = {"name": "no open flag", "sql": "SELECT count(*) FROM mp_flag", "expect": 0}
    config = load_config(write_config(demo_dir, {"goals": demo_target(reference={"url": "sqlite:///data/goals.db"},
                                                                      checks=[flag])}))
    defs = build_definitions(config)
    db = demo_dir / "data" / "goals.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE mp_flag (x)")

    def verify():
        return defs.resolve_job_def("verify_database").execute_in_process(partition_key="goals", instance=instance,
                                                                          raise_on_error=False)

    with dg.instance_for_test() as instance:
        assert verify().success
        cursor = tick(defs, instance)  # the first tick: the state as it is (all passing)
        with sqlite3.connect(db) as conn:
            conn.execute("INSERT INTO mp_flag VALUES (1)")
        failed = verify()
        assert not failed.success
        cursor = tick(defs, instance, cursor)
        [alert] = alerts(demo_dir, "check_failed")
        assert alert["target"] == "goals" and alert["check"] == "no open flag" and alert["run_id"] == failed.run_id
        assert alert["job"] == "verify_database" and "returned 1, expected 0" in alert["error"]
        assert alert["run_url"] == f"http://127.0.0.1:3000/runs/{failed.run_id}"
        assert not verify().success  # failing again the next night: no second alert (the run's failure is alerted)
        cursor = tick(defs, instance, cursor)
        assert len(alerts(demo_dir, "check_failed")) == 1
        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM mp_flag")
        passed = verify()
        assert passed.success
        cursor = tick(defs, instance, cursor)
        cursor = tick(defs, instance, cursor)
        [resolved] = alerts(demo_dir, "check_resolved")
        assert resolved["check"] == "no open flag" and resolved["run_id"] == passed.run_id
        assert len(alerts(demo_dir, "check_failed")) == 1
        # the warning-level check (pending revisions) failing is shown in the catalog, never alerted
        assert [a["check"] for a in alerts(demo_dir, "check_failed", "check_resolved")] == ["no open flag"] * 2
