"""The production dagster.yaml example is a valid instance config: storage in PostgreSQL, one run per database."""

from __future__ import annotations

import shutil

import dagster as dg
import yaml

from conftest import ROOT


def test_example_instance_config_runs_on_postgres_with_one_run_per_database(pg, tmp_path, monkeypatch):
    shutil.copyfile(ROOT / "docs" / "production" / "dagster.yaml", tmp_path / "dagster.yaml")
    pg.create_database("dagster_yaml_check")
    monkeypatch.setenv("DAGSTER_PG_URL", pg.url("dagster_yaml_check").replace("+psycopg:", "+psycopg2:"))
    settings = yaml.safe_load((ROOT / "docs" / "production" / "dagster.yaml").read_text())
    limits = settings["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "database", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_runs() == []
