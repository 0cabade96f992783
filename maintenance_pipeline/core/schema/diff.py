"""Compare two snapshots: the changes that would make ``current`` equal to ``reference``.

Rules (what counts as "the same"):

* tables and columns by name; a column's type by ``type_key`` (by meaning: see
  ``sqltypes``), its nullability, and its default by ``sqltypes.default_key``. When the two
  snapshots come from different dialects, both types are keyed for the current one's dialect;
* a primary-key column's nullability is compared like any other (on SQLite ``code TEXT PRIMARY KEY``
  accepts NULL, ``code TEXT NOT NULL PRIMARY KEY`` does not);
* the primary key as an ordered tuple of column names;
* indexes by what they cover (the engine's definition; columns and unique across engines), unique
  constraints by column tuple and options, CHECKs by definition, foreign keys by (columns,
  referenced table, referenced columns, ON DELETE, ON UPDATE, options): an item of the same name is
  paired first. A unique constraint and a unique index over the same columns enforce the same thing,
  so one satisfies the other (SQLite cannot add a constraint to an existing table, a ``CREATE UNIQUE
  INDEX`` is how it gets one);
* names: a paired key, CHECK, primary key or index whose name differs is a ``rename_constraint`` /
  ``rename_index`` (additive: a name is all that changes). Compared when both snapshots come from one
  engine (across engines a name is each server's own choice), as the engine compares names (SQLite:
  without case), except the names the reference leaves to the server (``Table.server_names``: a
  models reference's unnamed keys);
* a column's sequence (``Column.sequence``: a serial's or an identity's options and name) with the
  column, when both have one (one side without is a change of how the column gets its values, in its
  type).

An added (dropped) table is one ``add_table`` (``drop_table``) change carrying the whole
``Table``; its columns, indexes and keys are not listed separately.

Order (suitable for applying one after another): add_table (parents before children),
add_column, alter_column, alter_primary_key, add_unique, add_index, add_foreign_key,
drop_foreign_key, drop_index, drop_unique, drop_column, drop_table (children before
parents). Within a kind: by table name, then in the table's declared order.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, replace
from collections.abc import Iterable

from ..engines import engine_named
from .model import (extends, parse_ignore, sequence_parts, EXPR, SHADOW, ADDITIVE_KINDS, ADDITIVE_OBJECTS, Change,
                    Column, ForeignKey, Index, PrimaryKey, SchemaObject, Snapshot, Table, UniqueConstraint)
from . import sqltypes

__all__ = ["diff", "summarize", "ORDER"]

ORDER = (
    "drop_object:first",
    "add_object:first",
    "alter_object:first",
    "add_table",
    "rename_column",
    "add_column",
    "alter_column",
    "alter_primary_key",
    "alter_table",
    "drop_check",
    "rename_constraint",
    "rename_index",
    "add_unique",
    "add_index",
    "add_check",
    "add_foreign_key",
    "drop_foreign_key",
    "drop_index",
    "drop_unique",
    "drop_column",
    "drop_table",
    "alter_object:last",
    "add_object:last",
    "drop_object:last",
)
POSSIBLE_RENAME = "possible rename to"  # said in a drop_column's detail when an added column could be it
KINDS_IN_ORDER = tuple(dict.fromkeys(k.split(":")[0] for k in ORDER))


def _change(kind: str, table: str, name: str | None, detail: str, *, reference=None, current=None,
            destructive: bool | None = None) -> Change:
    if destructive is None:
        destructive = kind not in ADDITIVE_KINDS
    return Change(kind, table, name, destructive, detail, reference=reference, current=current)


def _cols(cols: tuple[str, ...]) -> str:
    return f"({', '.join(cols)})"


def _dependency_order(tables: dict[str, Table], names: Iterable[str]) -> list[str]:
    """``names`` with referenced tables first (ties and cycles: alphabetical)."""
    names = set(names)
    deps = {n: {fk.ref_table for fk in tables[n].foreign_keys if fk.ref_table in names and fk.ref_table != n}
            for n in names}
    users: dict[str, set[str]] = {n: set() for n in names}
    for n, ds in deps.items():
        for d in ds:
            users[d].add(n)
    waiting = {n: len(ds) for n, ds in deps.items()}
    ready = [n for n, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    out: list[str] = []
    done: set[str] = set()
    while len(out) < len(names):
        if not ready:  # a cycle: take the alphabetically first remaining table
            n = min(x for x in names if x not in done)
            waiting[n] = 0
            heapq.heappush(ready, n)
        n = heapq.heappop(ready)
        if n in done:
            continue
        out.append(n)
        done.add(n)
        for u in sorted(users[n]):
            waiting[u] -= 1
            if waiting[u] == 0 and u not in done:
                heapq.heappush(ready, u)
    return out


def type_key(dialect: str, declared: str | None) -> str:
    """The comparison key of a declared type on ``dialect`` (``Engine.type_key``: ``engines/<name>/types.py``)."""
    return engine_named(dialect).type_key(declared)


def default_key(dialect: str, text: str | None, declared_type: str | None = None) -> str | None:
    """The comparison key of a default's SQL text on ``dialect`` (``sqltypes.default_key``)."""
    return sqltypes.default_key(engine_named(dialect), text, declared_type)


class _Keys:
    """Comparison keys of columns for one dialect."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        self.engine = engine_named(dialect)

    def type(self, col: Column, snap: Snapshot) -> str:
        if col.type_key and snap.dialect == self.dialect:
            return col.type_key
        return self.engine.type_key(col.type)

    def default(self, col: Column) -> str | None:
        return sqltypes.default_key(self.engine, col.default, col.type)

    def name(self, name: str | None) -> str | None:
        """A name as the engine compares names (SQLite: without case; PostgreSQL: exactly)."""
        return name.lower() if name is not None and self.engine.folds_name_case else name


def _alter_detail(cur: Column, ref: Column, type_changed: bool, null_changed: bool, default_changed: bool,
                  sequence_changed: bool = False) -> str:
    parts = []
    if type_changed:
        parts.append(f"type {cur.type or '(none)'} -> {ref.type or '(none)'}")
    if null_changed:
        parts.append(f"{'NULL' if cur.nullable else 'NOT NULL'} -> {'NULL' if ref.nullable else 'NOT NULL'}")
    if default_changed:
        parts.append(f"default {cur.default if cur.default is not None else 'none'} -> "
                     f"{ref.default if ref.default is not None else 'none'}")
    if sequence_changed:
        was, now = _clauses(cur.sequence), _clauses(ref.sequence)
        parts.append(f"sequence {', '.join(c for c in was if c not in now)} -> "
                     f"{', '.join(c for c in now if c not in was)}")
    return "; ".join(parts)


def _clauses(spec: str) -> list[str]:
    options, name = sequence_parts(spec)
    return options.split(", ") + ([f"SEQUENCE NAME {name}"] if name is not None else [])


def _sequence_changed(cur: Column, ref: Column, keys: "_Keys") -> bool:
    """Both columns take their values from a sequence of their own, set differently (options, or the name where the
    reference gives one)."""
    if not cur.sequence or not ref.sequence:
        return False
    (c_opts, c_name), (r_opts, r_name) = sequence_parts(cur.sequence), sequence_parts(ref.sequence)
    return c_opts != r_opts or (r_name is not None and keys.name(c_name) != keys.name(r_name))


def _match(ref_items: list, cur_items: list, key, name=lambda x: x.name) -> tuple[list, list, list]:
    """Pair equal items (by ``key``): first those of the same name, then the others in order; return the
    unmatched of each side and the pairs (reference item, current item). Two equal items of one side (a key
    declared twice) pair with their namesakes first, so a live copy is never taken for the missing one."""
    pool: dict = {}
    for c in cur_items:
        pool.setdefault(key(c), []).append(c)
    pairs: list[tuple] = []
    waiting = []
    for r in ref_items:  # same key and same name
        candidates = pool.get(key(r)) or []
        pick = next((c for c in candidates if name(c) == name(r)), None)
        if pick is None:
            waiting.append(r)
        else:
            candidates.remove(pick)
            pairs.append((r, pick))
    left_ref = []
    for r in waiting:  # same key, another name: a rename (or none, when names are not compared)
        candidates = pool.get(key(r))
        if candidates:
            pairs.append((r, candidates.pop(0)))
        else:
            left_ref.append(r)
    leftover = {id(c) for cs in pool.values() for c in cs}
    left_cur = [c for c in cur_items if id(c) in leftover]
    return left_ref, left_cur, pairs


def _fk_key(fk: ForeignKey) -> tuple:
    return (fk.columns, fk.ref_table, fk.ref_columns, fk.on_delete or None, fk.on_update or None, fk.options)


def _index_detail(i: Index) -> str:
    return ("UNIQUE " if i.unique else "") + (i.definition or _cols(i.columns))


def _same_dialect_definitions(cur_snap: Snapshot, ref_snap: Snapshot, items) -> bool:
    """Definitions are compared when both snapshots come from one engine and every item has one."""
    return cur_snap.dialect == ref_snap.dialect and all(getattr(i, "definition", "") for i in items)


def _apply_renames(current: Snapshot, reference: Snapshot, renames: dict, out: dict[str, list[Change]]) -> Snapshot:
    """The declared renames that apply (the old column only live, the new one only in the reference): one
    ``rename_column`` each, and ``current`` as it will be after them (keys and indexes follow the column, as
    the engines' RENAME COLUMN makes them), so the rest compares the column under its new name."""
    applied: dict[tuple[str, str], str] = {}
    for (table, old), new in renames.items():
        cur, ref = current.tables.get(table), reference.tables.get(table)
        if new is None or cur is None or ref is None or cur.column(old) is None or ref.column(old) is not None \
                or ref.column(new) is None or cur.column(new) is not None:
            continue
        applied[(table, old)] = new
        out["rename_column"].append(_change("rename_column", table, old, f"{old} -> {new}", reference=ref.column(new),
                                            current=cur.column(old)))
    if not applied:
        return current

    def names(table: str, cols) -> tuple[str, ...]:
        return tuple(applied.get((table, c), c) for c in cols)

    tables = {}
    for n, t in current.tables.items():
        tables[n] = replace(
            t, columns=tuple(replace(c, name=applied.get((n, c.name), c.name)) for c in t.columns),
            primary_key=names(n, t.primary_key),
            indexes=tuple(replace(i, columns=names(n, i.columns)) for i in t.indexes),
            uniques=tuple(replace(u, columns=names(n, u.columns)) for u in t.uniques),
            foreign_keys=tuple(replace(f, columns=names(n, f.columns), ref_columns=names(f.ref_table, f.ref_columns))
                               for f in t.foreign_keys))
    return replace(current, tables=tables)


@dataclass(frozen=True)
class _TableDiff:
    """One table of both snapshots being compared, and where its changes go (``out``, by kind)."""

    cur: Table
    ref: Table
    cur_snap: Snapshot
    ref_snap: Snapshot
    keys: _Keys
    out: dict[str, list[Change]]
    names: bool  # names are compared (both snapshots come from one engine)

    @property
    def t(self) -> str:
        return self.ref.name

    def add(self, kind: str, name: str | None, detail: str, **kw) -> None:
        self.out[kind].append(_change(kind, self.t, name, detail, **kw))

    def renamed(self, r_name: str | None, c_name: str | None) -> bool:
        """A paired item's name differs (names the reference leaves to the server are not compared)."""
        return self.names and r_name not in self.ref.server_names and self.keys.name(r_name) != self.keys.name(c_name)

    def rename(self, kind: str, what: str, r, c) -> None:
        self.add(kind, c.name, f"{what}: {c.name or '(no name)'} -> {r.name or '(no name)'}", reference=r, current=c)

    def named(self, x) -> str | None:
        return self.keys.name(x.name)


def _compare_table(cur: Table, ref: Table, cur_snap: Snapshot, ref_snap: Snapshot, keys: _Keys,
                   out: dict[str, list[Change]], renames: dict | None = None) -> None:
    # names are compared within one engine; those the reference leaves to the server are not
    d = _TableDiff(cur, ref, cur_snap, ref_snap, keys, out, cur_snap.dialect == ref_snap.dialect)
    _compare_columns(d, renames or {})
    _compare_options(d)
    _compare_primary_key(d)
    _compare_uniques_and_indexes(d)
    _compare_checks(d)
    _compare_foreign_keys(d)


def _compare_columns(d: _TableDiff, renames: dict) -> None:
    cur, ref, keys, t = d.cur, d.ref, d.keys, d.t
    cur_cols = {c.name: c for c in cur.columns}
    ref_cols = {c.name: c for c in ref.columns}

    added = [c for c in ref.columns if c.name not in cur_cols]
    for c in added:
        d.add("add_column", c.name, c.ddl(), reference=c)
    for c in cur.columns:
        if c.name in ref_cols:
            continue
        twin = next((a.name for a in added if keys.type(a, d.ref_snap) == keys.type(c, d.cur_snap)
                     and (t, c.name) not in renames), None)
        note = f"; {POSSIBLE_RENAME} {twin}" if twin else ""
        d.add("drop_column", c.name, c.ddl() + note, current=c)
    for r in ref.columns:
        c = cur_cols.get(r.name)
        if c is None:
            continue
        type_changed = keys.type(c, d.cur_snap) != keys.type(r, d.ref_snap)
        null_changed = c.nullable != r.nullable
        default_changed = keys.default(c) != keys.default(r)
        sequence_changed = d.names and _sequence_changed(c, r, keys)
        if type_changed or null_changed or default_changed or sequence_changed:
            # the sequence's name alone is a rename (additive); its options change the values to come
            renamed_only = not (type_changed or null_changed or default_changed) and \
                sequence_parts(c.sequence)[0] == sequence_parts(r.sequence)[0]
            d.add("alter_column", r.name,
                  _alter_detail(c, r, type_changed, null_changed, default_changed, sequence_changed),
                  reference=r, current=c, destructive=False if renamed_only else None)


def _compare_options(d: _TableDiff) -> None:
    cur, ref = d.cur, d.ref
    if sorted(cur.options) != sorted(ref.options):
        gone = sorted(set(cur.options) - set(ref.options))
        new = sorted(set(ref.options) - set(cur.options))
        d.add("alter_table", None, f"{', '.join(gone) or 'no option'} -> {', '.join(new) or 'no option'}",
              reference=ref, current=cur)


def _compare_primary_key(d: _TableDiff) -> None:
    cur, ref = d.cur, d.ref
    if tuple(cur.primary_key) != tuple(ref.primary_key):
        detail = f"{_cols(cur.primary_key) if cur.primary_key else 'none'} -> " \
                 f"{_cols(ref.primary_key) if ref.primary_key else 'none'}"
        # the new key under the reference's name, when it gives one
        pk_name = ref.primary_key_name if d.names and ref.primary_key_name not in ref.server_names else None
        d.add("alter_primary_key", pk_name, detail, reference=tuple(ref.primary_key),
              current=tuple(cur.primary_key))
    elif ref.primary_key and d.renamed(ref.primary_key_name, cur.primary_key_name):
        d.rename("rename_constraint", f"primary key {_cols(ref.primary_key)}",
                 PrimaryKey(ref.primary_key_name, tuple(ref.primary_key)),
                 PrimaryKey(cur.primary_key_name, tuple(cur.primary_key)))


def _compare_uniques_and_indexes(d: _TableDiff) -> None:
    """Same kind first, then a unique index and a unique constraint satisfy each other."""
    cur, ref = d.cur, d.ref
    ref_u, cur_u, pairs = _match(list(ref.uniques), list(cur.uniques), lambda u: (tuple(u.columns), u.options),
                                 d.named)
    for r, c in pairs:
        if d.renamed(r.name, c.name):
            d.rename("rename_constraint", f"unique {_cols(r.columns)}{_opt(r.options)}", r, c)
    if _same_dialect_definitions(d.cur_snap, d.ref_snap, ref.indexes + cur.indexes):
        def ix_key(i: Index) -> tuple:
            return (i.unique, i.definition)
    else:
        def ix_key(i: Index) -> tuple:
            return (tuple(i.columns), i.unique)
    ref_ix, cur_ix, pairs = _match(list(ref.indexes), list(cur.indexes), ix_key, d.named)
    for r, c in pairs:
        if d.renamed(r.name, c.name):
            d.rename("rename_index", f"index {_index_detail(r)}", r, c)
    ref_u, cur_ix = _cross(ref_u, cur_ix)
    ref_ix, cur_u = _cross_ix(ref_ix, cur_u)
    for u in ref_u:
        d.add("add_unique", u.name, _cols(u.columns) + _opt(u.options), reference=u)
    for u in cur_u:
        d.add("drop_unique", u.name, _cols(u.columns) + _opt(u.options), current=u)
    for i in ref_ix:
        d.add("add_index", i.name, _index_detail(i), reference=i)
    for i in cur_ix:
        d.add("drop_index", i.name, _index_detail(i), current=i)


def _compare_checks(d: _TableDiff) -> None:
    """CHECK (and other) constraints by definition; adding one tightens what the table accepts."""
    ref_ck, cur_ck, pairs = _match(list(d.ref.checks), list(d.cur.checks), lambda c: c.definition, d.named)
    for r, c in pairs:
        if d.renamed(r.name, c.name):
            d.rename("rename_constraint", f"check {r.definition}", r, c)
    for c in cur_ck:
        d.add("drop_check", c.name, c.definition, current=c)
    for c in ref_ck:
        d.add("add_check", c.name, c.definition, reference=c)


def _compare_foreign_keys(d: _TableDiff) -> None:
    ref_fk, cur_fk, pairs = _match(list(d.ref.foreign_keys), list(d.cur.foreign_keys), _fk_key, d.named)
    for r, c in pairs:
        if d.renamed(r.name, c.name):
            d.rename("rename_constraint", f"foreign key {r.describe()}", r, c)
    for f in ref_fk:
        d.add("add_foreign_key", f.name, f.describe(), reference=f)
    for f in cur_fk:
        d.add("drop_foreign_key", f.name, f.describe(), current=f)


def _opt(options: str) -> str:
    return f" {options}" if options else ""


def _cross(ref_u: list[UniqueConstraint], cur_ix: list[Index]) -> tuple[list, list]:
    """A wanted unique constraint is satisfied by a live unique index over the same columns."""
    left = []
    cur_ix = list(cur_ix)
    for u in ref_u:
        hit = next((i for i in cur_ix if i.unique and tuple(i.columns) == tuple(u.columns) and not u.options
                    and _plain_index(i)), None)
        if hit is None:
            left.append(u)
        else:
            cur_ix.remove(hit)
    return left, cur_ix


def _cross_ix(ref_ix: list[Index], cur_u: list[UniqueConstraint]) -> tuple[list, list]:
    """A wanted unique index is satisfied by a live unique constraint over the same columns."""
    left = []
    cur_u = list(cur_u)
    for i in ref_ix:
        hit = next((u for u in cur_u if i.unique and tuple(u.columns) == tuple(i.columns) and not u.options
                    and _plain_index(i)), None)
        if hit is None:
            left.append(i)
        else:
            cur_u.remove(hit)
    return left, cur_u


def _plain_index(i: Index) -> bool:
    """An index over plain columns, ascending, B-tree, without WHERE (what a unique constraint is)."""
    d = f" {i.definition.upper()} "
    words = (" WHERE ", " DESC", " NULLS ", " INCLUDE ", " COLLATE ")
    return EXPR not in i.columns and not any(w in d for w in words) and ("USING " not in d or "USING BTREE" in d)


def _compare_objects(current: Snapshot, reference: Snapshot, ignore: set[str], out: dict[str, list[Change]]) -> None:
    def kept(o: SchemaObject) -> bool:
        return not (o.table and o.table in ignore)

    cur = {k: o for k, o in current.objects.items() if kept(o)}
    ref = {k: o for k, o in reference.objects.items() if kept(o)}
    for k, o in ref.items():  # in the reference's creation order
        c = cur.get(k)
        if c is None:
            ch = _change("add_object", o.table or "", k, _short(o.definition), reference=o,
                         destructive=o.kind not in ADDITIVE_OBJECTS)
        elif c.definition != o.definition:
            additive = bool(o.values) and extends(c.values, o.values)
            ch = _change("alter_object", o.table or "", k, _short(c.definition) + " -> " + _short(o.definition),
                         reference=o, current=c, destructive=not additive)
        else:
            continue
        out[ch.slot].append(ch)
    for k, c in reversed(list(cur.items())):  # dropped newest first
        if k not in ref:
            ch = _change("drop_object", c.table or "", k, _short(c.definition), current=c)
            out[ch.slot].append(ch)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


class _Ignored:
    """A target's ``ignore:`` (``model.parse_ignore``), matched as the engine compares names (SQLite: without case)."""

    def __init__(self, entries: Iterable[str], keys: "_Keys"):
        self.items = [parse_ignore(e) for e in entries or ()]
        self.n = keys.name

    def member(self, kind: str, table: str, name: str | None) -> bool:
        """An index (``kind`` "index") or a unique key, foreign key or check ("constraint") of ``table``."""
        return name is not None and any(k == kind and self.n(t) == self.n(table) and self.n(x) == self.n(name)
                                        for k, t, x in self.items)

    def object(self, o: SchemaObject) -> bool:
        for kind, table, name in self.items:
            if kind != o.kind:
                continue
            own, _, on = o.name.partition(" on ")  # PostgreSQL names a trigger or policy "name on table"
            if kind in ("trigger", "policy"):
                if self.n(name) == self.n(own) and (table is None or self.n(table) == self.n(o.table or on)):
                    return True
            elif self.n(name) == self.n(o.name) or (kind == "function" and "(" not in name
                                                     and self.n(name) == self.n(o.name.split("(", 1)[0])):
                return True
        return False

    def snapshot(self, snap: Snapshot) -> Snapshot:
        """``snap`` without what is ignored."""
        if not self.items:
            return snap
        tables = {}
        for n, t in snap.tables.items():
            tables[n] = replace(
                t, indexes=tuple(i for i in t.indexes if not self.member("index", n, i.name)),
                uniques=tuple(u for u in t.uniques if not self.member("constraint", n, u.name)),
                foreign_keys=tuple(f for f in t.foreign_keys if not self.member("constraint", n, f.name)),
                checks=tuple(c for c in t.checks if not self.member("constraint", n, c.name)))
        objects = {k: o for k, o in snap.objects.items() if not self.object(o)}
        return replace(snap, tables=tables, objects=objects)


def diff(current: Snapshot, reference: Snapshot, *, ignore_tables: Iterable[str] = (),
         renames: Iterable[tuple[str, str, str | None]] = (), ignore: Iterable[str] = ()) -> list[Change]:
    """The changes that would make ``current`` (the live target) equal to ``reference``.

    ``renames``: (table, old column, new column or None) the target declares: a dropped ``old`` and an added
    ``new`` of one table are one ``rename_column`` (then compared as one column); a drop with an added column
    of the same type beside it, undeclared, says "possible rename" (alignment refuses it until declared).
    ``ignore``: the target's ``ignore:`` entries (``index customers.ix_name``, ``view v``, ...): left out of both
    sides, so never reported and never aligned."""
    rename_map = {(t, o): n for t, o, n in renames or ()}
    out: dict[str, list[Change]] = {k: [] for k in ORDER}
    ignored = _Ignored(ignore, _Keys(current.dialect))
    current, reference = ignored.snapshot(current), ignored.snapshot(reference)
    current = _apply_renames(current, reference, rename_map, out)
    ignore = set(ignore_tables or ())
    # a virtual table's storage comes and goes with it (``SHADOW``): compared as the virtual table
    cur_tables = {n: t for n, t in current.tables.items() if n not in ignore and SHADOW not in t.options}
    ref_tables = {n: t for n, t in reference.tables.items() if n not in ignore and SHADOW not in t.options}
    keys = _Keys(current.dialect)

    for n in _dependency_order(ref_tables, [n for n in ref_tables if n not in cur_tables]):
        t = ref_tables[n]
        out["add_table"].append(_change("add_table", n, None, f"{len(t.columns)} columns", reference=t))
    for n in reversed(_dependency_order(cur_tables, [n for n in cur_tables if n not in ref_tables])):
        t = cur_tables[n]
        out["drop_table"].append(_change("drop_table", n, None, f"{len(t.columns)} columns", current=t))
    for n in sorted(set(cur_tables) & set(ref_tables)):
        _compare_table(cur_tables[n], ref_tables[n], current, reference, keys, out, rename_map)
    _compare_objects(current, reference, ignore, out)

    return [c for k in ORDER for c in out[k]]


def summarize(changes: Iterable[Change]) -> str:
    """One line: ``"no changes"`` or ``"4 changes (1 destructive): 1 add_table, 2 add_column, 1 drop_index"``."""
    changes = list(changes)
    if not changes:
        return "no changes"
    counts = Counter(c.kind for c in changes)
    destructive = sum(1 for c in changes if c.destructive)
    kinds = ", ".join(f"{counts[k]} {k}" for k in KINDS_IN_ORDER if counts.get(k))
    noun = "change" if len(changes) == 1 else "changes"
    return f"{len(changes)} {noun} ({destructive} destructive): {kinds}"
