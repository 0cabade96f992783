from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from maintenance_pipeline.core.run.report import (
    mask_secrets,
    render_markdown,
    report_paths,
    summary_line,
    write_report,
)

RUN_ID = "3f2a9c1e-5b7d-4e11-9a0b-6c8d2e4f1a77"


def full_report() -> dict:
    return {
        "target": "goals",
        "job": "maintain_database",
        "run_id": RUN_ID,
        "status": "success",
        "error": None,
        "failed_step": None,
        "trigger": "manual",
        "started_at": "2026-01-04T16:46:59+00:00",
        "finished_at": "2026-01-04T16:47:05.500000+00:00",
        "database": "sqlite:////srv/app/goals.db",
        "reference": "sqlite:////srv/app/goals_dev.db",
        "align": "additive",
        "dry_run": False,
        "ui_url": f"http://127.0.0.1:3000/runs/{RUN_ID}",
        "backup": {
            "path": "backups/goals/goals_pre-migration_20260104_164659.db",
            "sha256": "9b74c9897bac770ffc029102a200c5de0c5e1f0a9a1b7e3e1f3c1f0e4a0b1c2d",
            "bytes": 245760,
            "verified": True,
            "method": "sqlite-online-backup",
            "seconds": 0.04,
            "label": "pre-migration",
            "pinned": True,
        },
        "retention_removed": ["backups/goals/goals_nightly_20251201_020000.db"],
        "revisions": {"before": "0001", "after": "0002", "pending": ["0002"]},
        "drift_before": [
            {"kind": "add_table", "table": "program_day_templates", "name": None, "destructive": False,
             "detail": "3 columns"},
            {"kind": "add_column", "table": "goals", "name": "completed_at", "destructive": False,
             "detail": "DATETIME NULL"},
            {"kind": "drop_table", "table": "scheduled_sessions", "name": None, "destructive": True,
             "detail": "4 rows"},
        ],
        "planned": [
            {"source": "alembic", "description": "0002 program day templates",
             "sql": ["CREATE TABLE program_day_templates (...)"]},
            {"source": "align", "description": "add column goals.completed_at",
             "sql": ["ALTER TABLE goals ADD COLUMN completed_at DATETIME NULL"]},
        ],
        "applied": [
            {"source": "alembic", "description": "0002 program day templates", "seconds": 0.31},
            {"source": "align", "description": "add column goals.completed_at", "seconds": 0.01},
        ],
        "refused": [
            {"kind": "drop_table", "table": "scheduled_sessions", "name": None, "destructive": True,
             "detail": "4 rows"},
        ],
        "drift_after": [],
        "checks": [
            {"name": "schema_matches_reference", "passed": True, "detail": "0 differences"},
            {"name": "integrity", "passed": True, "detail": "ok"},
            {"name": "foreign_keys", "passed": True, "detail": "no orphans"},
            {"name": "rows_preserved", "passed": True, "detail": "39 goals, 0 rows missing"},
            {"name": "backup_verified", "passed": True, "detail": "sha256 matches"},
            {"name": "no orphaned goals", "passed": True, "detail": "0 = 0"},
        ],
        "planned_drops": [{"table": "scheduled_sessions", "column": None, "rows": 4, "values": None}],
        "tables_before": {
            "goals": {"columns": 21, "rows": 39},
            "program_days": {"columns": 6, "rows": 12},
            "scheduled_sessions": {"columns": 5, "rows": 4},
        },
        "tables_after": {
            "goals": {"columns": 22, "rows": 39},
            "program_days": {"columns": 7, "rows": 12},
            "program_day_templates": {"columns": 3, "rows": 0},
        },
        "timeline": [
            {"step": "backup", "started_at": "2026-01-04T16:46:59+00:00", "seconds": 0.05},
            {"step": "diff", "started_at": "2026-01-04T16:47:00+00:00", "seconds": 0.4},
            {"step": "migrate", "started_at": "2026-01-04T16:47:01+00:00", "seconds": 0.35},
            {"step": "verify", "started_at": "2026-01-04T16:47:02+00:00", "seconds": 1.2},
            {"step": "report", "started_at": "2026-01-04T16:47:05+00:00", "seconds": None},
        ],
    }


def test_full_success_report():
    md = render_markdown(full_report())
    assert md.startswith("# Database maintenance report — goals\n")
    assert "maintain_database" in md
    assert "✅ SUCCESS" in md
    assert "**Date:** 2026-01-04" in md
    assert "16:46:59 – 16:47:05 UTC" in md
    for heading in ("Summary", "Drift found", "Changes applied", "Refused", "Verification",
                    "Before vs after", "Timeline", "Backups"):
        assert f"## {heading}\n" in md
    assert "Applied 1 Alembic revision and 1 alignment change" in md
    assert "schema now equals the reference" in md
    assert "all 6 checks passed" in md
    assert "39 goals kept" in md
    assert "`align: full`" in md
    assert "| `goals` | 21 → 22 | 39 → 39 | ✅ UPDATED |" in md
    assert "| `program_day_templates` | — → 3 | — → 0 | ✅ NEW |" in md
    assert "| `scheduled_sessions` | 5 → — | 4 → — | 🗑 DROPPED |" in md
    assert "- ✅ **rows_preserved** — 39 goals, 0 rows missing" in md
    assert "`9b74c9897bac`" in md and "240.0 KB" in md
    assert "goals_nightly_20251201_020000.db" in md
    assert f"[{RUN_ID}](http://127.0.0.1:3000/runs/{RUN_ID})" in md
    assert "❌" not in md
    assert "DRY RUN" not in md and "```sql" not in md
    line = summary_line(full_report())
    assert "\n" not in line and "SUCCESS" in line and "goals" in line and RUN_ID[:8] in line


def test_failed_report_with_most_keys_missing():
    report = {"target": "goals", "job": "maintain_database", "status": "failed", "failed_step": "migrate",
              "error": "LockHeldError: another run holds the lock on goals; wait for it to finish.",
              "backup": {"path": "backups/goals/goals_pre-migration_20260104_164659.db"}}
    md = render_markdown(report)
    assert "❌ FAILED" in md
    assert "Failed at step migrate: LockHeldError: another run holds the lock on goals" in md
    assert "left as it was before the run" in md
    assert "goals_pre-migration_20260104_164659.db" in md
    # sections whose step did not run say so, never "None" or "matched"
    assert "## Verification\n\nNot checked (the run failed at migrate)." in md
    assert "## Drift found\n\nNot checked (the run failed at migrate)." in md and "already matched" not in md
    line = summary_line(report)
    assert "FAILED at migrate" in line and "LockHeldError" in line


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"status": "failed"},
        {"status": "failed", "error": "boom"},
        {k: None for k in full_report()},
        {"status": "failed", "checks": [None, "x", {"name": None}], "tables_before": {"a": None},
         "tables_after": [], "timeline": [{"step": "backup", "started_at": "not a date"}],
         "backup": "weird", "drift_before": "x", "applied": [{"seconds": "fast"}], "planned": [{"sql": None}],
         "retention_removed": [None], "started_at": 12, "finished_at": "2026-01-04"},
        {"status": "success", "target": ["odd"], "failed_step": {"x": 1}, "run_id": 42, "job": None,
         "tables_after": {"odd": {"rows": 3}}, "planned": [{"sql": "SELECT 1"}], "dry_run": True},
    ],
)
def test_partial_reports_never_crash(report, tmp_path):
    md = render_markdown(report)
    assert md.startswith("# Database maintenance report")
    assert summary_line(report)
    md_path, json_path = write_report(dict(report), tmp_path)
    assert md_path.exists() and json_path.exists()
    json.loads(json_path.read_text())


def test_failed_run_without_step_or_error_says_failed():
    md = render_markdown({"status": "failed"})
    assert "❌ FAILED" in md and "The run failed: no error message was recorded." in md


def test_failure_after_migrate_points_to_restore():
    r = full_report()
    r.update(status="failed", failed_step="verify", error="rows_preserved: 2 rows of goals missing")
    md = render_markdown(r)
    assert "Failed at step verify: rows_preserved: 2 rows of goals missing." in md
    assert "restore_database" in md and "left as it was" not in md


def test_dry_run_shows_sql():
    r = full_report()
    r.update(dry_run=True, applied=[], drift_after=None, checks=None, tables_after=None)
    md = render_markdown(r)
    assert "🔍 DRY RUN" in md
    assert "## Planned (not applied)" in md and "## Changes applied" not in md
    assert "nothing was changed" in md
    assert ("```sql\nCREATE TABLE program_day_templates (...);\n"
            "ALTER TABLE goals ADD COLUMN completed_at DATETIME NULL;\n```") in md


def test_paths_follow_naming_rule(tmp_path):
    started = datetime(2026, 1, 4, 11, 46, 59, tzinfo=timezone(timedelta(hours=-5)))
    md, js = report_paths(tmp_path, "goals", "maintain_database", RUN_ID, started)
    assert md == tmp_path / "goals" / "20260104_164659_maintain_database_3f2a9c1e.md"
    assert js == tmp_path / "goals" / "20260104_164659_maintain_database_3f2a9c1e.json"


def test_write_report_round_trips(tmp_path):
    report = full_report()
    md_path, json_path = write_report(report, tmp_path / "reports")
    assert md_path == tmp_path / "reports" / "goals" / "20260104_164659_maintain_database_3f2a9c1e.md"
    assert report["report_paths"] == {"markdown": str(md_path), "json": str(json_path)}
    loaded = json.loads(json_path.read_text())
    assert loaded == report
    assert list(loaded) == list(report)  # key order kept
    assert md_path.read_text() == render_markdown(report)
    assert str(json_path) in md_path.read_text()
    assert not [p for p in md_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_write_report_accepts_datetimes(tmp_path):
    report = full_report()
    report["started_at"] = datetime(2026, 1, 4, 16, 46, 59, tzinfo=timezone.utc)
    md_path, json_path = write_report(report, tmp_path)
    assert md_path.name.startswith("20260104_164659_")
    assert json.loads(json_path.read_text())["started_at"] == "2026-01-04 16:46:59+00:00"


def test_password_never_appears(tmp_path):
    secret = "s3cr3t-Pa55"
    report = full_report()
    report["database"] = f"postgresql+psycopg://app:{secret}@db.internal:5432/goals"
    report["reference"] = f"postgresql://ro:{secret}@db.internal/goals_dev"
    report["status"], report["failed_step"] = "failed", "backup"
    report["error"] = f"could not connect to postgresql://app:{secret}@db.internal:5432/goals"
    report["backup"]["path"] = f"/tmp/postgresql://app:{secret}@x"
    md = render_markdown(report)
    assert secret not in md
    assert "postgresql+psycopg://app:***@db.internal:5432/goals" in md
    assert secret not in summary_line(report)
    md_path, json_path = write_report(report, tmp_path)
    assert secret not in md_path.read_text() and secret not in json_path.read_text()


def test_mask_secrets_leaves_plain_urls_alone():
    assert mask_secrets("sqlite:////srv/app/goals.db") == "sqlite:////srv/app/goals.db"
    assert mask_secrets("http://127.0.0.1:3000/runs/abc") == "http://127.0.0.1:3000/runs/abc"
    masked = mask_secrets("mysql://:pw@h/db and postgresql://u:p@ss@h/db")
    assert masked == "mysql://:***@h/db and postgresql://u:***@h/db"
