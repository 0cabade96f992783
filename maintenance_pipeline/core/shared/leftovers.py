"""What a killed run leaves in a target's backup folder, found and cleaned by the next backup.

A run killed mid-backup leaves a hidden temp file (``.<stem>.<pid>.<token>.tmp`` and its SQLite
``-journal``/``-wal``/``-shm``; PostgreSQL: a staging folder ``.<stem>.<random>.tmp``); a migration killed
while it held a copy of the file taken at BEGIN leaves ``.<stem>.begin.<pid>.<token>.tmp``; a manifest
write, ``.<name>.json.<pid>.<token>.tmp``. Killed between giving the copy its final name and writing its
manifest, it leaves a full-size ``<target>_<label>_<time>.db`` (``.dump``) with no manifest, which
retention and ``backups list`` never see: an orphan.

Every backup, and every copy taken at BEGIN, holds a shared ``flock`` on the folder's lock file (in this
user's private lock folder, keyed by the folder's real path, like the maintenance lock) while it works; the
kernel drops it when the process dies. The next backup first tries to take it
exclusively: when it can, no other backup or migration of the target is working, so every hidden
``.tmp`` and every orphan in the folder is a leftover; it removes them and its report lists them. When it
cannot, it leaves them for a later backup.

An orphan is removed, not completed: its run died in the backup step, before anything changed the
target, so it holds a state the backups before it and the live database already cover, and completing it
would mean verifying a full-size file nobody asked for.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from .files import remove_tree
from .lockfile import LockFile

_ORPHAN = r"^{target}_.+_\d{{8}}_\d{{6}}(_\d+)?\.(db|dump)$"


class FolderHold:
    """A shared hold on a target's backup folder for as long as a backup (or a copy at BEGIN) works in it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.fd: int | None = None
        self._lock: LockFile | None = None

    def acquire(self, *, clean: bool = True) -> list[str]:
        """Take the hold; first (``clean``) remove the leftovers if no one else holds the folder. Returns the
        paths removed. UnsafeLockError when the lock folder is not private to this user (``core/lock.py``)."""
        self._lock = LockFile(f"backups:{os.path.realpath(self.folder)}")  # O_NOFOLLOW, checked, never written
        self.fd = self._lock.fd
        removed: list[str] = []
        if clean:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another backup or migration of this target is working: its files are not leftovers
            else:
                removed = remove_leftovers(self.folder)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        return removed

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock, self.fd = None, None


def leftovers(folder: Path) -> list[Path]:
    """Hidden temp files and folders, and copies of ours without a manifest (call it holding the folder
    exclusively: only then are they certainly not in use)."""
    orphan = re.compile(_ORPHAN.format(target=re.escape(folder.name)))
    out = []
    for p in sorted(folder.iterdir()):
        name = p.name
        if name.startswith(".") and (name.endswith(".tmp") or re.search(r"\.tmp-(journal|wal|shm)$", name)):
            out.append(p)
        elif orphan.match(name) and not p.with_suffix(".json").exists():
            out.append(p)
    return out


def remove_leftovers(folder: Path) -> list[str]:
    found = leftovers(folder)
    remove_tree(*found)
    return [str(p) for p in found if not p.exists()]
