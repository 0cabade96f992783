"""What each planned change would trip over in the live data, counted before a run (``check``), read-only.

A change that tightens what a table accepts fails the run on the rows that do not fit (rolled back, nothing
committed): NULLs before a ``NOT NULL``, a new ``NOT NULL`` column without a default on a table with rows, duplicates
before a unique key or a new primary key, orphans before a foreign key, rows a new CHECK rejects. Each is one
engine-neutral count (``IS NULL``, ``GROUP BY ... HAVING count(*) > 1``, an anti-join, ``NOT (predicate)``) run in the
engine's ``read_only`` block, as the targets file's checks are, with the query that lists the rows. What cannot be
counted this way (a unique index on an expression or with a WHERE, an EXCLUDE constraint, a predicate that does not
run on the live table, whether values convert to a new type) is said, not guessed. Every count reads whole tables:
``check`` runs it on demand (``--no-count`` leaves it out).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from ..engines import engine_of
from ..schema.model import EXPR, Change, Snapshot


@dataclass(frozen=True)
class Obstacle:
    """What one change would trip over: ``rows`` that do not fit (None: not counted, ``text`` says why)."""

    change: str  # Change.describe()
    rows: int | None
    text: str  # "120 rows of customers have phone NULL"
    query: str = ""  # lists them

    @property
    def fails(self) -> bool:
        return bool(self.rows)

    def line(self) -> str:
        if self.rows is None:
            return f"not counted: {self.text} ({self.change})"
        find = f"; find them: {self.query}" if self.query else ""
        return f"would fail: {self.text} ({self.change}){find}"

    def to_dict(self) -> dict:
        return {"change": self.change, "rows": self.rows, "would_fail": self.fails, "text": self.text,
                "query": self.query}


def foresee(conn: sa.Connection, changes: Iterable[Change], live: Snapshot, schema: str | None) -> list[Obstacle]:
    """Each change's obstacle in the live data: those that would fail the run (rows > 0) and those that could not
    be counted; a change with nothing in its way is left out."""
    q = _Quoter(conn, schema)
    out = []
    for ch in changes:
        for item in _queries(ch, live, q):
            if isinstance(item, Obstacle):  # not countable: said as it is
                out.append(item)
                continue
            words, count_sql, find_sql = item
            rows, error = _count(conn, count_sql)
            if error is not None:
                out.append(Obstacle(ch.describe(), None, f"the rows it would trip over: the count does not run on "
                                                         f"the live table ({error})"))
            elif rows:
                out.append(Obstacle(ch.describe(), rows, words(_Rows(rows)), find_sql))
    return out


class _Rows:
    """A count and its words: ``f"{n.rows} of t {n.have} ..."`` -> "1 row of t has", "120 rows of t have"."""

    def __init__(self, n: int):
        self.n = n
        self.rows = f"{n} row" if n == 1 else f"{n} rows"
        self.have, self.fail, self.share, self.point = ("has", "fails", "shares", "points") if n == 1 else \
            ("have", "fail", "share", "point")


class _Quoter:
    def __init__(self, conn: sa.Connection, schema: str | None):
        self.prep = conn.dialect.identifier_preparer
        self.schema = schema

    def __call__(self, name: str) -> str:
        return self.prep.quote(name)

    def table(self, name: str) -> str:
        return f"{self.prep.quote_schema(self.schema)}.{self.prep.quote(name)}" if self.schema else self.prep.quote(name)


def _count(conn: sa.Connection, sql: str) -> tuple[int | None, str | None]:
    engine = engine_of(conn)
    try:
        with engine.read_only(conn):
            value = engine.run_check(conn, sql)
    except sa.exc.DBAPIError as e:
        return None, " ".join(str(e.orig).split())[:160]
    return int(value or 0), None


def _queries(ch: Change, live: Snapshot, q: _Quoter):
    """(its words for a count, the count query, the query listing the rows) per obstacle the change may meet, or an
    ``Obstacle`` saying what is not counted."""
    table = live.tables.get(ch.table)
    if table is None:  # a table this plan creates is empty
        return
    t, what = q.table(ch.table), ch.describe()
    ref, cur = ch.reference, ch.current
    if ch.kind == "alter_column" and cur is not None and ref is not None:
        c = q(ch.name)
        if table.column(ch.name) is None:  # renamed by this plan (renames:): its rows are read under the old name
            yield Obstacle(what, None, f"the rows of {ch.table}.{ch.name}, a column this plan renames")
            return
        if getattr(cur, "nullable", False) and not getattr(ref, "nullable", True):
            yield (lambda n: f"{n.rows} of {ch.table} {n.have} {ch.name} NULL",
                   f"SELECT count(*) FROM {t} WHERE {c} IS NULL", f"SELECT * FROM {t} WHERE {c} IS NULL")
        if ch.detail.startswith("type "):
            yield Obstacle(what, None, f"whether every value of {ch.table}.{ch.name} converts to {ref.type} "
                                       "(check --sql rehearses it)")
    elif ch.kind == "add_column" and ref is not None:
        if not ref.nullable and ref.default is None and not ref.computed and not ref.sequence:
            yield (lambda n: f"{ch.table} has {n.rows} and the new column {ch.name} is NOT NULL without a default",
                   f"SELECT count(*) FROM {t}", f"SELECT count(*) FROM {t}")
    elif ch.kind == "add_unique" and ref is not None:
        yield _duplicates(ch.table, tuple(ref.columns), q, nulls="NULLS NOT DISTINCT" in (ref.options or "").upper(),
                          key="unique key")
    elif ch.kind == "add_index" and ref is not None and ref.unique:
        if EXPR in ref.columns or " WHERE " in f" {ref.definition.upper()} ":
            yield Obstacle(what, None, f"duplicates of the unique index {ch.name} (on an expression or with a WHERE)")
        else:
            yield _duplicates(ch.table, tuple(ref.columns), q, nulls=False, key="unique index")
    elif ch.kind == "alter_primary_key" and ref:
        yield _duplicates(ch.table, tuple(ref), q, nulls=False, key="primary key")
    elif ch.kind == "add_foreign_key" and ref is not None:
        yield from _orphans(ch, table, live, q)
    elif ch.kind == "add_check" and ref is not None:
        text = " ".join(ref.definition.split())
        if text.upper().endswith(" NOT VALID"):  # existing rows are not checked
            return
        predicate = _predicate(text)
        if predicate is None:
            yield Obstacle(what, None, f"the rows {ch.name or 'the constraint'} would reject ({_short(text)})")
        else:
            yield (lambda n: f"{n.rows} of {ch.table} {n.fail} CHECK ({predicate})",
                   f"SELECT count(*) FROM {t} WHERE NOT ({predicate})", f"SELECT * FROM {t} WHERE NOT ({predicate})")


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def _duplicates(table: str, cols: tuple[str, ...], q: _Quoter, *, nulls: bool, key: str):
    t = q.table(table)
    listed = ", ".join(q(c) for c in cols)
    where = "" if nulls else " WHERE " + " AND ".join(f"{q(c)} IS NOT NULL" for c in cols)
    group = f"FROM {t}{where} GROUP BY {listed} HAVING count(*) > 1"
    return (lambda n: f"{n.rows} of {table} {n.share} their ({', '.join(cols)}) with another row (a {key} needs them "
                      "unique)",
            f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n {group}) AS d",
            f"SELECT {listed}, count(*) {group}")


def _orphans(ch: Change, table, live: Snapshot, q: _Quoter):
    fk = ch.reference
    if any(table.column(c) is None for c in fk.columns):  # a column this plan adds: NULL in every row
        return
    t, p = q.table(ch.table), q.table(fk.ref_table)
    filled = " AND ".join(f"c.{q(c)} IS NOT NULL" for c in fk.columns)
    parent = live.tables.get(fk.ref_table)
    if parent is None or any(parent.column(c) is None for c in fk.ref_columns):  # made by this plan: empty
        where = filled
    else:
        match = " AND ".join(f"p.{q(r)} = c.{q(c)}" for c, r in zip(fk.columns, fk.ref_columns))
        where = f"{filled} AND NOT EXISTS (SELECT 1 FROM {p} p WHERE {match})"
    cols = ", ".join(fk.columns)
    yield (lambda n: f"{n.rows} of {ch.table} {n.point} at no row of {fk.ref_table} ({cols} -> "
                     f"{fk.ref_table}({', '.join(fk.ref_columns)}))",
           f"SELECT count(*) FROM {t} c WHERE {where}", f"SELECT c.* FROM {t} c WHERE {where}")


def _predicate(text: str) -> str | None:
    """The expression of a CHECK's definition (SQLite: the expression; PostgreSQL: ``CHECK ((a > 0))``, maybe
    ``NO INHERIT``); None for what is not a CHECK (EXCLUDE)."""
    upper = text.upper()
    if upper.startswith("EXCLUDE"):
        return None
    if upper.startswith("CHECK"):
        text = text[5:].strip()
        if text.upper().endswith(" NO INHERIT"):
            text = text[:-len(" NO INHERIT")].strip()
    return text or None
