"""Read a live schema into a ``Snapshot``: the engine reads it (``Engine.snapshot``).

SQLite reads its own catalog with pragma functions, four queries whatever the size
(``engines/sqlite/snapshot.py``). Other engines use ``inspector_snapshot`` here: SQLAlchemy's
inspector, batched (``get_multi_*``: a handful of catalog queries, not one per table), in one schema
(``schema``, default the connection's default schema), with types rendered by ``type.compile(dialect)``
and each column's declaration and type key from the engine (PostgreSQL: how a column gets its values
is part of its declared type, ``SERIAL`` or ``GENERATED ... AS IDENTITY``, so a table created from
the snapshot gets it too; ``engines/postgresql/__init__.py``).

Constraint names are kept (PostgreSQL names every constraint), so a drop or an alter can name what
it changes. The indexes a server creates for unique constraints are reported as ``uniques`` only.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import dburl
from ..engines import engine_of, open_engine
from ..errors import DatabaseLockedError
from .model import Snapshot

__all__ = ["take_snapshot", "snapshot_url", "schema_version", "table_counts"]



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
        return engine_of(conn).describe(conn)
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
        return engine_of(conn).snapshot(conn, ignore, schema)


def snapshot_url(url: str, *, ignore_tables: Iterable[str] = ("alembic_version", "sqlite_sequence"),
                 schema: str | None = None) -> Snapshot:
    """Snapshot the database at ``url`` on its own connection (a missing SQLite file is an error, never created)."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return take_snapshot(conn, ignore_tables=ignore_tables, schema=schema, url=url)
    finally:
        engine.dispose()


def schema_version(conn_or_engine: Engine | Connection, url=None) -> int:
    """The engine's schema counter (SQLite: ``PRAGMA schema_version``): it moves whenever the schema changes."""
    with _Conn(conn_or_engine, url) as conn:
        return engine_of(conn).schema_version(conn)


def table_counts(conn_or_engine: Engine | Connection, table_names: Iterable[str], *, schema: str | None = None,
                 url=None) -> dict[str, dict]:
    """``{name: {"columns": n, "rows": count}}`` for each named table that exists (others are left out)."""
    names = list(dict.fromkeys(table_names))
    out: dict[str, dict] = {}
    with _Conn(conn_or_engine, url) as conn:
        prep = conn.dialect.identifier_preparer
        ncols = engine_of(conn).column_counts(conn, names, schema)
        for n in names:
            if n not in ncols:
                continue
            qualified = (prep.quote_schema(schema) + "." if schema else "") + prep.quote_identifier(n)
            rows = conn.exec_driver_sql(f"SELECT count(*) FROM {qualified}").scalar()
            out[n] = {"columns": int(ncols[n]), "rows": int(rows)}
    return out
