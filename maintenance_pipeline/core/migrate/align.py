"""Alignment: which of the diff's changes are applied, in which order, and as which Alembic operations.

What is applied: ``split_by_align`` (``none`` / ``additive`` / ``full``), less an index whose name
a kept object holds (``blocked_by_kept_names``); in which order: the engine's (``Engine.order_changes``:
``order_for_names``, a drop that frees an index name first, or ``order_for_server``, see
``_SERVER_ORDER``), then what depends on what in the live database (``Engine.order_by_dependencies``:
PostgreSQL's ``pg_depend``; a view the plan keeps that reads what it drops or retypes is dropped first and
made again after). What cannot be applied is refused before the first statement, whatever the align mode
(``cannot_align``: the engine's reasons, undeclared possible renames, a foreign key whose parent columns are
no key of the parent; and the steps the dependencies refuse). ``migrate`` drives them inside its transaction.

Alembic does the work (``Operations``: create_table, add_column, create_index, drop_table, ...).
``apply_change_natively`` does what every engine does alike (tables, indexes, columns) and asks the
engine for the rest (``Engine.apply_in_place``): by default ``apply_generic``, ALTER in place, in the
target's schema: ``alter_column`` changes only what differs (type with the engine's cast, nullability,
default; a default that could not follow a type change is dropped first and set again after), unique
and foreign keys are added and dropped by name (an unnamed key from a reference gets the server's own
name), and a primary key change drops the current constraint (its name from the engine) and adds the
new one. A column whose values come from a sequence (``SERIAL``) or an identity is created that way
(its declared type says so) and altered as its plain type (``Engine.plain_type``). An engine that cannot
ALTER a change in place says so (SQLite: everything but DROP COLUMN) and ``migrate`` has the engine
rebuild the table instead, every row kept (``engines/sqlite/rebuild.py``). Columns added to many tables may be
added at once (``add_columns_together``, ``Engine.add_columns``: SQLite reloads its schema once for all of them,
not once each), recorded statement by statement as if sent one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import time
from dataclasses import replace

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from ..config import Target
from ..engines import engine_of
from ..errors import DestructiveChangeRefusedError, UnalignableChangeError
from ..engines.ddl import sa_column, sa_constraints
from ..schema.diff import POSSIBLE_RENAME, diff
from ..schema.snapshot import take_snapshot
from .results import MigrationRecord
from .revisions import target_schema
from ..schema.model import Change, ForeignKey, Index, Snapshot


def split_by_align(changes: list[Change], align: str) -> tuple[list[Change], list[Change]]:
    """(to apply, refused) under an align mode."""
    if align == "none":
        return [], []
    if align == "full":
        return list(changes), []
    return [c for c in changes if not c.destructive], [c for c in changes if c.destructive]


def cannot_align(engine, changes: list[Change], reference: Snapshot, live: Snapshot) -> list[tuple[Change, str]]:
    """(change, why) for each change the product sees but cannot apply (``Engine.refusal``): the run is refused
    with the reasons, whatever the align mode."""
    same = reference.dialect == engine.name
    out = [(c, why) for c in changes if (why := engine.refusal(c, same_engine=same, live=live, reference=reference))]
    for c in changes:  # a foreign key must point at a key of its parent: no engine can check it otherwise
        keys = [c.ref_fk] if c.kind == "add_foreign_key" else \
            list(c.ref_table.foreign_keys) if c.kind == "add_table" else []
        for fk in keys:
            why = _not_a_parent_key(fk, reference)
            if why:
                out.append((c, why))
    for c in changes:  # a column dropped beside an added one of its type: say which it is before values go
        if c.kind == "drop_column" and POSSIBLE_RENAME in c.detail:
            twin = c.detail.rsplit(POSSIBLE_RENAME, 1)[1].strip()
            out.append((c, f"it may be a rename to {twin}: declare renames: {{{c.table}.{c.name}: {twin}}} in the "
                           f"target to rename it keeping its values, or {{{c.table}.{c.name}: null}} to drop it"))
    return out


def _not_a_parent_key(fk: ForeignKey, reference: Snapshot) -> str | None:
    """Why ``fk`` cannot be created as the reference declares it: its parent columns are not the parent's primary
    key nor a unique key or unique index over exactly those columns (SQLite calls such a key a "foreign key
    mismatch" and checks none of its rows; PostgreSQL refuses to create it). None when they are (or the parent is
    not one the reference holds)."""
    parent = reference.tables.get(fk.ref_table)
    if parent is None or not fk.ref_columns:
        return None
    wanted = set(fk.ref_columns)
    keys = [set(parent.primary_key)] + [set(u.columns) for u in parent.uniques] + \
        [set(i.columns) for i in parent.indexes if i.unique and " WHERE " not in f" {i.definition.upper()} "]
    if wanted in keys:
        return None
    cols = ", ".join(str(c) for c in fk.ref_columns)
    return (f"its parent columns {fk.ref_table}({cols}) are not the primary key or a unique key of {fk.ref_table} "
            f"in the reference, so no row of it can be checked; make {fk.ref_table}({cols}) unique in the reference, "
            "or point the key at a unique column")


def expand(engine, changes: list[Change]) -> list[Change]:
    """The changes as steps: an object changed by dropping and creating it again is a drop (before the tables
    change) and an add (after); on an engine that adds keys in place, a new table's foreign keys are added after
    every table and key exists (a key may reference a table or a primary key this same run creates); on an engine
    that alters tables by copying them (SQLite: no ALTER INDEX), an index is renamed by dropping it and creating it
    again under its new name; elsewhere a rename to a name another rename frees (two names swapped) goes through a
    name of its own first, and takes its new name after the others."""
    out: list[Change] = []
    freed = {ch.cur_named.name for ch in changes if ch.kind in ("rename_constraint", "rename_index")}
    later: list[Change] = []
    for ch in changes:
        if ch.kind == "rename_index" and engine.render_as_batch:
            ix = ch.ref_index
            out.append(Change("drop_index", ch.table, ch.name, False, f"to create it again as {ix.name}",
                              current=ch.current))
            out.append(Change("add_index", ch.table, ix.name, False, ch.detail, reference=ix))
        elif ch.kind in ("rename_constraint", "rename_index") and ch.ref_named.name in freed \
                and ch.ref_named.name != ch.cur_named.name:
            named = ch.ref_named
            between = replace(named, name=f"_mp_rename_{len(later)}_{named.name}"[:63])
            out.append(replace(ch, reference=between, detail=f"{ch.detail} (through {between.name})"))
            later.append(replace(ch, name=between.name, current=between))
        elif ch.kind == "alter_object" and not ch.ref_object.alter_sql and not ch.ref_object.values:
            out.append(Change("drop_object", ch.table, ch.name, True, "to create it again", current=ch.current))
            out.append(Change("add_object", ch.table, ch.name, ch.destructive, ch.detail, reference=ch.ref_object))
        elif ch.kind == "add_table" and not engine.render_as_batch and ch.ref_table.foreign_keys:
            t = ch.ref_table
            out.append(Change("add_table", ch.table, None, ch.destructive, ch.detail,
                              reference=replace(t, foreign_keys=())))
            out.extend(Change("add_foreign_key", t.name, fk.name, False, fk.describe(), reference=fk)
                       for fk in t.foreign_keys)
        else:
            out.append(ch)
    return out + later


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
        if ch.kind in ("drop_index", "drop_unique", "rename_index") and ch.current is not None:
            taken.discard(ch.cur_named.name)
        elif ch.kind == "drop_table":
            taken.discard(ch.table)
            taken.difference_update(ix.name for ix in ch.cur_table.indexes)
            taken.difference_update(u.name for u in ch.cur_table.uniques if u.name)
    blocked = [ch for ch in to_apply if ch.kind in ("add_index", "rename_index")
               and ch.ref_index.name in taken]
    return [ch for ch in to_apply if ch not in blocked], blocked


# ------------------------------------------------------------------ how: Alembic operations


def apply_change_natively(ops: Operations, ch: Change, column_fk: ForeignKey | None = None,
                          schema: str | None = None, same_engine: bool = True) -> bool:
    """Apply one change with a single statement if the engine can; False if it needs a rebuild.

    ``column_fk`` is a single-column foreign key that arrives together with an added column.
    ``schema``: the schema the target's tables live in (None = the default schema).
    ``same_engine``: the reference is a database of the target's engine, so its own statements (``sql``) apply.
    """
    engine = engine_of(ops.get_bind())
    if ch.kind == "add_table":
        t = ch.ref_table
        if t.sql and same_engine:
            run_sql(ops, t.sql)  # the engine's own statement: CHECKs, options, generated columns and all
        else:
            ops.create_table(t.name, *[sa_column(c) for c in t.columns], *sa_constraints(t, schema), schema=schema)
            engine.complete_new_table(ops, t, schema)
        for ix in t.indexes:
            _create_index(ops, ch.table, ix, schema, same_engine)
        return True
    if ch.kind == "drop_table":
        ops.drop_table(ch.table, schema=schema)
        return True
    if ch.kind == "add_index":
        _create_index(ops, ch.table, ch.ref_index, schema, same_engine)
        return True
    if ch.kind in ("add_object", "drop_object", "alter_object"):
        return _apply_object(ops, engine, ch)
    if ch.kind == "rename_column":  # one statement on every engine: the values stay
        prep = ops.get_bind().dialect.identifier_preparer
        qualified = (prep.quote_schema(schema) + "." if schema else "") + prep.quote(ch.table)
        run_sql(ops, f"ALTER TABLE {qualified} RENAME COLUMN {prep.quote(ch.name)} TO "
                     f"{prep.quote(ch.ref_column.name)}")
        return True
    if ch.kind == "drop_index":
        ops.drop_index(ch.cur_index.name, table_name=ch.table, schema=schema)
        return True
    if ch.kind == "add_column":
        col = ch.ref_column
        if not engine.adds_column_in_place(col):
            return False
        if column_fk is not None:
            engine.add_column_with_key(ops, ch.table, col, column_fk, schema)
        else:
            ops.add_column(ch.table, sa_column(col), schema=schema)
        engine.complete_new_column(ops, ch.table, col, schema)
        return True
    return engine.apply_in_place(ops, ch, schema)




def add_columns_together(ops: Operations, engine, steps: list[Change], column_fks: dict, schema: str | None,
                         same_engine: bool, result: MigrationRecord, state: dict) -> set[int]:
    """The ``add_column`` steps the engine adds at once (``Engine.add_columns``; SQLite: one schema reload for all of
    them, not one each), recorded as the loop records a step: each statement ``apply_change_natively`` would send in
    ``result.sql`` and the measured statements, the columns added in one schema update said so in ``result.applied``.
    Only a table's ``add_column`` steps before any other step on that table are offered (applying them first changes
    nothing else). The ids of the steps added (with a column's foreign key, added with it)."""
    others: set[str | None] = set()
    offered = []
    for ch in steps:
        if ch.kind == "add_column" and ch.table not in others:
            offered.append(ch)
        elif ch.kind != "add_foreign_key" or \
                column_fks.get((ch.table, ch.ref_fk.columns[0])) is not ch:
            others.add(ch.table)

    def apply(o: Operations, ch: Change) -> bool:
        if o is ops:
            state["step"] = ch.describe()
        fk_ch = column_fks.get((ch.table, ch.name))
        return apply_change_natively(o, ch, column_fk=fk_ch.ref_fk if fk_ch else None, schema=schema,
                                     same_engine=same_engine)

    state["step"] = f"adding {len(offered)} columns together"
    added = engine.add_columns(ops, offered, apply, schema) if len(offered) > 1 else []
    state["step"] = None
    n = sum(1 for a in added if a.statements is not None)
    how = f"one of {n} columns added in one schema update"
    recorder = state.get("recorder")
    for a in added:
        ch, fk_ch = a.change, column_fks.get((a.change.table, a.change.name))
        desc = ch.describe() + (f" with foreign key {fk_ch.ref_fk.describe()}" if fk_ch else "")
        if a.statements is not None:
            result.sql.extend(a.statements)
            for statement in a.statements if recorder is not None else ():
                recorder.note(ops.get_bind(), statement, a.started, a.seconds / len(a.statements), how)
            desc += f" ({how})"
        result.applied.append({"source": "align", "description": desc, "seconds": round(a.seconds, 4)})
        result.aligned.extend([ch, fk_ch] if fk_ch else [ch])
    return {id(a.change) for a in added}


def run_sql(ops: Operations, statement: str) -> None:
    """An engine's own statement, as it is (no bind parameters: a ``::`` cast or ``:x`` stays text)."""
    ops.get_bind().exec_driver_sql(statement)


def _create_index(ops: Operations, table: str, ix: Index, schema: str | None, same_engine: bool) -> None:
    if ix.sql and same_engine:  # partial, expression, ordered, method, INCLUDE: as the engine wrote it
        run_sql(ops, ix.sql)
    else:
        ops.create_index(ix.name, table, list(ix.columns), unique=ix.unique, schema=schema)


def _apply_object(ops: Operations, engine, ch: Change) -> bool:
    if ch.kind == "drop_object":
        run_sql(ops, ch.cur_object.drop_sql)
        return True
    ref = ch.ref_object
    if ch.kind == "add_object":
        run_sql(ops, ref.sql)
        return True
    if ref.values:  # an enum that gains values
        engine.add_enum_values(ops, ch.cur_object, ref)
        return True
    run_sql(ops, ref.alter_sql)
    return True


@dataclass(frozen=True)
class AlignmentPlan:
    """What alignment will apply, in order, inside the migration's transaction (``plan_alignment``)."""

    steps: list[Change]  # in the engine's order, dependents around what they depend on
    implied: list[Change]  # made by the engine along with others (children of a parent)
    column_fks: dict  # (table, column) -> the single-column foreign key arriving with its column
    schema: str | None
    same_engine: bool  # the reference is a database of the target's engine: its own statements apply


def align_in_transaction(conn: sa.Connection, target: Target, reference: Snapshot, align: str,
                         result: MigrationRecord, state: dict | None = None, live: Snapshot | None = None) -> None:
    """Inside the migration's transaction, after the revisions: diff again, refuse what may not or cannot be
    applied (raising, so nothing is committed), then apply the rest in the engine's order, natively or by
    rebuilding tables; ``state["step"]`` names the change under way (for the one-line error). ``live``: the
    schema as it is now, when the caller read it and nothing changed since (else it is read here)."""
    state = state if state is not None else {}
    plan = plan_alignment(conn, target, reference, align, result, live)
    if plan is None:
        return
    engine = engine_of(conn)
    result.aligned.extend(plan.implied)
    check_after = engine.alignment_guard(conn)
    ops = Operations(MigrationContext.configure(conn, opts={"transactional_ddl": True}))
    rebuild = _apply_natively(ops, engine, plan, result, state)
    if rebuild:
        _rebuild_tables(conn, ops, engine, target, reference, plan, rebuild, result, state)
    state["step"] = None
    check_after()


def plan_alignment(conn: sa.Connection, target: Target, reference: Snapshot, align: str,
                   result: MigrationRecord, live: Snapshot | None = None) -> AlignmentPlan | None:
    """Diff again after the revisions; what ``align`` refuses and what cannot be aligned is raised (nothing is
    committed; a dry run records it instead); None when nothing is left to apply."""
    schema = target_schema(conn, target)
    if live is None:
        live = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    changes = diff(live, reference, ignore_tables=target.ignore_tables, renames=target.renames, ignore=target.ignore)
    result.after_revisions = list(changes)  # what the revisions left: the report tells their work from alignment's
    to_apply, refused = split_by_align(changes, align)
    to_apply, blocked = blocked_by_kept_names(live, to_apply)
    engine = engine_of(conn)
    unalignable = cannot_align(engine, to_apply, reference, live)
    to_apply = [c for c in to_apply if all(c is not x for x, _ in unalignable)]
    implied = engine.implied(to_apply, live)  # made by the engine along with others (children of a parent)
    steps = engine.order_changes(expand(engine, [c for c in to_apply if all(c is not x for x in implied)]))
    # what depends on what in the live database: dependents dropped first and made again after, or refused
    steps, tied = engine.order_by_dependencies(conn, steps, live, reference, schema)
    unalignable += tied
    result.refused = refused + blocked + [c for c, _ in unalignable]
    _raise_refusals(unalignable, result, align)
    to_apply = [c for c in steps if all(c is not x for x, _ in tied)]
    if not to_apply:
        return None
    return AlignmentPlan(to_apply, implied, _column_fks(to_apply), schema, reference.dialect == engine.name)


def _raise_refusals(unalignable: list, result: MigrationRecord, align: str) -> None:
    if unalignable and not result.dry_run:
        what = "; ".join(f"{c.kind} {c.noun}: {why}" for c, why in unalignable[:3])
        more = f" (+{len(unalignable) - 3} more)" if len(unalignable) > 3 else ""
        raise UnalignableChangeError(
            f"{len(unalignable)} difference(s) cannot be aligned automatically ({what}{more}); the whole run was "
            "refused, nothing was committed; write a revision for them, or change the reference")
    if result.refused and not result.dry_run:
        names = "; ".join(c.describe() for c in result.refused[:4])
        more = f" (+{len(result.refused) - 4} more)" if len(result.refused) > 4 else ""
        raise DestructiveChangeRefusedError(
            f"align: {align} refuses {len(result.refused)} destructive change(s): {names}{more}; the whole run was "
            "refused, nothing was committed; review them and rerun with align: full to apply them, or change "
            "the reference")


def _column_fks(to_apply: list[Change]) -> dict:
    """A single-column FK arriving with its column is added with it (natively on SQLite)."""
    column_fks = {}
    for ch in to_apply:
        if ch.kind == "add_foreign_key" and len(ch.ref_fk.columns) == 1:
            column = ch.ref_fk.columns[0]
            if any(c.kind == "add_column" and c.table == ch.table and c.name == column for c in to_apply):
                column_fks[(ch.table, column)] = ch
    return column_fks


def _apply_natively(ops: Operations, engine, plan: AlignmentPlan, result: MigrationRecord,
                    state: dict) -> dict[str, list[Change]]:
    """Each step in one statement where the engine can (columns added together where it can); what needs a table
    rebuild is returned, by table."""
    column_fks, schema, same_engine = plan.column_fks, plan.schema, plan.same_engine
    rebuild: dict[str, list[Change]] = {}
    together = add_columns_together(ops, engine, plan.steps, column_fks, schema, same_engine, result, state)
    for ch in plan.steps:
        if id(ch) in together or ch.kind == "add_foreign_key" and \
                column_fks.get((ch.table, ch.ref_fk.columns[0])) is ch:
            continue  # added with the others, or with its column
        if ch.kind == "drop_column" and ch.table in rebuild:
            # the table is rebuilt anyway: dropping the column natively first would rewrite it twice
            rebuild[ch.table].append(ch)
            continue
        fk_ch = column_fks.get((ch.table, ch.name)) if ch.kind == "add_column" else None
        state["step"] = ch.describe()
        t0 = time.monotonic()
        n_sql = len(result.sql)
        if apply_change_natively(ops, ch, column_fk=fk_ch.ref_fk if fk_ch else None, schema=schema,
                                 same_engine=same_engine):
            desc = ch.describe() + (f" with foreign key {fk_ch.ref_fk.describe()}" if fk_ch else "")
            result.applied.append({"source": "align", "description": desc, "seconds": round(time.monotonic() - t0, 4)})
            result.aligned.append(ch)
            if fk_ch:
                result.aligned.append(fk_ch)
        else:
            del result.sql[n_sql:]  # a native attempt the engine refused (rolled back) is not part of the plan
            rebuild.setdefault(ch.table, []).append(ch)
    return rebuild


def _rebuild_tables(conn: sa.Connection, ops: Operations, engine, target: Target, reference: Snapshot,
                    plan: AlignmentPlan, rebuild: dict[str, list[Change]], result: MigrationRecord,
                    state: dict) -> None:
    now = take_snapshot(conn, ignore_tables=target.ignore_tables)
    for table, chs in rebuild.items():
        state["step"] = f"rebuilding table {table} (" + "; ".join(c.describe() for c in chs) + ")"
        t0 = time.monotonic()
        engine.rebuild(ops, now.tables[table], chs, reference.tables.get(table) if plan.same_engine else None)
        result.applied.append({"source": "align",
                               "description": f"rebuilt table {table} (rows kept): "
                               + "; ".join(c.describe() for c in chs),
                               "seconds": round(time.monotonic() - t0, 4)})
        result.aligned.extend(chs)
