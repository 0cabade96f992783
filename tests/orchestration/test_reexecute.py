"""A failed run re-executed from its failed step, through Dagster's API on a real instance: the steps that
succeeded are not run again (their outputs come back from Dagster's IO manager), and no output Dagster
wrote to disk holds a secret of the targets file (the run state refers to it by path, the target by name)."""

from __future__ import annotations

import sqlite3

import dagster as dg

from targets import demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration.ops import run_report

TOKEN = "tok-9f3c1e-never-on-disk"
FLAG = {"name": "no open flag", "sql": "SELECT count(*) FROM mp_flag", "expect": 0}


def _started_steps(instance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START).records
    return {r.event_log_entry.dagster_event.step_key for r in records}


def test_a_failed_verify_is_re_executed_from_its_failed_step(demo_dir, tmp_path):
    db = demo_dir / "data" / "goals.db"
    with sqlite3.connect(db) as conn:  # a check that fails once: the operator then clears the flag
        conn.execute("CREATE TABLE mp_flag (x)")
        conn.execute("INSERT INTO mp_flag VALUES (1)")
    # the reference is the live file itself (verify_database of the unmigrated demo would fail on drift)
    target = demo_target(reference={"url": "sqlite:///data/goals.db"}, checks=[FLAG])
    path = write_config(demo_dir, {"goals": target}, alerts={"log_file": "alerts.jsonl",
                                                             "webhook_url": f"http://127.0.0.1:9/hook?token={TOKEN}"})
    job = dg.build_reconstructable_job("maintenance_pipeline.orchestration.definitions", "job_for",
                                       reconstructable_args=(str(path), "verify_database"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        with dg.execute_job(job, instance, tags={"dagster/partition": "goals"}) as first:
            assert not first.success
        # the report step runs after the failed step too: it publishes the report the failed step wrote
        assert _started_steps(instance, first.run_id) == {"backup", "diff", "verify", "report"}

        with sqlite3.connect(db) as conn:
            conn.execute("DELETE FROM mp_flag")
        with dg.execute_job(job, instance, tags={"dagster/partition": "goals"},
                            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance)) as second:
            assert second.success
        # backup and diff were reused; verify, the job's last step, wrote the new run's report
        assert _started_steps(instance, second.run_id) == {"verify"}
        _, report = run_report(load_config(path), "goals", "verify_database", second.run_id)
        assert report["status"] == "success" and report["run_id"] == second.run_id

    written = [p for p in home.rglob("*") if p.is_file()]
    assert any("storage" in p.parts for p in written)  # the IO manager did write the steps' outputs
    leaked = [str(p) for p in written if TOKEN.encode() in p.read_bytes()]
    assert not leaked, leaked
