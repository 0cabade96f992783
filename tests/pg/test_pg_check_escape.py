"""A user check cannot escape its read-only transaction on PostgreSQL: ``SELECT 0; COMMIT; DROP TABLE canary;
SELECT 0`` (which psycopg's simple query protocol would run whole) is refused before it runs, in maintain (nothing
committed), verify and the read-only ``check`` command; a single ``COMMIT`` is not a query; the statement goes
through the extended protocol, which refuses a second command, whatever the text looks like."""

from __future__ import annotations

import contextlib

import pytest
import sqlalchemy as sa

from targets import ORPHAN_CHECK, ROOT, write_config
from pg_migrate_helpers import db_state, demo_databases, scalar

from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.engines import engine_of, open_engine
from maintenance_pipeline.core.errors import UserCheckError
from maintenance_pipeline.core.run.pipeline import run_job

ESCAPE = {"name": "escape", "sql": "SELECT 0; COMMIT; DROP TABLE canary; SELECT 0", "expect": 0}
CANARY = "SELECT count(*) FROM pg_class WHERE relname = 'canary'"


def _setup(pg, tmp_path, check):
    prod, dev = demo_databases(pg, tmp_path / "data")
    engine = open_engine(prod)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE canary (id int)")
    engine.dispose()
    target = {"url": prod, "reference": {"url": dev}, "migrations": str(ROOT / "examples" / "migrations"),
              "baseline_revision": "0001", "checks": [ORPHAN_CHECK, check],
              "ignore_tables": ["alembic_version", "canary"]}
    return prod, write_config(tmp_path, {"goals": target})


@pytest.mark.parametrize("check, words", [
    (ESCAPE, "a check is one statement and this one has 4 (SELECT, COMMIT, DROP, SELECT)"),
    ({"name": "escape", "sql": "COMMIT", "expect": 0}, "this one is not a query (it starts with COMMIT"),
])
def test_a_check_never_commits_the_migration_nor_drops_a_table(pg, tmp_path, capsys, check, words):
    prod, path = _setup(pg, tmp_path, check)
    before = db_state(prod, snapshot=False)
    config = load_config(path)

    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate"
    assert words in report["error"] and "nothing was committed" in report["error"]
    assert db_state(prod, snapshot=False) == before  # the migration's revision and alignment: not committed

    report = run_job(config, "goals", "verify_database")
    assert words in next(c for c in report["checks"] if c["name"] == "escape")["detail"]
    assert scalar(prod, CANARY) == 1

    code = cli.main(["--config", str(path), "check", "goals"])
    assert code == 1 and words in capsys.readouterr().out
    assert scalar(prod, CANARY) == 1 and db_state(prod, snapshot=False) == before


@contextlib.contextmanager
def _connection(pg, tmp_path):
    """A connection to a fresh copy of the demo (with its canary table) and its engine."""
    prod, _ = _setup(pg, tmp_path, {"name": "x", "sql": "SELECT 0", "expect": 0})
    engine = open_engine(prod)
    try:
        with engine.connect() as conn:
            yield prod, conn, engine_of(conn)
    finally:
        engine.dispose()


def test_the_driver_runs_one_statement_at_most_whatever_the_text(pg, tmp_path):
    with _connection(pg, tmp_path) as (prod, conn, pg_engine):
        with pytest.raises(sa.exc.DBAPIError, match="multiple commands"):
            with pg_engine.read_only(conn):
                pg_engine.run_check(conn, "SELECT 0; DROP TABLE canary")
        conn.rollback()
    assert scalar(prod, CANARY) == 1


def test_a_check_that_left_its_transaction_is_caught_afterwards(pg, tmp_path):
    with _connection(pg, tmp_path) as (_, conn, pg_engine):
        with pytest.raises(UserCheckError, match="outside the read-only transaction"):
            with pg_engine.read_only(conn):
                # what a check must never manage to do: end the transaction and start another
                raw = conn.connection.driver_connection
                raw.execute("COMMIT")
                raw.execute("BEGIN")
                raw.execute("SAVEPOINT sa_savepoint_1")
