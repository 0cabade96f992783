"""The maintenance lock: two runs never migrate (or restore) one database at once.

Its kind is the engine's (``Engine.maintenance_lock``): PostgreSQL takes a session advisory lock
(``engines/postgresql/lock.py``); a file database takes ``file_lock`` (``shared/lockfile.py``): an exclusive ``flock`` on a
small file whose name is derived from a key (the database file's real path: two targets files naming the
same database still share one lock, and nothing is written beside the database). The kernel releases it
when the process dies, so a crashed run never leaves a stale lock. Acquisition never waits: a second run
fails fast with ``LockHeldError``.

The lock files live in a folder only this user can write: ``<temp folder>/maintenance_pipeline-<uid>``
(``lock_folder``), made with mode 0700. An existing folder is used only when it is a real folder (not a
link), owned by this user, with no group or other permission bits; anything else is refused
(``UnsafeLockError``), so another account can neither plant a link there nor hold the lock. The folder is
opened once (``O_NOFOLLOW``) and the files are opened relative to it (``O_NOFOLLOW``, never truncated,
never written): a lock file must be a regular file of this user with one link. Who holds the lock is
said in a separate ``<name>.holder`` file, written to a new file and renamed over the old one.

``maintenance_lock`` yields a handle whose ``confirm(conn)`` raises ``LockLostError`` when the lock is no
longer this run's; the migration calls it on its own connection right before COMMIT.
"""

from __future__ import annotations

# the lock file itself is on the floor below the engines (``shared/lockfile.py``); its names stay importable here
from .shared.lockfile import FileLockHandle, LockFile, file_lock, lock_folder, lock_name, lock_path

__all__ = ["maintenance_lock", "file_lock", "lock_folder", "lock_name", "lock_path", "LockFile", "FileLockHandle"]


def maintenance_lock(url: str, *, holder: str = ""):
    """Hold the target's lock for the block (the engine's kind); raise LockHeldError at once if another
    run has it. Yields a handle: ``handle.confirm(conn)`` raises LockLostError if the lock is no longer
    this run's (call it before COMMIT)."""
    from .engines import engine_for

    return engine_for(url).maintenance_lock(url, holder)


