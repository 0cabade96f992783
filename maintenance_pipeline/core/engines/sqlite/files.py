"""SQLite files: the path behind a URL, the check that a file is a database (through SQLite only), escaped
``file:`` URIs, and connections that never create a file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ...dburl import mask_url, parse_url
from ...errors import BadUrlError, MissingDatabaseError, NotADatabaseError

SQLITE_NOTADB = getattr(sqlite3, "SQLITE_NOTADB", 26)


def sqlite_path(url) -> Path | None:
    """The file of a SQLite URL (absolute), None for an in-memory database (``sqlite://``, ``sqlite:///:memory:``).

    Two slashes before a name (``sqlite://app.db``) make the name a host, which SQLite ignores: the URL would open
    an empty in-memory database, with no file, and every reference table would look missing. Refused, with the URL
    to write instead."""
    u = parse_url(url)
    if u.host:
        text = mask_url(url)
        meant = text.split("://", 1)[0] + ":///" + text.split("://", 1)[1]
        raise BadUrlError(f"{text} names no file: after two slashes, {u.host} is read as a host, which SQLite ignores "
                          f"(an in-memory database, no file); write {meant} (three slashes: a path relative to the "
                          "targets file; four for an absolute one)")
    db = u.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    if db.startswith("file:"):
        db = db[5:].split("?", 1)[0]
    return Path(db).expanduser().resolve()


def check_sqlite_file(path: Path) -> int | None:
    """Raise a clear error unless ``path`` is an existing SQLite database file; its ``PRAGMA schema_version``
    (read on the way), or None when SQLite could not say now (busy, a hot journal).

    Only SQLite opens the file (the live-file rule, ``live_file.py``: this process may hold a
    connection to it, and closing any other descriptor of the file would drop that connection's
    locks): its size comes from ``stat``, its header is judged by a read-only SQLite connection.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        err = MissingDatabaseError(
            f"database file {path} does not exist (nothing was created); check the target's url "
            "in the targets file or restore the file from a backup"
        )
        err.path = path  # a reference's reader words it for the reference
        raise err from None
    except PermissionError:
        raise NotADatabaseError(f"cannot read {path}: permission denied; give this user read/write access") from None
    if path.is_dir():
        raise NotADatabaseError(f"{path} is a directory, not a SQLite database file; fix the target's url")
    if not os.access(path, os.R_OK):
        raise NotADatabaseError(f"cannot read {path}: permission denied; give this user read/write access")
    if st.st_size == 0:
        raise NotADatabaseError(
            f"{path} is an empty file, not a SQLite database; point the target at the real database "
            "or restore it from a backup"
        )
    try:
        conn = sqlite3.connect(sqlite_uri(path, "ro"), uri=True, timeout=0, isolation_level=None)
        try:
            return conn.execute("PRAGMA schema_version").fetchone()[0]  # reads the header
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        if getattr(e, "sqlite_errorcode", None) == SQLITE_NOTADB or "not a database" in str(e).lower():
            raise NotADatabaseError(
                f"{path} is not a SQLite database (no SQLite header); point the target at the real "
                "database file or restore it from a backup"
            ) from None
        # busy, a hot journal a read-only connection may not roll back, …: the caller's own connection
        # meets it and reports it
        return None


def sqlite_uri(path: Path, mode: str = "ro") -> str:
    """A ``file:`` URI for sqlite3 with the path escaped (a '#' or '?' in a path must not cut it short).

    ``mode=ro``/``rw`` never create a file."""
    return f"{Path(path).absolute().as_uri()}?mode={mode}"


def connect_factory(path: Path, timeout: float):
    """Connections for a SQLAlchemy engine: ``mode=rw`` (never creates the file), autocommit at the driver
    level (SQLAlchemy's ``begin()`` emits ``BEGIN`` itself, so DDL and DML share one real transaction)."""
    uri = sqlite_uri(path, "rw")

    def connect():
        return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)

    return connect
