"""Real application processes beside a run (``app_process.py``), and what must hold afterwards.

``LiveApp`` starts writers and readers on a SQLite file (or ``pg_writers`` on a PostgreSQL URL) and
stops them; ``committed`` is every row id a writer saw COMMIT return for, ``sequences`` the same per
writer in commit order. The functions below read a SQLite file with plain ``sqlite3`` (never the
product's code): ``integrity_check``, the ids of a table, the Alembic revision, the migrated schema.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app_process.py")


BUSY = ("database is locked", "database table is locked", "busy")


class LiveApp:
    """``writers`` writer processes (``short``: a connection per write) and ``readers`` open-read-close loops
    on a SQLite file; ``pg_writers`` writers on a PostgreSQL database (``db`` is then its URL, SQLAlchemy's
    ``postgresql+psycopg://`` form or libpq's)."""

    def __init__(self, db: Path | str, folder: Path, *, writers: int = 1, short: bool = False, readers: int = 0,
                 interval: float | None = None, pg_writers: int = 0):
        self.db = db if isinstance(db, str) and "://" in db else Path(db)
        self.folder = Path(folder)
        self.spec = ([("writer", short)] * writers + [("reader", False)] * readers
                     + [("pgwriter", False)] * pg_writers)
        self.interval = interval
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.results: list[dict] = []

    def __enter__(self) -> "LiveApp":
        self.folder.mkdir(parents=True, exist_ok=True)
        for i, (role, short) in enumerate(self.spec):
            db = str(self.db).replace("postgresql+psycopg://", "postgresql://", 1)
            argv = [sys.executable, str(APP), role, db]
            if role in ("writer", "pgwriter"):
                log = self.folder / f"committed_{i}.log"
                self.logs.append(log)
                argv.append(str(log))
                if short:
                    argv.append("--short")
            if self.interval is not None:
                argv += ["--interval", str(self.interval)]
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.procs.append(p)
        for p in self.procs:  # each says "ready" once its signal handlers are in place
            line = p.stdout.readline()
            assert line.strip() == "ready", p.stderr.read()
        return self

    def wait_for_commits(self, n: int, timeout: float = 30.0) -> None:
        """Block until the writers together committed at least ``n`` rows (polled with a deadline)."""
        import time

        deadline = time.monotonic() + timeout
        while len(self.committed()) < n:
            assert time.monotonic() < deadline, f"the application committed fewer than {n} rows in {timeout}s"
            time.sleep(0.005)

    def stop(self) -> list[dict]:
        if self.results or not self.procs:
            return self.results
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            out, err = p.communicate(timeout=120)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            assert p.returncode == 0 and lines, f"application process failed ({p.returncode}): {err[-2000:]}"
            self.results.append(json.loads(lines[-1]))
        return self.results

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()

    def committed(self) -> set[str]:
        ids: set[str] = set()
        for seq in self.sequences():
            ids.update(seq)
        return ids

    def sequences(self) -> list[list[str]]:
        """Per writer, the ids it committed, in commit order (a line is written only once it is whole)."""
        out = []
        for log in self.logs:
            text = log.read_text() if log.exists() else ""
            out.append([x for x in text.split("\n")[:-1] if x])  # the last piece is "" or a line being written
        return out

    def errors(self) -> list[str]:
        """The first errors each process reported (after ``stop``)."""
        return [e for r in self.results for e in r.get("first_errors", [])]

    def non_busy_errors(self) -> list[str]:
        """Errors other than busy/locked (a busy timeout running out is not damage; anything else is)."""
        return [e for e in self.errors() if not any(b in e.lower() for b in BUSY)]

    @property
    def error_count(self) -> int:
        return sum(r.get("errors", 0) for r in self.results)

    @property
    def commits(self) -> int:
        return sum(r.get("commits", 0) for r in self.results)

    @property
    def reads(self) -> int:
        return sum(r.get("reads", 0) for r in self.results)


def integrity(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)"))
    except sqlite3.DatabaseError as e:
        return f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def ids(db: Path, table: str = "goals") -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute(f"SELECT id FROM {table}")}
    finally:
        conn.close()


def revision(db: Path) -> str | None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def journal_mode(db: Path) -> str:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
    finally:
        conn.close()


def migrated_schema(db: Path) -> dict:
    """What revision 0002 of the demo leaves, read from ``sqlite_master`` and ``pragma_table_info``:
    the revision, whether ``program_day_templates`` exists and whether ``goals`` has ``program_day_id``."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        goals = {r[0] for r in conn.execute("SELECT name FROM pragma_table_info('goals')")}
    finally:
        conn.close()
    return {"revision": revision(db), "program_day_templates": "program_day_templates" in tables,
            "goals.program_day_id": "program_day_id" in goals}


def set_journal_mode(db: Path, mode: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        got = conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
        assert got.lower() == mode.lower(), got
    finally:
        conn.close()
