"""The targets file's SQL checks: read-only, run on the schema they will meet, decided before COMMIT.

A check that writes, or does not run on the migrated schema, or fails on the migrated database, stops a
maintain run with nothing committed (the file is bytewise what it was); verify_database runs checks read-only."""

from __future__ import annotations

import sqlite3

import pytest

from targets import ORPHAN_CHECK, demo_target, sha256, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job


def _config(demo_dir, *checks):
    return load_config(write_config(demo_dir, {"goals": demo_target(checks=[ORPHAN_CHECK, *checks])}))


def _count(db, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("check, words", [
    ({"name": "wipes programs", "sql": "DELETE FROM programs", "expect": 0}, "checks must be read-only queries"),
    ({"name": "sneaky", "sql": "WITH x AS (SELECT 1) INSERT INTO programs (id, name) SELECT 'p', 'p' FROM x",
      "expect": 0}, "checks must be read-only queries"),
    ({"name": "sets a pragma", "sql": "PRAGMA user_version = 7", "expect": 0}, "checks must be read-only queries"),
    ({"name": "typo", "sql": "SELECT count(*) FROM goalz", "expect": 0}, "does not run on the migrated schema"),
    ({"name": "gone column", "sql": "SELECT count(*) FROM scheduled_sessions", "expect": 0},
     "does not run on the migrated schema"),  # 0002 drops that table
    ({"name": "fails after", "sql": "SELECT count(*) FROM program_day_templates", "expect": 0},
     "would return"),  # 0002 fills it: the check's verdict on the migrated database, before COMMIT
])
def test_a_bad_check_fails_the_maintain_run_before_anything_is_committed(demo_dir, check, words):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(_config(demo_dir, check), "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate", report["error"]
    assert words in report["error"] and repr(check["name"]) in report["error"]
    assert "nothing was committed" in report["error"]
    assert sha256(db) == before


def test_a_check_on_a_column_the_migration_adds_runs_on_the_migrated_schema(demo_dir):
    check = {"name": "new column there", "sql": "SELECT count(*) FROM goals WHERE program_day_id IS NOT NULL",
             "expect": 0}
    report = run_job(_config(demo_dir, check), "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert next(c for c in report["checks"] if c["name"] == "new column there")["passed"]


def test_verify_runs_checks_read_only(demo_dir):
    db = demo_dir / "data" / "goals.db"
    n = _count(db, "programs")
    report = run_job(_config(demo_dir, {"name": "wipes programs", "sql": "DELETE FROM programs", "expect": 0}),
                     "goals", "verify_database")
    assert report["status"] == "failed" and report["failed_step"] == "verify"
    check = next(c for c in report["checks"] if c["name"] == "wipes programs")
    assert not check["passed"] and check["detail"].startswith("checks must be read-only queries")
    assert _count(db, "programs") == n


MULTI = "SELECT 0; DELETE FROM programs; SELECT 0"


@pytest.mark.parametrize("job", ["maintain_database", "verify_database"])
def test_a_check_of_several_statements_is_refused_before_any_of_them_runs(demo_dir, job):
    db = demo_dir / "data" / "goals.db"
    n = _count(db, "programs")
    before = sha256(db)
    report = run_job(_config(demo_dir, {"name": "two faced", "sql": MULTI, "expect": 0}), "goals", job)
    assert report["status"] == "failed"
    check = next((c for c in report["checks"] if c["name"] == "two faced"), None)
    said = check["detail"] if check else report["error"]
    assert "a check is one statement and this one has 3 (SELECT, DELETE, SELECT)" in said
    assert _count(db, "programs") == n
    if job == "maintain_database":
        assert report["failed_step"] == "migrate" and sha256(db) == before


def test_the_check_command_refuses_a_check_of_several_statements(demo_dir, capsys):
    from maintenance_pipeline import cli

    db = demo_dir / "data" / "goals.db"
    path = write_config(demo_dir, {"goals": demo_target(checks=[{"name": "two faced", "sql": MULTI, "expect": 0}])})
    before = sha256(db)
    code = cli.main(["--config", str(path), "check", "goals"])
    out = capsys.readouterr().out
    assert code == 1 and "a check is one statement" in out
    assert sha256(db) == before
