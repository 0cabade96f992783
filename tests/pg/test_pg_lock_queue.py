"""Never queue the application behind the run (PostgreSQL): an application transaction holds a lock on a table the
migration alters (a long report). Each attempt of the migration waits at most its ``lock_timeout``, rolls back
and tries again after a pause, so the application's other statements on that table wait one attempt at most,
never the whole time the report holds its lock; the run succeeds once the report ends, or gives up at its
deadline naming the report's session (pid, application, state, how long), with nothing changed."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from pg_migrate_helpers import db_state, demo_databases, goals_target, reference

from maintenance_pipeline.core.errors import LockTimeoutError
from maintenance_pipeline.core.migrate.executor import migrate

WAIT = 0.3  # lock_timeout of one attempt


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class Readers:
    """Application readers of ``goals`` on connections of their own, each statement's latency recorded."""

    def __init__(self, url: str, n: int = 3):
        self.url, self.n = _libpq(url), n
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(n)]

    def _loop(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="app-reader") as conn:
            while not self.stop.is_set():
                t = time.perf_counter()
                conn.execute("SELECT count(*) FROM goals").fetchone()
                self.latencies.append(time.perf_counter() - t)

    def __enter__(self) -> "Readers":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _report_holding_goals(url: str) -> psycopg.Connection:
    """A long report: an open transaction that read ``goals`` (ACCESS SHARE until it ends)."""
    conn = psycopg.connect(_libpq(url), application_name="billing-report")
    conn.execute("SELECT count(*) FROM goals").fetchone()
    return conn


def _attempts_waiting(url: str, want: int, deadline: float = 60) -> set[int]:
    """Poll (with a deadline) until ``want`` distinct backends of the migration have waited for a lock on goals:
    each attempt is a connection of its own."""
    seen: set[int] = set()
    end = time.monotonic() + deadline
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        while len(seen) < want and time.monotonic() < end:
            seen |= {r[0] for r in conn.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted "
                "AND l.relation = 'goals'::regclass AND a.application_name <> 'app-reader'")}
            time.sleep(0.01)
    return seen


def test_the_run_retries_short_attempts_and_succeeds_once_the_report_ends(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, lock_timeout=f"{int(WAIT * 1000)}ms", lock_retries=50, lock_deadline="120s")
    outcome: dict = {}
    report = _report_holding_goals(prod)
    with Readers(prod) as readers:
        run = threading.Thread(target=lambda: outcome.update(result=migrate(target, reference(target))), daemon=True)
        run.start()
        waited = _attempts_waiting(prod, want=3)
        report.commit()  # the report ends: the next attempt gets its lock
        run.join(timeout=120)
    report.close()
    assert len(waited) >= 3, "the run did not retry"
    result = outcome["result"]
    assert result.revision_after == "0002" and not result.rolled_back
    blocked = [a for a in result.attempts if a["waited_for_lock"]]
    assert len(blocked) >= 2 and not result.attempts[-1]["waited_for_lock"]
    assert any("(billing-report) idle in transaction" in b and "holds a lock on goals" in b
               for a in blocked for b in a["blockers"]), blocked
    # the application waited one attempt at most, never the whole time the report held goals
    assert max(readers.latencies) < WAIT + 1.0, max(readers.latencies)
    assert len(readers.latencies) > 10


def test_the_run_gives_up_at_its_deadline_naming_the_blocker_with_nothing_changed(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, lock_timeout="200ms", lock_retries=3, lock_deadline="30s")
    before = db_state(prod, snapshot=False)
    report = _report_holding_goals(prod)
    try:
        with pytest.raises(LockTimeoutError) as err:
            migrate(target, reference(target))
    finally:
        report.rollback()
        report.close()
    msg = str(err.value)
    assert msg.startswith("gave up after 4 attempt(s) over "), msg
    assert "(billing-report) idle in transaction for" in msg and "holds a lock on goals" in msg
    assert "nothing was committed" in msg and "lock_timeout, lock_retries, lock_deadline" in msg
    assert "\n" not in msg
    assert err.value.result.rolled_back and len(err.value.result.attempts) == 4
    assert db_state(prod, snapshot=False) == before
