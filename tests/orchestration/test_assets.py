"""Each database a Dagster asset (``databases/<target>``) with its checks declared: every run records its checks
in the checks' history, an observation with the numbers the catalog plots, and a schema change as a
materialization; the declared checks also run on their own, read-only."""

from __future__ import annotations

import sqlite3

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from targets import sha256, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration.definitions import build_definitions

KEY = dg.AssetKey(["databases", "goals"])
DECLARED = {"schema_matches_reference", "integrity", "foreign_keys", "rows_preserved", "backup_verified",
            "alembic_at_head", "no_orphaned_goals"}


def _history(instance, check: str) -> list:
    return instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(KEY, check), limit=10)


def test_the_catalog_declares_each_database_and_its_checks(demo_config):
    defs = build_definitions(demo_config)
    spec = next(s for s in defs.assets if s.key == KEY)
    assert spec.group_name == "databases" and spec.kinds == {"sqlite"} and "goals.db" in spec.description
    declared = {c.key.name for cd in defs.asset_checks for c in cd.check_specs if c.asset_key == KEY}
    assert DECLARED <= declared


def test_runs_record_checks_and_the_state_they_measured(demo_dir):
    config = load_config(write_config(demo_dir))
    defs = build_definitions(config)
    with dg.instance_for_test() as instance:
        verify = defs.resolve_job_def("verify_database").execute_in_process(
            partition_key="goals", instance=instance, raise_on_error=False)
        assert not verify.success  # drift before the migration: the run fails, its checks are still recorded
        schema = _history(instance, "schema_matches_reference")
        assert len(schema) == 1 and schema[0].status == AssetCheckExecutionRecordStatus.FAILED
        assert _history(instance, "integrity")[0].status == AssetCheckExecutionRecordStatus.SUCCEEDED
        # the nightly job also says whether Alembic revisions are pending (read-only; a warning, not the verdict)
        at_head = _history(instance, "alembic_at_head")
        assert len(at_head) == 1 and at_head[0].status == AssetCheckExecutionRecordStatus.FAILED
        evaluation = at_head[0].event.dagster_event.event_specific_data
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["detail"].value == "pending: 0002"
        # a user check's evidence: its SQL and the value it expects
        user = _history(instance, "no_orphaned_goals")[0].event.dagster_event.event_specific_data
        assert "NOT EXISTS" in user.metadata["sql"].value and user.metadata["expect"].value == "0"
        maintain = defs.resolve_job_def("maintain_database").execute_in_process(partition_key="goals",
                                                                                 instance=instance)
        assert maintain.success
        for check in DECLARED - {"alembic_at_head"}:
            assert _history(instance, check)[0].status == AssetCheckExecutionRecordStatus.SUCCEEDED, check
        assert _history(instance, "alembic_at_head")[0].status == AssetCheckExecutionRecordStatus.SUCCEEDED
        # both runs read the database: each records what it measured as a materialization (the asset page's header
        # and columns read the latest one); neither needs an observation
        assert instance.fetch_observations(KEY, limit=10).records == []
        materializations = instance.fetch_materializations(KEY, limit=10).records
        assert [m.run_id for m in materializations] == [maintain.run_id, verify.run_id]
        meta = materializations[0].asset_materialization.metadata
        assert materializations[0].asset_materialization.description == "the schema changed"
        assert meta["size_bytes"].value == (demo_dir / "data" / "goals.db").stat().st_size
        assert meta["dagster/row_count"].value > 0 and meta["tables"].value == 13
        assert "alembic" in meta["changes"].value and "goals" in meta["changed_tables"].value.split(", ")
        # the report one click away, failed runs too
        failed_meta = materializations[1].asset_materialization.metadata
        assert failed_meta["status"].value == "failed" and "❌ FAILED" in failed_meta["report"].value
        assert meta["status"].value == "success"
        assert failed_meta["drift_changes"].value == 7 and meta["drift_changes"].value == 7
        # every table's columns as the engine reports them now (PRAGMA table_info, not our snapshot)
        with sqlite3.connect(demo_dir / "data" / "goals.db") as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                                               "IN ('alembic_version', 'sqlite_sequence') ORDER BY name")]
            pragma = [f"{t}.{row[1]}" for t in tables for row in db.execute(f'PRAGMA table_info("{t}")')]
            orphans = len(db.execute("PRAGMA foreign_key_check").fetchall())
        assert len(tables) == 13
        columns = meta["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == pragma
        # the failed verify run's columns: the schema before the migration (no goals.completed_at yet)
        before = [c.name for c in failed_meta["dagster/column_schema"].value.columns]
        assert "goals.completed_at" in [c.name for c in columns] and "goals.completed_at" not in before
        # the numbers of each night: FK orphans (the engine's own count), backup age, integrity duration
        assert meta["fk_orphans"].value == orphans
        assert 0 <= meta["backup_age_hours"].value < 1 and meta["integrity_seconds"].value >= 0
        assert failed_meta["fk_orphans"].value == orphans


def test_the_declared_checks_run_on_their_own_read_only(demo_dir):
    config = load_config(write_config(demo_dir))
    defs = build_definitions(config)
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    job = dg.define_asset_job("checks_only", selection=dg.AssetSelection.checks_for_assets(KEY))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("checks_only").execute_in_process(instance=instance, raise_on_error=False)
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert DECLARED <= set(evaluations)
    assert not evaluations["schema_matches_reference"].passed  # the demo before its migration
    assert evaluations["integrity"].passed and evaluations["foreign_keys"].passed
    assert not evaluations["alembic_at_head"].passed  # 0002 is pending
    assert sha256(db) == before and not (demo_dir / "backups").exists()  # read-only: nothing written
