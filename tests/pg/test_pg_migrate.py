"""migrate() on a real PostgreSQL server, without the backup step: the seed scenario through migrate and
verify, dry runs, revisions that fail halfway or try to end the single transaction (everything rolled
back), and the maintenance lock, lock_timeout and statement_timeout.

The seed demo is loaded once per session (``examples/pg_demo.py``) into two template databases;
each test works on its own copies (``CREATE DATABASE ... TEMPLATE``). The helpers are in
``pg_migrate_helpers.py`` (with the BROKEN and BLOCKING revisions; ``test_pg_pipeline`` uses them too).
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from maintenance_pipeline.core.errors import MigrationError
from maintenance_pipeline.core.lock import maintenance_lock
from maintenance_pipeline.core.migrate.executor import migrate
from maintenance_pipeline.core.verify.checks import verify_target
from pg_migrate_helpers import (
    BLOCKING,
    BROKEN,
    copy_migrations,
    db_state,
    demo_databases,
    goals_target,
    race_two,
    reference,
    revision,
    scalar,
)


# ------------------------------------------------------------------------------ the seed


def test_seed_scenario_through_migrate_and_verify(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev)
    ref = reference(target)
    result = migrate(target, ref)
    assert result.plan.stamp == "0001" and [r for r, _ in result.plan.pending] == ["0002"]
    assert result.revision_after == "0002" and result.drift_after == []
    assert [a["source"] for a in result.applied] == ["alembic", "align"]
    assert "completed_at" in result.applied[1]["description"]
    assert scalar(prod, "SELECT version_num FROM alembic_version") == "0002"

    verified = verify_target(target, ref, backup_path=None, backup_verified=True, backup_detail="test")
    assert all(c.passed for c in verified.checks), verified.checks
    names = [c.name for c in verified.checks]
    assert names == ["schema_matches_reference", "integrity", "foreign_keys", "backup_verified"]
    assert verified.tables_after["goals"] == {"columns": 22, "rows": 39}
    assert "scheduled_sessions" not in verified.tables_after and len(verified.tables_after) == 13
    integrity = verified.checks[1]
    assert "skipped" in integrity.detail and "amcheck" in integrity.detail  # not installed: says so

    again = migrate(target, ref)  # nothing left to do
    assert again.applied == [] and again.plan.pending == []


def test_dry_run_rolls_back_and_reports_the_sql(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    before = db_state(prod)
    result = migrate(goals_target(prod, dev), reference(goals_target(prod, dev)), dry_run=True)
    sql = "\n".join(result.sql)
    assert "CREATE TABLE program_day_templates" in sql and "ADD COLUMN completed_at" in sql
    assert result.drift_after == []
    assert db_state(prod) == before


def test_a_revision_failing_halfway_leaves_schema_and_rows_identical(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, migrations=copy_migrations(tmp_path, {"0003_broken.py": BROKEN}))
    before = db_state(prod)
    assert before["rows"]["practice_session_goals"][0] > 0
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target))
    msg = str(err.value)
    assert "Alembic revision 0003 failed" in msg and "boom in the middle of 0003" in msg and "rolled back" in msg
    assert err.value.revision == "0003" and "\n" not in msg and "pg-super-secret" not in msg
    # 0002 ran and the stamp was written before 0003 failed: all of it is undone, in one transaction
    assert db_state(prod) == before
    assert scalar(prod, "SELECT to_regclass('alembic_version') IS NULL")
    # and the lock was released
    with maintenance_lock(prod, holder="check"):
        pass


ENDS_TRANSACTION = {
    "commit": ('    op.add_column("goals", sa.Column("early", sa.Integer()))\n    op.execute("COMMIT")',
               "'COMMIT' would end the migration's single transaction"),
    "autocommit_block": ('    op.add_column("goals", sa.Column("early", sa.Integer()))\n'
                         '    with op.get_context().autocommit_block():\n'
                         '        op.execute("CREATE INDEX CONCURRENTLY ix_goals_early ON goals (early)")',
                         "uses autocommit_block()"),
}


@pytest.mark.parametrize("how", sorted(ENDS_TRANSACTION))
def test_a_revision_cannot_end_the_single_transaction(pg, tmp_path, how):
    prod, dev = demo_databases(pg, tmp_path / "data")
    body, expect = ENDS_TRANSACTION[how]
    target = goals_target(prod, dev, migrations=copy_migrations(tmp_path, {"0003_ends.py": revision("0003", "0002",
                                                                                                    body)}))
    before = db_state(prod)
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target))
    assert "Alembic revision 0003 failed" in str(err.value) and expect in str(err.value), str(err.value)
    assert db_state(prod) == before


# ------------------------------------------------------------------------------ locks and timeouts


MIGRATE_SCRIPT = """
import json, sys
from pathlib import Path
from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.errors import MaintenanceError
from maintenance_pipeline.core.migrate.executor import migrate
from maintenance_pipeline.core.schema.reference import reference_snapshot
a = json.loads(sys.argv[1])
t = Target(name="goals", url=a["url"], reference_url=a["ref"], migrations=Path(a["migrations"]),
           baseline_revision="0001", ignore_tables=("alembic_version", "run_log"))
ref = reference_snapshot(url=a["ref"], target_dialect="postgresql", ignore_tables=t.ignore_tables)
try:
    r = migrate(t, ref)
    print(json.dumps({"ok": True, "after": r.revision_after}))
except MaintenanceError as e:
    print(json.dumps({"ok": False, "kind": type(e).__name__, "error": str(e)}))
"""


def test_two_processes_migrating_one_target_only_one_migrates(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    migrations = copy_migrations(tmp_path, {"0003_blocking.py": BLOCKING})
    args = json.dumps({"url": prod, "ref": dev, "migrations": str(migrations)})
    results = race_two(tmp_path, MIGRATE_SCRIPT, args, timeout=120)
    assert sorted(r["ok"] for r in results) == [False, True], results
    winner = next(r for r in results if r["ok"])
    loser = next(r for r in results if not r["ok"])
    assert winner["after"] == "0003"
    assert loser["kind"] == "LockHeldError" and "another run holds the maintenance lock" in loser["error"]
    assert "maintenance_pipeline: migrate goals" in loser["error"]  # names the holder
    assert "pg-super-secret" not in loser["error"]
    assert scalar(prod, "SELECT count(*) FROM run_log") == 1  # migrated once
    assert scalar(prod, "SELECT version_num FROM alembic_version") == "0003"


def test_lock_timeout_is_set_local_and_fails_the_run_cleanly(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, lock_timeout="300ms")
    before = db_state(prod)
    holder = sa.create_engine(prod)
    try:
        with holder.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE goals IN ACCESS SHARE MODE")  # a long reader of goals
            t0 = time.monotonic()
            with pytest.raises(MigrationError) as err:
                migrate(target, reference(target))
            assert time.monotonic() - t0 < 30
            conn.rollback()
    finally:
        holder.dispose()
    msg = str(err.value)
    assert "lock timeout" in msg and "lock_timeout" in msg and "rolled back" in msg, msg
    assert db_state(prod) == before
    # the setting was local to the migration transaction: the server default is untouched
    assert scalar(prod, "SHOW lock_timeout") == "0"


def test_statement_timeout_applies_to_revisions(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    slow = revision("0003", "0002", '    op.execute("SELECT pg_sleep(5)")')
    target = goals_target(prod, dev, statement_timeout="200ms",
                          migrations=copy_migrations(tmp_path, {"0003_slow.py": slow}))
    before = db_state(prod)
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target))
    assert "statement timeout" in str(err.value) and "statement_timeout" in str(err.value)
    assert "revision 0003" in str(err.value)
    assert db_state(prod) == before


def test_a_bad_timeout_value_is_a_clear_error(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, lock_timeout="ten seconds")
    before = db_state(prod)
    with pytest.raises(MigrationError, match="lock_timeout 'ten seconds' is not a PostgreSQL duration"):
        migrate(target, reference(target))
    assert db_state(prod) == before
