"""rows_preserved of a maintain run on SQLite is compared inside the migration's transaction
(``RowsGuard`` of ``core/engines/sqlite/rows.py``): the application's writes after the commit are not counted as
the run's (nor are orphans it writes then: the migration checked its own inside the transaction),
writes between the backup and the migration are the application's too (the rows are judged against the
state the migration began from), a row the migration itself loses or changes rolls it back unless its
revision declares the table (``changes_rows``), and the attached backup never stands in for a table the
migration dropped."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from targets import copy_migrations, demo_target, revision, sha256, write_config
from maintenance_pipeline.core.run import pipeline
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import RowsLostError
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.core.run.report import render_markdown


def _app_edits(db: Path) -> None:
    """What the application does at any moment: edit one goal, delete another."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE goals SET name = name || ' (edited)' WHERE id = (SELECT min(id) FROM goals)")
            conn.execute("DELETE FROM goals WHERE id = (SELECT max(id) FROM goals) AND id NOT IN "
                         "(SELECT parent_id FROM goals WHERE parent_id IS NOT NULL)")
    finally:
        conn.close()


def _rows_check(report: dict) -> dict:
    return next(c for c in report["checks"] if c["name"] == "rows_preserved")


def _steps_until_migrate(config, *, edit_before_migrate: Path | None = None):
    state = pipeline.start(config, "goals", "maintain_database")
    pipeline.step_backup(state)
    pipeline.step_diff(state)
    if edit_before_migrate is not None:
        _app_edits(edit_before_migrate)
    pipeline.step_migrate(state)
    return state


def test_verify_database_does_not_count_the_applications_writes(demo_config, demo_dir):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    state = pipeline.start(demo_config, "goals", "verify_database")
    pipeline.step_backup(state)
    pipeline.step_diff(state)
    _app_edits(demo_dir / "data" / "goals.db")
    pipeline.step_verify(state)
    report = pipeline.finish(state)
    assert report["status"] == "success", report["error"]
    assert _rows_check(report)["passed"] and "changed no row" in _rows_check(report)["detail"]


def test_writes_after_the_migration_commits_are_not_the_runs(demo_config, demo_dir):
    state = _steps_until_migrate(demo_config)
    assert state.migration.applied  # the seed's revision and alignment
    _app_edits(demo_dir / "data" / "goals.db")  # after the commit, before verify
    pipeline.step_verify(state)
    rows = _rows_check(pipeline.finish(state))
    assert rows["passed"] and "inside the migration's transaction" in rows["detail"]
    # the migration only added columns to goals and program_days (scheduled_sessions is a planned drop): every kept
    # value of theirs is unchanged by construction, proven from the schema instead of compared under the lock
    assert "2 kept table(s) only gained columns (goals, program_days): no row of them was written" in rows["detail"]
    assert "10 other table(s) not written by the migration" in rows["detail"]


def test_orphans_written_after_the_commit_are_not_the_runs(demo_dir):
    # (without the demo's own "no orphaned goals" check, which fails on any orphan, as its owner wants)
    state = _steps_until_migrate(load_config(write_config(demo_dir, {"goals": demo_target(checks=None)})))
    with sqlite3.connect(demo_dir / "data" / "goals.db") as conn:  # the application: foreign keys off
        conn.execute("UPDATE goals SET parent_id = 'no-such-goal' WHERE id = (SELECT min(id) FROM goals)")
    pipeline.step_verify(state)
    report = pipeline.finish(state)
    assert report["status"] == "success", report["error"]
    fk = next(c for c in report["checks"] if c["name"] == "foreign_keys")
    assert fk["passed"] and "the migration introduced no orphan (checked inside its transaction)" in fk["detail"]
    assert "1 orphan row(s) written by another session since the backup: goals -> goals: 1" in fk["detail"]


def _journal_mode(db: Path, mode: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA journal_mode={mode}")
    conn.close()


# a data migration that writes goals' rows (and changes none of them: the compare must find nothing)
TOUCHES_GOALS = revision("0003", "0002", """    op.execute("UPDATE goals SET name = name")""")


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_writes_between_the_backup_and_the_migration_are_the_applications(demo_dir, journal_mode):
    db = demo_dir / "data" / "goals.db"
    _journal_mode(db, journal_mode)
    config = _with_revision(demo_dir, TOUCHES_GOALS)
    state = _steps_until_migrate(config, edit_before_migrate=db)
    pipeline.step_verify(state)
    report = pipeline.finish(state)
    assert report["status"] == "success", report["error"]
    detail = _rows_check(report)["detail"]
    assert "not compared" not in detail  # every written table judged, against the state the migration began from
    if journal_mode == "wal":  # goals (edited) against the state at BEGIN
        assert "compared with the state at BEGIN (another session wrote since the backup): goals" in detail
    else:  # the file copied at BEGIN stands in for the backup
        assert re.search(r"all \d+ rows of 1 kept table present", detail), detail
        assert "compared with the file as it was at BEGIN" in detail
        # the first attempt saw goals written and the file moved since the backup: it started again, with the copy
        assert any(a.get("prepared") for a in state.migration.attempts)
    assert "1 kept table(s) only gained columns (program_days)" in detail
    assert "10 other table(s) not written by the migration" in detail


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_a_loss_in_a_table_the_application_wrote_since_the_backup_is_still_found(demo_dir, journal_mode):
    db = demo_dir / "data" / "goals.db"
    _journal_mode(db, journal_mode)
    loses_goals = revision("0003", "0002", """    op.execute("UPDATE goals SET description = 'overwritten'")""")
    config = _with_revision(demo_dir, loses_goals)
    state = _steps_until_migrate_failing(config, edit_before_migrate=db)
    assert state.migration.rolled_back
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "alembic_version" not in tables and "program_day_templates" not in tables  # nothing committed
        assert conn.execute("SELECT count(*) FROM goals WHERE description = 'overwritten'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM goals WHERE name LIKE '% (edited)'").fetchone()[0] == 1
    finally:
        conn.close()


def _steps_until_migrate_failing(config, *, edit_before_migrate: Path):
    state = pipeline.start(config, "goals", "maintain_database")
    pipeline.step_backup(state)
    pipeline.step_diff(state)
    _app_edits(edit_before_migrate)
    with pytest.raises(RowsLostError, match=r"rows of kept tables: goals \d+ \(key "):
        pipeline.step_migrate(state)
    return state


# a data migration that deletes the links of sessions to goals and renames a program
LOSES_A_ROW = revision("0003", "0002", """    op.execute("DELETE FROM practice_session_goals")
    op.execute("UPDATE programs SET name = 'renamed' WHERE id = (SELECT min(id) FROM programs)")""")

# the statement names programs only; the trigger it fires empties another table
LOSES_ROWS_THROUGH_A_TRIGGER = revision("0003", "0002", """\
    op.execute("CREATE TRIGGER mp_wipe AFTER UPDATE ON programs BEGIN DELETE FROM practice_session_goals; END")
    op.execute("UPDATE programs SET name = name")
    op.execute("DROP TRIGGER mp_wipe")""")

# scheduled_sessions was dropped by 0002: it exists only in the run's (attached) backup
READS_A_DROPPED_TABLE = revision("0003", "0002", """\
    op.execute("CREATE TABLE old_sessions AS SELECT * FROM scheduled_sessions")""")
# count(*) reads no column: SQLite names no database to the authorizer for an unqualified table
COUNTS_A_DROPPED_TABLE = revision("0003", "0002", """\
    n = op.get_bind().exec_driver_sql("SELECT count(*) FROM scheduled_sessions").scalar()
    op.execute(f"CREATE TABLE old_count AS SELECT {n} AS n")""")


def _with_revision(demo_dir: Path, text: str):
    migrations = copy_migrations(demo_dir, {"0003_extra.py": text})
    return load_config(write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))}))


def test_rows_the_migration_loses_or_changes_roll_it_back(demo_dir):
    config = _with_revision(demo_dir, LOSES_A_ROW)
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    error = report["error"]
    assert "rows of kept tables: practice_session_goals 6 (key '" in error
    assert re.search(r"programs 1 \(key '[^']+'\)", error), error
    assert len(error) <= 300
    assert "nothing was committed" in error and "changes_rows = (" in error
    assert sha256(db) == before  # rolled back: the file is bytewise what it was
    assert report["rolled_back"] and report["applied"] == []
    md = render_markdown(report)  # the report says it, and shows what was tried and undone with its SQL
    assert "**Rolled back:** the migration stopped before its COMMIT; nothing it did was committed." in md
    assert report["after_rollback"]["sha256"] == before and report["after_rollback"]["unchanged"]
    assert f"The database file is bytewise what it was before the run (sha256 `{before[:16]}…`" in md
    assert "## Planned (not applied)" in md and "```sql" in md


def test_a_revision_that_declares_its_row_changes_is_reported_not_failed(demo_dir):
    declared = LOSES_A_ROW.replace("revision = '0003'",
                                   "revision = '0003'\nchanges_rows = ('practice_session_goals', 'programs')")
    report = run_job(_with_revision(demo_dir, declared), "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    detail = _rows_check(report)["detail"]
    assert _rows_check(report)["passed"]
    assert "declared changes: practice_session_goals: 6 row(s) changed as revision 0003 declares" in detail
    assert "programs: 1 row(s) changed as revision 0003 declares" in detail
    assert report["revisions"]["after"] == "0003"


def test_a_table_written_only_by_a_trigger_is_compared_too(demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(_with_revision(demo_dir, LOSES_ROWS_THROUGH_A_TRIGGER), "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert "practice_session_goals 6 (key" in report["error"]
    assert "programs:" not in report["error"]  # written and compared: name = name changed nothing
    assert sha256(db) == before


@pytest.mark.parametrize("reads", [READS_A_DROPPED_TABLE, COUNTS_A_DROPPED_TABLE], ids=["columns", "count"])
def test_the_attached_backup_never_stands_in_for_a_dropped_table(demo_dir, reads):
    config = _with_revision(demo_dir, reads)
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert "0003" in report["error"] and "no such table: scheduled_sessions" in report["error"]
    assert sha256(db) == before


def test_the_guard_reads_the_names_again_only_when_a_statement_can_move_them(tmp_path, monkeypatch):
    """After ``ADD COLUMN`` or ``CREATE INDEX`` no table or view appears, goes or is renamed: reading every name of
    the schema again after each (1,000 of them on a 10,000-table schema cost seconds) is not needed; after
    ``CREATE TABLE`` it is."""
    from maintenance_pipeline.core.engines.sqlite.migration import names_move
    from maintenance_pipeline.core.engines.sqlite.rows import RowsGuard
    from sqlite_cases import Case

    assert not names_move('ALTER TABLE "t" ADD COLUMN v TEXT') and not names_move("CREATE INDEX ix ON t (v)")
    assert names_move("CREATE TABLE u (id INTEGER)") and names_move('ALTER TABLE "_tmp" RENAME TO "t"')
    assert names_move("DROP VIEW v") and names_move("create temp table x (a)")
    calls = []
    real = RowsGuard.refresh_names
    monkeypatch.setattr(RowsGuard, "refresh_names", lambda self, **kw: calls.append(kw) or real(self, **kw))
    tables = "".join(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY);" for i in range(20))
    c = Case(tmp_path, tables, tables.replace("PRIMARY KEY)", "PRIMARY KEY, v TEXT)") + "CREATE TABLE added (id INTEGER);")
    c.run(align="additive")
    assert c.remaining() == []
    assert len([k for k in calls if not k]) == 1  # the new table only; 20 ADD COLUMN read no name
