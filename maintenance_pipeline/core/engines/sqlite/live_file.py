"""The live-file rule (SQLite): the one way this process touches a database file's bytes outside SQLite.

POSIX advisory locks belong to the process and the file, not to a descriptor: closing ANY descriptor
of a file drops EVERY lock the process holds on it, SQLite's included (SQLite's "How To Corrupt An
SQLite Database File", section 2.2). A ``with open(live_db)`` while this process holds a write
transaction on ``live_db`` lets another process write inside that transaction (a corrupt file), or
lets a closing reader believe it is the last connection and delete the WAL our COMMIT goes into (a
lost migration). SQLite protects its own connections from this (it shares one descriptor per file
inside a process and defers closes); it cannot protect them from ours.

The rule: no code path opens, stat-and-reads, hashes, copies or closes a database file, or its
``-journal``/``-wal``/``-shm``, outside SQLite while any SQLite connection of this process to that
file is open (a SQLAlchemy engine's pooled connections count; an ATTACHed file counts too). The only
exception is ``pinned(path)``: a descriptor opened before the first connection and closed after the
last one, the block's contents being where the connections live. Checks of a file's kind go through
SQLite (``dburl.check_sqlite_file``); sizes come from ``stat``, which opens nothing.

``tests/safety/test_live_file_rule.py`` runs every job with each ``open`` of a database file recorded
(Python's audit hooks) and each ``os.close`` of one checked, and fails on any made while a connection
to that file is open.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HEADER_BYTES = 100


@contextmanager
def pinned(path: str | os.PathLike) -> Iterator[int]:
    """A read-only descriptor of ``path`` for the block: open it BEFORE the block's first SQLite
    connection to the file and leave the block only AFTER the last one closed."""
    fd = os.open(Path(path), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        yield fd
    finally:
        os.close(fd)


def header(fd: int) -> bytes:
    """The 100-byte database header through a pinned descriptor (``pread``: nothing is opened or closed)."""
    return os.pread(fd, HEADER_BYTES, 0)


def unchanged_rollback_copy(live_header: bytes, copy_header: bytes) -> bool:
    """A byte copy (``copy_header``) still describes the live file: rollback-journal mode (write version
    1, so every commit bumps the file change counter at offset 24) and the same 100 header bytes."""
    return len(live_header) == HEADER_BYTES and live_header[18] == 1 and live_header == copy_header
