"""Database URLs: parsing, masking and opening an engine without surprises.

Opening a SQLite path never creates a file: the path is checked first and the
connection is made with ``mode=rw`` so that SQLite itself refuses to create one.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import (
    BadUrlError,
    ConnectionFailedError,
    DatabaseLockedError,
    MissingDatabaseError,
    NotADatabaseError,
)

SQLITE_NOTADB = getattr(sqlite3, "SQLITE_NOTADB", 26)


def parse_url(url: str | URL) -> URL:
    try:
        u = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as e:
        raise BadUrlError(
            f"bad database URL {mask_url(str(url))!r}: {e}; write it as dialect+driver://user@host/db "
            "or sqlite:///path/to/file.db"
        ) from None
    return u


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ***; safe for logs, reports and alerts."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:  # not parseable: strip anything between :// and @
        s = str(url)
        if "://" in s and "@" in s:
            head, rest = s.split("://", 1)
            return f"{head}://***@{rest.rsplit('@', 1)[1]}"
        return s
    return u.render_as_string(hide_password=True)


def scrub_passwords(text: str, *urls: str | URL) -> str:
    """``text`` on one line with the password of each of ``urls`` replaced by *** (for messages)."""
    for url in urls:
        try:
            password = (make_url(url) if isinstance(url, str) else url).password
        except Exception:  # noqa: BLE001 - only for a message
            continue
        if password:
            text = text.replace(str(password), "***")
    return " ".join(text.split())


def dialect_of(url: str | URL) -> str:
    return parse_url(url).get_backend_name()


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (absolute), None for other dialects and in-memory databases."""
    u = parse_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    db = u.database
    if not db or db == ":memory:" or db.startswith("file::memory:"):
        return None
    if db.startswith("file:"):
        db = db[5:].split("?", 1)[0]
    return Path(db).expanduser().resolve()


def check_sqlite_file(path: Path) -> None:
    """Raise a clear error unless ``path`` is an existing SQLite database file.

    Only SQLite opens the file (the live-file rule, ``engines/sqlite/live_file.py``: this process may hold a
    connection to it, and closing any other descriptor of the file would drop that connection's
    locks): its size comes from ``stat``, its header is judged by a read-only SQLite connection.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MissingDatabaseError(
            f"database file {path} does not exist (nothing was created); check the target's url "
            "in the targets file or restore the file from a backup"
        ) from None
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
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header
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


def sqlite_uri(path: Path, mode: str = "ro") -> str:
    """A ``file:`` URI for sqlite3 with the path escaped (a '#' or '?' in a path must not cut it short).

    ``mode=ro``/``rw`` never create a file."""
    return f"{Path(path).absolute().as_uri()}?mode={mode}"


def _sqlite_connect_factory(path: Path, timeout: float):
    uri = sqlite_uri(path, "rw")

    def connect():
        return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)

    return connect


def open_engine(url: str | URL, *, busy_timeout: float = 10.0, check: bool = True) -> Engine:
    """An engine for ``url``. SQLite: the file must exist and be a database.

    SQLite connections run in autocommit at the driver level; SQLAlchemy's ``begin()`` emits
    ``BEGIN`` itself, so DDL and DML inside a ``with engine.begin()`` block share one real
    transaction (pysqlite does not give this by default).
    """
    u = parse_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        path = sqlite_path(u)
        if path is None:
            return sa.create_engine("sqlite://")
        check_sqlite_file(path)
        engine = sa.create_engine(
            "sqlite://", creator=_sqlite_connect_factory(path, busy_timeout), poolclass=sa.pool.NullPool
        )

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001 - SQLAlchemy event signature
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")

        if check:
            probe(engine, u)
        return engine
    try:
        engine = sa.create_engine(u, pool_pre_ping=True, poolclass=sa.pool.NullPool)
    except NoSuchModuleError:
        raise BadUrlError(
            f"no SQLAlchemy dialect/driver for {mask_url(u)}; install it (PostgreSQL: psycopg) or fix the URL"
        ) from None
    except (ArgumentError, ImportError, ModuleNotFoundError) as e:
        raise BadUrlError(f"cannot use {mask_url(u)}: {e}; fix the URL or install its driver") from None
    if check:
        probe(engine, u)
    return engine


def probe(engine: Engine, url: str | URL) -> None:
    """Connect once and read the schema version, turning driver errors into our errors."""
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA schema_version").scalar()
            else:
                conn.exec_driver_sql("SELECT 1").scalar()
    except sa.exc.DBAPIError as e:
        raise translate_error(e, url) from None


def translate_error(e: BaseException, url: str | URL) -> Exception:
    """Map a driver error to one of our one-line errors."""
    msg = str(getattr(e, "orig", e) or e).strip().splitlines()[0] if str(e) else type(e).__name__
    low = msg.lower()
    where = mask_url(url)
    if "locked" in low or "busy" in low:
        return DatabaseLockedError(
            f"database {where} is locked by another connection ({msg}); wait for the other writer to finish "
            "or stop it, then rerun"
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return NotADatabaseError(
            f"database {where} is corrupt or not a database ({msg}); restore it from a backup"
        )
    if "unable to open" in low:
        return MissingDatabaseError(f"cannot open database {where} ({msg}); check the path and its permissions")
    if any(k in low for k in ("password", "authentication", "connection refused", "could not connect",
                               "timeout", "does not exist", "no route", "name or service")):
        return ConnectionFailedError(
            f"cannot connect to {where}: {msg}; check host, port, database name and credentials"
        )
    return ConnectionFailedError(f"database {where} failed: {msg}")

