"""Reading a SQLite schema through SQLite's pragma table-valued functions joined against
``sqlite_master``: four queries for the whole database, whatever its size (1,000 tables in about 0.1 s,
against about 1.6 s for SQLAlchemy's reflection, which asks per table). Each runs a pragma once per table
or index at most, never once per row of another listing: the work is linear in the schema
(``tests/core/schema/test_snapshot_scaling.py`` counts statements and SQLite's instructions).

What a SQLite snapshot holds:

* tables of ``sqlite_master`` of type ``table``; ``sqlite_*`` internal tables
  (``sqlite_sequence``, ``sqlite_stat1`` ...), virtual tables and ``ignore_tables`` are skipped;
* columns in declared order (generated columns included, hidden virtual-table columns not),
  ``type`` as declared, ``default`` as SQLite gives ``dflt_value``, ``type_key`` from ``types.py``.
  A rowid alias (``id INTEGER PRIMARY KEY``) is reported NOT NULL, which it is, although SQLite's
  pragma says ``notnull=0``;
* the primary key in key order (``pk`` column of ``pragma_table_xinfo``);
* ``uniques``: the automatic indexes of UNIQUE constraints (origin ``u``); the name is the
  constraint's name when the CREATE TABLE statement gives one (``CONSTRAINT uq UNIQUE (...)``, or on
  the column), else ``None`` (SQLite keeps one of two UNIQUEs over the same columns: the first);
* ``primary_key_name``: the PRIMARY KEY's ``CONSTRAINT name``, if it has one;
* ``indexes``: explicit ``CREATE [UNIQUE] INDEX`` (origin ``c``); the primary key's own index
  (origin ``pk``) is not listed. An expression in an index shows as ``<expr>``; a partial
  index's WHERE clause is not recorded;
* ``foreign_keys`` grouped by ``id`` (composite keys stay one key), named like their
  ``CONSTRAINT name`` clause when there is one, else ``None`` (SQLite numbers them from the last
  declared: a key declared twice keeps each copy's own name); a ``REFERENCES
  parent`` without columns points at the parent's primary key; ``NO ACTION`` is ``None``.
"""

from __future__ import annotations

import gc
import re
import sqlite3
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...schema.model import (EXPR, SHADOW, Check, Column, ForeignKey, Index, SchemaObject, Snapshot, Table,
                             UniqueConstraint)
from ..inspect import action
from . import sqltext
from .types import type_key as _type_key


def _quote_ident(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


# --------------------------------------------------------------------------- SQLite

class _Names:
    """The constraint names of one CREATE TABLE (``sqltext.keys``): read only when it names a constraint."""

    def __init__(self, sql: str | None):
        found = sqltext.keys(sql) if sql and "CONSTRAINT" in sql.upper() else []
        self.primary_key = next((n for kind, _c, n in found if kind == "primary key"), None)
        self.uniques: dict[tuple[str, ...], str | None] = {}
        for kind, cols, name in found:
            if kind == "unique":
                self.uniques.setdefault(cols, name)  # SQLite keeps the first of two over the same columns
        self.fks = [(cols, name) for kind, cols, name in found if kind == "foreign key"]

    def fk(self, position: int, count: int, cols: tuple[str, ...]) -> str | None:
        """The name of the key ``pragma_foreign_key_list`` numbers ``position`` (of ``count``): SQLite numbers them
        from the last declared."""
        if len(self.fks) == count and self.fks[count - 1 - position][0] == cols:
            return self.fks[count - 1 - position][1]
        return next((n for c, n in self.fks if c == cols), None)


def sqlite_snapshot(conn: Connection, ignore: set[str], schema: str | None) -> Snapshot:
    """The snapshot of ``schema`` (default ``main``), built with Python's cyclic garbage collector paused: it
    makes ~100 objects per table, all kept until the end, and none in a cycle (reference counting frees them),
    yet their number set off collections that walk the whole process's objects again and again (a third of
    the time at 2,000 tables). The collector runs again afterwards if it ran before."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _read(conn, ignore, schema)
    finally:
        if paused:
            gc.enable()


@dataclass(frozen=True)
class _Source:
    """Where the snapshot reads: the schema's ``sqlite_master``, the schema argument of the pragmas, and which of
    its rows are tables the snapshot reads."""

    master: str
    sarg: str  # ", :schema" or nothing: the pragmas' schema argument
    params: dict
    where: str  # a table of ``sqlite_master`` (alias ``m``) that is read: not internal, not virtual


@dataclass(frozen=True)
class _Master:
    """``sqlite_master`` and ``pragma_table_list``, read in one statement."""

    rows: list[tuple]  # (type, name, tbl_name, sql, read as a table), in creation order
    kinds: dict[str, str]  # table name -> pragma_table_list's type ("table", "virtual", "shadow" ...)
    tables_sql: dict[str, str | None]  # the tables read -> CREATE TABLE


@dataclass(frozen=True)
class _Catalog:
    """Every read table's columns, indexes and foreign keys (one statement each), and what a table needs of the
    others' (primary keys and column names, for a ``REFERENCES parent`` without columns)."""

    cols: dict[str, list]  # table -> (name, type, notnull, default, pk position, hidden) in declared order
    idx: dict[str, dict[str, dict]]  # table -> index name -> {"seq", "unique", "origin", "cols"}
    fkrows: dict[str, dict[int, dict]]  # table -> foreign key id -> {"ref", "from", "to", "on_update", "on_delete"}
    pks: dict[str, tuple[str, ...]]
    colnames: dict[str, dict[str, str]]  # table -> lower-case column name -> its name
    by_lower: dict[str, str]  # lower-case table name -> its name
    index_sql: dict[str, str]  # index name -> CREATE INDEX


def _read(conn: Connection, ignore: set[str], schema: str | None) -> Snapshot:
    src = _source(conn, schema)
    master = _read_master(conn, src, schema)
    cat = _read_catalog(conn, src, master)
    shadow = {name for name, kind in master.kinds.items() if kind == "shadow"}
    tables: dict[str, Table] = {}
    for tname, sql in master.tables_sql.items():
        if tname not in ignore:
            tables[tname] = _table(tname, sql, cat, tname in shadow)
    return Snapshot("sqlite", dict(sorted(tables.items())), _objects(conn, master, ignore))


def _source(conn: Connection, schema: str | None) -> _Source:
    if schema:
        master = f"{_quote_ident(conn, schema)}.sqlite_master"
        sarg = ", :schema"
        params = {"schema": schema}
    else:
        master, sarg, params = "sqlite_master", "", {}
    where = "m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' " \
            "AND upper(coalesce(m.sql, '')) NOT LIKE 'CREATE VIRTUAL TABLE%'"
    return _Source(master, sarg, params, where)


def _read_master(conn: Connection, src: _Source, schema: str | None) -> _Master:
    # every table is read (ignored ones too: a foreign key may point at one); ignored ones are left out at the end.
    # One statement reads sqlite_master (tables, index statements, views and triggers, in creation order) and,
    # after it, pragma_table_list once (SQLite 3.37+: it tells a virtual table and its shadow tables, its
    # storage, from the others). The two are never joined: SQLite runs a table-valued pragma again for every
    # row it is joined or correlated with, and each run of this one lists every table (tables² work);
    # ``tests/core/schema/test_snapshot_scaling.py`` counts it.
    kinds_sql = (" UNION ALL SELECT 1, 0, tl.type, tl.name, NULL, NULL, 0 FROM pragma_table_list AS tl "
                 "WHERE tl.schema = :kinds_schema" if sqlite3.sqlite_version_info >= (3, 37) else "")
    read = conn.execute(sa.text(
        f"SELECT 0, m.rowid, m.type, m.name, m.tbl_name, m.sql, ({src.where}) FROM {src.master} AS m "
        f"WHERE m.type IN ('table', 'index', 'view', 'trigger'){kinds_sql} ORDER BY 1, 2"),
        {**src.params, "kinds_schema": schema or "main"} if kinds_sql else src.params).fetchall()
    master_rows = [tuple(r[2:]) for r in read if r[0] == 0]
    kinds: dict[str, str] = {r[3]: r[2] for r in read if r[0] == 1}
    tables_sql: dict[str, str | None] = {r[1]: r[3] for r in master_rows if r[0] == "table" and r[4]}
    return _Master(master_rows, kinds, tables_sql)


def _read_catalog(conn: Connection, src: _Source, master: _Master) -> _Catalog:
    tables_sql = master.tables_sql
    cols = _read_columns(conn, src, tables_sql)
    idx = _read_indexes(conn, src, tables_sql)
    fkrows = _read_foreign_keys(conn, src, tables_sql)
    # the pk of every table to resolve "REFERENCES parent" without columns
    by_lower = {n.lower(): n for n in tables_sql}
    pks: dict[str, tuple[str, ...]] = {}
    colnames: dict[str, dict[str, str]] = {}
    for tname, clist in cols.items():
        pks[tname] = tuple(c[0] for c in sorted((c for c in clist if c[4]), key=lambda c: c[4]))
        colnames[tname] = {c[0].lower(): c[0] for c in clist}
    index_sql = {r[1]: r[3] for r in master.rows if r[0] == "index" and r[3]}
    return _Catalog(cols, idx, fkrows, pks, colnames, by_lower, index_sql)


def _read_columns(conn: Connection, src: _Source, tables_sql: dict) -> dict[str, list]:
    """Columns (pragma_table_xinfo has generated columns too; hidden=1 is a virtual table's)."""
    cols: dict[str, list] = {n: [] for n in tables_sql}
    rows = conn.execute(
        sa.text(
            f'SELECT m.name, p.cid, p.name, p.type, p."notnull", p.dflt_value, p.pk, p.hidden '
            f"FROM {src.master} AS m, pragma_table_xinfo(m.name{src.sarg}) AS p WHERE {src.where} "
            f"ORDER BY m.name, p.cid"
        ),
        src.params,
    ).fetchall()  # one call (iterating fetches row by row)
    for tname, _cid, cname, ctype, notnull, dflt, pk, hidden in rows:
        if tname in cols and hidden != 1:
            cols[tname].append((cname, ctype or "", bool(notnull), dflt, pk, hidden))
    return cols


def _read_indexes(conn: Connection, src: _Source, tables_sql: dict) -> dict[str, dict[str, dict]]:
    """Indexes with their columns."""
    idx: dict[str, dict[str, dict]] = {n: {} for n in tables_sql}
    rows = conn.execute(
        sa.text(
            f'SELECT m.name, il.seq, il.name, il."unique", il.origin, ii.seqno, ii.name '
            f"FROM {src.master} AS m, pragma_index_list(m.name{src.sarg}) AS il, "
            f"pragma_index_info(il.name{src.sarg}) AS ii "
            f"WHERE {src.where} ORDER BY m.name, il.seq, ii.seqno"
        ),
        src.params,
    ).fetchall()
    for tname, seq, iname, unique, origin, _seqno, colname in rows:
        if tname not in idx:
            continue
        entry = idx[tname].setdefault(iname, {"seq": seq, "unique": bool(unique), "origin": origin, "cols": []})
        entry["cols"].append(colname if colname is not None else EXPR)
    return idx


def _read_foreign_keys(conn: Connection, src: _Source, tables_sql: dict) -> dict[str, dict[int, dict]]:
    """Foreign keys, grouped by id."""
    fkrows: dict[str, dict[int, dict]] = {n: {} for n in tables_sql}
    rows = conn.execute(
        sa.text(
            f'SELECT m.name, fk.id, fk.seq, fk."table", fk."from", fk."to", fk.on_update, fk.on_delete '
            f"FROM {src.master} AS m, pragma_foreign_key_list(m.name{src.sarg}) AS fk "
            f"WHERE {src.where} ORDER BY m.name, fk.id, fk.seq"
        ),
        src.params,
    ).fetchall()
    for tname, fid, _seq, ref_table, col_from, col_to, on_update, on_delete in rows:
        if tname not in fkrows:
            continue
        entry = fkrows[tname].setdefault(
            fid, {"ref": ref_table, "from": [], "to": [], "on_update": on_update, "on_delete": on_delete}
        )
        entry["from"].append(col_from)
        entry["to"].append(col_to)
    return fkrows


def _table(tname: str, sql: str | None, cat: _Catalog, is_shadow: bool) -> Table:
    """One table of the snapshot, from what the catalog read of it and its CREATE TABLE statement."""
    pk = cat.pks[tname]
    options = sqltext.table_options(sql or "")
    upper = (sql or "").upper()
    columns = _table_columns(sql or "", upper, cat.cols[tname], pk, "WITHOUT ROWID" in options)
    names = _Names(sql)
    indexes, uniques = _table_indexes(cat.idx[tname], names, cat.index_sql)
    fks = _table_foreign_keys(sql or "", upper, cat.fkrows[tname], names, cat)
    checks = tuple(Check(name, sqltext.canonical(expr), f"CHECK ({expr})")
                   for name, expr in (sqltext.checks(sql or "") if "CHECK" in upper else ()))
    if is_shadow:
        options = options + (SHADOW,)  # a virtual table's storage: made and dropped with it, rows still compared
    elif "AUTOINCREMENT" in upper and any(re.search(r"\bAUTOINCREMENT\b", sqltext.flat(p), re.IGNORECASE)
                                           for p in sqltext.definitions(sql or "")):
        options = tuple(sorted(options + ("AUTOINCREMENT",)))  # ids never reused: a behaviour, compared
    if "CONFLICT" in upper:
        options = tuple(sorted(options + sqltext.conflict_clauses(sql or "")))
    return Table(tname, tuple(columns), pk, tuple(indexes), tuple(uniques), tuple(fks), checks, options,
                 sql or "", names.primary_key if pk else None)


def _table_columns(sql: str, upper: str, clist: list, pk: tuple[str, ...], without_rowid: bool) -> list[Column]:
    rowid_alias = len(pk) == 1 and not without_rowid
    # the column definitions are parsed only for what only they hold (most tables have none of it)
    needs_parts = "COLLATE" in upper or any(c[5] in (2, 3) for c in clist)
    parts = sqltext.column_parts(sql) if needs_parts else {}
    columns = []
    for cname, ctype, notnull, dflt, pkpos, hidden in clist:
        if pkpos and ((rowid_alias and ctype.strip().upper() == "INTEGER") or without_rowid):
            notnull = True  # an INTEGER PRIMARY KEY is the rowid, a WITHOUT ROWID key is NOT NULL: never NULL
        columns.append(_column(cname, ctype, notnull, dflt, hidden, parts.get(cname.lower(), "")))
    return columns


def _table_indexes(found: dict[str, dict], names: _Names,
                   index_sql: dict[str, str]) -> tuple[list[Index], list[UniqueConstraint]]:
    """Explicit indexes (by name) and UNIQUE constraints (in declared order); the primary key's index is neither."""
    indexes, uniques = [], []
    for iname, e in sorted(found.items(), key=lambda kv: kv[1]["seq"]):
        colt = tuple(e["cols"])
        if e["origin"] == "pk":
            continue
        if e["origin"] == "u":
            uniques.append(UniqueConstraint(names.uniques.get(tuple(c.lower() for c in colt)), colt))
        else:
            isql = index_sql.get(iname, "")
            indexes.append(Index(iname, colt, e["unique"], sqltext.index_definition(isql) if isql else "", isql))
    # pragma_index_list lists newest first; keep declared order
    uniques.reverse()
    indexes.sort(key=lambda i: i.name)
    return indexes, uniques


def _table_foreign_keys(sql: str, upper: str, fkrows: dict[int, dict], names: _Names,
                        cat: _Catalog) -> list[ForeignKey]:
    fks = []
    deferred = sqltext.deferred_foreign_keys(sql) if "DEFERRED" in upper else set()
    for position, (_fid, e) in enumerate(sorted(fkrows.items())):
        ref = cat.by_lower.get(str(e["ref"]).lower(), e["ref"])
        to = e["to"]
        if all(t is None for t in to):
            to = list(cat.pks.get(ref, ()))
        ref_cols = cat.colnames.get(ref, {})
        to = tuple(ref_cols.get(str(t).lower(), t) for t in to)
        frm = tuple(e["from"])
        fks.append(
            ForeignKey(
                names.fk(position, len(fkrows), tuple(c.lower() for c in frm)),
                frm,
                ref,
                to,
                action(e["on_delete"]),
                action(e["on_update"]),
                "DEFERRABLE INITIALLY DEFERRED" if tuple(c.lower() for c in frm) in deferred else "",
            )
        )
    return fks


def _objects(conn: Connection, master: _Master, ignore: set[str]) -> dict[str, SchemaObject]:
    """Virtual tables, views and triggers, in creation order."""
    objects: dict[str, SchemaObject] = {}
    for kind, name, table, sql, _ in master.rows:
        if kind == "table" and master.kinds.get(name) == "virtual" and sql and name not in ignore:
            obj = SchemaObject("virtual table", name, sqltext.object_definition(sql), sql,
                               f"DROP TABLE {_quote_ident(conn, name)}")
            objects[obj.key] = obj
            continue
        if kind not in ("view", "trigger") or not sql or (kind == "trigger" and table in ignore):
            continue
        drop = f"DROP {kind.upper()} {_quote_ident(conn, name)}"
        obj = SchemaObject(kind, name, sqltext.object_definition(sql), sql, drop, "",
                           table if kind == "trigger" else None)
        objects[obj.key] = obj
    return objects


def _column(name: str, declared: str, notnull: bool, default, hidden: int, part: str) -> Column:
    """A column, its declared type extended with what else SQLite keeps of it: ``COLLATE x`` (other than
    BINARY) and ``GENERATED ALWAYS AS (expr) VIRTUAL|STORED`` (a generated column holds no value of its own)."""
    decl = declared
    coll = sqltext.collation(part) if part else None
    if coll and coll.upper() != "BINARY":
        decl = f"{decl} COLLATE {coll}".strip()
    if hidden in (2, 3):
        expr = sqltext.generated(part) or ""
        decl = f"{decl} GENERATED ALWAYS AS ({expr}) {'STORED' if hidden == 3 else 'VIRTUAL'}".strip()
    return Column(name, decl, not notnull, default, _type_key(decl))

