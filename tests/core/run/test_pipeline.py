"""The seed scenario through the core pipeline (no Dagster): real SQLite files in tmp_path."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from targets import copy_migrations, demo_target, revision, sha256, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job


def kinds(changes: list[dict]) -> set[str]:
    return {f"{c['kind']} {c['table']}" + (f".{c['name']}" if c.get("name") else "") for c in changes}


def test_maintain_reproduces_the_seed(demo_config, demo_dir):
    report = run_job(demo_config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    drift = kinds(report["drift_before"])
    assert {"add_column goals.completed_at", "add_column goals.program_day_id", "add_column program_days.is_completed",
            "add_table program_day_templates", "drop_table scheduled_sessions"} <= drift
    assert report["drift_after"] == []
    assert report["checks"] and all(c["passed"] for c in report["checks"]), report["checks"]
    assert {c["name"] for c in report["checks"]} >= {"schema_matches_reference", "integrity", "foreign_keys",
                                                      "rows_preserved", "backup_verified", "no orphaned goals"}
    assert report["tables_before"]["goals"] == {"columns": 20, "rows": 39}
    assert report["tables_after"]["goals"] == {"columns": 22, "rows": 39}
    assert report["tables_before"]["program_days"]["columns"] == 6
    assert report["tables_after"]["program_days"]["columns"] == 7
    assert len(report["tables_after"]) == 13 and "scheduled_sessions" not in report["tables_after"]
    sources = [a["source"] for a in report["applied"]]
    assert "alembic" in sources and "align" in sources
    assert any("completed_at" in a["description"] for a in report["applied"] if a["source"] == "align")
    assert report["revisions"]["after"] == "0002"
    # the JSON on disk says the same, and the Markdown names the seed's figures
    on_disk = json.loads(Path(report["report_paths"]["json"]).read_text())
    assert on_disk["status"] == "success" and on_disk["tables_after"]["goals"] == {"columns": 22, "rows": 39}
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "completed_at" in md and "20 → 22" in md
    # the pre-migration backup is pinned and bytewise the database as it was
    backup = Path(report["backup"]["path"])
    assert report["backup"]["pinned"] and report["backup"]["verified"]
    assert sha256(backup) == report["backup"]["sha256"]


def test_maintain_twice_gives_the_same_outcome(demo_config):
    first = run_job(demo_config, "goals", "maintain_database")
    second = run_job(demo_config, "goals", "maintain_database")
    assert first["status"] == second["status"] == "success"
    assert second["drift_before"] == [] and second["applied"] == []
    assert second["tables_after"] == first["tables_after"]


def test_verify_before_migration_fails_and_changes_nothing(demo_config, demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(demo_config, "goals", "verify_database")
    assert report["status"] == "failed" and report["failed_step"] == "verify"
    schema = next(c for c in report["checks"] if c["name"] == "schema_matches_reference")
    assert not schema["passed"]
    for missing in ("completed_at", "program_day_id", "is_completed", "program_day_templates"):
        assert missing in schema["detail"]
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "completed_at" in md and "program_day_templates" in md
    # a read-only job stamps nothing and says so: the database's own state, and what maintain_database would do
    assert "stamped" not in md and "not under Alembic yet (baseline `0001`) (1 pending: 0002)" in md
    assert sha256(db) == before


def _no_migrations_config(folder: Path):
    return load_config(write_config(folder, {"goals": demo_target(migrations=None, baseline_revision=None)}))


def test_additive_refuses_drop_table_and_full_applies_it(demo_dir):
    config = _no_migrations_config(demo_dir)
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(config, "goals", "maintain_database")  # align: additive (the target's default)
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert kinds(report["refused"]) == {"drop_table scheduled_sessions"}
    assert report["refused"][0]["destructive"] is True
    assert "align: full" in report["error"] and "scheduled_sessions" in report["error"]
    assert sha256(db) == before  # refused as a whole: not even the additive part was committed
    # a run that changed nothing leaves its pre-migration backup to retention, like a dry run
    manifest = json.loads(Path(report["backup"]["manifest_path"]).read_text())
    assert manifest["label"] == "pre-migration" and manifest["pinned"] is False
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "drop_table" in md and "scheduled_sessions" in md and "align: full" in md

    report = run_job(config, "goals", "maintain_database", align="full")
    assert report["status"] == "success", report["error"]
    assert report["drift_after"] == []
    assert any(d["table"] == "scheduled_sessions" and d["column"] is None and d["rows"] > 0
               for d in report["planned_drops"])


def test_dry_run_changes_nothing_and_reports_sql(demo_config, demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(demo_config, "goals", "maintain_database", dry_run=True)
    assert report["status"] == "success", report["error"]
    assert report["applied"] == []
    sql = "\n".join(report["sql"])
    assert "ALTER TABLE goals ADD COLUMN completed_at" in sql.replace('"', "")
    assert "program_day_templates" in sql
    assert sha256(db) == before
    assert not list((demo_dir / "data").glob("goals.db-*"))  # no journal or WAL left beside it
    # nobody wrote beside the dry run: its rows check says nothing of another session
    rows = next(c for c in report["checks"] if c["name"] == "rows_preserved")
    assert rows["passed"] and "another session" not in rows["detail"], rows["detail"]
    # the summary counts the planned changes, not the SQL listed under them
    changes = [p for p in report["planned"] if p["source"] != "sql"]
    aligned = sum(p["source"] == "align" for p in changes)
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert f"planned 1 Alembic revision and {aligned} alignment change" in md and "| statements |" not in md


BROKEN = revision("0003", "0002", """    op.add_column("goals", sa.Column("halfway", sa.Integer(), nullable=True))
    op.execute("UPDATE goals SET halfway = 1")
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("boom in the middle of 0003")""")


def test_revision_that_raises_halfway_leaves_the_file_bytewise_as_before(demo_dir):
    migrations = copy_migrations(demo_dir, {"0003_broken.py": BROKEN})
    config = load_config(write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))}))
    db = demo_dir / "data" / "goals.db"
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert "0003" in report["error"] and "boom in the middle of 0003" in report["error"]
    assert sha256(db) == report["backup"]["sha256"]  # bytewise the backup
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "0003" in md and "boom" in md


def test_missing_database_fails_clearly_and_creates_nothing(demo_dir):
    config = load_config(write_config(demo_dir, {"goals": demo_target(url="sqlite:///data/nope.db")}))
    report = run_job(config, "goals", "verify_database")
    assert report["status"] == "failed" and report["failed_step"] == "backup"
    assert "does not exist" in report["error"] and "nope.db" in report["error"]
    assert not (demo_dir / "data" / "nope.db").exists()
    assert not (demo_dir / "backups" / "goals").exists() or not list((demo_dir / "backups" / "goals").iterdir())


def test_text_file_posing_as_database_fails_clearly(demo_dir):
    fake = demo_dir / "data" / "fake.db"
    fake.write_text("this is not a database\n")
    before = sha256(fake)
    config = load_config(write_config(demo_dir, {"goals": demo_target(url="sqlite:///data/fake.db")}))
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and "not a SQLite database" in report["error"]
    assert sha256(fake) == before


def test_locked_database_fails_clearly_and_changes_nothing(demo_config, demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        report = run_job(demo_config, "goals", "maintain_database")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert report["status"] == "failed" and report["failed_step"] == "backup"
    assert "locked" in report["error"]
    assert "\n" not in report["error"]
    assert sha256(db) == before


def test_second_migration_on_the_same_target_fails_fast_on_the_lock(demo_config):
    from maintenance_pipeline.core.lock import maintenance_lock

    with maintenance_lock(demo_config.targets["goals"].url, holder="another run"):
        report = run_job(demo_config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert "maintenance lock" in report["error"] and "another run" in report["error"]


@pytest.mark.parametrize("job", ["verify_database"])
def test_verify_after_maintain_passes(demo_config, job):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    report = run_job(demo_config, "goals", job)
    assert report["status"] == "success", report["error"]
    assert all(c["passed"] for c in report["checks"])


def test_restore_brings_back_the_pre_migration_database(demo_config, demo_dir):
    db = demo_dir / "data" / "goals.db"
    maintained = run_job(demo_config, "goals", "maintain_database")
    pre = maintained["backup"]
    report = run_job(demo_config, "goals", "restore_database", restore_backup=pre["path"])
    assert report["status"] == "success", report["error"]
    assert report["tables_after"]["goals"] == {"columns": 20, "rows": 39}
    assert "scheduled_sessions" in report["tables_after"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_restoring_a_backup_that_is_not_there_says_so_and_pins_nothing(demo_config, demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(demo_config, "goals", "restore_database", restore_backup=str(demo_dir / "nope.db"))
    assert report["status"] == "failed" and report["failed_step"] == "backup"  # checked before anything else
    assert f"backup {demo_dir / 'nope.db'} does not exist" in report["error"]
    assert "backups list goals" in report["error"]
    assert sha256(db) == before
    # no safety copy was taken for a typo: the restore takes it under its own lock, after the checks
    assert report["backup"] is None and not list((demo_dir / "backups").glob("goals/*pre-restore*"))


def test_paths_with_uri_characters_work(tmp_path):
    """A '#' in a folder name must not cut a sqlite file: URI short (or open another file)."""
    from targets import build_demo

    folder = tmp_path / "odd #1"  # ("?" and "%xx" are URL syntax in the targets file's URL itself)
    build_demo.build(folder / "data")
    config = load_config(write_config(folder))
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert run_job(config, "goals", "verify_database")["status"] == "success"
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["goals.db", "goals_dev.db"]


def test_the_diff_steps_plan_reaches_migrate_and_a_change_in_between_is_said(demo_config, demo_dir):
    from maintenance_pipeline.core.run import pipeline

    state = pipeline.start(demo_config, "goals", "maintain_database")
    pipeline.step_backup(state)
    pipeline.step_diff(state)
    with sqlite3.connect(demo_dir / "data" / "goals.db") as conn:  # someone drops an index meanwhile
        conn.execute("DROP INDEX ix_goals_type")
    pipeline.step_migrate(state)
    note = state.migration.replanned
    assert note and note.startswith("the database changed between diff and migrate: 1 difference(s) appeared")
    assert "ix_goals_type" in note
    assert any("ix_goals_type" in a["description"] for a in state.migration.applied)  # planned again, applied
    pipeline.step_verify(state)
    report = pipeline.finish(state)
    assert report["status"] == "success" and report["replanned"] == note
    assert "the database changed between diff and migrate" in Path(report["report_paths"]["markdown"]).read_text()

    unmoved = pipeline.start(demo_config, "goals", "maintain_database")
    for step in (pipeline.step_backup, pipeline.step_diff, pipeline.step_migrate):
        step(unmoved)
    assert unmoved.migration.replanned is None
