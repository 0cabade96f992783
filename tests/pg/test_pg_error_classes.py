"""Errors say what happened on a real PostgreSQL server: a server that went away in the middle of pg_dump (a crash,
a terminated session) is not a problem of host, port or credentials; a migration whose session the server ended is
not the revision's fault; nothing was committed either way, and the whole text of what the server or pg_dump said
travels with the error (``detail``: the report and the run's log show it).

pg_dump is made to wait, deterministically, on a table lock the test holds (a partitioned table in another schema:
pg_dump locks it, the backup's own row counts and size estimate do not), then its server session is ended while it
waits: by ``pg_terminate_backend`` on the session server, by SIGKILL (a backend crash, which restarts the whole
server) on a server of the test's own."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest

from targets import demo_target, write_config
from maintenance_pipeline.core import backup as backup_mod
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConnectionFailedError
from maintenance_pipeline.core.run.pipeline import run_job
from pg_migrate_helpers import copy_migrations, db_state, demo_databases, revision
from pgserver import PgServer, find_bindir

WAITING = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
           "AND query LIKE 'LOCK TABLE other.p%'")


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _pg_dump_interrupted(server, name: str, tmp_path, end) -> BaseException:
    """The error of a backup whose pg_dump the server stops serving while it waits for the test's lock."""
    url = server.create_database(name)
    server.psql("CREATE TABLE t (a int); INSERT INTO t VALUES (1); CREATE SCHEMA other; "
                "CREATE TABLE other.p (a int) PARTITION BY RANGE (a)", database=name)
    holder = psycopg.connect(_plain(url))
    holder.execute("LOCK TABLE other.p IN ACCESS EXCLUSIVE MODE")  # held until the test ends it
    raised: list[BaseException] = []

    def backup():
        try:
            backup_mod.backup_database(url, tmp_path / "backups", "goals", busy_timeout=600)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            raised.append(e)

    worker = threading.Thread(target=backup)
    worker.start()
    try:
        with psycopg.connect(_plain(url), autocommit=True) as admin:
            deadline = time.monotonic() + 120
            while not (waiting := admin.execute(WAITING).fetchall()):  # pg_dump is in the lock's queue
                assert worker.is_alive() and time.monotonic() < deadline, raised
                time.sleep(0.02)
            end(admin, waiting[0][0])
        worker.join(timeout=120)
    finally:
        try:
            holder.close()
        except Exception:  # noqa: BLE001 - a crash ended it too
            pass
    assert not worker.is_alive() and len(raised) == 1
    return raised[0]


def _assert_server_went_away(err: BaseException, said: str) -> None:
    message = str(err)
    assert isinstance(err, ConnectionFailedError), message
    assert message.startswith("the server went away mid-way through pg_dump of "), message
    assert "check the server's log, then rerun" in message
    assert "check host, port" not in message and "credentials" not in message
    assert "\n" not in message and "pg-super-secret" not in message
    # the whole of what pg_dump said: the reason, and the query it was running
    assert said in err.detail and "Query was: LOCK TABLE other.p IN ACCESS SHARE MODE" in err.detail


def test_a_pg_dump_whose_session_is_terminated_says_the_server_went_away(pg, tmp_path):
    err = _pg_dump_interrupted(pg, "went_away_terminated", tmp_path,
                               lambda admin, pid: admin.execute("SELECT pg_terminate_backend(%s)", (pid,)))
    _assert_server_went_away(err, "terminating connection due to administrator command")


def test_a_server_crash_during_pg_dump_is_not_a_credentials_problem(tmp_path):
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found")
    server = PgServer(bindir).start()  # its own server: the crash restarts every session of it
    try:
        err = _pg_dump_interrupted(server, "went_away_crash", tmp_path,
                                   lambda admin, pid: os.kill(pid, signal.SIGKILL))
    finally:
        server.stop()
    _assert_server_went_away(err, "server closed the connection unexpectedly")


# a revision whose session the server ends (pg_terminate_backend on itself: what an administrator or a failover does)
KILLED = revision("0003", "0002", """    op.add_column("goals", sa.Column("halfway", sa.Integer(), nullable=True))
    op.execute("SELECT pg_terminate_backend(pg_backend_pid())")""")


def test_a_migration_whose_session_the_server_ended_is_not_the_revisions_fault(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    migrations = copy_migrations(tmp_path, {"0003_killed.py": KILLED})
    config = load_config(write_config(tmp_path, {"goals": demo_target(url=prod, reference={"url": dev},
                                                                      migrations=str(migrations))}))
    before = db_state(prod)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate", report["error"]
    error = report["error"]
    assert error.startswith("the server ended the migration's session (")
    assert "nothing was committed" in error and "check the server" in error and error.endswith("and rerun")
    assert "fix the revision" not in error and "Alembic revision 0003 failed" not in error
    assert "terminating connection due to administrator command" in report["error_detail"]
    assert "pg-super-secret" not in error + report["error_detail"]
    assert db_state(prod) == before  # nothing was committed


def test_a_lock_table_too_small_for_the_backup_says_which_setting_to_raise(tmp_path):
    """A backup locks every table in one transaction (pg_dump does, and the row counts beside it): a server whose
    lock table cannot hold them fails the run on one line that says what to raise, in the server's own words."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL binaries not found under CI=true")
        pytest.skip("PostgreSQL binaries not found")
    server = PgServer(bindir).start("-c max_locks_per_transaction=10")  # the smallest lock table it allows
    try:
        url = server.create_database("many_tables")
        for start in range(0, 1500, 100):  # a transaction of 100 tables fits; one of them all would not
            server.psql(f"DO $$ BEGIN FOR i IN {start + 1}..{start + 100} LOOP EXECUTE format('CREATE TABLE t%s "
                        "(id int PRIMARY KEY)', i); END LOOP; END $$", "many_tables")
        path = write_config(tmp_path, {"many": {"url": url, "reference": {"url": url}}})
        report = run_job(load_config(path), "many", "verify_database")
    finally:
        server.stop()
    error = report["error"] or ""
    assert report["status"] == "failed" and "\n" not in error, error
    assert "out of shared memory" in error and "max_locks_per_transaction" in error, error
    assert "pg-super-secret" not in error
