"""The maintenance lock: two runs never migrate (or restore) one database at once.

Its kind is the engine's (``Engine.maintenance_lock``): PostgreSQL takes a session advisory lock
(``engines/postgresql/lock.py``); a file database takes ``file_lock`` here: an exclusive ``flock`` on a
small file in the system's temp folder whose name is derived from a key (the database file's real
path: two targets files naming the same database still share one lock, and nothing is written beside
the database). The kernel releases it when the process dies, so a crashed run never leaves a stale
lock. Acquisition never waits: a second run fails fast with ``LockHeldError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path

from .dburl import mask_url
from .errors import LockHeldError


def lock_path(key: str) -> Path:
    """A lock file for ``key`` in the system's temp folder (nothing is written beside the thing locked)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / "maintenance_pipeline-locks"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.lock"


def maintenance_lock(url: str, *, holder: str = ""):
    """Hold the target's lock for the block (the engine's kind); raise LockHeldError at once if another
    run has it."""
    from .engines import engine_for

    return engine_for(url).maintenance_lock(url, holder)


@contextlib.contextmanager
def file_lock(key: str, url: str, holder: str = ""):
    """An exclusive ``flock`` on the lock file of ``key`` for the block; LockHeldError at once if another
    process holds it (``url`` names the database in that message)."""
    path = lock_path(key)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_holder(path)
            raise LockHeldError(
                f"another run holds the maintenance lock on {mask_url(url)}{other}; wait for it to finish "
                "(or check it is not stuck) and rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "holder": holder}).encode())
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return ""
    if not info:
        return ""
    who = f" (pid {info.get('pid')}"
    if info.get("holder"):
        who += f", {info['holder']}"
    return who + ")"
