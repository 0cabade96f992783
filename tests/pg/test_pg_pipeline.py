"""The seed scenario and the pipeline's guarantees on PostgreSQL, through ``run_job`` (backup -> diff ->
migrate -> verify -> report), against the real throwaway server of the ``pg`` fixture."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

pytest.importorskip("maintenance_pipeline.core.engines.postgresql.backup", reason="PostgreSQL backups (core/pg_backup.py) missing")

from targets import ORPHAN_CHECK, ROOT, revision, write_config  # noqa: E402
from pg_migrate_helpers import (  # noqa: E402
    BLOCKING,
    BROKEN,
    copy_migrations,
    db_state,
    demo_databases,
    goals_target,
    race_two,
    reference,
    scalar,
)

from maintenance_pipeline.core.config import load_config  # noqa: E402
from maintenance_pipeline.core.errors import RowsLostError  # noqa: E402
from maintenance_pipeline.core.migrate.executor import migrate  # noqa: E402
from maintenance_pipeline.core.run import pipeline  # noqa: E402
from maintenance_pipeline.core.run.pipeline import run_job  # noqa: E402


def pg_target(prod: str, dev: str, **overrides) -> dict:
    """The demo target on PostgreSQL, as the targets file writes it."""
    target = {"url": prod, "reference": {"url": dev}, "migrations": str(ROOT / "examples" / "migrations"),
              "baseline_revision": "0001", "checks": [ORPHAN_CHECK]}
    target.update(overrides)
    return target


def config_for(tmp_path: Path, prod: str, dev: str, **overrides):
    return load_config(write_config(tmp_path, {"goals": pg_target(prod, dev, **overrides)}))


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_seed_scenario_on_postgresql(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    config = config_for(tmp_path, prod, dev)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    drift = {(c["kind"], c["table"], c["name"]) for c in report["drift_before"]}
    assert {("add_column", "goals", "completed_at"), ("add_column", "goals", "program_day_id"),
            ("add_table", "program_day_templates", None), ("drop_table", "scheduled_sessions", None)} <= drift
    assert report["drift_after"] == []
    assert report["checks"] and all(c["passed"] for c in report["checks"]), report["checks"]
    assert {c["name"] for c in report["checks"]} >= {"schema_matches_reference", "integrity", "foreign_keys",
                                                      "rows_preserved", "backup_verified", "no orphaned goals"}
    assert "skipped" in check(report, "integrity")["detail"]  # amcheck not installed: says so
    # goals and program_days only gained columns: no row written, nothing to compare under the migration's locks
    assert "no kept table's rows were written" in check(report, "rows_preserved")["detail"]
    assert any(d["table"] == "scheduled_sessions" and d["rows"] > 0 for d in report["planned_drops"])
    assert report["tables_before"]["goals"] == {"columns": 20, "rows": 39}
    assert report["tables_after"]["goals"] == {"columns": 22, "rows": 39}
    assert len(report["tables_after"]) == 13 and "scheduled_sessions" not in report["tables_after"]
    assert report["revisions"]["after"] == "0002"
    sources = [a["source"] for a in report["applied"]]
    assert "alembic" in sources and "align" in sources
    assert any("completed_at" in a["description"] for a in report["applied"] if a["source"] == "align")
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "completed_at" in md and "20 → 22" in md
    assert "pg-super-secret" not in md and "pg-super-secret" not in json.dumps(report)

    # verify afterwards passes too, and a second maintain run finds nothing to do
    again = run_job(config, "goals", "verify_database")
    assert again["status"] == "success", again["error"]
    assert "changed no row" in check(again, "rows_preserved")["detail"]  # no scratch restore for a read-only run
    second = run_job(config, "goals", "maintain_database")
    assert second["status"] == "success" and second["drift_before"] == [] and second["applied"] == []


def test_failing_revision_through_run_job_leaves_everything_as_it_was(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    config = config_for(tmp_path, prod, dev, migrations=str(copy_migrations(tmp_path, {"0003_broken.py": BROKEN})))
    before = db_state(prod)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert "0003" in report["error"] and "boom in the middle of 0003" in report["error"]
    assert db_state(prod) == before
    assert report["backup"]["verified"]  # the pre-migration backup was taken first


RUN_JOB_SCRIPT = """
import json, sys
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
r = run_job(load_config(sys.argv[1]), "goals", "maintain_database")
print(json.dumps({"status": r["status"], "step": r.get("failed_step"), "error": r["error"],
                  "after": (r.get("revisions") or {}).get("after"),
                  "applied": [a.get("revision") for a in r["applied"] if a["source"] == "alembic"]}))
"""


def test_two_concurrent_maintain_runs_only_one_migrates(pg, tmp_path):
    """Both runs take their backup and diff, one migrates (blocked inside revision 0003), the other reaches
    migrate meanwhile and fails fast on the lock. (The target is at 0002 already, so 0003 locks no table
    the other run reads: a run meeting a migration's table locks instead fails on them within the busy /
    lock timeout, in backup or diff, which a test cannot hold open for long.)"""
    prod, dev = demo_databases(pg, tmp_path / "data")
    migrate(goals_target(prod, dev), reference(goals_target(prod, dev)))  # to 0002
    migrations = copy_migrations(tmp_path, {"0003_blocking.py": BLOCKING})
    path = write_config(tmp_path, {"goals": pg_target(prod, dev, migrations=str(migrations),
                                                      ignore_tables=["alembic_version", "run_log"])})
    results = race_two(tmp_path, RUN_JOB_SCRIPT, str(path))
    assert sorted(r["status"] for r in results) == ["failed", "success"], results
    winner = next(r for r in results if r["status"] == "success")
    assert winner["applied"] == ["0003"]
    loser = next(r for r in results if r["status"] == "failed")
    assert loser["step"] == "migrate" and "another run holds the maintenance lock" in loser["error"]
    assert "pg-super-secret" not in loser["error"]
    assert scalar(prod, "SELECT count(*) FROM run_log") == 1
    assert scalar(prod, "SELECT version_num FROM alembic_version") == "0003"


def test_without_createdb_a_migration_that_writes_rows_is_refused(pg, tmp_path):
    """The rows check restores the backup into a scratch database: a role that may not create one cannot
    prove its migration lost nothing, so the migration is rolled back with a message naming CREATEDB."""
    suffix = uuid.uuid4().hex[:6]
    role, name, ref_name = f"nocreatedb_{suffix}", f"nocdb_{suffix}", f"nocdbref_{suffix}"
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'role-Pa55' NOCREATEDB")
    pg.psql(f"CREATE DATABASE {name} OWNER {role}")
    pg.psql(f"CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); "
            f"ALTER TABLE t OWNER TO {role}", name)
    ref = pg.create_database(ref_name)
    pg.psql("CREATE TABLE t (id int PRIMARY KEY)", ref_name)  # dropping v writes t's rows: a planned drop to count
    url = pg.url(name, user=role, password="role-Pa55")
    config = load_config(write_config(tmp_path, {"goals": {"url": url, "reference": {"url": ref}, "align": "full"}}))
    report = run_job(config, "goals", "maintain_database")
    assert report["backup"] and report["backup"]["verified"], report["error"]
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert "may not create databases" in report["error"] and "CREATEDB" in report["error"]
    assert "nothing was committed" in report["error"]
    assert scalar(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'") == 2
    assert "role-Pa55" not in json.dumps(report)
    # a column added writes no row: that migration needs no scratch database, so no CREATEDB either
    pg.psql("ALTER TABLE t ADD COLUMN v text, ADD COLUMN w text", ref_name)
    config = load_config(write_config(tmp_path, {"goals": {"url": url, "reference": {"url": ref}}}))
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert scalar(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'") == 3


def test_orphans_that_existed_before_do_not_fail_maintain_but_fail_verify(pg, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    live_name, ref_name = f"orph_{suffix}", f"orphref_{suffix}"
    live, ref = pg.create_database(live_name), pg.create_database(ref_name)
    schema = "CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY, pid int);"
    fk = "ALTER TABLE c ADD CONSTRAINT c_pid_fk FOREIGN KEY (pid) REFERENCES p(id) NOT VALID;"
    pg.psql(schema + "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1), (2, 7);" + fk, live_name)
    pg.psql(schema + fk + "ALTER TABLE c ADD COLUMN note text", ref_name)
    config = load_config(write_config(tmp_path, {"goals": {"url": live, "reference": {"url": ref}}}))
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    fk = check(report, "foreign_keys")
    assert fk["passed"] and "existed before this run: c -> p: 1" in fk["detail"] and "c.c_pid_fk" in fk["detail"]
    report = run_job(config, "goals", "verify_database")
    assert report["status"] == "failed" and not check(report, "foreign_keys")["passed"]

    # an orphan another session writes after a migration's commit is not counted as the run's
    pg.psql("ALTER TABLE c ADD COLUMN extra int", ref_name)
    state = pipeline.start(config, "goals", "maintain_database")
    for step in (pipeline.step_backup, pipeline.step_diff, pipeline.step_migrate):
        step(state)
    assert state.migration.applied
    pg.psql("ALTER TABLE c DISABLE TRIGGER ALL; INSERT INTO c (id, pid) VALUES (3, 42); "
            "ALTER TABLE c ENABLE TRIGGER ALL", live_name)
    pipeline.step_verify(state)
    fk = check(pipeline.finish(state), "foreign_keys")
    assert fk["passed"], fk
    assert "1 orphan row(s) written by another session since the backup: c -> p: 1" in fk["detail"]
    assert "1 existed before this run" in fk["detail"]


def test_restore_brings_back_the_pre_migration_database(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    config = config_for(tmp_path, prod, dev)
    maintained = run_job(config, "goals", "maintain_database")
    assert maintained["status"] == "success", maintained["error"]
    report = run_job(config, "goals", "restore_database", restore_backup=maintained["backup"]["path"])
    assert report["status"] == "success", report["error"]
    assert report["tables_after"]["goals"] == {"columns": 20, "rows": 39}
    assert "scheduled_sessions" in report["tables_after"]
    assert check(report, "matches_restored_backup")["passed"]
    assert not check(report, "schema_matches_reference")["detail"].startswith("13 tables")


def test_dry_run_changes_nothing_and_reports_the_sql(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    config = config_for(tmp_path, prod, dev)
    before = db_state(prod)
    report = run_job(config, "goals", "maintain_database", dry_run=True)
    assert report["status"] == "success", report["error"]
    assert report["applied"] == [] and report["dry_run"] is True
    sql = "\n".join(report["sql"])
    assert "CREATE TABLE program_day_templates" in sql and "ADD COLUMN completed_at" in sql
    assert check(report, "schema_matches_reference")["passed"]
    assert db_state(prod) == before


def test_rows_the_migration_loses_roll_it_back_and_a_declared_change_is_reported(pg, tmp_path):
    """PostgreSQL decides rows_preserved before COMMIT: the backup, restored into a scratch database beside the
    migration, against the migration's own transaction, in the tables whose rows it may have changed
    (pg_stat_xact_user_tables, relfilenode, columns). A loss rolls the run back; the application's writes to
    other tables do not count; a revision that declares its row changes is reported, not failed."""
    prod, dev = demo_databases(pg, tmp_path / "data")
    db = prod.rsplit("/", 1)[1]
    wipe = revision("0003", "0002", '    op.execute("DELETE FROM practice_session_goals")')
    config = config_for(tmp_path, prod, dev, migrations=str(copy_migrations(tmp_path, {"0003_wipe.py": wipe})))
    state = pipeline.start(config, "goals", "maintain_database")
    pipeline.step_backup(state)
    pipeline.step_diff(state)
    before = db_state(prod)
    pg.psql("UPDATE programs SET name = name || ' (edited by the app)'", db)  # a table the migration never writes
    with pytest.raises(RowsLostError) as err:
        pipeline.step_migrate(state)
    assert re.search(r"rows of kept tables: practice_session_goals 6 \(key \('", str(err.value)), err.value
    assert "programs" not in str(err.value).split("practice_session_goals")[0] and "changes_rows" in str(err.value)
    assert state.migration.rolled_back and scalar(prod, "SELECT count(*) FROM practice_session_goals") == 6
    pg.psql("UPDATE programs SET name = replace(name, ' (edited by the app)', '')", db)
    assert db_state(prod) == before  # nothing committed

    declared = wipe.replace("revision = '0003'", "revision = '0003'\nchanges_rows = ('practice_session_goals',)")
    config = config_for(tmp_path, prod, dev,
                        migrations=str(copy_migrations(tmp_path / "declared", {"0003_wipe.py": declared})))
    state = pipeline.start(config, "goals", "maintain_database")
    for step in (pipeline.step_backup, pipeline.step_diff, pipeline.step_migrate, pipeline.step_verify):
        step(state)
    assert {"practice_session_goals", "scheduled_sessions"} <= state.migration.written
    # goals and program_days only gained columns: no row of theirs can have changed, so they are not compared
    assert "programs" not in state.migration.written and not {"goals", "program_days"} & state.migration.written
    rows = next(c for c in state.verification.checks if c.name == "rows_preserved")
    assert rows.passed and "practice_session_goals: 6 row(s) changed as revision 0003 declares" in rows.detail
    assert "compared inside the migration's transaction, before its commit" in rows.detail
    assert "other table(s) not written by the migration" in rows.detail


def test_without_track_counts_every_table_is_compared(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    pg.psql(f'ALTER DATABASE "{prod.rsplit("/", 1)[1]}" SET track_counts = off')  # the server counts nothing
    result = migrate(goals_target(prod, dev), reference(goals_target(prod, dev)))
    assert result.applied and result.written is None  # unknown: verify compares every table
