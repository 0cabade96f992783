"""The production dagster.yaml example (docs/production) is a valid instance config in the 1.13 form: storage in
PostgreSQL, one run per database and a pool for backups (``concurrency:``), run monitoring for the jobs'
``dagster/max_runtime`` tag."""

from __future__ import annotations

import shutil

import dagster as dg
import yaml

from targets import ROOT


def test_example_instance_config_runs_on_postgres_with_one_run_per_database(pg, tmp_path, monkeypatch):
    shutil.copyfile(ROOT / "docs" / "production" / "dagster.yaml", tmp_path / "dagster.yaml")
    pg.create_database("dagster_yaml_check")
    monkeypatch.setenv("DAGSTER_PG_URL", pg.url("dagster_yaml_check").replace("+psycopg:", "+psycopg2:"))
    settings = yaml.safe_load((ROOT / "docs" / "production" / "dagster.yaml").read_text())
    # the 1.13 form: a concurrency block (runs and pools), run monitoring for the jobs' dagster/max_runtime tag
    assert "run_coordinator" not in settings
    limits = settings["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "database", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    assert settings["concurrency"]["pools"]["default_limit"] == 2 and settings["run_monitoring"]["enabled"]
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_runs() == []
        assert instance.run_monitoring_enabled
        concurrency = instance.get_concurrency_config()  # what the daemon's queue applies
        assert concurrency.run_queue_config.max_concurrent_runs == 4
        assert {"key": "database", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in \
            concurrency.run_queue_config.tag_concurrency_limits
        assert concurrency.pool_config.default_pool_limit == 2
    from maintenance_pipeline.orchestration.definitions import build_definitions
    from maintenance_pipeline.orchestration.ops import BACKUP_POOL
    from targets import write_config
    from maintenance_pipeline.core.config import load_config

    defs = build_definitions(load_config(write_config(tmp_path)))
    job = defs.resolve_job_def("maintain_database")
    assert int(job.tags["dagster/max_runtime"]) > 0
    assert job.graph.node_named("backup").definition.pool == BACKUP_POOL
