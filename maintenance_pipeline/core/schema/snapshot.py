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

from sqlalchemy.engine import Connection, Engine

from ..engines import engine_for, engine_of, open_engine
from ..shared import reading
from .model import Snapshot

__all__ = ["take_snapshot", "snapshot_url", "schema_version", "table_counts"]


# --------------------------------------------- public: the engines loaded first (``engine_of``), then ``shared.reading``


def take_snapshot(conn_or_engine: Engine | Connection, *, ignore_tables: Iterable[str] = (),
                  schema: str | None = None, url=None) -> Snapshot:
    """The schema of the database behind ``conn_or_engine`` (an Engine or a Connection).

    ``schema``: SQLite: an attached database name (default ``main``); others: the schema
    (default: the connection's default schema, ``public`` on PostgreSQL). ``url`` only names
    the database in error messages (a corrupt file raises ``NotADatabaseError``).
    """
    engine_of(conn_or_engine)  # the engines loaded
    return reading.take_snapshot(conn_or_engine, ignore_tables=ignore_tables, schema=schema, url=url)


def snapshot_url(url: str, *, ignore_tables: Iterable[str] | None = None, schema: str | None = None) -> Snapshot:
    """Snapshot the database at ``url`` on its own connection (a missing SQLite file is an error, never created).
    ``ignore_tables`` default: Alembic's table and the engine's own (``Engine.internal_tables``)."""
    if ignore_tables is None:
        ignore_tables = ("alembic_version", *engine_for(url).internal_tables)
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return take_snapshot(conn, ignore_tables=ignore_tables, schema=schema, url=url)
    finally:
        engine.dispose()


def schema_version(conn_or_engine: Engine | Connection, url=None) -> int:
    """The engine's schema counter (SQLite: ``PRAGMA schema_version``): it moves whenever the schema changes."""
    engine_of(conn_or_engine)
    return reading.schema_version(conn_or_engine, url)


def table_counts(conn_or_engine: Engine | Connection, table_names: Iterable[str], *, schema: str | None = None,
                 url=None) -> dict[str, dict]:
    """``{name: {"columns": n, "rows": count}}`` for each named table that exists (others are left out)."""
    engine_of(conn_or_engine)
    return reading.table_counts(conn_or_engine, table_names, schema=schema, url=url)
