"""The reference schema: another database (a URL) or a SQLAlchemy MetaData (an import path).

An import path is ``"package.module:attribute"``; the attribute may be dotted
(``app.models:Base.metadata``). A declarative Base (or a ``registry``) is accepted too:
its ``.metadata`` is taken.

How a MetaData becomes a ``Snapshot``:

* SQLite target: ``metadata.create_all`` into an in-memory SQLite database, then that is
  read like any SQLite file, so types and defaults read exactly as they would in a real file
  created from the same models (tables with a ``schema=`` are created without it);
* PostgreSQL target: ``create_all`` in a temporary schema of the target's server, read back, rolled
  back (``engines/postgresql/models.py``); without the target's URL, built from the MetaData objects
  directly, with types compiled for the dialect and defaults rendered the way its ``CREATE TABLE`` would.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from ..engines import engine_named, open_engine
from ..engines import inspect as _inspect
from ..errors import ReferenceImportError
from .model import Snapshot
from .snapshot import take_snapshot

__all__ = ["import_metadata", "reference_snapshot", "metadata_snapshot"]

_HINT = "write it as 'package.module:attribute', e.g. 'app.models:Base.metadata'"


@contextmanager
def _sys_path(paths: Iterable[str | Path]):
    added = [str(Path(p).resolve()) for p in paths or ()]
    for p in reversed(added):
        sys.path.insert(0, p)
    try:
        yield
    finally:
        for p in added:
            try:
                sys.path.remove(p)
            except ValueError:
                pass


def _as_metadata(obj) -> sa.MetaData | None:
    if isinstance(obj, sa.MetaData):
        return obj
    md = getattr(obj, "metadata", None)
    return md if isinstance(md, sa.MetaData) else None


def import_metadata(path: str, search_paths: Iterable[str | Path] = ()) -> sa.MetaData:
    """The MetaData named by ``path`` (``"pkg.module:attr"``), importing the module if needed.

    ``search_paths`` (e.g. the targets file's folder) are put in front of ``sys.path`` while
    importing. A module is imported once per process (Python's module cache).
    """
    text = (path or "").strip()
    module_name, sep, attr = text.partition(":")
    module_name, attr = module_name.strip(), attr.strip()
    if not sep or not module_name or not attr:
        raise ReferenceImportError(f"reference metadata {text!r} is not an import path; {_HINT}")
    where = ", ".join(str(p) for p in search_paths or ()) or "sys.path"
    with _sys_path(search_paths):
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = e.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
                raise ReferenceImportError(
                    f"reference metadata {text!r}: no module named {missing!r} (searched {where}); check the "
                    "module path, or put the module next to the targets file or on PYTHONPATH"
                ) from None
            raise ReferenceImportError(
                f"reference metadata {text!r}: importing {module_name!r} failed: {e}; install the missing package "
                "or fix the module's imports"
            ) from None
        except Exception as e:  # noqa: BLE001 - any error raised by the user's module
            msg = str(e).splitlines()[0] if str(e) else ""
            raise ReferenceImportError(
                f"reference metadata {text!r}: importing {module_name!r} failed: {type(e).__name__}: {msg}; "
                "fix the module so that it imports cleanly"
            ) from None
    obj = module
    walked = []
    for part in attr.split("."):
        walked.append(part)
        if not hasattr(obj, part):
            raise ReferenceImportError(
                f"reference metadata {text!r}: module {module_name!r} has no attribute {'.'.join(walked)!r}; "
                f"check the name after ':' ({_HINT})"
            )
        obj = getattr(obj, part)
    md = _as_metadata(obj)
    if md is None:
        raise ReferenceImportError(
            f"reference metadata {text!r} is a {type(obj).__name__}, not a SQLAlchemy MetaData; point it at a "
            "MetaData or a declarative Base (e.g. 'app.models:Base.metadata')"
        )
    return md


def metadata_snapshot(metadata: sa.MetaData, dialect_name: str, *, ignore_tables: Iterable[str] = ()) -> Snapshot:
    """A Snapshot built from MetaData objects, types compiled for ``dialect_name`` (no database needed)."""
    return _inspect.metadata_snapshot(metadata, engine_named(dialect_name), ignore_tables=ignore_tables)


def reference_snapshot(*, url: str | None = None, metadata: str | sa.MetaData | None = None,
                       target_dialect: str, ignore_tables: Iterable[str] = (),
                       search_paths: Iterable[str | Path] = (), schema: str | None = None,
                       target_url: str | None = None) -> Snapshot:
    """The reference's schema, as a Snapshot comparable with a ``target_dialect`` target.

    Exactly one of ``url`` (a database, opened with ``engines.open_engine``: a missing SQLite
    file is an error, never created) and ``metadata`` (a MetaData or its import path).
    ``schema``: the schema a PostgreSQL reference URL is read in (default: its default schema).
    ``target_url``: the target's URL; an engine may ask its server what it makes of models (PostgreSQL).
    """
    if (url is None) == (metadata is None):
        raise ValueError("reference_snapshot needs exactly one of url / metadata")
    if url is not None:
        engine = open_engine(url)
        try:
            return take_snapshot(engine, ignore_tables=ignore_tables, url=url, schema=schema)
        finally:
            engine.dispose()
    md = metadata if isinstance(metadata, sa.MetaData) else import_metadata(str(metadata), search_paths)
    return engine_named(target_dialect).metadata_snapshot(md, ignore_tables, url=target_url)
