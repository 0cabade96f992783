"""Alignment: which of the diff's changes are applied, in which order, and as which Alembic operations.

What is applied: ``split_by_align`` (``none`` / ``additive`` / ``full``), less an index whose name
a kept object holds (``blocked_by_kept_names``); in which order: ``order_for_names`` (SQLite: a
drop that frees an index name first) and ``order_for_server`` (PostgreSQL, see ``_SERVER_ORDER``).
``migrate`` drives them inside its transaction.

Alembic does the work (``Operations``: create_table, add_column, create_index,
drop_table, and ``batch_alter_table`` for SQLite table rebuilds). What this module
adds is the choice of *how* on SQLite: native ``ALTER TABLE`` whenever SQLite can
(add/drop column, indexes: milliseconds), and a batch rebuild only for what SQLite
cannot alter in place (column type/nullability/default, primary key, unique and
foreign keys). A rebuild gives Alembic the table's desired shape through
``copy_from``, so rows are copied column by column and every row is kept, and carries
over what the snapshot does not describe (``engines/sqlite/rebuild.py``).

PostgreSQL alters everything in place (``_apply_generic``), in the target's schema:
``alter_column`` changes only what differs (type with a ``USING`` cast, nullability, default;
a default that could not follow a type change is dropped first and set again after), unique and
foreign keys are added and dropped by name (the snapshot has every name, PostgreSQL names all
constraints; an unnamed key from a SQLite or MetaData reference gets PostgreSQL's own name), and
a primary key change drops the current ``*_pkey`` constraint (its name read from the catalog) and
adds the new one. A column whose values come from a sequence (``SERIAL``) or an identity is
created that way (its declared type says so: see ``snapshot``), and altered as its plain type.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from .errors import MigrationError
from .model import ADDITIVE_KINDS, Change, Column, ForeignKey, Index, Snapshot, Table, UniqueConstraint
from .sqltypes import base_type, default_key, type_key


class DeclaredType(sa.types.UserDefinedType):
    """A column type rendered exactly as the reference declares it ("DATETIME", "VARCHAR(50)")."""

    cache_ok = True

    def __init__(self, spec: str):
        self.spec = spec

    def get_col_spec(self, **kw) -> str:
        return self.spec


def sa_column(c: Column, *, type_: sa.types.TypeEngine | None = None) -> sa.Column:
    # an untyped SQLite column ("CREATE TABLE t (a, b)") stays untyped: DeclaredType("") renders nothing
    # (NullType cannot be rendered in DDL). The default is literal SQL, not a text() clause, so a ":x"
    # inside a string default is not taken for a bind parameter.
    return sa.Column(
        c.name,
        type_ if type_ is not None else DeclaredType(c.type or ""),
        nullable=c.nullable,
        server_default=sa.literal_column(c.default) if c.default is not None else None,
        autoincrement=False,
    )


def sa_constraints(t: Table, schema: str | None = None) -> list:
    out: list = []
    if t.primary_key:
        out.append(sa.PrimaryKeyConstraint(*t.primary_key))
    for u in t.uniques:
        out.append(sa.UniqueConstraint(*u.columns, name=u.name if u.name and not u.name.startswith("sqlite_") else None))
    for fk in t.foreign_keys:
        out.append(sa_foreign_key(fk, schema))
    return out


def sa_foreign_key(fk: ForeignKey, schema: str | None = None) -> sa.ForeignKeyConstraint:
    prefix = f"{schema}." if schema else ""
    return sa.ForeignKeyConstraint(
        list(fk.columns),
        [f"{prefix}{fk.ref_table}.{c}" for c in fk.ref_columns],
        name=fk.name,
        ondelete=fk.on_delete,
        onupdate=fk.on_update,
        use_alter=False,
    )


# ------------------------------------------------------------------ what is applied, in which order


def split_by_align(changes: list[Change], align: str) -> tuple[list[Change], list[Change]]:
    """(to apply, refused) under an align mode."""
    if align == "none":
        return [], []
    if align == "full":
        return list(changes), []
    return [c for c in changes if c.kind in ADDITIVE_KINDS], [c for c in changes if c.kind not in ADDITIVE_KINDS]


def _created_index_names(changes: list[Change]) -> set[str]:
    names = set()
    for ch in changes:
        if ch.kind == "add_index":
            names.add(ch.reference.name)  # type: ignore[union-attr]
        elif ch.kind == "add_table":
            names.update(ix.name for ix in ch.reference.indexes)  # type: ignore[union-attr]
    return names


def order_for_names(changes: list[Change]) -> list[Change]:
    """Index names are schema-wide on SQLite: an index (or a table's indexes) being dropped whose name is
    about to be created goes first, or the CREATE INDEX fails with "index ... already exists"."""
    created = _created_index_names(changes)
    if not created:
        return changes

    def frees_a_name(ch: Change) -> bool:
        if ch.kind == "drop_index":
            return ch.current.name in created  # type: ignore[union-attr]
        if ch.kind == "drop_table":
            return any(ix.name in created for ix in ch.current.indexes)  # type: ignore[union-attr]
        return False

    first = [c for c in changes if frees_a_name(c)]
    return first + [c for c in changes if not frees_a_name(c)]


# PostgreSQL applies every change in place, in this order: new tables first (parents before children),
# then the drops of keys and indexes (a key on the old primary key or on a column whose type changes
# would block those changes; an index name is schema-wide and may be reused by an add), then the
# column and key changes, and the drops of columns and tables last.
_SERVER_ORDER = ("add_table", "drop_foreign_key", "drop_index", "drop_unique", "add_column", "alter_column",
                 "alter_primary_key", "add_unique", "add_index", "add_foreign_key", "drop_column", "drop_table")


def order_for_server(changes: list[Change]) -> list[Change]:
    rank = {k: i for i, k in enumerate(_SERVER_ORDER)}
    return sorted(changes, key=lambda c: rank.get(c.kind, len(rank)))  # stable: the diff's order within a kind


def blocked_by_kept_names(live: Snapshot, to_apply: list[Change]) -> tuple[list[Change], list[Change]]:
    """An index whose name is taken by a live index (or unique key, or table) that stays is not created:
    index names are schema-wide, so it could only be created by dropping the other (refused under
    ``additive``). It is refused instead of failing the whole run."""
    taken: set[str] = set()
    for t in live.tables.values():
        taken.add(t.name)
        taken.update(ix.name for ix in t.indexes)
        taken.update(u.name for u in t.uniques if u.name)
    for ch in to_apply:
        if ch.kind in ("drop_index", "drop_unique") and ch.current is not None:
            taken.discard(ch.current.name)  # type: ignore[union-attr]
        elif ch.kind == "drop_table":
            taken.discard(ch.table)
            taken.difference_update(ix.name for ix in ch.current.indexes)  # type: ignore[union-attr]
            taken.difference_update(u.name for u in ch.current.uniques if u.name)  # type: ignore[union-attr]
    blocked = [ch for ch in to_apply if ch.kind == "add_index" and ch.reference.name in taken]  # type: ignore[union-attr]
    return [ch for ch in to_apply if ch not in blocked], blocked


# ------------------------------------------------------------------ how: Alembic operations


def _quote(ops: Operations, name: str) -> str:
    return ops.get_bind().dialect.identifier_preparer.quote(name)


def apply_change_natively(ops: Operations, ch: Change, column_fk: ForeignKey | None = None,
                          schema: str | None = None) -> bool:
    """Apply one change with a single statement if the dialect can; False if it needs a rebuild.

    ``column_fk`` is a single-column foreign key that arrives together with an added column.
    ``schema``: the schema the target's tables live in (PostgreSQL; None = the default schema).
    """
    dialect = ops.get_bind().dialect.name
    if ch.kind == "add_table":
        t: Table = ch.reference  # type: ignore[assignment]
        ops.create_table(t.name, *[sa_column(c) for c in t.columns], *sa_constraints(t, schema), schema=schema)
        for ix in t.indexes:
            ops.create_index(ix.name, t.name, list(ix.columns), unique=ix.unique, schema=schema)
        return True
    if ch.kind == "drop_table":
        ops.drop_table(ch.table, schema=schema)
        return True
    if ch.kind == "add_index":
        ix: Index = ch.reference  # type: ignore[assignment]
        ops.create_index(ix.name, ch.table, list(ix.columns), unique=ix.unique, schema=schema)
        return True
    if ch.kind == "drop_index":
        ops.drop_index(ch.current.name, table_name=ch.table, schema=schema)  # type: ignore[union-attr]
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
        ops.add_column(ch.table, sa_column(col), schema=schema)
        if fk is not None:
            _create_foreign_key(ops, ch.table, fk, schema)
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
    return _apply_generic(ops, ch, schema)


def _create_foreign_key(ops: Operations, table: str, fk: ForeignKey, schema: str | None) -> None:
    ops.create_foreign_key(fk.name, table, fk.ref_table, list(fk.columns), list(fk.ref_columns),
                           ondelete=fk.on_delete, onupdate=fk.on_update, source_schema=schema,
                           referent_schema=schema)


def _alter_column(ops: Operations, table: str, cur: Column, ref: Column, schema: str | None) -> None:
    """Change only what differs: type (with a USING cast), default, nullability."""
    dialect = ops.get_bind().dialect.name
    new_type = base_type(ref.type)
    type_changed = type_key(dialect, cur.type) != type_key(dialect, ref.type)
    default_changed = default_key(dialect, cur.default, cur.type) != default_key(dialect, ref.default, ref.type)
    kw = {"schema": schema, "existing_type": DeclaredType(base_type(cur.type)), "existing_nullable": cur.nullable}
    if type_changed:
        if cur.default is not None:
            # a default is not always castable with the column (e.g. 'x'::text to integer): drop it first,
            # and set the reference's default after the type change
            ops.alter_column(table, cur.name, server_default=None, **kw)
            default_changed = True
        using = f"{_quote(ops, cur.name)}::{new_type}" if dialect == "postgresql" else None
        ops.alter_column(table, cur.name, type_=DeclaredType(new_type),
                         **({"postgresql_using": using} if using else {}), **kw)
        kw["existing_type"] = DeclaredType(new_type)
    if default_changed:
        ops.alter_column(table, cur.name, server_default=sa.text(ref.default.replace(":", "\\:"))
                         if ref.default is not None else None, **kw)
    if cur.nullable != ref.nullable:
        ops.alter_column(table, cur.name, nullable=ref.nullable, **kw)


def _primary_key_name(ops: Operations, table: str, schema: str | None) -> str | None:
    bind = ops.get_bind()
    if bind.dialect.name != "postgresql":
        return sa.inspect(bind).get_pk_constraint(table, schema=schema).get("name")
    qualified = (f"{_quote(ops, schema)}." if schema else "") + _quote(ops, table)
    return bind.execute(sa.text("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = "
                                "CAST(:t AS regclass) AND contype = 'p'"), {"t": qualified}).scalar()


def _apply_generic(ops: Operations, ch: Change, schema: str | None = None) -> bool:
    """Servers with ALTER for everything (PostgreSQL): Alembic operations, in the target's schema."""
    if ch.kind == "drop_column":
        ops.drop_column(ch.table, ch.name, schema=schema)
    elif ch.kind == "alter_column":
        _alter_column(ops, ch.table, ch.current, ch.reference, schema)  # type: ignore[arg-type]
    elif ch.kind == "add_unique":
        u: UniqueConstraint = ch.reference  # type: ignore[assignment]
        name = u.name if u.name and not u.name.startswith("sqlite_") else None
        ops.create_unique_constraint(name, ch.table, list(u.columns), schema=schema)
    elif ch.kind in ("drop_unique", "drop_foreign_key"):
        what, type_ = ("unique key", "unique") if ch.kind == "drop_unique" else ("foreign key", "foreignkey")
        name = ch.current.name  # type: ignore[union-attr]
        if not name:
            raise MigrationError(f"cannot drop the {what} {ch.detail} of {ch.table}: it has no name")
        ops.drop_constraint(name, ch.table, type_=type_, schema=schema)
    elif ch.kind == "add_foreign_key":
        _create_foreign_key(ops, ch.table, ch.reference, schema)  # type: ignore[arg-type]
    elif ch.kind == "alter_primary_key":
        old = _primary_key_name(ops, ch.table, schema) if ch.current else None
        if old:
            ops.drop_constraint(old, ch.table, type_="primary", schema=schema)
        if ch.reference:
            ops.create_primary_key(old or f"{ch.table}_pkey"[:63], ch.table, list(ch.reference),  # type: ignore[arg-type]
                                   schema=schema)
    else:
        raise ValueError(f"unknown change kind {ch.kind}")
    return True
