"""SQLite table rebuilds: what SQLite cannot ALTER in place, done by Alembic's batch mode (rows kept).

A rebuild gives Alembic the table's desired shape (``desired_shape``: the live table with the
rebuild-only changes applied) through ``copy_from``, so rows are copied column by column.

The snapshot (and so ``desired_shape``) knows columns, keys and indexes. A table also has
properties the diff does not compare, which a rebuild must carry over or it silently changes
the table: WITHOUT ROWID / STRICT, AUTOINCREMENT (and its sqlite_sequence high-water mark),
column collations, CHECK constraints, partial-index WHERE clauses, and triggers (dropped with
the old table). Views and other tables' triggers that name the table must survive the
DROP/RENAME pair: ``legacy_alter_table`` keeps SQLite from re-checking them in between.
Generated columns cannot be rebuilt by Alembic's batch copy (it inserts into every column),
so such a table is refused with a clear error rather than turned into plain columns.
``working_views`` / ``broken_views``: SQLite checks no view on DROP TABLE nor during a rebuild,
so the caller compares the readable views before and after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.operations import Operations

from ..ddl import DeclaredType, sa_column, sa_constraints
from ...errors import MigrationError
from ...schema.model import EXPR, Change, ForeignKey, Table
from .sqltext import IDENT as _IDENT, checks as _checks, definitions as _definitions, flat as _flat
from .sqltext import is_table_constraint, unquote as _unquote


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
            columns[ch.name] = ch.ref_column
        elif ch.kind == "drop_column":
            columns.pop(ch.name, None)
        elif ch.kind == "alter_primary_key":
            pk = ch.ref_pk
        elif ch.kind == "add_unique":
            uniques.append(ch.ref_unique)
        elif ch.kind == "drop_unique":
            uniques = [u for u in uniques if u.columns != ch.cur_unique.columns]
        elif ch.kind == "add_foreign_key":
            fks.append(ch.ref_fk)
        elif ch.kind == "drop_foreign_key":
            # the whole key, actions included: a changed ON DELETE is an add and a drop of the same columns
            fks = [f for f in fks if _fk_identity(f) != _fk_identity(ch.cur_fk)]
    kept = [columns[c.name] for c in live.columns if c.name in columns]
    names = {c.name for c in kept}
    indexes = tuple(ix for ix in live.indexes if set(ix.columns) <= names)
    uniques = [u for u in uniques if set(u.columns) <= names]
    fks = [f for f in fks if set(f.columns) <= names]
    return Table(live.name, tuple(kept), tuple(p for p in pk if p in names), indexes, tuple(uniques), tuple(fks))


# ------------------------------------------------------------------ what the snapshot does not describe


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
        if is_table_constraint(part):
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
            f"{conn.dialect.identifier_preparer.quote(live.name)}), 0))", (live.name, extras.sequence))


def rebuild_from_reference(ops: Operations, live: Table, reference: Table, changes: list[Change]) -> None:
    """SQLite's own recipe (https://www.sqlite.org/lang_altertable.html#otheralter): create the table from the
    reference's ``CREATE TABLE`` under a new name, copy the rows of the columns both have (generated columns are
    computed, not copied), drop the old table, rename the new one, then create the live table's indexes and
    triggers again (those that name no column that is gone) and keep its AUTOINCREMENT high-water mark.

    Everything the reference's statement says comes with it: CHECK constraints, STRICT, WITHOUT ROWID,
    generated columns, collations, keys. A row the new table refuses (a NULL under NOT NULL, a value a CHECK
    or STRICT rejects) fails the statement, and the migration rolls back."""
    conn = ops.get_bind()
    q = conn.dialect.identifier_preparer.quote
    extras = live_extras(conn, live.name)
    temp = f"_mp_new_{live.name}"
    m = re.match(r"\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(" + _IDENT + r")", reference.sql, re.IGNORECASE)
    if m is None:
        raise MigrationError(f"the reference's CREATE TABLE of {live.name} could not be read; write a revision for "
                             "this table")
    create = reference.sql[:m.start(1)] + q(temp) + reference.sql[m.end(1):]
    # a column that becomes plain keeps the values it had (a generated one reads as any other)
    copied = [c.name for c in reference.columns if live.column(c.name) is not None and "GENERATED" not in c.type.upper()]
    gone = set(live.column_names) - set(reference.column_names)
    cols = ", ".join(q(c) for c in copied)
    legacy = conn.exec_driver_sql("PRAGMA legacy_alter_table").scalar()
    conn.exec_driver_sql("PRAGMA legacy_alter_table=ON")
    try:
        conn.exec_driver_sql(create)
        conn.exec_driver_sql(f"INSERT INTO {q(temp)} ({cols}) SELECT {cols} FROM {q(live.name)}")
        conn.exec_driver_sql(f"DROP TABLE {q(live.name)}")
        conn.exec_driver_sql(f"ALTER TABLE {q(temp)} RENAME TO {q(live.name)}")
    finally:
        conn.exec_driver_sql(f"PRAGMA legacy_alter_table={'ON' if legacy else 'OFF'}")
    for sql in list(extras.index_sql.values()) + extras.triggers:
        if not _mentions(sql, gone):
            conn.exec_driver_sql(sql)
    if extras.sequence is not None:
        conn.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (live.name,))
        conn.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) SELECT ?, max(?, coalesce((SELECT max(rowid) "
                             f"FROM {q(live.name)}), 0))", (live.name, extras.sequence))


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
    """(view, error) for each of ``were_working`` that still exists and no longer reads (a view the alignment
    dropped on purpose is not broken)."""
    still = {r[0] for r in conn.exec_driver_sql("SELECT name FROM main.sqlite_master WHERE type = 'view'")}
    return [(v, err) for v, err in ((v, _view_error(conn, v)) for v in were_working if v in still) if err]
