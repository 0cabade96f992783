"""Who blocks the migration: while an attempt runs, a thread on a connection of its own asks the server every
``INTERVAL`` seconds which sessions block the migration's backend (``pg_blocking_pids``), and describes each the
way an owner needs to act on it: pid, application, state, how long its transaction has been open, the tables
it holds locks on. Never another session's query text (it may hold data)."""

from __future__ import annotations

import threading

INTERVAL = 0.1

_SQL = """
SELECT a.pid, a.application_name, a.state, extract(epoch FROM now() - a.xact_start)::float8,
       (SELECT string_agg(DISTINCT c.relname, ', ' ORDER BY c.relname)
          FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_class c ON c.oid = l.relation
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = a.pid AND l.granted AND c.relkind IN ('r', 'p', 'm', 'v', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema'))
  FROM pg_catalog.pg_stat_activity a
 WHERE a.pid = ANY(pg_catalog.pg_blocking_pids(%s))
"""


def describe(pid: int, app: str | None, state: str | None, xact_age: float | None, tables: str | None) -> str:
    """"pid 4242 (billing-worker) idle in transaction for 12 min holds a lock on orders"."""
    who = f"pid {pid}" + (f" ({app})" if app else "")
    doing = state or "connected"
    if xact_age is not None:
        doing += (f" for {_age(xact_age)}" if state and "transaction" in state
                  else f", its transaction open for {_age(xact_age)},")
    holds = f" holds a lock on {tables}" if tables else " is ahead of it in the lock queue"
    return f"{who} {doing}{holds}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class BlockerWatch:
    """Started when an attempt begins (the migration backend's ``pid``), stopped when it ends: ``seen`` is every
    session that blocked it meanwhile, described as it was last seen."""

    def __init__(self, url: str, pid: int, interval: float = INTERVAL):
        self.url, self.pid, self.interval = url, pid, interval
        self.seen: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="blocker-watch", daemon=True)

    def start(self) -> BlockerWatch:
        self._thread.start()
        return self

    def _watch(self) -> None:
        import psycopg

        from .tools import psycopg_connect

        try:
            conn = psycopg_connect(self.url, autocommit=True)
        except Exception:  # noqa: BLE001 - naming blockers is a courtesy; the migration goes on without it
            return
        try:
            conn.execute("SET application_name = 'blocker watch of maintenance_pipeline'")
            while True:
                for row in conn.execute(_SQL, (self.pid,)).fetchall():
                    self.seen[row[0]] = describe(*row)
                if self._stop.wait(self.interval):
                    return
        except psycopg.Error:
            return
        finally:
            conn.close()

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(timeout=5)
        return list(self.seen.values())
