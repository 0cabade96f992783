"""Bad PostgreSQL connections (and a missing pg_dump) through the Dagster job: a failed run, an alert, no
change, no password anywhere."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from targets import demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration.definitions import build_definitions
from pgserver import SUPERPASS, free_port

PASSWORD = "Sup3r-Secret-Pw-42"


@pytest.mark.parametrize("case", ["wrong_password", "unreachable_port", "missing_database", "pg_dump_missing"])
def test_bad_connection_fails_the_run_alerts_and_leaks_no_password(pg, tmp_path, monkeypatch, case):
    good = pg.create_database("errs_goals")
    var = "${PW_UNDER_TEST}"  # the targets file names the variable; the value comes from the environment
    templated = {
        "wrong_password": pg.url("errs_goals", password=var),
        "unreachable_port": pg.url("errs_goals", password=var).replace(f":{pg.port}/", f":{free_port()}/"),
        "missing_database": pg.url("no_such_db", password=var),
        "pg_dump_missing": pg.url("errs_goals", password=var),
    }[case]
    secret = PASSWORD if case == "wrong_password" else SUPERPASS  # the right one, for what is not there
    if case == "pg_dump_missing":
        (tmp_path / "empty-bin").mkdir()
        monkeypatch.setenv("MAINTENANCE_PG_BINDIR", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("PW_UNDER_TEST", secret)
    config = load_config(write_config(tmp_path, {"goals": demo_target(url=templated, reference={"url": good},
                                                                      migrations=None, baseline_revision=None)}))
    before = pg.psql("SELECT count(*) FROM pg_database")
    defs = build_definitions(config)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("maintain_database").execute_in_process(
            partition_key="goals", instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert failure.step_key == "backup"
        message = failure.step_failure_data.user_failure_data.description
        assert "\n" not in message
        assert ("pg_dump not found" in message) if case == "pg_dump_missing" else ("cannot connect" in message.lower())
        run = instance.get_run_by_id(result.run_id)
        run_failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        sensor = defs.resolve_sensor_def("alert_on_run_failure")
        sensor(dg.build_run_status_sensor_context(sensor_name="alert_on_run_failure", dagster_instance=instance,
                                                  dagster_run=run, dagster_event=run_failure).for_run_failure())
        events_text = "\n".join(str(e) for e in instance.all_logs(result.run_id))
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1 and alerts[0]["kind"] == "run_failure" and alerts[0]["step"] == "backup"
    reports = list((tmp_path / "reports" / "goals").glob("*.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["status"] == "failed"
    # nothing was created: no backup, no database
    assert not list((tmp_path / "backups").rglob("*.dump"))
    assert pg.psql("SELECT count(*) FROM pg_database") == before
    # the password is nowhere: not in the alert, the report, the run's events and metadata
    for path in [tmp_path / "alerts.jsonl", *(tmp_path / "reports").rglob("*")]:
        if path.is_file():
            assert secret not in path.read_text(), path
    assert secret not in events_text and secret not in message
