"""A restore picks what an operator means: without --backup, the pre-migration backup of the newest run that changed
the database (named, with its run and time, in the report and on the command line); "nothing to undo" when no run
changed it or the chosen backup already equals it, before any safety copy is taken; a dry run says what would be put
back and what it would undo; the Launchpad offers the backups to pick from."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import dagster as dg

from targets import sha256, write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.orchestration.definitions import build_definitions
from maintenance_pipeline.orchestration.ops import NEWEST_CHANGE


def _dump(db: Path) -> list[str]:
    """The schema and every row, as SQLite prints them (independent of the product's code)."""
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _safety_copies(demo_dir: Path) -> list[Path]:
    return sorted((demo_dir / "backups" / "goals").glob("*pre-restore*.db"))


def test_without_backup_a_restore_undoes_the_newest_run_that_changed_the_database(demo_dir):
    config = load_config(write_config(demo_dir))
    db = demo_dir / "data" / "goals.db"
    before = _dump(db)
    maintained = run_job(config, "goals", "maintain_database")
    assert maintained["status"] == "success" and _dump(db) != before
    run_job(config, "goals", "verify_database")  # a newer backup, of the migrated state: not what "undo" means
    report = run_job(config, "goals", "restore_database")
    assert report["status"] == "success", report["error"]
    assert report["restored_from"]["path"] == maintained["backup"]["path"]
    assert f"the pre-migration backup of run {maintained['run_id'][:8]} (maintain_database, " in \
        report["restored_from"]["chosen"]
    assert _dump(db) == before  # schema and rows as before the run
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert f"Put back the pre-migration backup of run {maintained['run_id'][:8]}" in md

    # again: the newest change's backup is what the database holds now
    again = run_job(config, "goals", "restore_database")
    assert again["status"] == "failed" and again["failed_step"] == "backup"
    assert again["error"].startswith("nothing to undo: ") and "equals the database" in again["error"]


def test_after_only_verify_runs_there_is_nothing_to_undo_and_no_safety_copy(demo_dir, home, capsys):
    path = write_config(demo_dir)
    db = demo_dir / "data" / "goals.db"
    for _ in range(2):
        cli.main(["--config", str(path), "run", "verify_database", "goals"])
    capsys.readouterr()
    before = sha256(db)
    assert cli.main(["--config", str(path), "run", "restore_database", "goals"]) == 1
    out = capsys.readouterr().out
    assert "error: nothing to undo: no backup of 'goals'" in out and "--backup" in out
    assert sha256(db) == before and _safety_copies(demo_dir) == []
    # a backup that is not there fails before anything is taken, too
    assert cli.main(["--config", str(path), "run", "restore_database", "goals", "--backup", "nope.db"]) == 1
    assert "does not exist" in capsys.readouterr().out and _safety_copies(demo_dir) == []


def test_a_dry_run_says_what_would_be_put_back_and_undone_and_changes_nothing(demo_dir, home, capsys):
    path = write_config(demo_dir)
    db = demo_dir / "data" / "goals.db"
    assert cli.main(["--config", str(path), "run", "maintain_database", "goals"]) == 0
    capsys.readouterr()
    before = sha256(db)
    assert cli.main(["--config", str(path), "run", "restore_database", "goals", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: would restore " in out and "pre-migration" in out
    assert re.search(r"it would make \d+ schema change\(s\) \(\d+ destructive\)", out), out
    report = next(x for x in out.splitlines() if x.startswith("report: "))[len("report: "):]
    md = Path(report).read_text()
    assert "## Dry run: what the restore would do" in md and "completed_at" in md  # the column the run added
    assert "| `goals` | 39 | 39 |" in md
    assert sha256(db) == before and _safety_copies(demo_dir) == []
    # and the real restore names what it put back
    assert cli.main(["--config", str(path), "run", "restore_database", "goals"]) == 0
    assert "restored: " in capsys.readouterr().out


def test_the_launchpad_offers_the_backups_to_pick(demo_dir):
    config = load_config(write_config(demo_dir))
    maintained = run_job(config, "goals", "maintain_database")
    defs = build_definitions(load_config(config.path))
    job = defs.resolve_job_def("restore_database")
    restore = job.run_config_schema.config_type.fields["ops"].config_type.fields["restore"]
    choose = restore.config_type.fields["config"].config_type.fields["choose"]
    values = [v.config_value for v in choose.config_type.inner_type.enum_values]  # a drop-down in the Launchpad
    assert values[0] == NEWEST_CHANGE and maintained["backup"]["path"] in values
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(partition_key="goals", instance=instance, raise_on_error=False,
                                        run_config={"ops": {"restore": {"config": {
                                            "choose": maintained["backup"]["path"]}}}})
    assert result.success


def test_a_maintain_run_that_changed_nothing_leaves_no_pinned_backup(demo_dir):
    """Failed before its migration (a reference that does not exist) or a dry run that failed: its pre-migration
    backup is an ordinary one, left to retention; only the backup of a run that changed the database stays pinned."""
    missing = load_config(write_config(demo_dir, {"goals": {"url": "sqlite:///data/goals.db",
                                                            "reference": {"url": "sqlite:///data/nope.db"}}}))
    failed = run_job(missing, "goals", "maintain_database")
    assert failed["status"] == "failed" and failed["failed_step"] == "diff"
    config = load_config(write_config(demo_dir))
    dry = run_job(config, "goals", "maintain_database", dry_run=True, align="full")
    import json

    for report in (failed, dry):
        manifest = json.loads(Path(report["backup"]["manifest_path"]).read_text())
        assert manifest["pinned"] is False, report["backup"]["path"]
    done = run_job(config, "goals", "maintain_database")
    assert json.loads(Path(done["backup"]["manifest_path"]).read_text())["pinned"] is True


def test_a_lost_or_damaged_database_file_is_restored(demo_dir):
    """The incident a restore exists for: the file gone, or no longer a database. A lost file is made again from the
    backup; a damaged one is replaced, its bytes kept aside first (no safety copy can be made of it)."""
    config = load_config(write_config(demo_dir))
    db = demo_dir / "data" / "goals.db"
    before = _dump(db)
    made = run_job(config, "goals", "verify_database")  # a backup of the demo as it is
    db.unlink()
    lost = run_job(config, "goals", "restore_database", restore_backup=made["backup"]["path"])
    assert lost["status"] == "success", lost["error"]
    assert lost["restored_from"]["target_was"] == "missing" and _dump(db) == before

    db.write_bytes(b"not a database any more " * 100)
    damaged = run_job(config, "goals", "restore_database", restore_backup=made["backup"]["path"])
    assert damaged["status"] == "success", damaged["error"]
    aside = Path(damaged["restored_from"]["kept_aside"])
    assert aside.read_bytes() == b"not a database any more " * 100 and _dump(db) == before
    assert "kept as they were" in Path(damaged["report_paths"]["markdown"]).read_text()
