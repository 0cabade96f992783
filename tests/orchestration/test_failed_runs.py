"""A failed run as the UI draws it, run the way ``maintenance-pipeline run`` and the daemon run it (the job's own
executor): the failed step says its one line with the report attached and no stack trace, the steps after it did not
run, and the report step did (it publishes the report the failed step wrote). The error is logged once, without the
step's name stuttered in front of it."""

from __future__ import annotations

import dagster as dg
from dagster._core.utils import make_new_run_id

from targets import write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration import command_line
from maintenance_pipeline.orchestration.definitions import build_definitions


def _steps(instance, run_id: str) -> dict[str, str]:
    """Each step's last event: STEP_SUCCESS / STEP_FAILURE (a step with none did not run)."""
    out = {}
    for e in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}):
        out[e.dagster_event.step_key] = e.dagster_event.event_type_value
    return out


def test_a_refusal_in_the_first_step_is_one_clean_line_and_the_report_step_still_runs(demo_dir, home):
    config = load_config(write_config(demo_dir))
    defs = build_definitions(config)
    with dg.DagsterInstance.get() as instance:
        result = command_line.execute(defs.resolve_job_def("restore_database"), "goals", instance,
                                      run_id=make_new_run_id(),
                                      run_config={"ops": {"restore": {"config": {"backup": "backups/goals/no.db"}}}})
        assert not result.success
        assert _steps(instance, result.run_id) == {"backup": "STEP_FAILURE", "report": "STEP_SUCCESS"}
        [failure] = [e for e in result.all_events if e.is_step_failure]
        data = failure.step_failure_data
        assert data.error.stack == [] and data.error.cause is None  # no "Stack Trace" block in the UI
        line = data.user_failure_data.description
        assert data.error.message == f"{line}\n" and "no.db" in line and "\n" not in line
        assert {"report", "report_path", "report_json"} <= set(data.user_failure_data.metadata)
        report = next(e for e in result.all_events if e.step_key == "report" and e.is_successful_output)
        assert report.event_specific_data.metadata["report_path"].value == \
            data.user_failure_data.metadata["report_path"].value
        errors = [e.message for e in instance.all_logs(result.run_id)
                  if e.level == 40 and not e.dagster_event and e.step_key == "backup"]
        assert len(errors) == 1 and errors[0].startswith(line[:40]) and not errors[0].startswith("backup failed")
