"""The database engines: one implementation per engine, found by name, as Alembic's ``ddl/impl.py`` does.

Every engine-specific primitive (reading a schema, the cheap version the sensor reads, the maintenance
lock, the migration transaction, foreign-key and integrity checks, the rows check, backup, restore,
how a change is applied, how types and defaults compare) is a method of the engine's class, a subclass
of ``base.Engine`` whose defaults fit any SQLAlchemy dialect. The rest of the core asks the registry
for the engine of a URL, a connection or a dialect name and calls it; it never asks "is this SQLite?".

A new engine is one new package here: ``engines/<name>/__init__.py`` defines a subclass of ``Engine``
with ``name = "<SQLAlchemy backend name>"``; the registry finds it by that name. A URL of an engine no
package provides is one clear error (``UnsupportedEngineError``), at config load.
"""

from __future__ import annotations

import importlib
import pkgutil

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..dburl import parse_url, translate_error
from ..errors import UnsupportedEngineError
from .base import REGISTRY, Engine

__all__ = ["Engine", "all_engines", "engine_named", "engine_for", "engine_of", "open_engine", "probe"]

_loaded = False


def _load() -> dict[str, Engine]:
    """Every engine package imported once (each defines its ``Engine`` subclass, which registers itself)."""
    global _loaded
    if not _loaded:
        for info in pkgutil.iter_modules(__path__):
            if info.ispkg:
                importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return REGISTRY


def all_engines() -> list[Engine]:
    """Every engine this version provides (each may have a section of its own under ``backups:``)."""
    return list(_load().values())


def engine_named(name: str) -> Engine:
    """The engine of a SQLAlchemy backend name (``sqlite``, ``postgresql``); UnsupportedEngineError if none."""
    engines = _load()
    engine = engines.get((name or "").lower())
    if engine is None:
        raise UnsupportedEngineError(
            f"{name or 'this'} databases are not supported (supported: {', '.join(sorted(engines))}); "
            "point the target at a SQLite file or a PostgreSQL server")
    return engine


def engine_for(url) -> Engine:
    """The engine of a database URL (its backend name: ``postgresql+psycopg://`` is ``postgresql``)."""
    return engine_named(parse_url(url).get_backend_name())


def engine_of(conn_or_dialect) -> Engine:
    """The engine of a SQLAlchemy Connection, Engine or Dialect."""
    dialect = getattr(conn_or_dialect, "dialect", conn_or_dialect)
    return engine_named(dialect.name)


def open_engine(url: str | URL, *, busy_timeout: float = 10.0, check: bool = True) -> sa.Engine:
    """A SQLAlchemy engine for ``url`` from its engine implementation (``Engine.open_engine``; SQLite: the
    file must exist and be a database, and is never created), probed once when ``check``."""
    u = parse_url(url)
    engine = engine_for(u).open_engine(u, busy_timeout=busy_timeout, check=check)
    if check:
        probe(engine, u)
    return engine


def probe(engine: sa.Engine, url: str | URL) -> None:
    """Connect once and read the schema version, turning driver errors into our errors."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(engine_of(engine).probe_sql).scalar()
    except sa.exc.DBAPIError as e:
        raise translate_error(e, url) from None
