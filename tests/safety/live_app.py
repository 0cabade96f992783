"""Real application processes beside a run (``app_process.py``), and what must hold afterwards.

``LiveApp`` starts writers and readers on a SQLite file and stops them; ``committed`` is every row id
a writer saw COMMIT return for. ``invariants`` checks a database against them: ``integrity_check``
ok, every committed application row present, every row of a reference set present.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app_process.py")


class LiveApp:
    """``writers`` writer processes (``short``: a connection per write) and ``readers`` open-read-close loops."""

    def __init__(self, db: Path, folder: Path, *, writers: int = 1, short: bool = False, readers: int = 0,
                 interval: float | None = None):
        self.db, self.folder = Path(db), Path(folder)
        self.spec = [("writer", short)] * writers + [("reader", False)] * readers
        self.interval = interval
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.results: list[dict] = []

    def __enter__(self) -> "LiveApp":
        self.folder.mkdir(parents=True, exist_ok=True)
        for i, (role, short) in enumerate(self.spec):
            argv = [sys.executable, str(APP), role, str(self.db)]
            if role == "writer":
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
        for log in self.logs:
            if log.exists():
                ids.update(x for x in log.read_text().split("\n") if x)
        return ids

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


def set_journal_mode(db: Path, mode: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        got = conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
        assert got.lower() == mode.lower(), got
    finally:
        conn.close()
