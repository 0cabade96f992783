"""Reading a database through its engine, below the engines: its schema (``take_snapshot``), its tables' columns and
rows (``table_counts``), and what a backup's manifest records of them (``describe_tables``). The engine is the one the
connection's dialect names (``registry.py``); driver errors become our one-line errors. ``schema/snapshot.py`` offers
the same to the rest of the core, the engines loaded first."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import dburl
from ..errors import DatabaseLockedError
from ..schema.model import Snapshot
from ..engines.registry import registered_engine


# ------------------------------------------------------------------------ helpers


class _Conn:
    """Use an Engine or a Connection the same way; errors become our one-line errors."""

    def __init__(self, conn_or_engine: Engine | Connection, url=None):
        self.obj = conn_or_engine
        self.url = url
        self._conn: Connection | None = None
        self._owned = False

    def __enter__(self) -> Connection:
        if isinstance(self.obj, Engine):
            try:
                self._conn = self.obj.connect()
            except sa.exc.DBAPIError as e:
                raise dburl.translate_error(e, self.url or self.obj.url) from None
            self._owned = True
        else:
            self._conn = self.obj
        return self._conn

    def __exit__(self, exc_type, exc, tb):
        error = None
        if exc is not None and isinstance(exc, sa.exc.DBAPIError):
            where = self.url or _describe(self._conn)
            if "lock timeout" in str(exc.orig).lower():
                error = DatabaseLockedError(
                    f"the schema of {dburl.mask_url(where)} could not be read: another session holds a lock on one "
                    "of its tables (a migration in progress?); wait for it to finish and rerun")
            else:
                error = dburl.translate_error(exc, where)
        if self._owned and self._conn is not None:
            self._conn.close()
        if error is not None:
            raise error from None
        return False


def _describe(conn: Connection | None) -> str:
    """A URL naming the database, for error messages."""
    if conn is None:
        return "database"
    try:
        return registered_engine(conn).describe(conn)
    except Exception:  # noqa: BLE001 - only for a message
        return str(conn.engine.url)


# ------------------------------------------------------------------------- public


def take_snapshot(conn_or_engine: Engine | Connection, *, ignore_tables: Iterable[str] = (),
                  schema: str | None = None, url=None) -> Snapshot:
    """The schema of the database behind ``conn_or_engine`` (an Engine or a Connection).

    ``schema``: SQLite: an attached database name (default ``main``); others: the schema
    (default: the connection's default schema, ``public`` on PostgreSQL). ``url`` only names
    the database in error messages (a corrupt file raises ``NotADatabaseError``).
    """
    ignore = set(ignore_tables or ())
    with _Conn(conn_or_engine, url) as conn:
        return registered_engine(conn).snapshot(conn, ignore, schema)


def schema_version(conn_or_engine: Engine | Connection, url=None) -> int:
    """The engine's schema counter (SQLite: ``PRAGMA schema_version``): it moves whenever the schema changes."""
    with _Conn(conn_or_engine, url) as conn:
        return registered_engine(conn).schema_version(conn)


def table_counts(conn_or_engine: Engine | Connection, table_names: Iterable[str], *, schema: str | None = None,
                 url=None) -> dict[str, dict]:
    """``{name: {"columns": n, "rows": count}}`` for each named table that exists (others are left out)."""
    names = list(dict.fromkeys(table_names))
    out: dict[str, dict] = {}
    with _Conn(conn_or_engine, url) as conn:
        prep = conn.dialect.identifier_preparer
        ncols = registered_engine(conn).column_counts(conn, names, schema)
        for n in names:
            if n not in ncols:
                continue
            qualified = (prep.quote_schema(schema) + "." if schema else "") + prep.quote_identifier(n)
            rows = conn.exec_driver_sql(f"SELECT count(*) FROM {qualified}").scalar()
            out[n] = {"columns": int(ncols[n]), "rows": int(rows)}
    return out


def describe_tables(conn, schema: str | None = None) -> tuple[str, dict[str, dict]]:
    """Schema fingerprint (over all tables) and {table: {"columns", "rows"}}: what a manifest records."""
    snap = take_snapshot(conn, schema=schema)
    counts = table_counts(conn, sorted(snap.tables), schema=schema)
    tables = {n: {"columns": int(v["columns"]), "rows": int(v["rows"])} for n, v in sorted(counts.items())}
    return snap.fingerprint, tables
