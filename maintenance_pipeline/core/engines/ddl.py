"""Alembic-level DDL every engine shares: the model's objects as SQLAlchemy ones (``DeclaredType``,
``sa_column``, ``sa_constraints``), the order changes are applied in (``order_for_names``,
``order_for_server``), and ``apply_generic``: a change ALTERed in place with Alembic's operations, the
default of ``Engine.apply_in_place``. The engine supplies what differs (``plain_type``, ``type_change``,
``primary_key_name``, ``type_key``); the policy (what is applied at all) is ``align.py``'s."""

from __future__ import annotations

from itertools import groupby

import sqlalchemy as sa
from alembic.operations import Operations

from ..errors import MigrationError
from ..schema.model import Change, Check, Column, ForeignKey, Table
from ..schema.sqltypes import default_key


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
        out.append(sa.PrimaryKeyConstraint(*t.primary_key, name=t.primary_key_name))
    for u in t.uniques:
        out.append(sa.UniqueConstraint(*u.columns, name=u.name if u.name and not u.name.startswith("sqlite_") else None))
    for fk in t.foreign_keys:
        out.append(sa_foreign_key(fk, schema))
    return out


def key_options(options: str) -> dict:
    """A key's ``options`` ("MATCH FULL DEFERRABLE INITIALLY DEFERRED") as SQLAlchemy keyword arguments."""
    words = options.upper()
    kw: dict = {}
    if "MATCH FULL" in words:
        kw["match"] = "FULL"
    if "DEFERRABLE" in words:
        kw["deferrable"] = True
        kw["initially"] = "DEFERRED" if "INITIALLY DEFERRED" in words else "IMMEDIATE"
    return kw


def sa_foreign_key(fk: ForeignKey, schema: str | None = None) -> sa.ForeignKeyConstraint:
    prefix = f"{schema}." if schema else ""
    return sa.ForeignKeyConstraint(
        list(fk.columns),
        [f"{prefix}{fk.ref_table}.{c}" for c in fk.ref_columns],
        name=fk.name,
        ondelete=fk.on_delete,
        onupdate=fk.on_update,
        use_alter=False,
        **key_options(fk.options),
    )


def add_check(ops: Operations, table: str, check: Check, schema: str | None) -> None:
    """``ALTER TABLE ... ADD [CONSTRAINT name] <check.sql>`` (the engine's own text: CHECK or EXCLUDE)."""
    prep = ops.get_bind().dialect.identifier_preparer
    qualified = (prep.quote_schema(schema) + "." if schema else "") + prep.quote(table)
    name = f"CONSTRAINT {prep.quote(check.name)} " if check.name else ""
    ops.get_bind().exec_driver_sql(f"ALTER TABLE {qualified} ADD {name}{check.sql}")


# ------------------------------------------------------------------ what is applied, in which order


def _created_index_names(changes: list[Change]) -> set[str]:
    names = set()
    for ch in changes:
        if ch.kind == "add_index":
            names.add(ch.ref_index.name)
        elif ch.kind == "add_table":
            names.update(ix.name for ix in ch.ref_table.indexes)
    return names


def order_for_names(changes: list[Change]) -> list[Change]:
    """Index names are schema-wide on SQLite: an index (or a table's indexes) being dropped whose name is
    about to be created goes first, or the CREATE INDEX fails with "index ... already exists"."""
    created = _created_index_names(changes)
    if not created:
        return changes

    def frees_a_name(ch: Change) -> bool:
        if ch.kind == "drop_index":
            return ch.cur_index.name in created
        if ch.kind == "drop_table":
            return any(ix.name in created for ix in ch.cur_table.indexes)
        return False

    first = [c for c in changes if frees_a_name(c)]
    return first + [c for c in changes if not frees_a_name(c)]


# PostgreSQL applies every change in place, in this order: new tables first (parents before children),
# then the drops of keys and indexes (a key on the old primary key or on a column whose type changes
# would block those changes; an index name is schema-wide and may be reused by an add), then the
# column and key changes, and the drops of columns and tables last. The primary key changes before the
# columns: a column leaves its NOT NULL only once it is no longer in the key ("column is in a primary key").
# Views and triggers are dropped first and made last, types, sequences and functions made first and dropped
# last (``Change.slot``); a new table's foreign keys come after every key exists (``align.expand``). Within
# a slot, views are dropped before the views they read and made after them (``by_reads``). A constraint or an index
# is renamed after the drops (a dropped one may free its new name) and before the adds (one may take its old name).
_SERVER_ORDER = ("drop_object:first", "add_object:first", "alter_object:first", "add_table", "rename_column",
                 "drop_foreign_key", "drop_index", "drop_unique", "drop_check", "rename_constraint", "rename_index",
                 "add_column", "alter_primary_key",
                 "alter_column", "alter_table", "add_unique", "add_index", "add_check", "add_foreign_key",
                 "drop_column", "drop_table", "alter_object:last", "add_object:last", "drop_object:last")


def order_for_server(changes: list[Change]) -> list[Change]:
    rank = {k: i for i, k in enumerate(_SERVER_ORDER)}
    ordered = sorted(changes, key=lambda c: rank.get(c.slot, len(rank)))  # stable: the diff's order within a slot
    out: list[Change] = []
    for _slot, group in groupby(ordered, key=lambda c: c.slot):
        out += by_reads(list(group))
    return out


def by_reads(changes: list[Change]) -> list[Change]:
    """Object changes of one slot in the order the server accepts: an object made after the objects it reads (the
    reference's ``SchemaObject.reads``), dropped before the objects it reads (the live ones); otherwise as given."""
    def obj(c: Change):
        return c.current if c.kind == "drop_object" else c.reference

    named = {getattr(obj(c), "name", None): c for c in changes if c.kind.endswith("_object")}
    if len(named) < 2:
        return changes
    after: dict[int, set[int]] = {id(c): set() for c in changes}  # change -> the changes that must come first
    for c in changes:
        for read in getattr(obj(c), "reads", ()) if c.kind.endswith("_object") else ():
            other = named.get(read)
            if other is None or other is c:
                continue
            if c.kind == "drop_object":
                after[id(other)].add(id(c))  # the reader is dropped before what it reads
            else:
                after[id(c)].add(id(other))  # made after what it reads
    out: list[Change] = []
    done: set[int] = set()
    left = list(changes)
    while left:
        pick = next((c for c in left if after[id(c)] <= done), left[0])  # a cycle: as given
        left.remove(pick)
        done.add(id(pick))
        out.append(pick)
    return out


def create_foreign_key(ops: Operations, table: str, fk: ForeignKey, schema: str | None) -> None:
    ops.create_foreign_key(fk.name, table, fk.ref_table, list(fk.columns), list(fk.ref_columns),
                           ondelete=fk.on_delete, onupdate=fk.on_update, source_schema=schema,
                           referent_schema=schema, **key_options(fk.options))


def _alter_column(ops: Operations, engine, table: str, cur: Column, ref: Column, schema: str | None) -> None:
    """Change only what differs: type (with the engine's cast, ``Engine.type_change``), default, nullability."""
    new_type = engine.plain_type(ref.type)
    type_changed = engine.type_key(cur.type) != engine.type_key(ref.type)
    default_changed = default_key(engine, cur.default, cur.type) != default_key(engine, ref.default, ref.type)
    kw = {"schema": schema, "existing_type": DeclaredType(engine.plain_type(cur.type)),
          "existing_nullable": cur.nullable}
    if type_changed:
        if cur.default is not None:
            # a default is not always castable with the column (e.g. 'x'::text to integer): drop it first,
            # and set the reference's default after the type change
            ops.alter_column(table, cur.name, server_default=None, **kw)
            default_changed = True
        ops.alter_column(table, cur.name, type_=DeclaredType(new_type), **engine.type_change(ops, cur.name, new_type),
                         **kw)
        kw["existing_type"] = DeclaredType(new_type)
    if default_changed:
        ops.alter_column(table, cur.name, server_default=sa.text(ref.default.replace(":", "\\:"))
                         if ref.default is not None else None, **kw)
    if cur.nullable != ref.nullable:
        ops.alter_column(table, cur.name, nullable=ref.nullable, **kw)


def apply_generic(ops: Operations, ch: Change, engine, schema: str | None = None) -> bool:
    """Engines with ALTER for everything (the default of ``Engine.apply_in_place``): Alembic operations, in
    the target's schema."""
    if ch.kind == "drop_column":
        ops.drop_column(ch.table, ch.name, schema=schema)
    elif ch.kind == "alter_column":
        _alter_column(ops, engine, ch.table, ch.cur_column, ch.ref_column, schema)
    elif ch.kind == "add_unique":
        u = ch.ref_unique
        name = u.name if u.name and not u.name.startswith("sqlite_") else None
        kw = key_options(u.options)
        if "NULLS NOT DISTINCT" in u.options.upper():
            kw["postgresql_nulls_not_distinct"] = True
        ops.create_unique_constraint(name, ch.table, list(u.columns), schema=schema, **kw)
    elif ch.kind == "add_check":
        add_check(ops, ch.table, ch.ref_check, schema)
    elif ch.kind == "drop_check":
        name = ch.cur_check.name
        if not name:
            raise MigrationError(f"cannot drop the check {ch.detail} of {ch.table}: it has no name")
        ops.drop_constraint(name, ch.table, type_="check", schema=schema)
    elif ch.kind in ("drop_unique", "drop_foreign_key"):
        what, type_ = ("unique key", "unique") if ch.kind == "drop_unique" else ("foreign key", "foreignkey")
        name = ch.cur_named.name
        if not name:
            raise MigrationError(f"cannot drop the {what} {ch.detail} of {ch.table}: it has no name")
        ops.drop_constraint(name, ch.table, type_=type_, schema=schema)
    elif ch.kind == "add_foreign_key":
        create_foreign_key(ops, ch.table, ch.ref_fk, schema)
    elif ch.kind == "alter_primary_key":
        old = engine.primary_key_name(ops, ch.table, schema) if ch.cur_pk else None
        if old:
            ops.drop_constraint(old, ch.table, type_="primary", schema=schema)
        if ch.ref_pk:
            ops.create_primary_key(ch.name or old or f"{ch.table}_pkey"[:63], ch.table, list(ch.ref_pk),
                                   schema=schema)
    else:
        raise ValueError(f"unknown change kind {ch.kind}")
    return True
