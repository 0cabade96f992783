"""PostgreSQL alignment beyond Alembic's generic ALTERs: how a column gets its values (a ``serial`` sequence, an
identity and its kind, a generated expression), enum values, and table options (UNLOGGED, row level security).

* serial -> plain: the default is dropped and the column's own sequence with it;
  plain -> serial: a sequence ``<table>_<column>_seq`` owned by the column, set past the column's largest value;
* identity added: NOT NULL first, then ``ADD GENERATED ... AS IDENTITY``, its sequence set past the largest value
  (existing rows keep their values, new ones never collide); kind changed: ``SET GENERATED``; dropped: ``DROP
  IDENTITY``;
* generated -> plain: ``DROP EXPRESSION`` (the values stay); plain -> generated or another expression: the
  column is dropped and added again as the reference declares it (its values are computed, nothing is lost
  that the expression cannot give back);
* an enum gains values with ``ALTER TYPE ... ADD VALUE ... BEFORE/AFTER`` in the reference's order;
* a column's own sequence (``Column.sequence``: a serial's, an identity's) gets every option of the reference's with
  one ``ALTER SEQUENCE`` (``AS`` type, START, INCREMENT, MINVALUE, MAXVALUE, CACHE, CYCLE; serial -> bigserial is
  ``AS bigint``, its MAXVALUE with it) and its name with ``ALTER SEQUENCE ... RENAME TO``, after the column has its
  values from it (a new serial or identity gets the server's defaults first);
* a constraint's name: ``ALTER TABLE ... RENAME CONSTRAINT`` (a key's index follows), an index's: ``ALTER INDEX ...
  RENAME TO``.
"""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from ...errors import MigrationError
from ...schema.model import Column, sequence_parts
from .types import base_type, type_key, value_source


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _qualified(conn: sa.Connection, table: str, schema: str | None) -> str:
    return (f"{_q(conn, schema)}." if schema else "") + _q(conn, table)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _owned_sequence(conn: sa.Connection, qualified: str, column: str) -> str | None:
    return conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": qualified, "c": column}).scalar()


def _restart_after_max(conn: sa.Connection, qualified: str, column: str) -> None:
    seq = _owned_sequence(conn, qualified, column)
    if seq:
        conn.exec_driver_sql(f"SELECT setval(%s, coalesce((SELECT max({_q(conn, column)}) FROM {qualified}), 0) + 1, "
                             "false)", (seq,))


def align_value_source(ops, table: str, cur: Column, ref: Column, schema: str | None) -> Column | None:
    """Make ``cur`` get its values as ``ref`` does. Returns the column as it now is (for the remaining type /
    default / nullability changes), or None when it was created again exactly as ``ref``."""
    src_cur, src_ref = value_source(cur.type), value_source(ref.type)
    if src_cur == src_ref:
        return retype_enum(ops, table, cur, ref, schema)
    conn = ops.get_bind()
    qt, qc = _qualified(conn, table, schema), _q(conn, cur.name)
    alter = f"ALTER TABLE {qt} ALTER COLUMN {qc}"
    if src_ref.startswith("GENERATED("):  # a new expression: the column comes back computed
        ops.drop_column(table, cur.name, schema=schema)
        conn.exec_driver_sql(f"ALTER TABLE {qt} ADD COLUMN {qc} {ref.type}" + ("" if ref.nullable else " NOT NULL"))
        return None
    plain = base_type(cur.type)
    if src_cur.startswith("GENERATED("):
        conn.exec_driver_sql(f"{alter} DROP EXPRESSION")
    elif src_cur == "SERIAL":
        seq = _owned_sequence(conn, qt, cur.name)
        conn.exec_driver_sql(f"{alter} DROP DEFAULT")
        if seq:
            conn.exec_driver_sql(f"DROP SEQUENCE {seq}")
    elif src_cur.startswith("IDENTITY") and src_ref.startswith("IDENTITY"):
        conn.exec_driver_sql(f"{alter} SET GENERATED {src_ref[len('IDENTITY '):]}")
        return replace(cur, type=ref.type)
    elif src_cur.startswith("IDENTITY"):
        conn.exec_driver_sql(f"{alter} DROP IDENTITY")
    now = replace(cur, type=plain, default=None if src_cur == "SERIAL" else cur.default)
    if src_ref == "SERIAL":
        seq = _free_name(conn, f"{table}_{cur.name}_seq", schema)
        qs = (f"{_q(conn, schema)}." if schema else "") + _q(conn, seq)
        conn.exec_driver_sql(f"CREATE SEQUENCE {qs} AS {base_type(ref.type)} OWNED BY {qt}.{qc}")
        conn.exec_driver_sql(f"{alter} SET DEFAULT nextval({_literal(qs)}::regclass)")
        _restart_after_max(conn, qt, cur.name)
        return replace(now, type=ref.type)
    if src_ref.startswith("IDENTITY"):
        if now.default is not None:
            conn.exec_driver_sql(f"{alter} DROP DEFAULT")
        conn.exec_driver_sql(f"{alter} SET NOT NULL")
        conn.exec_driver_sql(f"{alter} ADD GENERATED {src_ref[len('IDENTITY '):]} AS IDENTITY")
        _restart_after_max(conn, qt, cur.name)
        return replace(now, type=ref.type, default=None, nullable=False)
    return now


_IS_ENUM = sa.text("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.typtype = 'e' "
                   "AND CAST(:t AS text) IN (format_type(t.oid, NULL), t.typname::text))")
_COLUMN_IS_ENUM = sa.text("SELECT t.typtype = 'e' FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t "
                          "ON t.oid = a.atttypid WHERE a.attrelid = CAST(:t AS regclass) AND a.attname = :c")


def enum_involved(conn: sa.Connection, qualified: str, column: str, new_type: str) -> bool:
    """The column's type now, or ``new_type``, is an enum."""
    return bool(conn.execute(_COLUMN_IS_ENUM, {"t": qualified, "c": column}).scalar()
                or conn.execute(_IS_ENUM, {"t": new_type}).scalar())


def retype_enum(ops, table: str, cur: Column, ref: Column, schema: str | None) -> Column:
    """A column whose type changes from or to an enum: PostgreSQL has no cast between two enum types (nor from most
    types to one), so the values go through their text (``USING col::text::new``), label by label; the default,
    which may not cast, is dropped first (the reference's is set after). Returns the column as it now is."""
    new_type = base_type(ref.type)
    if type_key(base_type(cur.type)) == type_key(new_type):
        return cur
    conn = ops.get_bind()
    qt, qc = _qualified(conn, table, schema), _q(conn, cur.name)
    if not enum_involved(conn, qt, cur.name, new_type):
        return cur
    if cur.default is not None:
        conn.exec_driver_sql(f"ALTER TABLE {qt} ALTER COLUMN {qc} DROP DEFAULT")
    conn.exec_driver_sql(f"ALTER TABLE {qt} ALTER COLUMN {qc} TYPE {new_type} USING {qc}::text::{new_type}")
    return replace(cur, type=ref.type, default=None)


_OWNED_SEQUENCES = sa.text("""
SELECT s.relname, n.nspname, format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax,
       q.seqcache, q.seqcycle
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.deptype IN ('a', 'i') AND d.refobjid = CAST(:t AS regclass) AND a.attname = :c
""")


def align_sequence(ops, table: str, column: Column, schema: str | None) -> None:
    """Give the sequence ``column`` owns the options and the name ``column.sequence`` says (nothing when they are
    already so, or when the reference says of no sequence). A value the sequence gave past the new limits makes the
    server refuse, and the run rolls back."""
    from .objects import sequence_spec

    if not column.sequence:
        return
    conn = ops.get_bind()
    qt = _qualified(conn, table, schema)
    rows = conn.execute(_OWNED_SEQUENCES, {"t": qt, "c": column.name}).all()
    if len(rows) != 1:
        raise MigrationError(f"column {table}.{column.name} owns {len(rows)} sequences, not one; align its sequence "
                             "with a revision")
    name, nsp, *options = rows[0]
    want_options, want_name = sequence_parts(column.sequence)
    have_options, _ = sequence_parts(sequence_spec(None, *options))
    if want_name is not None and want_name != name:
        conn.exec_driver_sql(f"ALTER SEQUENCE {_q(conn, nsp)}.{_q(conn, name)} RENAME TO {_q(conn, want_name)}")
        name = want_name
    if want_options != have_options:
        conn.exec_driver_sql(f"ALTER SEQUENCE {_q(conn, nsp)}.{_q(conn, name)} {want_options.replace(', ', ' ')}")


def sequence_refusal(change) -> str | None:
    """Why a column's own sequence cannot follow the reference's: one side's column takes its values from two
    sequences it owns (which one to set is not for the product to guess)."""
    if change.kind == "add_table":
        columns = list(change.reference.columns)
    elif change.kind in ("add_column", "alter_column"):
        columns = [c for c in (change.current, change.reference) if c is not None]
    else:
        return None
    two = next((c for c in columns if "; " in c.sequence), None)
    return None if two is None else \
        f"column {two.name} takes its values from more than one sequence it owns; align its sequences with a revision"


def rename(ops, change, schema: str | None) -> None:
    """``rename_constraint`` (``ALTER TABLE ... RENAME CONSTRAINT``: a key's index is renamed with it) or
    ``rename_index`` (``ALTER INDEX ... RENAME TO``)."""
    conn = ops.get_bind()
    old, new = change.current.name, change.reference.name
    if old is None or new is None:
        raise MigrationError(f"{change.describe()}: a constraint without a name cannot be renamed on PostgreSQL; "
                             "write a revision for it")
    if change.kind == "rename_index":
        conn.exec_driver_sql(f"ALTER INDEX {_qualified(conn, old, schema)} RENAME TO {_q(conn, new)}")
    else:
        conn.exec_driver_sql(f"ALTER TABLE {_qualified(conn, change.table, schema)} RENAME CONSTRAINT {_q(conn, old)} "
                             f"TO {_q(conn, new)}")


def _free_name(conn: sa.Connection, wanted: str, schema: str | None) -> str:
    name, n = wanted[:63], 1
    nsp = schema or conn.exec_driver_sql("SELECT current_schema()").scalar()
    while conn.execute(sa.text("SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = :s AND c.relname = :r"), {"s": nsp, "r": name}).first():
        n += 1
        name = f"{wanted[:60]}{n}"
    return name


def add_enum_values(ops, current, reference) -> None:
    conn = ops.get_bind()
    have = list(current.values)
    for i, value in enumerate(reference.values):
        if value in have:
            continue
        after = next((v for v in reversed(reference.values[:i]) if v in have), None)
        where = f" AFTER {_literal(after)}" if after is not None else (f" BEFORE {_literal(have[0])}" if have else "")
        conn.exec_driver_sql(f"ALTER TYPE {_q(conn, reference.name)} ADD VALUE {_literal(value)}{where}")
        have.insert(have.index(after) + 1 if after is not None else 0, value)


# table options PostgreSQL changes in place; the others (inheritance, partitioning, storage parameters, a
# deferrable primary key) are refused with a reason
_TOGGLES = {"UNLOGGED": ("SET UNLOGGED", "SET LOGGED"),
            "ROW LEVEL SECURITY": ("ENABLE ROW LEVEL SECURITY", "DISABLE ROW LEVEL SECURITY"),
            "FORCE ROW LEVEL SECURITY": ("FORCE ROW LEVEL SECURITY", "NO FORCE ROW LEVEL SECURITY")}


def _settable(option: str) -> bool:
    return option in _TOGGLES or option.startswith("COMMENT ") or option.startswith("PRIMARY KEY ")


def options_refusal(current, reference) -> str | None:
    other = {o for o in set(current) ^ set(reference) if not _settable(o)}
    if not other:
        return None
    return (f"table option(s) {', '.join(sorted(other))} cannot be changed automatically (inheritance, "
            "partitioning and storage parameters need the table rebuilt by hand)")


def set_options(ops, table: str, current, reference, schema: str | None, primary_key=()) -> None:
    """Toggles (UNLOGGED, row level security), comments (of the table and its columns) and a deferrable primary
    key (dropped and added again with the reference's columns; a key other tables reference makes PostgreSQL
    refuse, and the run fails rolled back)."""
    conn = ops.get_bind()
    qt = _qualified(conn, table, schema)
    for option, (on, off) in _TOGGLES.items():
        if (option in reference) != (option in current):
            conn.exec_driver_sql(f"ALTER TABLE {qt} {on if option in reference else off}")
    for option in sorted(set(current) - set(reference)):
        if option.startswith("COMMENT ON COLUMN "):
            column = option[len("COMMENT ON COLUMN "):].rsplit(" '", 1)[0]
            if not any(o.startswith(f"COMMENT ON COLUMN {column} '") for o in reference):
                conn.exec_driver_sql(f"COMMENT ON COLUMN {qt}.{column} IS NULL")
        elif option.startswith("COMMENT '") and not any(o.startswith("COMMENT '") for o in reference):
            conn.exec_driver_sql(f"COMMENT ON TABLE {qt} IS NULL")
    for option in sorted(set(reference) - set(current)):
        if option.startswith("COMMENT ON COLUMN "):
            column, text = option[len("COMMENT ON COLUMN "):].rsplit(" '", 1)
            conn.exec_driver_sql(f"COMMENT ON COLUMN {qt}.{column} IS '{text}")
        elif option.startswith("COMMENT '"):
            conn.exec_driver_sql(f"COMMENT ON TABLE {qt} IS {option[len('COMMENT '):]}")
    pk_now = next((o for o in current if o.startswith("PRIMARY KEY ")), "")
    pk_ref = next((o for o in reference if o.startswith("PRIMARY KEY ")), "")
    if pk_now != pk_ref and primary_key:
        name = conn.execute(sa.text("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = "
                                    "CAST(:t AS regclass) AND contype = 'p'"), {"t": qt}).scalar()
        cols = ", ".join(_q(conn, c) for c in primary_key)
        later = pk_ref[len("PRIMARY KEY "):]
        conn.exec_driver_sql(f"ALTER TABLE {qt} DROP CONSTRAINT {_q(conn, name)}")
        conn.exec_driver_sql(f"ALTER TABLE {qt} ADD CONSTRAINT {_q(conn, name)} PRIMARY KEY ({cols}) {later}")


def parents(options) -> list[str]:
    """The tables a table inherits from (``INHERITS (a, b)``) or is a partition of (``PARTITION OF p ...``)."""
    out: list[str] = []
    for o in options:
        if o.startswith("INHERITS (") and o.endswith(")"):
            out += [p.strip() for p in o[len("INHERITS ("):-1].split(",")]
        elif o.startswith("PARTITION OF "):
            out.append(o.split()[2])
    return [p[1:-1].replace('""', '"') if p.startswith('"') and p.endswith('"') else p for p in out]


def inherited_drop(change, live, reference) -> str | None:
    """A dropped column that tables inheriting it (children, partitions) keep in the reference: PostgreSQL
    would drop it from them too, destroying values the plan means to keep."""
    kept = [t.name for t in live.tables.values()
            if change.table in parents(t.options) and t.column(change.name) is not None
            and reference is not None and reference.tables.get(t.name) is not None
            and reference.tables[t.name].column(change.name) is not None]
    if not kept:
        return None
    return (f"PostgreSQL would also drop column {change.name} from {', '.join(kept)}, which inherit(s) it from "
            f"{change.table} and keep(s) it in the reference")


def implied_by_parents(changes: list, live) -> list:
    """Column changes PostgreSQL makes on inheriting tables (children, partitions) when it makes them on their
    parent: ADD / DROP / ALTER COLUMN on a parent recurse. Those of the children are not applied again."""
    on_parent = {(c.kind, c.table, c.name) for c in changes if c.kind in ("add_column", "drop_column", "alter_column")}
    out = []
    for c in changes:
        table = live.tables.get(c.table) if live is not None else None
        if c.kind in ("add_column", "drop_column", "alter_column") and table is not None and \
                any((c.kind, p, c.name) in on_parent for p in parents(table.options)):
            out.append(c)
    return out
