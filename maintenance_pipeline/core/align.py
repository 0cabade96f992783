"""Alignment: turn the diff's changes into Alembic operations.

Alembic does the work (``Operations``: create_table, add_column, create_index,
drop_table, and ``batch_alter_table`` for SQLite table rebuilds). What this module
adds is the choice of *how* on SQLite: native ``ALTER TABLE`` whenever SQLite can
(add/drop column, indexes: milliseconds), and a batch rebuild only for what SQLite
cannot alter in place (column type/nullability/default, primary key, unique and
foreign keys). A rebuild gives Alembic the table's desired shape through
``copy_from``, so rows are copied column by column and every row is kept.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from .model import Change, Column, ForeignKey, Index, Table, UniqueConstraint

# Kinds SQLite can apply in place; the rest of a table's changes need a rebuild.
_NATIVE_SQLITE = {"add_table", "drop_table", "add_column", "add_index", "drop_index", "drop_column"}


class DeclaredType(sa.types.UserDefinedType):
    """A column type rendered exactly as the reference declares it ("DATETIME", "VARCHAR(50)")."""

    cache_ok = True

    def __init__(self, spec: str):
        self.spec = spec

    def get_col_spec(self, **kw) -> str:
        return self.spec


def sa_column(c: Column, *, primary_key: bool = False, type_: sa.types.TypeEngine | None = None) -> sa.Column:
    # an untyped SQLite column ("CREATE TABLE t (a, b)") stays untyped: DeclaredType("") renders nothing
    # (NullType cannot be rendered in DDL). The default is literal SQL, not a text() clause, so a ":x"
    # inside a string default is not taken for a bind parameter.
    return sa.Column(
        c.name,
        type_ if type_ is not None else DeclaredType(c.type or ""),
        nullable=c.nullable,
        primary_key=primary_key,
        server_default=sa.literal_column(c.default) if c.default is not None else None,
        autoincrement=False,
    )


def sa_constraints(t: Table) -> list:
    out: list = []
    if t.primary_key:
        out.append(sa.PrimaryKeyConstraint(*t.primary_key))
    for u in t.uniques:
        out.append(sa.UniqueConstraint(*u.columns, name=u.name if u.name and not u.name.startswith("sqlite_") else None))
    for fk in t.foreign_keys:
        out.append(sa_foreign_key(fk))
    return out


def sa_foreign_key(fk: ForeignKey) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        list(fk.columns),
        [f"{fk.ref_table}.{c}" for c in fk.ref_columns],
        name=fk.name,
        ondelete=fk.on_delete,
        onupdate=fk.on_update,
        use_alter=False,
    )


def sa_table(t: Table, metadata: sa.MetaData | None = None, *, with_indexes: bool = True) -> sa.Table:
    md = metadata if metadata is not None else sa.MetaData()
    # referenced tables must exist in the MetaData for ForeignKeyConstraint to resolve columns
    for fk in t.foreign_keys:
        if fk.ref_table not in md.tables and fk.ref_table != t.name:
            sa.Table(fk.ref_table, md, *[sa.Column(c, sa.types.NullType()) for c in fk.ref_columns])
    table = sa.Table(t.name, md, *[sa_column(c) for c in t.columns], *sa_constraints(t))
    if with_indexes:
        for ix in t.indexes:
            sa.Index(ix.name, *[table.c[c] for c in ix.columns], unique=ix.unique)
    return table


def _quote(ops: Operations, name: str) -> str:
    return ops.get_bind().dialect.identifier_preparer.quote(name)


def apply_change_natively(ops: Operations, ch: Change, column_fk: ForeignKey | None = None) -> bool:
    """Apply one change with a single statement if the dialect can; False if it needs a rebuild.

    ``column_fk`` is a single-column foreign key that arrives together with an added column.
    """
    dialect = ops.get_bind().dialect.name
    if ch.kind == "add_table":
        t: Table = ch.reference  # type: ignore[assignment]
        ops.create_table(t.name, *[sa_column(c) for c in t.columns], *sa_constraints(t))
        for ix in t.indexes:
            ops.create_index(ix.name, t.name, list(ix.columns), unique=ix.unique)
        return True
    if ch.kind == "drop_table":
        ops.drop_table(ch.table)
        return True
    if ch.kind == "add_index":
        ix: Index = ch.reference  # type: ignore[assignment]
        ops.create_index(ix.name, ch.table, list(ix.columns), unique=ix.unique)
        return True
    if ch.kind == "drop_index":
        ops.drop_index(ch.current.name, table_name=ch.table)  # type: ignore[union-attr]
        return True
    if ch.kind == "add_column":
        col: Column = ch.reference  # type: ignore[assignment]
        fk = column_fk
        if fk is not None and dialect == "sqlite":
            # SQLite adds a column with a REFERENCES clause natively (its default must be NULL);
            # Alembic would ask for a full batch rebuild here, so this one statement is written out.
            ddl = f"ALTER TABLE {_quote(ops, ch.table)} ADD COLUMN {_quote(ops, col.name)} {col.ddl()}"
            ddl += f" REFERENCES {_quote(ops, fk.ref_table)}({_quote(ops, fk.ref_columns[0])})"
            if fk.on_delete:
                ddl += f" ON DELETE {fk.on_delete}"
            if fk.on_update:
                ddl += f" ON UPDATE {fk.on_update}"
            ops.get_bind().exec_driver_sql(ddl)  # as is: text() would read ":x" in a default as a parameter
            return True
        ops.add_column(ch.table, sa_column(col))
        if fk is not None:
            ops.create_foreign_key(fk.name, ch.table, fk.ref_table, list(fk.columns), list(fk.ref_columns),
                                   ondelete=fk.on_delete, onupdate=fk.on_update)
        return True
    if dialect == "sqlite":
        if ch.kind == "drop_column":
            # native DROP COLUMN works unless the column is indexed, keyed or referenced
            bind = ops.get_bind()
            savepoint = bind.begin_nested()
            try:
                ops.drop_column(ch.table, ch.name)
            except sa.exc.OperationalError:
                savepoint.rollback()
                return False
            savepoint.commit()
            return True
        return False
    return _apply_generic(ops, ch)


def _apply_generic(ops: Operations, ch: Change) -> bool:
    """Servers with ALTER for everything (PostgreSQL): one Alembic operation per change."""
    if ch.kind == "drop_column":
        ops.drop_column(ch.table, ch.name)
    elif ch.kind == "alter_column":
        ref: Column = ch.reference  # type: ignore[assignment]
        ops.alter_column(ch.table, ch.name, type_=DeclaredType(ref.type), nullable=ref.nullable,
                         server_default=sa.text(ref.default) if ref.default is not None else None)
    elif ch.kind == "add_unique":
        u: UniqueConstraint = ch.reference  # type: ignore[assignment]
        ops.create_unique_constraint(u.name, ch.table, list(u.columns))
    elif ch.kind == "drop_unique":
        ops.drop_constraint(ch.current.name, ch.table, type_="unique")  # type: ignore[union-attr]
    elif ch.kind == "add_foreign_key":
        fk: ForeignKey = ch.reference  # type: ignore[assignment]
        ops.create_foreign_key(fk.name, ch.table, fk.ref_table, list(fk.columns), list(fk.ref_columns),
                               ondelete=fk.on_delete, onupdate=fk.on_update)
    elif ch.kind == "drop_foreign_key":
        ops.drop_constraint(ch.current.name, ch.table, type_="foreignkey")  # type: ignore[union-attr]
    elif ch.kind == "alter_primary_key":
        raise NotImplementedError("alter_primary_key on this dialect")
    else:
        raise ValueError(f"unknown change kind {ch.kind}")
    return True


def desired_shape(live: Table, changes: list[Change]) -> Table:
    """The live table with the rebuild-only changes applied, for a batch rebuild's copy_from."""
    columns = {c.name: c for c in live.columns}
    pk = live.primary_key
    uniques = list(live.uniques)
    fks = list(live.foreign_keys)
    for ch in changes:
        if ch.kind == "alter_column":
            columns[ch.name] = ch.reference  # type: ignore[assignment]
        elif ch.kind == "drop_column":
            columns.pop(ch.name, None)
        elif ch.kind == "alter_primary_key":
            pk = tuple(ch.reference or ())  # type: ignore[arg-type]
        elif ch.kind == "add_unique":
            uniques.append(ch.reference)  # type: ignore[arg-type]
        elif ch.kind == "drop_unique":
            uniques = [u for u in uniques if u.columns != ch.current.columns]  # type: ignore[union-attr]
        elif ch.kind == "add_foreign_key":
            fks.append(ch.reference)  # type: ignore[arg-type]
        elif ch.kind == "drop_foreign_key":
            cur = ch.current
            fks = [f for f in fks if (f.columns, f.ref_table, f.ref_columns) != (cur.columns, cur.ref_table, cur.ref_columns)]  # type: ignore[union-attr]
    kept = [columns[c.name] for c in live.columns if c.name in columns]
    names = {c.name for c in kept}
    indexes = tuple(ix for ix in live.indexes if set(ix.columns) <= names)
    uniques = [u for u in uniques if set(u.columns) <= names]
    fks = [f for f in fks if set(f.columns) <= names]
    return Table(live.name, tuple(kept), tuple(p for p in pk if p in names), indexes, tuple(uniques), tuple(fks))


def rebuild_table(ops: Operations, live: Table, changes: list[Change]) -> None:
    """SQLite: rebuild one table into its desired shape with Alembic's batch mode (rows kept)."""
    shape = desired_shape(live, changes)
    copy_from = sa_table(shape)
    with ops.batch_alter_table(live.name, recreate="always", copy_from=copy_from):
        pass
