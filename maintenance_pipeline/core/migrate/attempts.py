"""Attempts at the migration's transaction: never queue the application behind the run.

A lock the migration needs (PostgreSQL: a table lock its DDL takes; SQLite: the write lock) is waited for at
most ``lock_timeout`` per attempt. PostgreSQL queues every later statement on that table behind a waiting
``ALTER`` (the lock-queue outage), so the wait is the application's stall: short attempts keep it short. An
attempt that times out is rolled back whole, the run waits a jittered, growing pause (holding nothing) and
tries again, up to ``lock_retries`` more times within ``lock_deadline``; then it gives up with the sessions that
blocked it named (the engine's ``MigrationSession.blockers``: pid, application, state, how long its
transaction has been open; never another session's query text), nothing committed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from ..config import duration_seconds
from ..errors import LockTimeoutError, MigrationError

BACKOFF_FIRST = 0.25  # seconds before the second attempt; doubles after each, jittered ±50 %
BACKOFF_CAP = 10.0
MAX_PREPARED = 3  # attempts rolled back to prepare outside the transaction (engines.base.Prepare)


class LockWait(Exception):
    """One attempt timed out waiting for a lock (already rolled back); ``blockers``: who held it."""

    def __init__(self, message: str, blockers: list[str], result=None):
        super().__init__(message)
        self.message = message
        self.blockers = blockers
        self.result = result  # the attempt's MigrationResult (rolled back): what it tried


@dataclass
class Attempts:
    """The attempt policy of one migration, and what its attempts met (``log``, for the report)."""

    target_name: str
    url_shown: str
    wait: float  # seconds one attempt waits for a lock
    retries: int
    deadline: float  # seconds all attempts may take
    started: float = field(default_factory=time.monotonic)
    log: list[dict] = field(default_factory=list)  # {"attempt", "waited_for_lock", "blockers", "seconds"}

    @classmethod
    def of(cls, target, shown_url: str) -> Attempts:
        try:
            wait, retries, deadline = target.lock_wait
        except ValueError:
            name, value = next((n, v) for n, v in (("lock_timeout", target.lock_timeout),
                                                   ("lock_deadline", target.lock_deadline)) if not _duration_ok(v))
            raise MigrationError(f"target {target.name!r}: {name} {value!r} is not a PostgreSQL duration; write e.g. "
                                 "2s, 500ms or 1min in the targets file") from None
        return cls(target.name, shown_url, wait, int(retries), deadline)

    @property
    def number(self) -> int:
        return len(self.log) + 1

    def begun(self) -> float:
        return time.monotonic()

    def timed_out(self, e: LockWait, since: float) -> float:
        """Record attempt ``self.number`` that timed out; the pause before the next one, or raise
        ``LockTimeoutError`` when the retries or the deadline are spent."""
        self.log.append({"attempt": self.number, "waited_for_lock": True, "blockers": list(e.blockers),
                         "seconds": round(time.monotonic() - since, 3), "error": e.message})
        elapsed, waited = time.monotonic() - self.started, self.waited
        pause = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (waited - 1)) * random.uniform(0.5, 1.5)
        if waited > self.retries or elapsed + pause + self.wait > self.deadline:
            raise self.give_up()
        return pause

    @property
    def waited(self) -> int:
        """Attempts that timed out waiting for a lock."""
        return sum(1 for a in self.log if a["waited_for_lock"])

    def give_up(self) -> LockTimeoutError:
        n, elapsed = self.waited, time.monotonic() - self.started
        who = blocker_summary(self.log)
        err = LockTimeoutError(
            f"gave up after {n} attempt(s) over {elapsed:.0f} s, each rolled back when it waited its lock_timeout "
            f"({self.wait:g} s) for a lock on {self.url_shown}, which stayed locked (lock timeout): {who}; nothing was "
            f"committed; end "
            f"or wait for {'that session' if who.count('pid ') == 1 else 'them'}, then rerun, or give the target more "
            "time (lock_timeout, lock_retries, lock_deadline in the targets file)")
        err.attempts = list(self.log)
        return err

    def prepared(self, reason: str, since: float) -> None:
        """Attempt ``self.number`` was rolled back to do slow work outside the transaction (``engines.base.Prepare``);
        at most ``MAX_PREPARED`` times."""
        self.log.append({"attempt": self.number, "waited_for_lock": False, "blockers": [],
                         "seconds": round(time.monotonic() - since, 3), "prepared": reason})
        if sum(1 for a in self.log if a.get("prepared")) > MAX_PREPARED:
            raise MigrationError(f"the migration of {self.url_shown} had to start over {MAX_PREPARED} times "
                                 f"({reason}); nothing was committed; rerun")

    def succeeded(self, since: float) -> None:
        self.log.append({"attempt": self.number, "waited_for_lock": False, "blockers": [],
                         "seconds": round(time.monotonic() - since, 3)})


def _duration_ok(value) -> bool:
    try:
        duration_seconds(value)
    except ValueError:
        return False
    return True


def blocker_summary(log: list[dict]) -> str:
    """The sessions that blocked the attempts, each once, most recent description first."""
    seen: dict[str, str] = {}
    for entry in reversed(log):
        for b in entry.get("blockers") or []:
            seen.setdefault(b.split(" ", 2)[1] if b.startswith("pid ") else b, b)
    return "; ".join(seen.values()) or "no blocking session was seen (it may have ended between the attempts)"


def pause(seconds: float) -> None:
    """The wait between two attempts (holding nothing of the database)."""
    time.sleep(seconds)
