"""What each statement of the migration cost the application, measured as it ran (not guessed from its text).

For every statement the migration sends (the SQL of the report: no reads, no transaction control), the
``Recorder`` notes when it ran, how long it took, the rows it touched, the locks it took and the tables it
rewrote (the engine's ``MigrationSession.effects``: PostgreSQL reads its own backend's ``pg_locks`` with the
locked tables' ``relfilenode``, at a cost that grows with the locks it holds, not with the schema; SQLite holds its
one write lock from BEGIN and rebuilds tables by copying them). A lock
is held until the transaction ends, so when it ends each statement's locks are given the time they were held:
in a dry run (a rehearsal on a copy) that is what the real run will cost, in a real run what it did cost.
"""

from __future__ import annotations

import time

SKIPPED = ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "EXPLAIN", "SET")


def statement_head(statement: str) -> str:
    return statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""


def recorded(statement: str) -> bool:
    """Whether a statement is the migration's own SQL (what the report lists), not a read or transaction control."""
    return statement_head(statement) not in SKIPPED


class Recorder:
    """``before``/``after`` are SQLAlchemy ``before_cursor_execute`` / ``after_cursor_execute`` listeners."""

    def __init__(self, session, state: dict):
        self.session, self.state = session, state
        self.began = time.perf_counter()
        self.entries: list[dict] = []
        self._open: tuple[float, object] | None = None

    def before(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if recorded(statement):
            self._open = (time.perf_counter(), self.session.effects_before(conn))

    def after(self, conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if self._open is None or not recorded(statement):
            return
        started, before = self._open
        self._open = None
        seconds = time.perf_counter() - started
        rows = getattr(cursor, "rowcount", -1)
        effects = self.session.effects_after(conn, before, statement)
        step = str(self.state.get("step") or "")
        rewrites = list(effects.get("rewrites") or [])
        if step.startswith("rebuilding table ") and not rewrites:  # alignment's table rebuild: a copy of the table
            rewrites = [step.split(" ", 3)[2]]
        self.entries.append({
            "sql": " ".join(statement.split())[:200],
            "started": round(started - self.began, 4),
            "seconds": round(seconds, 4),
            "rows": rows if isinstance(rows, int) and rows >= 0 else None,
            "locks": list(effects.get("locks") or []),
            "rewrites": rewrites,
            "phase": self.state.get("phase"),
        })

    def note(self, conn, statement: str, started: float, seconds: float, how: str) -> None:
        """A statement whose work was done otherwise than by sending it (SQLite: several ``ADD COLUMN`` in one schema
        update), recorded as ``after`` records one that ran: ``started`` (``time.perf_counter()``) and ``seconds``
        its share of that work, ``how`` says how it was done."""
        effects = self.session.effects_after(conn, None, statement)
        self.entries.append({
            "sql": " ".join(statement.split())[:200],
            "started": round(started - self.began, 4),
            "seconds": round(seconds, 4),
            "rows": None,
            "locks": list(effects.get("locks") or []),
            "rewrites": list(effects.get("rewrites") or []),
            "phase": self.state.get("phase"),
            "applied": how,
        })

    def finish(self) -> dict:
        """When the transaction ended (commit or rollback): each statement's ``lock_held`` (seconds from its start to
        the end, for a statement that took a lock) and the longest lock of the transaction."""
        end = time.perf_counter() - self.began
        longest = None
        for e in self.entries:
            if e["locks"]:
                e["lock_held"] = round(end - e["started"], 4)
                if longest is None or e["lock_held"] > longest["seconds"]:
                    longest = {"lock": e["locks"][0], "seconds": e["lock_held"], "statement": e["sql"][:80]}
        whole = self.session.transaction_lock()  # SQLite: the write lock, held from BEGIN to the end
        if whole:
            longest = {"lock": whole, "seconds": round(end, 4), "statement": "BEGIN IMMEDIATE … COMMIT"}
        return {"statements": self.entries, "longest_lock": longest, "transaction_seconds": round(end, 4)}
