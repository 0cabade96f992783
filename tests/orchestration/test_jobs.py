"""The Dagster layer: the three jobs, partitions, tags, run config, failures with their report attached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from targets import ROOT, demo_target, sha256, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConfigError
from maintenance_pipeline.orchestration.definitions import build_definitions


@pytest.fixture
def defs(demo_config):
    return build_definitions(demo_config)


def run(defs, job: str, *, run_config=None, tags=None, instance=None):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key="goals", raise_on_error=False, run_config=run_config, tags=tags, instance=instance)


def step_failure_metadata(result) -> dict:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.user_failure_data.metadata


def test_jobs_are_partitioned_by_target_and_use_the_in_process_executor(defs):
    for name in ("maintain_database", "verify_database", "restore_database"):
        job = defs.resolve_job_def(name)
        assert job.partitions_def.get_partition_keys() == ["goals"]
        assert job.executor_def.name == "in_process"
        assert job.description
        assert all(node.definition.description for node in job.nodes)


def test_maintain_database_runs_the_seed_scenario(defs, demo_dir):
    with dg.instance_for_test() as instance:
        result = run(defs, "maintain_database", instance=instance)
        assert result.success
        tags = instance.get_run_by_id(result.run_id).tags
    assert tags["database"] == "goals" and tags["dagster/partition"] == "goals"
    out = result.output_for_node("report")
    assert out["status"] == "success"
    report = json.loads(Path(out["report_paths"]["json"]).read_text())
    assert report["tables_after"]["goals"] == {"columns": 22, "rows": 39}
    assert report["drift_after"] == [] and all(c["passed"] for c in report["checks"])
    # the Markdown report and the diff/checks tables are attached to the run
    report_meta = next(e for e in result.all_events
                       if e.is_successful_output and e.step_key == "report").event_specific_data.metadata
    assert isinstance(report_meta["report"], dg.MarkdownMetadataValue)
    assert "completed_at" in report_meta["report"].value
    diff_meta = next(e for e in result.all_events
                     if e.is_successful_output and e.step_key == "diff").event_specific_data.metadata
    assert isinstance(diff_meta["drift"], dg.TableMetadataValue)
    assert any(r.data["object"] == "goals.completed_at" for r in diff_meta["drift"].records)


def test_verify_before_migration_fails_with_report_attached_and_changes_nothing(defs, demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    result = run(defs, "verify_database")
    assert not result.success
    meta = step_failure_metadata(result)
    assert "schema_matches_reference" in meta["report"].value
    report = json.loads(Path(meta["report_json"].value).read_text())
    assert report["status"] == "failed" and report["failed_step"] == "verify"
    assert sha256(db) == before


def test_run_config_overrides_align_and_dry_run(demo_dir):
    config = load_config(write_config(demo_dir, {"goals": demo_target(migrations=None, baseline_revision=None)}))
    defs = build_definitions(config)
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    dry = run(defs, "maintain_database", run_config={"ops": {"migrate": {"config": {"dry_run": True, "align": "full"}}}})
    assert dry.success
    assert sha256(db) == before
    sql_meta = next(e for e in dry.all_events
                    if e.is_successful_output and e.step_key == "migrate").event_specific_data.metadata
    assert "DROP TABLE scheduled_sessions" in sql_meta["sql"].value.replace('"', "")

    refused = run(defs, "maintain_database")  # the target's align: additive
    assert not refused.success
    assert "align: full" in step_failure_metadata(refused)["report"].value

    full = run(defs, "maintain_database", run_config={"ops": {"migrate": {"config": {"align": "full"}}}})
    assert full.success


def test_bad_align_in_run_config_fails_clearly(defs):
    result = run(defs, "maintain_database", run_config={"ops": {"migrate": {"config": {"align": "sideways"}}}})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "sideways" in failure.step_failure_data.error.message


def test_restore_database_restores_the_newest_verified_backup(defs, demo_dir):
    assert run(defs, "maintain_database").success
    result = run(defs, "restore_database")  # empty backup = newest verified (not the run's own safety copy)
    assert result.success
    report = json.loads(Path(result.output_for_node("report")["report_paths"]["json"]).read_text())
    assert "pre-migration" in report["restored_from"]["path"]
    assert report["tables_after"]["goals"]["columns"] == 20


def test_bad_targets_file_fails_the_code_location_load_with_one_line(tmp_path):
    bad = tmp_path / "maintenance.yaml"
    bad.write_text("targets:\n  goals:\n    url: sqlite:///x.db\n    reference: {url: sqlite:///y.db}\n    colour: red\n")
    with pytest.raises(ConfigError) as e:
        build_definitions(load_config(bad))
    assert "targets.goals.colour" in str(e.value) and str(bad) in str(e.value)


def test_dagster_cli_runs_a_partitioned_job(demo_dir, tmp_path):
    """The documented command line: `dagster job execute -m maintenance_pipeline -j NAME --tags partition`."""
    env = {"MAINTENANCE_CONFIG": str(demo_dir / "maintenance.yaml"), "DAGSTER_HOME": str(tmp_path / "home"),
           "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    write_config(demo_dir)
    (tmp_path / "home").mkdir()
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "maintenance_pipeline",
         "-j", "verify_database", "--tags", '{"dagster/partition": "goals"}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    # verify before migration fails on schema_matches_reference: the run really ran on the partition
    assert "schema_matches_reference" in proc.stdout + proc.stderr
    reports = list((demo_dir / "reports" / "goals").glob("*_verify_database_*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["target"] == "goals"
