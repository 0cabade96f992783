"""Plain dataclasses for the data that flows between steps.

A ``Snapshot`` is a dialect-neutral picture of a schema; ``Change`` is one
difference between two snapshots. Both serialise to JSON-friendly dicts for
reports and manifests.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import TypeVar

CHANGE_KINDS = (
    "add_table",
    "drop_table",
    "add_column",
    "drop_column",
    "alter_column",
    "add_index",
    "drop_index",
    "add_unique",
    "drop_unique",
    "add_foreign_key",
    "drop_foreign_key",
    "alter_primary_key",
    "add_check",
    "drop_check",
    "alter_table",
    "rename_column",
    "rename_constraint",
    "rename_index",
    "add_object",
    "drop_object",
    "alter_object",
)

_P = TypeVar("_P")  # a payload type (``Change._payload``)

_COMPUTED = re.compile(r"\bGENERATED\s+ALWAYS\s+AS\s*\(", re.IGNORECASE)

# How a snapshot names an index member that is an expression, not a column.
EXPR = "<expr>"

# Kinds that never lose data or rewrite existing values. A rename changes a name only: what the tables accept and
# hold stays (SQLite renames a constraint by rebuilding the table, every row kept).
ADDITIVE_KINDS = frozenset({"add_table", "add_column", "add_index", "add_unique", "add_foreign_key",
                            "rename_constraint", "rename_index"})

# How a column's ``sequence`` names its sequence, after the options (``sequence_parts``).
SEQUENCE_NAME = ", SEQUENCE NAME "

# A table option saying the table is a virtual table's storage (SQLite's shadow tables): the virtual table (a
# ``SchemaObject``) makes and drops it, so the diff leaves it out; the rows checks still compare its rows.
SHADOW = "SHADOW"

# Schema objects (``SchemaObject.kind``) whose addition never changes what the tables accept or hold: a view
# reads, a sequence or a type is unused until something uses it. A trigger or a function can change writes.
ADDITIVE_OBJECTS = frozenset({"view", "materialized view", "sequence", "type", "virtual table"})


def sequence_parts(spec: str) -> tuple[str, str | None]:
    """(options, name or None) of a column's ``sequence``: ``"AS integer, START WITH 1, ..., NO CYCLE, SEQUENCE NAME
    t_id_seq"`` -> ``("AS integer, START WITH 1, ..., NO CYCLE", "t_id_seq")``."""
    options, sep, name = (spec or "").partition(SEQUENCE_NAME)
    return options, (name if sep else None)


def extends(old: tuple[str, ...], new: tuple[str, ...]) -> bool:
    """``new`` keeps every value of ``old`` in the same order (values only added): an additive enum change."""
    it = iter(new)
    return all(v in it for v in old)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as declared, e.g. "VARCHAR(50)", "DATETIME"
    nullable: bool = True
    default: str | None = None  # SQL text of the server default, None when there is none
    # comparison key of the type (see sqltypes.type_key); filled by the snapshot reader
    type_key: str = ""
    # the sequence the column takes its values from (a serial's, an identity's: one the column owns), its options
    # in the engine's words, comma-separated, then its name: "AS integer, START WITH 1, INCREMENT BY 1, MINVALUE 1,
    # MAXVALUE 2147483647, CACHE 1, NO CYCLE, SEQUENCE NAME t_id_seq" ("" = none; ``sequence_parts``); compared
    sequence: str = ""

    @property
    def computed(self) -> bool:
        """A generated column (``GENERATED ALWAYS AS (expr)``): its values are the expression's, not data."""
        return bool(_COMPUTED.search(self.type or ""))

    def ddl(self) -> str:
        parts = [self.type or "", "NULL" if self.nullable else "NOT NULL"]
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    # The engine's canonical text of what the index covers, without its name and table (method, members
    # with their order and collation, INCLUDE, WHERE, NULLS NOT DISTINCT); compared when both sides have one.
    definition: str = ""
    # The engine's own statement creating it (``CREATE INDEX ...``), used to create it exactly as it is.
    sql: str = field(default="", compare=False)


@dataclass(frozen=True)
class Check:
    """A CHECK (or other table constraint the model has no fields for: EXCLUDE) in the engine's canonical text."""

    name: str | None
    definition: str  # compared (SQLite: the expression; PostgreSQL: ``pg_get_constraintdef``)
    sql: str = field(default="", compare=False)  # the clause as written (``CHECK (...)``), to add it


@dataclass(frozen=True)
class UniqueConstraint:
    name: str | None
    columns: tuple[str, ...]
    options: str = ""  # "NULLS NOT DISTINCT", "DEFERRABLE ..." ("" = the defaults)


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str | None = None  # upper case, None for NO ACTION
    on_update: str | None = None
    # what else the engine keeps of the key: "MATCH FULL", "DEFERRABLE INITIALLY DEFERRED" ("" = the defaults)
    options: str = ""

    def describe(self) -> str:
        s = f"({', '.join(self.columns)}) -> {self.ref_table}({', '.join(self.ref_columns)})"
        if self.on_delete:
            s += f" ON DELETE {self.on_delete}"
        if self.on_update:
            s += f" ON UPDATE {self.on_update}"
        if self.options:
            s += f" {self.options}"
        return s


@dataclass(frozen=True)
class PrimaryKey:
    """A primary key as a named constraint (what a ``rename_constraint`` of it carries)."""

    name: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    uniques: tuple[UniqueConstraint, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[Check, ...] = ()
    # table properties in the engine's words, compared as a set: "STRICT", "WITHOUT ROWID", "UNLOGGED",
    # "INHERITS (parent)", "PARTITION BY ...", "PARTITION OF parent ...", "PRIMARY KEY DEFERRABLE ..."
    options: tuple[str, ...] = ()
    # the engine's own CREATE TABLE statement when it keeps one (SQLite): a rebuild can create the table from it
    sql: str = field(default="", compare=False)
    primary_key_name: str | None = None  # the primary key's constraint name (None: it has none)
    # the names (of keys, checks, indexes; None: "no name") the reference leaves to the engine: a models reference
    # names only what the models name, the server names the rest (``t_pkey``), and those names are not compared
    server_names: tuple[str | None, ...] = field(default=(), compare=False)

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def data_column_names(self) -> tuple[str, ...]:
        """The columns that hold data (not computed from others): what a rows comparison compares."""
        return tuple(c.name for c in self.columns if not c.computed)


@dataclass(frozen=True)
class SchemaObject:
    """Anything else the schema holds, compared by the engine's canonical definition: a view, a materialized
    view, a trigger, a function, a sequence, a type (enum, domain, composite)."""

    kind: str
    name: str  # functions: with their argument types, ``f(integer)``
    definition: str  # canonical: compared
    sql: str = field(default="", compare=False)  # the engine's statement creating it as it is
    drop_sql: str = field(default="", compare=False)  # the engine's statement dropping it (never CASCADE)
    # the statement turning another object of this name into this one in place ("": drop and create again)
    alter_sql: str = field(default="", compare=False)
    table: str | None = None  # the table a trigger is on
    reads: tuple[str, ...] = ()  # tables and views a view reads (dependency order)
    values: tuple[str, ...] = ()  # an enum's labels in order

    @property
    def key(self) -> str:
        return f"{self.kind} {self.name}"


# Objects made before the tables change (types and sequences a column may use, functions a default or
# trigger may call) and dropped after; the others (views, triggers) are dropped before the tables change and
# made after, so a view never stands in the way of a column change and always reads the final tables.
EARLY_OBJECTS = frozenset({"type", "sequence", "function"})


@dataclass(frozen=True)
class Snapshot:
    dialect: str  # "sqlite" | "postgresql" | ...
    tables: dict[str, Table] = field(default_factory=dict)
    objects: dict[str, SchemaObject] = field(default_factory=dict)  # by ``SchemaObject.key``

    def to_dict(self) -> dict:
        return {"dialect": self.dialect, "tables": {n: asdict(t) for n, t in sorted(self.tables.items())},
                "objects": {k: asdict(o) for k, o in sorted(self.objects.items())}}

    @property
    def fingerprint(self) -> str:
        """Stable sha256 over the meaning of the schema (names, type keys, keys, indexes)."""
        canon = {}
        for name, t in sorted(self.tables.items()):
            canon[name] = {
                "columns": [[c.name, c.type_key or c.type, c.nullable, c.default]
                            + ([c.sequence] if c.sequence else []) for c in t.columns],
                "pk": list(t.primary_key),
                "indexes": sorted([i.name, list(i.columns), i.unique, i.definition] for i in t.indexes),
                "uniques": sorted([list(u.columns), u.options] for u in t.uniques),
                "fks": sorted(
                    [list(f.columns), f.ref_table, list(f.ref_columns), f.on_delete or "", f.on_update or "",
                     f.options]
                    for f in t.foreign_keys
                ),
                "checks": sorted(c.definition for c in t.checks),
                "options": sorted(t.options),
            }
            # constraint names (compared since they are: a rename moves the fingerprint); absent when there is none
            names = sorted(str(x) for x in [t.primary_key_name, *(u.name for u in t.uniques),
                                            *(f.name for f in t.foreign_keys), *(c.name for c in t.checks)] if x)
            if names:
                canon[name]["names"] = names
        canon["\0objects"] = sorted([o.key, o.definition] for o in self.objects.values())
        blob = json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


# What a ``rename_constraint`` carries on each side (a primary key as a named constraint); with ``Index``, what a
# rename of either kind carries (``Change.ref_named`` / ``Change.cur_named``).
Constraint = PrimaryKey | UniqueConstraint | ForeignKey | Check
Named = Index | PrimaryKey | UniqueConstraint | ForeignKey | Check


@dataclass(frozen=True)
class Change:
    """One difference: applying it moves the target towards the reference.

    The payload is typed per kind: ``reference`` is what the reference has (add, alter and rename kinds), ``current``
    what the target has (drop, alter and rename kinds); the other side is None. Each is read through an accessor:

    * ``add_table`` / ``drop_table`` / ``alter_table``: a ``Table`` (``ref_table``, ``cur_table``);
    * ``add_column`` / ``drop_column`` / ``alter_column`` / ``rename_column``: a ``Column`` (``ref_column``,
      ``cur_column``; a rename's reference is the column under its new name);
    * ``add_index`` / ``drop_index`` / ``rename_index``: an ``Index`` (``ref_index``, ``cur_index``);
    * ``add_unique`` / ``drop_unique``: a ``UniqueConstraint`` (``ref_unique``, ``cur_unique``);
    * ``add_foreign_key`` / ``drop_foreign_key``: a ``ForeignKey`` (``ref_fk``, ``cur_fk``);
    * ``add_check`` / ``drop_check``: a ``Check`` (``ref_check``, ``cur_check``);
    * ``rename_constraint``: a ``PrimaryKey``, ``UniqueConstraint``, ``ForeignKey`` or ``Check`` (``ref_named``,
      ``cur_named``: any of these or an ``Index``, so they also read a rename of either kind, or any index or key);
    * ``alter_primary_key``: the key's column names, a tuple, empty when there is none (``ref_pk``, ``cur_pk``);
    * ``add_object`` / ``drop_object`` / ``alter_object``: a ``SchemaObject`` (``ref_object``, ``cur_object``).

    An accessor returns its side narrowed to that type, and raises TypeError naming the change when the side holds
    anything else (an accessor of another kind, or the side the kind leaves None): callers neither guess nor ignore
    the type. The payload is no part of the change's identity: equality, ``to_dict`` and the words leave it out.
    """

    kind: str  # one of CHANGE_KINDS
    table: str
    name: str | None = None  # column / index / constraint name, None for table-level kinds
    destructive: bool = False
    detail: str = ""
    # What the reference has and what the target has: the payload, by kind (the class docstring, the accessors).
    reference: object | None = field(default=None, compare=False, repr=False)
    current: object | None = field(default=None, compare=False, repr=False)

    def _payload(self, side: str, cls: type[_P]) -> _P:
        """One side's payload as ``cls``; TypeError naming the change when it is not one."""
        value = self.reference if side == "reference" else self.current
        if isinstance(value, cls):
            return value
        raise self._wrong(side, cls.__name__, value)

    def _wrong(self, side: str, wanted: str, value: object) -> TypeError:
        return TypeError(f"{self.describe()}: its {side} is {type(value).__name__}, not {wanted} (what each kind "
                         "carries: the Change class)")

    @property
    def ref_table(self) -> Table:
        return self._payload("reference", Table)

    @property
    def cur_table(self) -> Table:
        return self._payload("current", Table)

    @property
    def ref_column(self) -> Column:
        return self._payload("reference", Column)

    @property
    def cur_column(self) -> Column:
        return self._payload("current", Column)

    @property
    def ref_index(self) -> Index:
        return self._payload("reference", Index)

    @property
    def cur_index(self) -> Index:
        return self._payload("current", Index)

    @property
    def ref_unique(self) -> UniqueConstraint:
        return self._payload("reference", UniqueConstraint)

    @property
    def cur_unique(self) -> UniqueConstraint:
        return self._payload("current", UniqueConstraint)

    @property
    def ref_fk(self) -> ForeignKey:
        return self._payload("reference", ForeignKey)

    @property
    def cur_fk(self) -> ForeignKey:
        return self._payload("current", ForeignKey)

    @property
    def ref_check(self) -> Check:
        return self._payload("reference", Check)

    @property
    def cur_check(self) -> Check:
        return self._payload("current", Check)

    @property
    def ref_object(self) -> SchemaObject:
        return self._payload("reference", SchemaObject)

    @property
    def cur_object(self) -> SchemaObject:
        return self._payload("current", SchemaObject)

    @property
    def ref_pk(self) -> tuple[str, ...]:
        """The reference's primary key columns (``alter_primary_key``; empty: it has none)."""
        return self._payload("reference", tuple)

    @property
    def cur_pk(self) -> tuple[str, ...]:
        """The target's primary key columns (``alter_primary_key``; empty: it has none)."""
        return self._payload("current", tuple)

    @property
    def ref_named(self) -> Named:
        """The reference's index or key (a rename's new name; any add of an index or key)."""
        return self._named("reference", self.reference)

    @property
    def cur_named(self) -> Named:
        """The target's index or key (a rename's old name; any drop of an index or key)."""
        return self._named("current", self.current)

    def _named(self, side: str, value: object) -> Named:
        if isinstance(value, (Index, PrimaryKey, UniqueConstraint, ForeignKey, Check)):
            return value
        raise self._wrong(side, "an index or a key", value)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "table": self.table,
            "name": self.name,
            "destructive": self.destructive,
            "detail": self.detail,
        }

    @property
    def slot(self) -> str:
        """Where the change goes among the diff's steps (``diff.ORDER``): an object change by the object's kind
        (``EARLY_OBJECTS`` before the tables change, the others after)."""
        if not self.kind.endswith("_object"):
            return self.kind
        obj = self.reference if self.reference is not None else self.current
        early = getattr(obj, "kind", "") in EARLY_OBJECTS
        if self.kind == "drop_object":
            return "drop_object:last" if early else "drop_object:first"
        return f"{self.kind}:first" if early else f"{self.kind}:last"

    @property
    def noun(self) -> str:
        """What the change is about, for messages: ``goals.age``, ``goals``, ``view v_goals``."""
        return ".".join(p for p in (self.table, self.name) if p)

    def describe(self) -> str:
        """The fix, as alignment would apply it (``drop_index customers.ix_name ((full_name))``): the words of plans,
        refusals and what a run applied. Drift is worded for people by ``drift_text``."""
        return f"{self.kind} {self.noun}" + (f" ({self.detail})" if self.detail else "")

    @classmethod
    def from_dict(cls, d: dict) -> "Change":
        """A change as ``to_dict`` wrote it (a report's JSON), for its wording."""
        return cls(str(d.get("kind") or ""), str(d.get("table") or ""), d.get("name"), bool(d.get("destructive")),
                   str(d.get("detail") or ""))

    def drift_text(self) -> str:
        """The difference as what each side has, then the fix: ``the database has index customers.ix_name
        ((full_name)), which the reference lacks (fix: drop_index, destructive)``; ``the reference has column
        goals.completed_at (DATETIME NULL), which the database lacks (fix: add_column)``; ``column customers.phone
        differs, database -> reference: NULL -> NOT NULL (fix: alter_column, destructive)``. The kind stays the
        contract of the JSON; this is what people read (check, diff, alerts, annotations)."""
        verb, _, what = self.kind.partition("_")
        fix = f"(fix: {self.kind}{', destructive' if self.destructive else ''})"
        detail = f" ({self.detail})" if self.detail else ""
        if what == "object":
            thing = self.name or self.table
        elif what == "table":
            thing = f"table {self.table}"
        elif self.name:
            thing = f"{_THING.get(what, what)} {self.noun}"
        else:  # an unnamed key or check: its columns or definition say which
            thing = f"{_THING.get(what, what)} of {self.table}"
        if verb == "add":
            return f"the reference has {thing}{detail}, which the database lacks {fix}"
        if verb == "drop":
            return f"the database has {thing}{detail}, which the reference lacks {fix}"
        if self.kind == "alter_primary_key":
            thing = f"the primary key of {self.table}"
        elif self.kind == "alter_table":
            thing = f"the options of table {self.table}"
        if verb == "alter":
            return f"{thing} differs, database -> reference: {self.detail or '?'} {fix}"
        if self.kind == "rename_column":
            return f"column {self.noun} of the database is {self.table}.{self.detail.partition(' -> ')[2] or '?'} in " \
                   f"the reference, a declared rename {fix}"
        return f"a name differs, database -> reference: {self.detail or self.noun} {fix}"


# what a change's kind is about, in words (``Change.drift_text``)
_THING = {"column": "column", "index": "index", "unique": "unique key", "foreign_key": "foreign key",
          "check": "check", "primary_key": "primary key", "constraint": "constraint"}


# What a target's ``ignore:`` may name, each as ``<kind> <name>``: an index or a constraint (a unique key, foreign key
# or check) with its table (``index customers.ix_customers_full_name``, ``constraint orders.fk_orders_customer``); a
# trigger or a policy by its name, or with its table (``trigger customers.trg_audit``); any other schema object by
# its name (``view v_report``; ``function f`` is every ``f(...)``, ``function f(integer)`` one of them); ``table t``
# is ``ignore_tables``. Ignored on both sides: never reported, never aligned.
IGNORE_KINDS = ("index", "constraint", "table", "view", "materialized view", "trigger", "function", "sequence", "type",
                "policy", "virtual table")
_IGNORE_IN_TABLE = ("index", "constraint")
_IGNORE_EXAMPLE = "e.g. index customers.ix_customers_full_name"


def parse_ignore(entry) -> tuple[str, str | None, str]:
    """(kind, table or None, name) of one ``ignore:`` entry; ValueError saying how to write it."""
    text = " ".join(str(entry).split())
    kind = next((k for k in sorted(IGNORE_KINDS, key=len, reverse=True) if text.lower().startswith(k + " ")), None)
    if kind is None:
        raise ValueError(f"{entry!r} does not say what it names; write '<kind> <name>' with kind one of "
                         f"{', '.join(IGNORE_KINDS)} ({_IGNORE_EXAMPLE})")
    name = text[len(kind) + 1:].strip()
    if kind in ("trigger", "policy") and " on " in name:  # as PostgreSQL names them: ``trigger trg on customers``
        obj, _, table = name.partition(" on ")
        return kind, table.strip(), obj.strip()
    table, dot, obj = name.partition(".")
    if kind in _IGNORE_IN_TABLE:
        if not (dot and table and obj):
            raise ValueError(f"{entry!r}: name the {kind} with its table, '{kind} <table>.<name>' ({_IGNORE_EXAMPLE})")
        return kind, table, obj
    if kind in ("trigger", "policy") and dot and table and obj:
        return kind, table, obj
    return kind, None, name
