"""Schemas read without an engine of their own: SQLAlchemy's inspector on a live connection
(``inspector_snapshot``, the default of ``Engine.snapshot``) and SQLAlchemy MetaData compiled for an
engine (``metadata_snapshot``, the default of ``Engine.metadata_snapshot``). The engine given supplies
each column's declaration and type key."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, ObjectScope, make_url

from ..schema.model import EXPR, Column, ForeignKey, Index, Snapshot, Table, UniqueConstraint


def _render_type(t, dialect) -> str:
    try:
        return t.compile(dialect=dialect)
    except Exception:  # noqa: BLE001 - unknown/NullType: fall back to its repr
        return str(t) if not isinstance(t, sa.types.NullType) else ""


def action(value: str | None) -> str | None:
    """A foreign key's ON DELETE / ON UPDATE action; ``NO ACTION`` (the default) is None."""
    if value is None:
        return None
    v = " ".join(str(value).upper().split())
    return None if v in ("", "NO ACTION", "NONE") else v


def inspector_snapshot(conn: Connection, ignore: set[str], schema: str | None, engine, *,
                       temporary: bool = False) -> Snapshot:
    """The snapshot SQLAlchemy's inspector reads (batched: one query per kind of object), with ``engine``'s
    column declarations and type keys (the default of ``Engine.snapshot``). ``temporary``: the session's own
    temporary tables (``schema`` is their schema)."""
    dialect = conn.dialect
    insp = sa.inspect(conn)
    listed = insp.get_temp_table_names() if temporary else insp.get_table_names(schema=schema)
    names = [n for n in listed if n not in ignore]
    if not names:
        return Snapshot(engine.name, {})
    # every table of the schema, filtered here: naming them (``filter_names``) sends one bound parameter a table
    # in each of the five queries, which psycopg parses and the server matches (measured: 10,000 tables, 5.0 s a
    # snapshot with the names, 3.6 s without)
    kw: dict = {"schema": schema}
    if temporary:
        kw["scope"] = ObjectScope.TEMPORARY
    try:
        with warnings.catch_warnings():  # "Did not recognize type": the engine names such a type itself
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            all_cols = insp.get_multi_columns(**kw)
        all_pk = insp.get_multi_pk_constraint(**kw)
        all_ix = insp.get_multi_indexes(**kw)
        all_uq = insp.get_multi_unique_constraints(**kw)
        all_fk = insp.get_multi_foreign_keys(**kw)
    except NotImplementedError:  # pragma: no cover - dialects without the batch API
        all_cols = {(schema, n): insp.get_columns(n, schema=schema) for n in names}
        all_pk = {(schema, n): insp.get_pk_constraint(n, schema=schema) for n in names}
        all_ix = {(schema, n): insp.get_indexes(n, schema=schema) for n in names}
        all_uq = {(schema, n): insp.get_unique_constraints(n, schema=schema) for n in names}
        all_fk = {(schema, n): insp.get_foreign_keys(n, schema=schema) for n in names}

    def get(d: dict, n: str):
        return d.get((schema, n), d.get((None, n), [] if d is not all_pk else {}))

    tables: dict[str, Table] = {}
    for n in names:
        columns = []
        for c in get(all_cols, n):
            rendered, default = engine.column_declaration(c, _render_type(c["type"], dialect))
            columns.append(Column(c["name"], rendered, bool(c.get("nullable", True)), default,
                                  engine.type_key(rendered)))
        pk = tuple(get(all_pk, n).get("constrained_columns") or ())
        uniques = [UniqueConstraint(u.get("name"), tuple(u["column_names"])) for u in get(all_uq, n)]
        unique_names = {u.name for u in uniques}
        indexes = []
        for ix in get(all_ix, n):
            if ix.get("duplicates_constraint") or (ix.get("unique") and ix.get("name") in unique_names):
                continue
            exprs = ix.get("expressions")
            cols = tuple(c if c is not None else (exprs[i] if exprs and i < len(exprs) else EXPR)
                         for i, c in enumerate(ix.get("column_names") or ()))
            indexes.append(Index(ix["name"], cols, bool(ix.get("unique"))))
        fks = []
        for fk in get(all_fk, n):
            opts = fk.get("options") or {}
            fks.append(ForeignKey(fk.get("name"), tuple(fk["constrained_columns"]), fk["referred_table"],
                                  tuple(fk["referred_columns"]), action(opts.get("ondelete")),
                                  action(opts.get("onupdate"))))
        tables[n] = Table(n, tuple(columns), pk, tuple(sorted(indexes, key=lambda i: i.name)), tuple(uniques),
                          tuple(fks))
    return Snapshot(engine.name, dict(sorted(tables.items())))


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


def metadata_snapshot(metadata: sa.MetaData, engine, *, ignore_tables: Iterable[str] = ()) -> Snapshot:
    """A Snapshot built from MetaData objects, types compiled for ``dialect_name`` (no database needed), each
    column declared as the engine's ``CREATE TABLE`` makes it (``Engine.model_column_declaration``)."""
    dialect = _dialect(engine.name)
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
            rendered = engine.model_column_declaration(st, c, rendered)
            columns.append(Column(c.name, rendered, bool(c.nullable), default, engine.type_key(rendered)))
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
    return Snapshot(engine.name, dict(sorted(tables.items())))


