"""Watch this process for the live-file rule (``maintenance_pipeline/core/live_file.py``) being broken.

Python's audit hooks report every ``sqlite3.connect`` (with the connection made) and every ``open`` /
``os.open`` of a path; ``os.close`` is wrapped. A violation is an open or close of a watched database
file (the live ones: what other processes use), or of its ``-journal``/``-wal``/``-shm``, while a SQLite
connection of this process to that file is still open, directly or with the file ATTACHed (asked with
``PRAGMA database_list`` when such an open happens): exactly what drops SQLite's POSIX locks.
Independent of the product's code: it knows nothing of where the product opens files.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import traceback
from contextlib import contextmanager
from urllib.parse import unquote, urlparse

SIDECARS = ("-journal", "-wal", "-shm")


def _db_path(database) -> str | None:
    if isinstance(database, bytes):
        database = database.decode(errors="replace")
    database = os.fspath(database) if not isinstance(database, str) else database
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        u = urlparse(database)
        path = unquote(u.path or u.netloc)
    else:
        path = database
    return os.path.realpath(path)


def _base(path: str) -> str:
    for s in SIDECARS:
        if path.endswith(s):
            return path[: -len(s)]
    return path


def _attached(conn: sqlite3.Connection) -> set[str]:
    """The files a connection has attached (not its main one); empty when it cannot say right now."""
    try:
        return {os.path.realpath(r[2]) for r in conn.execute("PRAGMA database_list") if r[1] != "main" and r[2]}
    except sqlite3.Error:
        return set()


def _is_open(conn: sqlite3.Connection) -> bool:
    try:
        conn.total_changes
    except sqlite3.ProgrammingError as e:  # closed, or made in another thread (then still open)
        return "closed" not in str(e).lower()
    return True


class LiveFileWatch:
    def __init__(self):
        self.watched: set[str] = set()
        self.connections: list[tuple[str, sqlite3.Connection]] = []
        self.violations: list[str] = []
        self.opens_checked = 0
        self._pending = threading.local()
        self.active = False

    def _open_connections(self, base: str) -> int:
        alive = []
        n = 0
        for path, conn in self.connections:
            if _is_open(conn):
                alive.append((path, conn))
                n += path == base or (path != base and base in _attached(conn))
        self.connections = alive
        return n

    def _check(self, what: str, path: str) -> None:
        base = _base(os.path.realpath(path))
        if base not in self.watched:
            return
        self.opens_checked += 1
        n = self._open_connections(base)
        if n:
            stack = "".join(traceback.format_stack(limit=12)[:-2])
            self.violations.append(f"{what} {path} while {n} SQLite connection(s) of this process to {base} "
                                   f"were open\n{stack}")

    def hook(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "sqlite3.connect":
            self._pending.path = _db_path(args[0])
        elif event == "sqlite3.connect/handle":
            path = getattr(self._pending, "path", None)
            if path is not None:
                self.connections.append((path, args[0]))
        elif event == "open":
            path = args[0]
            if isinstance(path, (str, bytes, os.PathLike)):
                self._check("open of", os.fsdecode(path))

    def close(self, fd: int) -> None:
        if self.active and self.watched:
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = None
            if path and path.startswith("/"):
                self._check("os.close of a descriptor of", path)


_WATCH: LiveFileWatch | None = None


@contextmanager
def watching(*paths):
    """Record violations for the block on the database files ``paths`` (one hook per process: audit hooks
    cannot be removed)."""
    global _WATCH
    if _WATCH is None:
        _WATCH = LiveFileWatch()
        sys.addaudithook(_WATCH.hook)
    watch = _WATCH
    watch.violations, watch.connections, watch.opens_checked = [], [], 0
    watch.watched = {os.path.realpath(p) for p in paths}
    real_close = os.close

    def close(fd: int) -> None:
        watch.close(fd)
        real_close(fd)

    os.close = close
    watch.active = True
    try:
        yield watch
    finally:
        watch.active = False
        os.close = real_close
        watch.connections = []
