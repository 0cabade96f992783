"""Alignment: turn the diff's changes into Alembic operations.

Alembic does the work (``Operations``: create_table, add_column, create_index,
drop_table, and ``batch_alter_table`` for SQLite table rebuilds). What this module
adds is the choice of *how* on SQLite: native ``ALTER TABLE`` whenever SQLite can
(add/drop column, indexes: milliseconds), and a batch rebuild only for what SQLite
cannot alter in place (column type/nullability/default, primary key, unique and
foreign keys). A rebuild gives Alembic the table's desired shape through
``copy_from``, so rows are copied column by column and every row is kept, and carries
over what the snapshot does not describe (see "SQLite table rebuilds" below).

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

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.operations import Operations

from .errors import MigrationError
from .model import Change, Column, ForeignKey, Index, Table, UniqueConstraint
from .snapshot import EXPR
from .sqltypes import base_type, default_key, type_key

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


def sa_table(t: Table, metadata: sa.MetaData | None = None, *, with_indexes: bool = True,
             table_kwargs: dict | None = None, collations: dict[str, str] | None = None) -> sa.Table:
    md = metadata if metadata is not None else sa.MetaData()
    # referenced tables must exist in the MetaData for ForeignKeyConstraint to resolve columns
    for fk in t.foreign_keys:
        if fk.ref_table not in md.tables and fk.ref_table != t.name:
            sa.Table(fk.ref_table, md, *[sa.Column(c, sa.types.NullType()) for c in fk.ref_columns])
    kwargs = dict(table_kwargs or {})
    collations = collations or {}
    columns = []
    for c in t.columns:
        type_ = None
        if kwargs.get("sqlite_autoincrement") and t.primary_key == (c.name,) and c.type.upper() == "INTEGER":
            type_ = sa.INTEGER()  # SQLAlchemy writes AUTOINCREMENT only for an Integer-typed key
        elif c.name in collations:
            type_ = DeclaredType(f"{c.type} COLLATE {collations[c.name]}".strip())
        columns.append(sa_column(c, type_=type_))
    table = sa.Table(t.name, md, *columns, *sa_constraints(t), **kwargs)
    if with_indexes:
        for ix in t.indexes:
            sa.Index(ix.name, *[table.c[c] for c in ix.columns], unique=ix.unique)
    return table


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
            ops.create_foreign_key(fk.name, ch.table, fk.ref_table, list(fk.columns), list(fk.ref_columns),
                                   ondelete=fk.on_delete, onupdate=fk.on_update, source_schema=schema,
                                   referent_schema=schema)
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
    elif ch.kind == "drop_unique":
        name = ch.current.name  # type: ignore[union-attr]
        if not name:
            raise MigrationError(f"cannot drop the unique key {ch.detail} of {ch.table}: it has no name")
        ops.drop_constraint(name, ch.table, type_="unique", schema=schema)
    elif ch.kind == "add_foreign_key":
        fk: ForeignKey = ch.reference  # type: ignore[assignment]
        ops.create_foreign_key(fk.name, ch.table, fk.ref_table, list(fk.columns), list(fk.ref_columns),
                               ondelete=fk.on_delete, onupdate=fk.on_update, source_schema=schema,
                               referent_schema=schema)
    elif ch.kind == "drop_foreign_key":
        name = ch.current.name  # type: ignore[union-attr]
        if not name:
            raise MigrationError(f"cannot drop the foreign key {ch.detail} of {ch.table}: it has no name")
        ops.drop_constraint(name, ch.table, type_="foreignkey", schema=schema)
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


def _fk_identity(fk: ForeignKey) -> tuple:
    return (tuple(fk.columns), fk.ref_table, tuple(fk.ref_columns), fk.on_delete or None, fk.on_update or None)


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
            # the whole key, actions included: a changed ON DELETE is an add and a drop of the same columns
            fks = [f for f in fks if _fk_identity(f) != _fk_identity(ch.current)]  # type: ignore[arg-type]
    kept = [columns[c.name] for c in live.columns if c.name in columns]
    names = {c.name for c in kept}
    indexes = tuple(ix for ix in live.indexes if set(ix.columns) <= names)
    uniques = [u for u in uniques if set(u.columns) <= names]
    fks = [f for f in fks if set(f.columns) <= names]
    return Table(live.name, tuple(kept), tuple(p for p in pk if p in names), indexes, tuple(uniques), tuple(fks))


# ------------------------------------------------------------------ SQLite table rebuilds
#
# The snapshot (and so ``desired_shape``) knows columns, keys and indexes. A table also has
# properties the diff does not compare, which a rebuild must carry over or it silently changes
# the table: WITHOUT ROWID / STRICT, AUTOINCREMENT (and its sqlite_sequence high-water mark),
# column collations, CHECK constraints, partial-index WHERE clauses, and triggers (dropped with
# the old table). Views and other tables' triggers that name the table must survive the
# DROP/RENAME pair: ``legacy_alter_table`` keeps SQLite from re-checking them in between.
# Generated columns cannot be rebuilt by Alembic's batch copy (it inserts into every column),
# so such a table is refused with a clear error rather than turned into plain columns.


@dataclass
class LiveExtras:
    """What a SQLite table has beyond the snapshot, read before its rebuild."""

    table_kwargs: dict = field(default_factory=dict)  # sqlite_with_rowid / sqlite_strict / sqlite_autoincrement
    collations: dict[str, str] = field(default_factory=dict)  # column -> collation name
    checks: list[tuple[str | None, str]] = field(default_factory=list)  # (name, sql text)
    index_where: dict[str, str] = field(default_factory=dict)  # index name -> WHERE clause of a partial index
    generated: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)  # CREATE TRIGGER statements
    index_sql: dict[str, str] = field(default_factory=dict)  # index name -> CREATE INDEX statement
    sequence: int | None = None  # sqlite_sequence.seq of an AUTOINCREMENT table


def _scan(sql: str, start: int = 0):
    """Yield (index, char, depth) over ``sql`` outside quotes/comments; depth counts parentheses."""
    depth, i, n = 0, start, len(sql)
    closers = {"'": "'", '"': '"', "`": "`", "[": "]"}
    while i < n:
        ch = sql[i]
        if ch in closers:
            end = sql.find(closers[ch], i + 1)
            while end != -1 and ch in "'\"`" and end + 1 < n and sql[end + 1] == ch:  # doubled quote
                end = sql.find(closers[ch], end + 2)
            i = n if end == -1 else end + 1
            continue
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        yield i, ch, depth
        i += 1


def _definitions(create_sql: str) -> list[str]:
    """The top-level comma-separated parts of a CREATE TABLE's body (column defs and table constraints)."""
    parts, begin, open_at = [], None, None
    for i, ch, depth in _scan(create_sql):
        if ch == "(" and depth == 1 and open_at is None:
            open_at = begin = i + 1
        elif open_at is not None and ch == "," and depth == 1:
            parts.append(create_sql[begin:i])
            begin = i + 1
        elif open_at is not None and ch == ")" and depth == 0:
            parts.append(create_sql[begin:i])
            break
    return [p.strip() for p in parts if p.strip()]


def _flat(part: str) -> str:
    """``part`` with quoted text and anything inside parentheses blanked (keeps positions)."""
    keep = [" "] * len(part)
    for i, ch, depth in _scan(part):
        if depth == 0 and ch != ")":
            keep[i] = ch
    return "".join(keep)


_TABLE_CONSTRAINT = re.compile(r"^(CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", re.IGNORECASE)
_IDENT = r'(?:"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[^\s(]+)'


def _unquote(ident: str) -> str:
    if len(ident) >= 2 and ident[0] in "\"`[" and ident[-1] in "\"`]":
        inner = ident[1:-1]
        return inner.replace('""', '"') if ident[0] == '"' else inner
    return ident


def _checks(create_sql: str) -> list[tuple[str | None, str]]:
    """Every CHECK of a CREATE TABLE, column-level or table-level, as (constraint name or None, expression).

    (SQLAlchemy's reflection of CHECK constraints misses one written over several lines.)
    """
    out = []
    for part in _definitions(create_sql):
        for m in re.finditer(r"\bCHECK\b", _flat(part), re.IGNORECASE):
            open_at = part.find("(", m.end())
            close = next((i for i, ch, depth in _scan(part, open_at) if ch == ")" and depth == 0), None)
            if open_at < 0 or close is None:
                continue
            named = re.search(r"\bCONSTRAINT\s+(" + _IDENT + r")\s*$", part[:m.start()], re.IGNORECASE)
            out.append((_unquote(named.group(1)) if named else None, part[open_at + 1:close].strip()))
    return out


def live_extras(conn: sa.Connection, table: str) -> LiveExtras:
    out = LiveExtras()
    create_sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar() or ""
    insp = sa.inspect(conn)
    out.table_kwargs.update(insp.get_table_options(table))
    if re.search(r"\bAUTOINCREMENT\b", _flat(" ".join(_definitions(create_sql))), re.IGNORECASE):
        out.table_kwargs["sqlite_autoincrement"] = True
        if conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first():
            out.sequence = conn.exec_driver_sql("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).scalar()
    for part in _definitions(create_sql):
        if _TABLE_CONSTRAINT.match(part):
            continue
        name = re.match(_IDENT, part)
        at = re.search(r"\bCOLLATE\b", _flat(part), re.IGNORECASE)  # outside strings and parentheses
        coll = re.match(_IDENT, part[at.end():].lstrip()) if at else None
        if name and coll:
            out.collations[_unquote(name.group(0))] = _unquote(coll.group(0))
    out.checks = _checks(create_sql)
    out.generated = [r[0] for r in conn.exec_driver_sql(
        "SELECT name FROM pragma_table_xinfo(?) WHERE hidden IN (2, 3)", (table,))]
    out.index_sql = dict(conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,)
    ).fetchall())
    for name, sql in out.index_sql.items():
        where = re.search(r"\bWHERE\b", _flat(sql), re.IGNORECASE)  # a partial index's WHERE, outside parentheses
        if where:
            out.index_where[name] = sql[where.end():].strip().rstrip(";").strip()
    out.triggers = [r[0] for r in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND sql IS NOT NULL ORDER BY rowid",
        (table,))]
    return out


def _mentions(sql_text: str, names: set[str]) -> bool:
    return any(re.search(r'(?<![\w$])["`\[]?' + re.escape(n) + r'["`\]]?(?![\w$])', sql_text, re.IGNORECASE)
               for n in names)


def rebuild_table(ops: Operations, live: Table, changes: list[Change]) -> None:
    """SQLite: rebuild one table into its desired shape with Alembic's batch mode (rows kept).

    Alembic creates the new table from ``copy_from``, copies the rows column by column, drops
    the old table, renames the new one and recreates the indexes. The caller has switched
    ``PRAGMA foreign_keys`` off (so the DROP cascades nowhere) and holds the transaction.
    """
    conn = ops.get_bind()
    shape = desired_shape(live, changes)
    extras = live_extras(conn, live.name)
    if extras.generated:
        raise MigrationError(
            f"table {live.name} needs a rebuild ({'; '.join(c.describe() for c in changes)}) but has generated "
            f"column(s) {', '.join(extras.generated)} that a rebuild cannot copy; change the table by hand or "
            "exclude these changes")
    dropped = set(live.column_names) - set(shape.column_names)

    md = sa.MetaData()
    table = sa_table(shape, md, with_indexes=False, table_kwargs=extras.table_kwargs, collations=extras.collations)
    for name, text in extras.checks:
        if not _mentions(text, dropped):
            # text(), not literal_column(): Alembic keeps a constraint only if the columns it finds in it
            # exist (a literal_column counts as one odd column); ":" escaped so nothing reads as a parameter
            table.append_constraint(sa.CheckConstraint(sa.text(text.replace(":", "\\:")), name=name))
    for ix in shape.indexes:
        where = extras.index_where.get(ix.name)
        kw = {"sqlite_where": sa.literal_column(where)} if where and not _mentions(where, dropped) else {}
        sa.Index(ix.name, *[table.c[c] for c in ix.columns], unique=ix.unique, **kw)

    legacy = conn.exec_driver_sql("PRAGMA legacy_alter_table").scalar()
    conn.exec_driver_sql("PRAGMA legacy_alter_table=ON")
    try:
        with ops.batch_alter_table(live.name, recreate="always", copy_from=table):
            pass
    finally:
        conn.exec_driver_sql(f"PRAGMA legacy_alter_table={'ON' if legacy else 'OFF'}")
    # an index on an expression is not in the snapshot's terms (its column shows as <expr>): its own SQL
    for ix in live.indexes:
        if EXPR in ix.columns and ix.name in extras.index_sql and not _mentions(extras.index_sql[ix.name], dropped):
            conn.exec_driver_sql(extras.index_sql[ix.name])
    for trigger_sql in extras.triggers:
        conn.exec_driver_sql(trigger_sql)
    if extras.sequence is not None:
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (live.name,))
        conn.exec_driver_sql(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?, max(?, coalesce((SELECT max(rowid) FROM "
            f"{_quote(ops, live.name)}), 0))", (live.name, extras.sequence))


def _view_error(conn: sa.Connection, view: str) -> str | None:
    try:
        conn.exec_driver_sql(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(view)} LIMIT 0").fetchall()
    except sa.exc.DBAPIError as e:
        return " ".join(str(e.orig).split())
    return None


def working_views(conn: sa.Connection) -> list[str]:
    """SQLite views that can be read now (a rebuild or a dropped table or column can break one)."""
    views = [r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'view'")]
    return [v for v in views if _view_error(conn, v) is None]


def broken_views(conn: sa.Connection, were_working: list[str]) -> list[tuple[str, str]]:
    """(view, error) for each of ``were_working`` that no longer reads."""
    return [(v, err) for v, err in ((v, _view_error(conn, v)) for v in were_working) if err]
