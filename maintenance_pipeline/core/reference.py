"""The reference schema: another database (a URL) or a SQLAlchemy MetaData (an import path).

An import path is ``"package.module:attribute"``; the attribute may be dotted
(``app.models:Base.metadata``). A declarative Base (or a ``registry``) is accepted too:
its ``.metadata`` is taken.

How a MetaData becomes a ``Snapshot``:

* SQLite target: ``metadata.create_all`` into an in-memory SQLite database, then that is
  read like any SQLite file, so types and defaults read exactly as they would in a real file
  created from the same models (tables with a ``schema=`` are created without it);
* other targets: the snapshot is built from the MetaData objects directly, with types compiled
  for the target's dialect and defaults rendered the way that dialect's ``CREATE TABLE`` would.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from . import dburl
from .errors import ReferenceImportError
from .model import Column, ForeignKey, Index, Snapshot, Table, UniqueConstraint
from .snapshot import EXPR, SERIAL_OF, take_snapshot
from .sqltypes import type_key

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


def _dialect(name: str):
    try:
        return make_url(f"{name}://").get_dialect()()
    except Exception:  # noqa: BLE001 - unknown driver module: the default dialect class
        from sqlalchemy.dialects import registry

        return registry.load(name)()


def _compile_type(t, dialect) -> str:
    try:
        return t.compile(dialect=dialect)
    except Exception:  # noqa: BLE001
        return "" if isinstance(t, sa.types.NullType) else str(t)


def _pg_declared(table: sa.Table, c: sa.Column, rendered: str) -> str:
    """The type PostgreSQL's ``CREATE TABLE`` gives ``c`` (``PGDDLCompiler.get_column_specification``'s
    rule), written as the live snapshot reads it: the table's autoincrement integer primary key is
    ``SERIAL`` / ``BIGSERIAL`` / ``SMALLSERIAL``, an ``Identity()`` column ``<type> GENERATED ... AS
    IDENTITY``; so that aligning a table from models creates it with its sequence or identity."""
    if c.identity is not None:
        return f"{rendered} GENERATED {'ALWAYS' if c.identity.always else 'BY DEFAULT'} AS IDENTITY"
    seq_ok = c.default is None or (isinstance(c.default, sa.Sequence) and c.default.optional)
    if c.primary_key and c is table.autoincrement_column and seq_ok and rendered.upper() in SERIAL_OF:
        return SERIAL_OF[rendered.upper()]
    return rendered


def metadata_snapshot(metadata: sa.MetaData, dialect_name: str, *, ignore_tables: Iterable[str] = ()) -> Snapshot:
    """A Snapshot built from MetaData objects, types compiled for ``dialect_name`` (no database needed)."""
    dialect = _dialect(dialect_name)
    ddl = dialect.ddl_compiler(dialect, None)
    ignore = set(ignore_tables or ())
    tables: dict[str, Table] = {}
    for st in metadata.tables.values():
        if st.name in ignore:
            continue
        columns = []
        for c in st.columns:
            rendered = _compile_type(c.type, dialect)
            try:
                default = ddl.get_column_default_string(c)
            except Exception:  # noqa: BLE001
                default = None
            if dialect.name == "postgresql":
                rendered = _pg_declared(st, c, rendered)
            columns.append(Column(c.name, rendered, bool(c.nullable), default, type_key(dialect.name, rendered)))
        pk = tuple(c.name for c in st.primary_key.columns)
        uniques = tuple(UniqueConstraint(u.name if isinstance(u.name, str) else None, tuple(c.name for c in u.columns))
                        for u in st.constraints if isinstance(u, sa.UniqueConstraint))
        indexes = []
        for ix in st.indexes:
            cols = tuple(e.name if isinstance(e, sa.Column) else EXPR for e in ix.expressions)
            indexes.append(Index(str(ix.name), cols, bool(ix.unique)))
        fks = []
        for fkc in st.foreign_key_constraints:
            ref_table = fkc.elements[0].target_fullname.rsplit(".", 1)[0].split(".")[-1]
            ref_cols = tuple(e.target_fullname.rsplit(".", 1)[1] for e in fkc.elements)
            fks.append(ForeignKey(fkc.name if isinstance(fkc.name, str) else None, tuple(fkc.column_keys),
                                  ref_table, ref_cols,
                                  fkc.ondelete.upper() if fkc.ondelete and fkc.ondelete.upper() != "NO ACTION" else None,
                                  fkc.onupdate.upper() if fkc.onupdate and fkc.onupdate.upper() != "NO ACTION" else None))
        tables[st.name] = Table(st.name, tuple(columns), pk, tuple(sorted(indexes, key=lambda i: i.name)),
                                uniques, tuple(fks))
    return Snapshot(dialect.name, dict(sorted(tables.items())))


def _sqlite_from_metadata(metadata: sa.MetaData, ignore_tables: Iterable[str]) -> Snapshot:
    engine = sa.create_engine("sqlite://")
    schemas = {t.schema for t in metadata.tables.values() if t.schema}
    try:
        with engine.begin() as conn:
            if schemas:
                conn = conn.execution_options(schema_translate_map={s: None for s in schemas})
            try:
                metadata.create_all(conn)
            except sa.exc.SQLAlchemyError as e:
                msg = str(getattr(e, "orig", None) or e).splitlines()[0]
                raise ReferenceImportError(
                    f"the reference MetaData cannot be created on SQLite ({msg}); fix the models "
                    "(types SQLite can store, foreign keys to tables in the same MetaData) or use a reference "
                    "database URL instead"
                ) from None
            return take_snapshot(conn, ignore_tables=ignore_tables)
    finally:
        engine.dispose()


def reference_snapshot(*, url: str | None = None, metadata: str | sa.MetaData | None = None,
                       target_dialect: str, ignore_tables: Iterable[str] = (),
                       search_paths: Iterable[str | Path] = (), schema: str | None = None) -> Snapshot:
    """The reference's schema, as a Snapshot comparable with a ``target_dialect`` target.

    Exactly one of ``url`` (a database, opened with ``dburl.open_engine``: a missing SQLite
    file is an error, never created) and ``metadata`` (a MetaData or its import path).
    ``schema``: the schema a PostgreSQL reference URL is read in (default: its default schema).
    """
    if (url is None) == (metadata is None):
        raise ValueError("reference_snapshot needs exactly one of url / metadata")
    if url is not None:
        engine = dburl.open_engine(url)
        try:
            return take_snapshot(engine, ignore_tables=ignore_tables, url=url, schema=schema)
        finally:
            engine.dispose()
    md = metadata if isinstance(metadata, sa.MetaData) else import_metadata(str(metadata), search_paths)
    if (target_dialect or "").lower() == "sqlite":
        return _sqlite_from_metadata(md, ignore_tables)
    return metadata_snapshot(md, target_dialect, ignore_tables=ignore_tables)
