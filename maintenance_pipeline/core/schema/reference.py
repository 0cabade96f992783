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
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from ..dburl import mask_url
from ..engines import engine_named, open_engine
from ..engines import inspect as _inspect
from ..errors import MissingDatabaseError, ReferenceImportError
from .model import Snapshot, sequence_parts
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
        try:
            engine = open_engine(url)
        except MissingDatabaseError as e:  # its hint is a target's (restore a backup): the reference's own instead
            where = getattr(e, "path", None) or mask_url(url)
            raise MissingDatabaseError(
                f"the reference database {where} does not exist (nothing was created); point reference.url at the "
                "database the target should match, or create it first (e.g. by running your migrations on it)"
            ) from None
        try:
            snap = take_snapshot(engine, ignore_tables=ignore_tables, url=url, schema=schema)
        finally:
            engine.dispose()
        if not snap.tables:  # a wrong URL or schema, or a database not created yet: never "drop every table"
            where = mask_url(url) + (f" (schema {schema})" if schema else "")
            raise ReferenceImportError(
                f"the reference database {where} has no tables: is it the right database and schema? point "
                "reference.url (and reference.schema) at the database the target should match")
        return snap
    md = metadata if isinstance(metadata, sa.MetaData) else import_metadata(str(metadata), search_paths)
    if not md.tables:  # a models module whose model classes were never imported
        label = f"`{metadata}`" if isinstance(metadata, str) else "the reference MetaData"
        raise ReferenceImportError(
            f"no tables in {label}: are the model modules imported? import every module that defines a model "
            "where the MetaData is (e.g. in the models package's __init__.py), or point the reference at the right "
            "MetaData")
    _creatable(md)
    return leave_names_to_server(engine_named(target_dialect).metadata_snapshot(md, ignore_tables, url=target_url), md)


def _creatable(metadata: sa.MetaData) -> None:
    """What no database can create, said with its name before ``create_all`` fails on it with the server's bare
    syntax error: an index with no columns (``Index("ix_name")``: ``CREATE INDEX ix_name ON t ()``)."""
    for table in metadata.tables.values():
        for ix in sorted(table.indexes, key=lambda i: str(i.name)):
            if not list(ix.expressions):
                raise ReferenceImportError(
                    f"the reference models declare index {ix.name} of table {table.name} with no columns, which no "
                    f"database can create (CREATE INDEX {ix.name} ON {table.name} () is a syntax error); give it its "
                    "columns in the models, or use a reference database made by the application's own migrations "
                    "(reference: url:)")


def _given_name(item, preparer) -> str | None:
    """The name a MetaData constraint or index is created with (its own, or its naming convention's); None when it
    leaves the name to the server."""
    if item.name is None:
        return None
    try:
        return preparer.format_constraint(item, _alembic_quote=False)
    except Exception:  # noqa: BLE001 - no name the convention can make: the server names it
        return None


def leave_names_to_server(snap: Snapshot, metadata: sa.MetaData) -> Snapshot:
    """A models reference names what the models name (a constraint's or an index's ``name=``, or its naming
    convention's); the server names the rest (``t_pkey``, ``t_a_key``, a serial's ``t_id_seq``; SQLite: no name).
    Those names go in ``Table.server_names`` (with None: no name at all) and the columns' sequences lose theirs: the
    diff compares only the names the models give."""
    preparer = _inspect._dialect(snap.dialect).identifier_preparer
    by_name = {st.name: st for st in metadata.tables.values()}
    tables = {}
    for name, t in snap.tables.items():
        st = by_name.get(name)
        if st is None:
            tables[name] = t
            continue
        given = {_given_name(x, preparer) for x in [*st.constraints, *st.indexes]} - {None}
        held = [t.primary_key_name, *(u.name for u in t.uniques), *(f.name for f in t.foreign_keys),
                *(c.name for c in t.checks), *(i.name for i in t.indexes)]
        server = tuple(dict.fromkeys([n for n in held if n is not None and n not in given] + [None]))
        columns = tuple(replace(c, sequence=sequence_parts(c.sequence)[0]) if c.sequence else c for c in t.columns)
        tables[name] = replace(t, columns=columns, server_names=server)
    return replace(snap, tables=tables)
