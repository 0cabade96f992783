"""The whole error reaches the report: a failed step's line is short only on the command line, in Dagster's
failure and in alerts (at most 300 characters, its fix kept); the report's JSON holds the whole text
(``error_detail``) and its Markdown shows it in a code block; the run's log has it at error level; the targets
file's secrets are masked in all of them; no report says "(the rest is in the report)". A report that cannot be
written after a migration committed says so: the database is changed, and where its backup is.

Real SQLite files, a real Dagster instance (``DAGSTER_HOME``) through the command line, no mocks."""

from __future__ import annotations

import json
import re
import sqlite3

import dagster as dg
import pytest

from targets import copy_migrations, demo_target, revision, write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ReportError
from maintenance_pipeline.core.run.pipeline import run_job

TOKEN = "Tok3n-in-the-webhook-path"  # a secret of the targets file (the webhook's token)
LONG_NAME = "reason_" + "x" * 380 + "_end_of_the_server_reason"  # far past the 300-character line


def _long_failure_config(demo_dir):
    # the driver's reason (no such table: <400 characters>) ends with the targets file's secret
    body = f'    op.execute(\'SELECT 1 FROM "{LONG_NAME} {TOKEN}"\')'
    migrations = copy_migrations(demo_dir, {"0003_long.py": revision("0003", "0002", body)})
    return write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))},
                        alerts={"log_file": "alerts.jsonl", "webhook_url": f"http://127.0.0.1:9/hooks/{TOKEN}"})


def _texts(folder) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.rglob("*")) if p.is_file())


def _code_blocks(md: str) -> list[str]:
    from markdown_it import MarkdownIt

    return [t.content for t in MarkdownIt("commonmark").parse(md) if t.type == "fence"]


def test_the_report_holds_the_whole_error_and_the_line_stays_short(demo_dir):
    config = load_config(_long_failure_config(demo_dir))
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    line, whole = report["error"], report["error_detail"]
    assert len(line) <= 300 and "\n" not in line
    assert line.startswith("Alembic revision 0003 failed: ")
    # the whole text: the server's reason to its end, the secret masked
    assert f"no such table: {LONG_NAME} ***" in whole
    assert TOKEN not in whole and TOKEN not in line
    md_path, json_path = (report["report_paths"][k] for k in ("markdown", "json"))
    md, data = open(md_path).read(), json.loads(open(json_path).read())
    assert data["error_detail"] == whole and data["error"] == line
    assert "## Error" in md and any(f"no such table: {LONG_NAME} ***" in block for block in _code_blocks(md))
    everything = _texts(demo_dir / "reports")
    assert "the rest is in the report" not in everything
    assert TOKEN not in everything


def test_the_command_line_is_short_and_the_runs_log_has_the_whole_error(demo_dir, home, capsys):
    path = _long_failure_config(demo_dir)
    assert cli.main(["--config", str(path), "run", "maintain_database", "goals"]) == 1
    out = capsys.readouterr().out
    error = next(x for x in out.splitlines() if x.startswith("error: "))
    assert len(error) <= 300, error
    assert "(the rest is in the report)" in error and error.endswith("fix the revision and rerun")  # the fix stays
    assert TOKEN not in out
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        logs = instance.all_logs(run.run_id)
    errors = [e.user_message for e in logs if e.level >= 40 and e.step_key == "migrate"]  # logging.ERROR
    assert any(f"no such table: {LONG_NAME} ***" in m for m in errors), errors
    assert not any(TOKEN in (e.user_message or "") for e in logs)
    failure = next(e for e in logs if e.is_dagster_event and e.dagster_event.is_step_failure)
    description = failure.dagster_event.step_failure_data.user_failure_data.description
    assert len(description) <= 300 and TOKEN not in description
    report = json.loads(next((demo_dir / "reports" / "goals").glob("*.json")).read_text())
    assert f"no such table: {LONG_NAME} ***" in report["error_detail"]
    assert "the rest is in the report" not in _texts(demo_dir / "reports")


def _unwritable_reports(demo_dir):
    (demo_dir / "blocker").write_text("a file where the reports folder's parent should be\n")
    return write_config(demo_dir, reports={"dir": "blocker/reports"})


def _columns(path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[1] for r in con.execute("PRAGMA table_info(goals)")}
    finally:
        con.close()


def test_a_report_that_cannot_be_written_after_a_commit_says_the_database_changed(demo_dir):
    config = load_config(_unwritable_reports(demo_dir))
    with pytest.raises(ReportError) as e:
        run_job(config, "goals", "maintain_database")
    message = str(e.value)
    assert "completed_at" in _columns(demo_dir / "data" / "goals.db")  # it did commit
    backup = next((demo_dir / "backups" / "goals").glob("*pre-migration*.db"))
    assert message.startswith("the migration committed: goals.db is changed (")
    assert f"backup from before the run: {backup}" in message
    assert "report could not be written to" in message and "before its report was written" not in message


def test_the_command_line_and_the_runs_log_say_the_migration_committed(demo_dir, home, capsys):
    path = _unwritable_reports(demo_dir)
    assert cli.main(["--config", str(path), "run", "maintain_database", "goals"]) == 1
    out = capsys.readouterr().out
    error = next(x for x in out.splitlines() if x.startswith("error: "))
    assert len(error) <= 300, error
    assert error.startswith("error: the migration committed: goals.db is changed (")
    backup = next((demo_dir / "backups" / "goals").glob("*pre-migration*.db"))
    assert str(backup) in error
    assert "the run failed before its report was written" not in out
    assert "completed_at" in _columns(demo_dir / "data" / "goals.db")
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        logs = instance.all_logs(run.run_id)
    # said by the job's last step, which writes the report (the report step then says none was written)
    said = [e.user_message for e in logs if e.level >= 40 and e.step_key == "verify"]
    assert any(m.startswith("the migration committed: goals.db is changed (") and str(backup) in m
               for m in said), said
    # the report's text is in the run's log, since its file could not be written
    assert any(re.search(r"^# Database maintenance report — goals$", e.user_message or "", re.M) for e in logs)
