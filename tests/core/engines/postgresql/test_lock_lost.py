"""The PostgreSQL maintenance lock held for the whole run, or the run fails before COMMIT: its session
terminated mid-run (``pg_terminate_backend``) rolls the migration back with one line and a second run works
afterwards; a role's ``idle_session_timeout`` does not end it; a run that confirmed its lock commits before
another run can take the lock.

The migration is held inside its revision by ``BLOCKING`` (``pg_migrate_helpers``: it writes MP_STARTED and
waits for MP_RELEASE); the test acts while it is there, and waits only on conditions (a file, the server's
``pg_stat_activity``), each with a deadline.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from maintenance_pipeline.core.engines.postgresql.lock import commit_key
from maintenance_pipeline.core.errors import LockHeldError, LockLostError
from maintenance_pipeline.core.lock import maintenance_lock
from maintenance_pipeline.core.migrate.executor import migrate
from pg_migrate_helpers import BLOCKING, copy_migrations, db_state, demo_databases, goals_target, reference, scalar


def _wait(cond, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class BlockedRun:
    """``migrate`` of a target whose pending revision is BLOCKING, in a thread: ``wait_inside()`` returns once
    it is inside that revision (holding the lock, its transaction open); ``finish()`` lets it go on."""

    def __init__(self, pg, tmp_path, monkeypatch):
        self.prod, dev = demo_databases(pg, tmp_path / "data")
        self.db = self.prod.rsplit("/", 1)[1]
        self.started, self.release = tmp_path / "started", tmp_path / "release"
        monkeypatch.setenv("MP_STARTED", str(self.started))
        monkeypatch.setenv("MP_RELEASE", str(self.release))
        self.target = goals_target(self.prod, dev, migrations=copy_migrations(tmp_path, {"0003_blocking.py": BLOCKING}),
                                   ignore_tables=("alembic_version", "run_log"))
        self.ref = reference(self.target)
        self.outcome: dict = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.outcome["result"] = migrate(self.target, self.ref)
        except Exception as e:  # noqa: BLE001 - the test judges it
            self.outcome["error"] = e

    def wait_inside(self) -> None:
        self.thread.start()
        _wait(lambda: self.started.exists() or not self.thread.is_alive(), "the run to reach its revision")
        assert self.started.exists(), self.outcome

    def finish(self) -> dict:
        self.release.write_text("go")
        self.thread.join(timeout=240)
        assert not self.thread.is_alive(), "the run did not end"
        return self.outcome


def _lock_sessions(pg, db: str) -> list[str]:
    return pg.psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' "
                   "AND application_name LIKE 'maintenance_pipeline%'").split()


def _gone(pg, pid: str) -> bool:
    return pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}") == "0"


def test_a_lock_session_terminated_mid_run_fails_the_run_and_commits_nothing(pg, tmp_path, monkeypatch):
    run = BlockedRun(pg, tmp_path, monkeypatch)
    before = db_state(run.prod)
    try:
        run.wait_inside()
        sessions = _lock_sessions(pg, run.db)
        assert len(sessions) == 1, sessions
        assert pg.psql(f"SELECT pg_terminate_backend({sessions[0]})") == "t"
        _wait(lambda: _gone(pg, sessions[0]), "the terminated lock session to end")
        # what let two runs succeed at once: with its session gone the lock is free for a second run
        with maintenance_lock(run.prod, holder="a second run"):
            second = _lock_sessions(pg, run.db)
            outcome = run.finish()
    finally:
        run.release.write_text("go")
    err = outcome.get("error")
    assert isinstance(err, LockLostError), outcome
    msg = str(err)
    assert "\n" not in msg and len(msg) < 300 and "pg-super-secret" not in msg
    assert msg.startswith("the maintenance lock on postgresql") and "was lost during the run" in msg, msg
    assert f"backend pid {sessions[0]}, ended: terminated or idle_session_timeout" in msg, msg
    assert f"backend pid {second[0]} holds it now" in msg and "nothing was committed; rerun" in msg, msg
    assert err.result.rolled_back
    assert db_state(run.prod) == before  # catalog and rows: revision 0002, 0003 and the alignment all undone
    assert scalar(run.prod, "SELECT to_regclass('run_log') IS NULL")

    again = migrate(run.target, run.ref)  # the fix the line names: rerun
    assert again.revision_after == "0003" and again.drift_after == []
    assert scalar(run.prod, "SELECT count(*) FROM run_log") == 1


def test_the_roles_idle_session_timeout_does_not_end_the_lock_session(pg, tmp_path, monkeypatch):
    if int(pg.psql("SHOW server_version_num")) < 140000:
        pytest.skip("idle_session_timeout is PostgreSQL 14 or later")
    run = BlockedRun(pg, tmp_path, monkeypatch)
    pg.psql(f"ALTER ROLE CURRENT_USER IN DATABASE \"{run.db}\" SET idle_session_timeout = '1s'")
    probe_engine = sa.create_engine(run.prod, poolclass=sa.pool.NullPool)
    try:
        run.wait_inside()
        sessions = _lock_sessions(pg, run.db)
        assert len(sessions) == 1, sessions
        # a session of the same role, idle from now on: the server ends it once it has idled 1 s; the lock
        # session has idled longer by then (since before the revision began)
        with probe_engine.connect() as probe:
            assert probe.exec_driver_sql("SHOW idle_session_timeout").scalar() == "1s"  # the role's setting
            probe_pid = str(probe.exec_driver_sql("SELECT pg_backend_pid()").scalar())
            probe.commit()
            _wait(lambda: _gone(pg, probe_pid), "the idle probe session to be ended by idle_session_timeout")
        assert not _gone(pg, sessions[0]), "the lock session was ended by idle_session_timeout"
        assert _lock_sessions(pg, run.db) == sessions
        outcome = run.finish()
    finally:
        run.release.write_text("go")
        probe_engine.dispose()
        pg.psql(f"ALTER ROLE CURRENT_USER IN DATABASE \"{run.db}\" RESET idle_session_timeout")
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].revision_after == "0003"
    assert scalar(run.prod, "SELECT count(*) FROM run_log") == 1


def test_no_run_takes_the_lock_while_a_run_that_confirmed_it_commits(pg, tmp_path):
    prod, _ = demo_databases(pg, tmp_path / "data")
    engine = sa.create_engine(prod, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as committing:  # what confirm() holds from its check until COMMIT
            assert committing.exec_driver_sql("SELECT pg_try_advisory_xact_lock(%s)", (commit_key(prod),)).scalar()
            with pytest.raises(LockHeldError) as err:
                with maintenance_lock(prod, holder="second"):
                    pytest.fail("the lock was taken while another run was committing")
            assert "whose migration is committing" in str(err.value)
            committing.rollback()
        with maintenance_lock(prod, holder="after the commit") as held:  # its COMMIT (here a rollback) ended
            with engine.connect() as conn, conn.begin():
                held.confirm(conn)
    finally:
        engine.dispose()
