"""Where the engines enter themselves: backend name -> the engine (``base.py``'s ``Engine`` subclasses register an
instance when their package is imported; ``__init__.py`` imports them all). A leaf (it imports no engine), so that the
floor below the engines (``shared/reading.py``) finds the engine of a connection the engines opened without importing
them, as Alembic's ``DefaultImpl.get_by_dialect`` finds an implementation by dialect name."""

from __future__ import annotations

from ..errors import UnsupportedEngineError

REGISTRY: dict = {}  # backend name -> engine


def registered_engine(conn_or_engine):
    """The engine of a SQLAlchemy Connection or Engine (its URL's backend name, as ``engines.engine_for`` reads it),
    among the engines already loaded (the engines' own code only meets connections of a loaded engine; elsewhere
    ``engines.engine_of`` loads them first)."""
    bind = getattr(conn_or_engine, "engine", conn_or_engine)
    backend = bind.url.get_backend_name()
    engine = REGISTRY.get(backend)
    if engine is None:
        raise UnsupportedEngineError(f"{backend} databases are not supported (supported: "
                                     f"{', '.join(sorted(REGISTRY)) or 'none loaded'})")
    return engine
