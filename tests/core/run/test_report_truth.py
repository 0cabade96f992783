"""Reports tell the truth: a section whose step did not run says so; a restore names the backup it restored and
reads drift from the reference as information; real runs list the SQL they executed; a pinned backup comes
with the command that restores it; the header has the product version and the Alembic revision; a backup's
label follows what launched the run."""

from __future__ import annotations

from targets import demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.core.run.report import render_markdown


def test_a_run_that_failed_at_backup_says_diff_and_checks_were_not_checked(demo_dir):
    config = load_config(write_config(demo_dir, {"goals": demo_target(url="sqlite:///data/missing.db")}))
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "backup"
    assert report["drift_before"] is None
    md = render_markdown(report)
    assert "## Drift found\n\nNot checked (the run failed at backup)." in md
    assert "## Verification\n\nNot checked (the run failed at backup)." in md
    assert "already matched" not in md


def test_a_real_run_lists_its_sql_the_restore_command_the_version_and_the_revision(demo_config):
    report = run_job(demo_config, "goals", "maintain_database")
    assert report["status"] == "success" and report["sql"]
    md = render_markdown(report)
    assert "The SQL executed, in order:" in md and "ALTER TABLE goals ADD COLUMN completed_at" in md
    backup = report["backup"]
    assert backup["pinned"] and backup["label"] == "pre-migration"
    assert f"maintenance-pipeline run restore_database goals --backup {backup['path']}" in md
    assert "**Product:** maintenance_pipeline " in md and "Alembic revision `0002`" in md
    # which drift the revision fixed, which alignment fixed (the demo's 0002 leaves completed_at to alignment)
    fixed = {f"{c['table']}.{c['name']}" if c["name"] else c["table"]: c.get("fixed_by") for c in report["drift_before"]}
    assert fixed["goals.completed_at"] == "alignment" and fixed["program_day_templates"] == "revision"
    assert "| Fixed by |" in md


def test_a_restore_names_its_backup_and_reads_drift_as_information(demo_config):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    first = next((demo_config.backups.dir / "goals").glob("*pre-migration*.db"))
    report = run_job(demo_config, "goals", "restore_database", restore_backup=str(first))
    assert report["status"] == "success", report["error"]
    md = render_markdown(report)
    assert "## Restored" in md and first.name in md
    assert "## Compared with the reference" in md and "For information" in md
    assert "already matched" not in md


def test_a_verify_backup_is_labelled_by_what_launched_it(demo_config):
    labels = {trigger: run_job(demo_config, "goals", "verify_database", trigger=trigger)["backup"]["label"]
              for trigger in ("manual", "schedule", "drift")}
    assert labels == {"manual": "manual", "schedule": "nightly", "drift": "drift"}
