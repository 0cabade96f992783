"""PostgreSQL: an alignment's steps in an order the server accepts, from the catalog's own dependencies (``pg_depend``),
decided before the first statement (``Engine.order_by_dependencies``).

The server refuses to drop something another object depends on, or to retype a column a view, a policy or a
trigger uses (nothing is ever dropped with CASCADE). So:

* what the plan removes: tables and views it drops, columns it drops or retypes, sequences, functions and types it
  drops (the drop half of an object made again included);
* what depends on each in the live database (normal dependencies; a view through its rewrite rule), and whether the
  plan takes care of it: a dependent the plan drops is dropped before what it depends on; a view, trigger or policy
  the plan keeps as it is is dropped first and made again after, as the reference has it (and what depends on it in
  turn); a sequence the default of a kept column uses becomes that column's own (``OWNED BY``) when the reference's
  column is a serial; a dependent the plan leaves in place (a view in another schema, a foreign key it keeps ...)
  refuses the step, naming the dependent;
* what a new object's name collides with: a sequence a column owns, wanted by the reference as a sequence of its
  own, is released (``OWNED BY NONE``) and altered instead of created; another relation of that name that the plan
  keeps (or drops only later) refuses the step;
* a type change whose cast would change a value (``10.50`` as ``numeric(8,0)``: cast back, not what it was) is
  refused, before the rows check would find the value changed;
* a function's body is not checked when it is made (``check_function_bodies`` off for the transaction, as pg_dump
  restores), so a SQL function reading a view the plan makes later is made early like any other function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import sqlalchemy as sa

from ...schema.model import Change
from ..ddl import order_for_server
from .catalog import schema_of
from .objects import quote
from .types import base_type, type_key, value_source

_RELATIONS = sa.text("""
SELECT c.oid, c.relname, c.relkind,
       (SELECT t.relname || '.' || a.attname FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')
           AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0 AND c.relkind = 'S' LIMIT 1)
FROM pg_catalog.pg_class c
WHERE c.relnamespace = CAST(:schema AS regnamespace)
""")

_COLUMNS = sa.text("""
SELECT c.relname, a.attname, c.oid, a.attnum
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname = ANY(:tables) AND a.attnum > 0
  AND NOT a.attisdropped
""")

_FUNCTIONS = sa.text("""
SELECT p.oid, p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'
FROM pg_catalog.pg_proc p WHERE p.pronamespace = CAST(:schema AS regnamespace)
""")

_TYPES = sa.text("""
SELECT t.oid, t.typname FROM pg_catalog.pg_type t WHERE t.typnamespace = CAST(:schema AS regnamespace)
""")

# every normal dependency on the given objects, with what the dependent is attached to (its relation, column, name)
_DEPENDENTS = sa.text("""
SELECT d.refclassid::regclass::text, d.refobjid, d.refobjsubid, d.classid::regclass::text,
       pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid),
       COALESCE(n.nspname, pn.nspname, tn.nspname), c.relname, c.relkind, a.attname,
       COALESCE(k.conname, tg.tgname, po.polname,
                p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', ty.typname)
FROM pg_catalog.pg_depend d
LEFT JOIN pg_catalog.pg_rewrite w ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND w.oid = d.objid
LEFT JOIN pg_catalog.pg_constraint k ON d.classid = 'pg_catalog.pg_constraint'::regclass AND k.oid = d.objid
LEFT JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND ad.oid = d.objid
LEFT JOIN pg_catalog.pg_trigger tg ON d.classid = 'pg_catalog.pg_trigger'::regclass AND tg.oid = d.objid
LEFT JOIN pg_catalog.pg_policy po ON d.classid = 'pg_catalog.pg_policy'::regclass AND po.oid = d.objid
LEFT JOIN pg_catalog.pg_proc p ON d.classid = 'pg_catalog.pg_proc'::regclass AND p.oid = d.objid
LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
LEFT JOIN pg_catalog.pg_type ty ON d.classid = 'pg_catalog.pg_type'::regclass AND ty.oid = d.objid
LEFT JOIN pg_catalog.pg_namespace tn ON tn.oid = ty.typnamespace
LEFT JOIN pg_catalog.pg_class c ON c.oid = COALESCE(w.ev_class, NULLIF(k.conrelid, 0), ad.adrelid, tg.tgrelid,
     po.polrelid, CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.objid END)
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND a.attnum =
     CASE WHEN d.classid = 'pg_catalog.pg_attrdef'::regclass THEN ad.adnum
          WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.objsubid END
WHERE d.deptype = 'n' AND d.refobjid = ANY(:oids)
  AND d.refclassid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_proc'::regclass,
                       'pg_catalog.pg_type'::regclass)
""")

_VIEW_KINDS = {"v": "view", "m": "materialized view"}
_REMADE = ("view", "materialized view", "trigger", "policy")  # kinds a plan may drop and make again as they were
_RETYPE_BLOCKERS = ("pg_rewrite", "pg_policy", "pg_trigger")  # what stops ALTER COLUMN ... TYPE
_RELATION_OBJECTS = ("view", "materialized view", "sequence")


class _Plan:
    """The steps and what they do to names and objects, for the judgements below."""

    def __init__(self, steps: list[Change]):
        self.steps = list(steps)
        self.dropped_tables = {c.table for c in steps if c.kind == "drop_table"}
        self.dropped_objects = {c.cur_object.key: c for c in steps if c.kind == "drop_object"}
        self.dropped_columns = {(c.table, c.name) for c in steps if c.kind == "drop_column"}
        self.dropped_constraints = {(c.table, c.cur_named.name) for c in steps
                                    if c.kind in ("drop_foreign_key", "drop_check", "drop_unique") and c.current}
        self.retyped = {(c.table, c.name) for c in steps if c.kind == "alter_column" and _retypes(c)}
        self.new_default = {(c.table, c.name) for c in steps if c.kind == "alter_column" and _new_default(c)}
        self.before: list[tuple[Change, Change]] = []  # (a, b): a must run before b

    def table_gone(self, table: str | None) -> bool:
        return table in self.dropped_tables

    def relation_step(self, relname: str | None, relkind: str | None) -> Change | None:
        """The step dropping a relation (a table, or a view the plan drops)."""
        if relname in self.dropped_tables:
            return next(c for c in self.steps if c.kind == "drop_table" and c.table == relname)
        what = _VIEW_KINDS.get(relkind or "")
        return self.dropped_objects.get(f"{what} {relname}") if what else None


def _retypes(c: Change) -> bool:
    cur, ref = c.cur_column, c.ref_column
    return type_key(base_type(cur.type)) != type_key(base_type(ref.type)) or (
        value_source(ref.type).startswith("GENERATED(")
        and value_source(ref.type) != value_source(cur.type))


def _new_default(c: Change) -> bool:
    """The column's current default is dropped or replaced by this change."""
    cur, ref = c.cur_column, c.ref_column
    return (cur.default or None) != (ref.default or None) or _retypes(c) or \
        value_source(cur.type) != value_source(ref.type)


@dataclass
class _Found:
    """What following the dependents of the removed objects decided (``_follow_dependents``)."""

    refused: list[tuple[Change, str]] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)  # drops and adds of what is made again
    replaced: dict[int, list[Change]] = field(default_factory=dict)  # id(step) -> the steps that do its work instead
    remade: set[str] = field(default_factory=set)  # keys of the objects made again


def order_by_dependencies(conn: sa.Connection, steps: list[Change], live, reference,
                          schema: str | None) -> tuple[list[Change], list[tuple[Change, str]]]:
    """``Engine.order_by_dependencies`` on PostgreSQL (the module's docstring): (steps, [(step, why refused)])."""
    if not steps:
        return steps, []
    nsp = schema_of(conn, schema)
    p = {"schema": quote(nsp)}
    relations = {name: (oid, kind, owner) for oid, name, kind, owner in conn.execute(_RELATIONS, p)}
    plan = _Plan(steps)
    removed = _removed(conn, p, plan, relations)
    found = _follow_dependents(conn, plan, removed, relations, nsp, live, reference)

    steps = [x for c in steps for x in found.replaced.get(id(c), [c])]
    if any(c.kind in ("add_object", "alter_object") and getattr(c.reference, "kind", "") == "function"
           for c in steps):
        # as pg_dump restores: a function's body is checked when it runs, not when it is made (a SQL function
        # reading a view the plan makes after it); what the plan leaves is compared with the reference after
        conn.exec_driver_sql("SET LOCAL check_function_bodies = off")
    steps, collisions = _names(steps, live, reference, relations, nsp)
    refused = found.refused + collisions + _casts_that_change_values(conn, steps, nsp)
    ordered = order_for_server(steps + found.added)
    return _respect(ordered, plan.before), _unique(refused)


def _removed(conn: sa.Connection, p: dict, plan: _Plan,
             relations: dict) -> dict[tuple[str, int, int], tuple[Change, str, bool]]:
    """What the plan removes: (catalog, oid, column number or 0 = the whole object) -> (step, label, retype only).
    The columns are read when a step drops or alters one, the functions and types when a step drops one."""
    steps = plan.steps
    removed: dict[tuple[str, int, int], tuple[Change, str, bool]] = {}
    functions = types = None
    columns_of = {}
    tables = sorted({c.table for c in steps if c.kind in ("drop_column", "alter_column")})
    if tables:
        for t, col, oid, num in conn.execute(_COLUMNS, {**p, "tables": tables}):
            columns_of[(t, col)] = (oid, num)
    for c in steps:
        if c.kind == "drop_table" and c.table in relations:
            removed[("pg_class", relations[c.table][0], 0)] = (c, f"table {c.table}", False)
        elif c.kind in ("drop_column", "alter_column") and (c.table, c.name) in columns_of:
            if c.kind == "alter_column" and (c.table, c.name) not in plan.retyped:
                continue
            oid, num = columns_of[(c.table, c.name)]
            removed[("pg_class", oid, num)] = (c, f"column {c.table}.{c.name}", c.kind == "alter_column")
        elif c.kind == "drop_object":
            obj = c.cur_object
            if obj.kind in _RELATION_OBJECTS and obj.name in relations:
                removed[("pg_class", relations[obj.name][0], 0)] = (c, obj.key, False)
            elif obj.kind == "function":
                functions = functions or {sig: oid for oid, sig in conn.execute(_FUNCTIONS, p)}
                if obj.name in functions:
                    removed[("pg_proc", functions[obj.name], 0)] = (c, obj.key, False)
            elif obj.kind == "type":
                types = types or {name: oid for oid, name in conn.execute(_TYPES, p)}
                if obj.name in types:
                    removed[("pg_type", types[obj.name], 0)] = (c, obj.key, False)
    return removed


def _follow_dependents(conn: sa.Connection, plan: _Plan, removed: dict, relations: dict, nsp: str, live,
                       reference) -> _Found:
    """Read what depends on what the plan removes (``removed``, extended with what is made again, whose dependents
    are read in turn) and judge each dependent (``_judge``)."""
    found = _Found()
    todo = dict(removed)
    while todo:
        rows = conn.execute(_DEPENDENTS, {"oids": sorted({k[1] for k in todo})}).all()
        todo = {}
        for refcls, refoid, refsub, cls, what, dep_nsp, relname, relkind, attname, name in rows:
            hit = removed.get((refcls, refoid, refsub)) or removed.get((refcls, refoid, 0))
            if hit is None:
                continue
            step, label, retype_only = hit
            if retype_only and cls not in _RETYPE_BLOCKERS:
                continue  # ALTER COLUMN ... TYPE rebuilds indexes, constraints and defaults by itself
            if cls == "pg_class" and refcls == "pg_class" and relname is not None and \
                    relations.get(relname, (None,))[0] == refoid and dep_nsp == nsp:
                continue  # a part of the removed relation itself
            verdict = _judge(plan, step, label, cls, what, dep_nsp, nsp, relname, relkind, attname, name, live,
                             reference, relations, found.remade)
            if verdict is not None:
                _take(verdict, step, plan, found, removed, todo, relations)
    return found


def _take(verdict, step: Change, plan: _Plan, found: _Found, removed: dict, todo: dict, relations: dict) -> None:
    """Record ``_judge``'s verdict on a dependent of what ``step`` removes; a view made again is removed in turn
    (added to ``removed`` and ``todo``)."""
    if isinstance(verdict, str):
        found.refused.append((step, verdict))
    elif verdict[0] == "remake":
        _, drop, add = verdict
        found.added += [drop, add]
        plan.before.append((drop, step))
        obj = drop.cur_object
        found.remade.add(obj.key)
        plan.dropped_objects[obj.key] = drop
        if obj.kind in _VIEW_KINDS.values() and obj.name in relations:
            key = ("pg_class", relations[obj.name][0], 0)
            removed[key] = todo[key] = (drop, obj.key, False)
    elif verdict[0] == "before":
        plan.before.append((verdict[1], step))
    elif verdict[0] == "own":
        found.replaced[id(step)] = [verdict[1]]


def _judge(plan: _Plan, step: Change, label: str, cls: str, what: str, dep_nsp: str | None, nsp: str,
           relname: str | None, relkind: str | None, attname: str | None, name: str | None, live, reference,
           relations: dict, remade: set[str]):
    """What the plan does about one dependent of what ``step`` removes: None (nothing needed), ("before", step that
    drops it), ("remake", drop, add), ("own", step instead of ``step``), or why the step is refused."""
    if dep_nsp != nsp:
        desc = f"{_VIEW_KINDS[relkind]} {dep_nsp}.{relname}" if cls == "pg_rewrite" and relkind in _VIEW_KINDS \
            else what
        return _why(f"objects outside the plan depend on it ({desc}, in a schema this target does not compare)")
    gone = plan.relation_step(relname, relkind)
    if gone is not None and cls != "pg_rewrite":  # attached to a relation the plan drops: goes with it
        return ("before", gone) if gone is not step else None
    key = _key(cls, relname, relkind, name)
    if key is not None:
        if key in plan.dropped_objects:
            drop = plan.dropped_objects[key]
            return ("before", drop) if drop is not step else None
        if key in remade:
            return None
        kind = key.split(" ", 1)[0] if not key.startswith("materialized view ") else "materialized view"
        now, ref = live.objects.get(key), reference.objects.get(key)
        if kind in _REMADE and now is not None and ref is not None and now.definition == ref.definition \
                and not (now.table and plan.table_gone(now.table)):
            drop = Change("drop_object", now.table or "", key, True, f"to make it again: it depends on {label}",
                          current=now)
            add = Change("add_object", ref.table or "", key, True, f"made again after {label} changed", reference=ref)
            return ("remake", drop, add)
        return _why(f"objects the plan keeps depend on it ({_describe(cls, what, relname, relkind, name)})")
    if cls == "pg_constraint" and (relname, name) in plan.dropped_constraints:
        return ("before", next(c for c in plan.steps if c.table == relname and c.current is not None
                               and getattr(c.current, "name", None) == name and c.kind.startswith("drop_")))
    if cls == "pg_attrdef" and attname is not None:
        if (relname, attname) in plan.dropped_columns or (relname, attname) in plan.new_default:
            return None  # the default goes (or is replaced) before the object it uses is dropped
        ref_table = reference.tables.get(relname or "")
        ref_col = ref_table.column(attname) if ref_table is not None else None
        if step.kind == "drop_object" and step.cur_object.kind == "sequence" and ref_col is not None \
                and value_source(ref_col.type) == "SERIAL":
            obj = step.cur_object
            own = replace(obj, alter_sql=f"ALTER SEQUENCE {quote(obj.name)} OWNED BY {quote(relname)}."
                                         f"{quote(attname)}")
            return ("own", Change("alter_object", step.table, step.name, True,
                                  f"made the own sequence of {relname}.{attname}, as the reference's serial column",
                                  reference=own, current=obj))
    if cls == "pg_class" and attname is not None and (
            (relname, attname) in plan.dropped_columns or (relname, attname) in plan.retyped):
        return None  # a column of that type, dropped or retyped before
    return _why(f"objects the plan keeps depend on it ({_describe(cls, what, relname, relkind, name)})")


def _why(text: str) -> str:
    return (f"{text}; nothing is dropped with CASCADE: change or drop that in a revision first, or keep what it needs "
            "in the reference")


def _key(cls: str, relname: str | None, relkind: str | None, name: str | None) -> str | None:
    """The snapshot's key (``SchemaObject.key``) of a dependent that is an object the snapshot reads."""
    if cls == "pg_rewrite" and relkind in _VIEW_KINDS:
        return f"{_VIEW_KINDS[relkind]} {relname}"
    if cls == "pg_trigger":
        return f"trigger {name} on {relname}"
    if cls == "pg_policy":
        return f"policy {name} on {relname}"
    if cls == "pg_proc":
        return f"function {name}"
    if cls == "pg_type" and relname is None:
        return f"type {name}"
    return None


def _describe(cls: str, what: str, relname: str | None, relkind: str | None, name: str | None) -> str:
    if cls == "pg_rewrite" and relkind in _VIEW_KINDS:
        return f"{_VIEW_KINDS[relkind]} {relname}"
    return what


def _names(steps: list[Change], live, reference, relations: dict, nsp: str) -> tuple[list[Change], list]:
    """Names a new table or object needs that the live schema holds (``relations``: pg_class of the schema), the
    steps freeing names taken into account in their order."""
    freed: set[str] = set()
    out: list[Change] = []
    refused: list[tuple[Change, str]] = []
    owned_by = {owner: name for name, (_o, kind, owner) in relations.items() if kind == "S" and owner}
    for c in order_for_server(steps):
        if c.kind == "drop_table":
            freed.add(c.table)
            freed.update(ix.name for ix in c.cur_table.indexes)
            freed.update(s for o, s in owned_by.items() if o.split(".", 1)[0] == c.table)
        elif c.kind == "drop_index":
            freed.add(c.cur_index.name)
        elif c.kind == "drop_column":
            freed.update(s for o, s in owned_by.items() if o == f"{c.table}.{c.name}")
        elif c.kind == "drop_object" and c.cur_object.kind in _RELATION_OBJECTS:
            freed.add(c.cur_object.name)
        name = None
        if c.kind == "add_table":
            name = c.table
        elif c.kind == "add_object" and c.ref_object.kind in _RELATION_OBJECTS:
            name = c.ref_object.name
        if name is None or name not in relations or name in freed:
            out.append(c)
            continue
        _oid, kind, owner = relations[name]
        if c.kind == "add_object" and c.ref_object.kind == "sequence" and kind == "S" and owner:
            # the reference's sequence of its own is the one a column owns here: released, then altered in place
            obj = c.ref_object
            release = replace(obj, alter_sql=f"ALTER SEQUENCE {quote(name)} OWNED BY NONE")
            out.append(Change("alter_object", c.table, c.name, True, f"no longer owned by {owner}",
                              reference=release, current=obj))
            if obj.alter_sql:
                out.append(Change("alter_object", c.table, c.name, c.destructive, c.detail, reference=obj,
                                  current=obj))
            continue
        what = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "S": "sequence", "i": "index",
                "c": "composite type", "f": "foreign table"}.get(kind, "relation")
        owner_note = f" (owned by column {owner})" if owner else ""
        refused.append((c, f"its name is taken by the {what} {name}{owner_note} in the database, which the plan "
                           "keeps (or drops only after this step); rename one of them in a revision first"))
        out.append(c)
    return out, refused


def _casts_that_change_values(conn: sa.Connection, steps: list[Change], nsp: str) -> list[tuple[Change, str]]:
    """Type changes whose cast does not keep every value as it is (cast back, a value is not what it was:
    ``10.50`` as ``numeric(8,0)`` is ``11``): refused, since the rows check would find the values changed. One read of
    the column, stopping at the first such value; the rewrite it precedes reads the whole table anyway. A value the
    server cannot cast at all (``'abc'`` as ``integer``) is left to the ALTER, whose error names it (the data is to be
    fixed). Enum changes go through their labels (``align.retype_enum``) and are not read."""
    from .align import enum_involved

    out: list[tuple[Change, str]] = []
    for c in steps:
        if c.kind != "alter_column" or not _retypes(c) or \
                value_source(c.ref_column.type).startswith("GENERATED("):
            continue
        old = _plain(c.cur_column.type)
        new = _plain(c.ref_column.type)
        if type_key(old) == type_key(new):
            continue
        qt, qc = f"{quote(nsp)}.{quote(c.table)}", quote(c.name or "")
        if enum_involved(conn, qt, c.name or "", new):
            continue
        savepoint = conn.begin_nested()
        try:
            changed = conn.exec_driver_sql(f"SELECT 1 FROM {qt} WHERE CAST(CAST({qc} AS {new}) AS {old}) IS DISTINCT "
                                           f"FROM {qc} LIMIT 1").first()
            savepoint.commit()
        except sa.exc.DBAPIError:  # a value the server cannot cast: the ALTER says which, and the run rolls back
            savepoint.rollback()
            continue
        if changed is not None:
            out.append((c, f"a value would not survive the type change from {old} to {new} as it is (cast back, it "
                           "is not what it was: rounded, cut or moved); convert the values in a revision (declaring "
                           "changes_rows), or keep the type in the reference"))
    return out


def _plain(declared: str | None) -> str:
    return re.split(r"\s+COLLATE\s+", base_type(declared), maxsplit=1, flags=re.IGNORECASE)[0].strip()


def _respect(steps: list[Change], before: list[tuple[Change, Change]]) -> list[Change]:
    """``steps`` with each (a, b) of ``before`` satisfied: a step found after the one it must precede is moved just
    before it (a dependent is dropped before what it depends on)."""
    steps = list(steps)
    for _ in range(len(steps) * max(1, len(before))):
        moved = False
        for a, b in before:
            ia = next((i for i, s in enumerate(steps) if s is a), None)
            ib = next((i for i, s in enumerate(steps) if s is b), None)
            if ia is None or ib is None or ia < ib:
                continue
            steps.pop(ia)
            steps.insert(ib, a)
            moved = True
        if not moved:
            break
    return steps


def _unique(refused: list[tuple[Change, str]]) -> list[tuple[Change, str]]:
    seen, out = set(), []
    for c, why in refused:
        if (id(c), why) not in seen:
            seen.add((id(c), why))
            out.append((c, why))
    return out
