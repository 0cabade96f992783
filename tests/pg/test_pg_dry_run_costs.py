"""The plan says what it will cost before it runs: a dry run on PostgreSQL rehearses the migration on a scratch
restore of the run's backup (nothing of the live database is locked) and measures, per statement, the lock it
takes, whether it rewrites the table, the rows it touches and how long the lock was held; the real run reports the
same figures measured on the live database. A column type change is a rewrite; a nullable column added is not."""

from __future__ import annotations

from pathlib import Path

from targets import write_config
from pg_migrate_helpers import db_state

from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job


def _target(pg, tmp_path) -> tuple[str, Path]:
    live = pg.create_database(f"costs_{tmp_path.name[-12:].lower()}")
    ref = pg.create_database(f"costs_ref_{tmp_path.name[-12:].lower()}")
    pg.psql("CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, w text); "
            "INSERT INTO big SELECT g, g, 'row ' || g FROM generate_series(1, 5000) g", live.rsplit("/", 1)[1])
    pg.psql("CREATE TABLE big (id int PRIMARY KEY, v bigint NOT NULL, w text, x text)", ref.rsplit("/", 1)[1])
    path = write_config(tmp_path, {"app": {"url": live, "reference": {"url": ref}, "align": "full"}})
    return live, path


def _statement(report: dict, words: str) -> dict:
    return next(s for s in report["measured"]["statements"] if words in s["sql"])


def test_a_dry_run_measures_each_statements_lock_and_rewrite_on_a_copy(pg, tmp_path):
    live, path = _target(pg, tmp_path)
    before = db_state(live, snapshot=False)
    report = run_job(load_config(path), "app", "maintain_database", dry_run=True)
    assert report["dry_run"] and report["measured"], report["error"]
    retype, added = _statement(report, "TYPE BIGINT"), _statement(report, "ADD COLUMN x")
    assert retype["rewrites"] == ["big"] and added["rewrites"] == []
    locks = [lock for s in report["measured"]["statements"] for lock in s["locks"]]
    assert any(lock.startswith("ACCESS EXCLUSIVE (blocks reads and writes) on big") for lock in locks), locks
    assert report["measured"]["longest_lock"]["seconds"] >= retype["seconds"]
    rows = next(c for c in report["checks"] if c["name"] == "rows_preserved")
    assert "dry run, compared on the scratch copy" in rows["detail"]  # rehearsed on a copy, not in place
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "## What it cost the application" in md and "measured in the rehearsal on a copy" in md
    assert db_state(live, snapshot=False) == before

    real = run_job(load_config(path), "app", "maintain_database")
    assert real["status"] == "success", real["error"]
    assert _statement(real, "TYPE BIGINT")["rewrites"] == ["big"] and _statement(real, "ADD COLUMN x")["rewrites"] == []
    assert "measured on the live database" in Path(real["report_paths"]["markdown"]).read_text()


def test_check_sql_says_what_each_statement_costs(pg, tmp_path, capsys):
    from maintenance_pipeline import cli

    live, path = _target(pg, tmp_path)
    assert cli.main(["--config", str(path), "check", "app", "--sql"]) == 1
    out = capsys.readouterr().out
    retype = next(line for line in out.splitlines() if "TYPE BIGINT" in line)
    added = next(line for line in out.splitlines() if "ADD COLUMN x" in line)
    assert "rewrites big" in retype and "no rewrite" in added, out
    assert "lock held" in retype and "the lock it took; rewrite; rows; seconds the lock was held" in out
