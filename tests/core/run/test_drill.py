"""The restore drill without Dagster (``core/run/drill.py`` through ``run_job``): the newest verified backup of the
demo restored into a scratch copy and checked, RPO and RTO; a backup whose bytes changed after its manifest was
written fails the drill naming it; a pending revision that fails on the data fails the rehearsal with the revision's
error; the target is bytewise untouched every time, and the scratch copy is gone afterwards."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from backup_cases import tamper_backup
from targets import copy_migrations, demo_target, revision, sha256, write_config
from live_file_watch import watching
from maintenance_pipeline.core.backup import backup_database, sha256_file
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.commands import status_lines
from maintenance_pipeline.core.run.drill import drill_target
from maintenance_pipeline.core.run.pipeline import run_job


def _config(demo_dir, **target):
    return load_config(write_config(demo_dir, {"goals": demo_target(**target)}))


def _nightly(config) -> Path:
    """A verified backup of the demo, as the nightly verification makes it (its run fails on the demo's drift;
    its backup is what the drill restores)."""
    report = run_job(config, "goals", "verify_database", trigger="schedule")
    assert report["backup"]["verified"] and report["backup"]["label"] == "nightly"
    return Path(report["backup"]["path"])


def _verdict(report: dict, name: str) -> dict:
    return report["drill"]["verdicts"][name]


def _scratch_path(report: dict) -> Path:
    return Path(report["drill"]["scratch"].removeprefix("sqlite:///"))


def test_the_drill_restores_the_newest_verified_backup_and_reports_rpo_and_rto(demo_dir):
    config = _config(demo_dir)
    db = demo_dir / "data" / "goals.db"
    older = _nightly(config)
    newest = _nightly(config)
    before = sha256(db)
    report = run_job(config, "goals", "restore_drill", trigger="schedule")
    assert report["status"] == "success", report["error"]
    d = report["drill"]
    assert d["backup"]["path"] == str(newest) != str(older)  # the highest sequence number
    assert d["backup"]["label"] == "nightly" and d["backup_bytes"] == newest.stat().st_size
    assert isinstance(d["rpo_hours"], float) and 0 <= d["rpo_hours"] < 1
    assert d["rto_seconds"] == round(d["restore_seconds"] + d["verify_seconds"], 3) and d["rto_seconds"] > 0
    checks = {c["name"]: c for c in report["checks"]}
    assert {"integrity", "row_counts", "schema_fingerprint", "no orphaned goals",
            "pending_migration_rehearsal"} <= set(checks)
    assert all(c["passed"] for c in checks.values()), checks
    assert "13 tables" in checks["row_counts"]["detail"]
    assert _verdict(report, "restore_drill")["passed"] and newest.name in _verdict(report, "restore_drill")["detail"]
    # the demo is at its baseline with 0002 pending: the rehearsal stamps it, applies 0002 and aligns, on the copy
    rehearsal = _verdict(report, "pending_migration_rehearsal")
    assert rehearsal["passed"] and "0002" in rehearsal["detail"] and "applied cleanly" in rehearsal["detail"]
    assert report["drill"]["rehearsal"]["revision_after"] == "0002"
    assert sha256(db) == before  # never touched
    assert sha256_file(newest) == d["backup"]["sha256"]  # nor the backup
    assert not _scratch_path(report).parent.exists()  # the scratch copy is gone
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "## Drill" in md and "RPO" in md and "RTO" in md and newest.name in md and "was not touched" in md
    assert json.loads(Path(report["report_paths"]["json"]).read_text())["drill"]["rto_seconds"] == d["rto_seconds"]
    # and status shows the last drill: date, RPO, RTO
    row = next(r for r in status_lines(config) if r["target"] == "goals")
    assert row["drill"].startswith("ok ") and "RPO 0.0 h" in row["drill"] and "RTO" in row["drill"]
    assert row["drill_rto_seconds"] == d["rto_seconds"] and row["drill_at"] == report["started_at"]


def test_a_backup_whose_bytes_changed_after_its_manifest_fails_the_drill_naming_it(demo_dir):
    config = _config(demo_dir)
    db = demo_dir / "data" / "goals.db"
    backup = _nightly(config)
    size = backup.stat().st_size
    with open(backup, "r+b") as f:  # one flipped byte deep inside a data page, after the manifest was written
        f.seek(size - 100)
        byte = f.read(1)
        f.seek(size - 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    before = sha256(db)
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "failed" and report["failed_step"] == "drill"
    assert backup.name in report["error"] and "does not match its manifest" in report["error"]
    assert "\n" not in report["error"] and len(report["error"]) <= 300
    verdict = _verdict(report, "restore_drill")
    assert not verdict["passed"] and backup.name in verdict["detail"]
    assert _verdict(report, "pending_migration_rehearsal") is None  # nothing restored: nothing rehearsed
    assert sha256(db) == before
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "FAILED" in md and backup.name in md


def test_a_backup_whose_rows_differ_from_its_manifest_fails_row_counts(demo_dir):
    config = _config(demo_dir)
    backup = _nightly(config)
    tamper_backup(backup, manifest_rows_too=False)  # one goal deleted, the sha256 made to match: its row counts not
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "failed"
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["row_counts"]["passed"] and "goals 39 → 38" in checks["row_counts"]["detail"]
    assert backup.name in report["error"] and "row_counts" in report["error"]


def test_a_pending_revision_that_fails_on_the_data_fails_the_rehearsal_and_leaves_the_target_alone(demo_dir):
    # goals.parent_id repeats (children share a parent): a unique index on it fails on the data
    migrations = copy_migrations(demo_dir, {"0003_unique_parent.py": revision(
        "0003", "0002", '    op.create_index("ux_goals_parent", "goals", ["parent_id"], unique=True)')})
    config = _config(demo_dir, migrations=str(migrations))
    db = demo_dir / "data" / "goals.db"
    backup = _nightly(config)
    before = sha256(db)
    report = run_job(config, "goals", "restore_drill")
    assert sha256(db) == before  # bytewise
    assert report["status"] == "failed" and report["failed_step"] == "drill"
    assert _verdict(report, "restore_drill")["passed"]  # the backup itself is good
    rehearsal = _verdict(report, "pending_migration_rehearsal")
    assert not rehearsal["passed"]
    assert "Alembic revision 0003 failed" in rehearsal["detail"] and "UNIQUE constraint failed" in rehearsal["detail"]
    assert "maintenance-drill-" not in rehearsal["detail"]  # the scratch copy is not named by its path
    assert "pending_migration_rehearsal" in report["error"] and backup.name in report["error"]
    assert "0003" in report["error"]
    assert not _scratch_path(report).parent.exists()


def test_rpo_is_the_backups_age_and_a_date_in_the_future_is_not_trusted(demo_dir):
    config = _config(demo_dir)
    backup = _nightly(config)
    mpath = backup.with_suffix(".json")
    now = datetime.now(timezone.utc)
    for hours, expect in ((30, "age"), (-3, "future")):
        m = json.loads(mpath.read_text())
        m["created_at"] = (now - timedelta(hours=hours)).isoformat()
        mpath.write_text(json.dumps(m))
        d = drill_target(config, "goals", now=now)
        assert not d.failed, d.failed
        if expect == "age":
            assert d.rpo_hours == 30.0 and d.rpo_note is None
        else:
            assert d.rpo_hours is None and "a clock ran ahead" in d.rpo_note
            assert "RPO unknown" in d.verdict("restore_drill").detail


def test_a_manifest_that_no_longer_says_what_the_event_log_recorded_fails(demo_dir):
    config = _config(demo_dir)
    backup = _nightly(config)
    d = drill_target(config, "goals", recorded=lambda path: "0" * 64 if path == backup else None)
    assert d.error is not None and "the manifest was edited" in d.error
    assert d.verdict("restore_drill").passed is False and d.scratch is None  # nothing was restored


def test_no_verified_backup_is_one_line_saying_how_to_make_one(demo_dir):
    config = _config(demo_dir)
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "failed"
    assert "no verified backup of 'goals'" in report["error"] and "verify_database goals" in report["error"]
    row = next(r for r in status_lines(config) if r["target"] == "goals")
    assert row["drill"].startswith("FAILED (restore_drill)")


def test_a_drill_on_a_backup_in_sync_with_nothing_pending_runs_no_migration(demo_dir):
    config = _config(demo_dir)
    assert run_job(config, "goals", "maintain_database")["status"] == "success"  # now in sync and at head
    backup = backup_database(config.targets["goals"].url, config.backups.dir, "goals", label="manual")
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "success", report["error"]
    assert report["drill"]["backup"]["path"] == str(backup.path)
    assert _verdict(report, "pending_migration_rehearsal")["detail"].startswith("nothing pending (at 0002")
    assert report["drill"]["rehearsal"]["applied"] == []


_TOUCHED: list[str] | None = None  # while a list: every path this process opens or connects SQLite to


def _audit(event: str, args: tuple) -> None:
    if _TOUCHED is not None and event in ("open", "sqlite3.connect") and args \
            and isinstance(args[0], (str, bytes, os.PathLike)):
        _TOUCHED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only while ``_TOUCHED`` is a list


def test_the_drill_never_opens_the_target_and_keeps_the_live_file_rule_on_the_backup(demo_dir):
    global _TOUCHED
    config = _config(demo_dir)
    backup = _nightly(config)
    db = str((demo_dir / "data" / "goals.db").resolve())
    _TOUCHED = []
    try:
        with watching(backup) as watch:  # the backup: read as bytes only while no SQLite connection has it open
            report = run_job(config, "goals", "restore_drill")
    finally:
        touched, _TOUCHED = _TOUCHED, None
    assert report["status"] == "success", report["error"]
    assert not [t for t in touched if db in t], [t for t in touched if db in t][:3]  # not a file open, not a connect
    assert any(str(backup) in t for t in touched)  # it was looking: the backup was read
    assert not watch.violations, watch.violations[:1]
