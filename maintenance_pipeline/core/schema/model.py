"""Plain dataclasses for the data that flows between steps.

A ``Snapshot`` is a dialect-neutral picture of a schema; ``Change`` is one
difference between two snapshots. Both serialise to JSON-friendly dicts for
reports and manifests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

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
)

# How a snapshot names an index member that is an expression, not a column.
EXPR = "<expr>"

# Kinds that never lose data or rewrite existing values.
ADDITIVE_KINDS = frozenset({"add_table", "add_column", "add_index", "add_unique", "add_foreign_key"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # as declared, e.g. "VARCHAR(50)", "DATETIME"
    nullable: bool = True
    default: str | None = None  # SQL text of the server default, None when there is none
    # comparison key of the type (see sqltypes.type_key); filled by the snapshot reader
    type_key: str = ""

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


@dataclass(frozen=True)
class UniqueConstraint:
    name: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str | None = None  # upper case, None for NO ACTION
    on_update: str | None = None

    def describe(self) -> str:
        s = f"({', '.join(self.columns)}) -> {self.ref_table}({', '.join(self.ref_columns)})"
        if self.on_delete:
            s += f" ON DELETE {self.on_delete}"
        if self.on_update:
            s += f" ON UPDATE {self.on_update}"
        return s


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()
    uniques: tuple[UniqueConstraint, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class Snapshot:
    dialect: str  # "sqlite" | "postgresql" | ...
    tables: dict[str, Table] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"dialect": self.dialect, "tables": {n: asdict(t) for n, t in sorted(self.tables.items())}}

    @property
    def fingerprint(self) -> str:
        """Stable sha256 over the meaning of the schema (names, type keys, keys, indexes)."""
        canon = {}
        for name, t in sorted(self.tables.items()):
            canon[name] = {
                "columns": [[c.name, c.type_key or c.type, c.nullable, c.default] for c in t.columns],
                "pk": list(t.primary_key),
                "indexes": sorted([i.name, list(i.columns), i.unique] for i in t.indexes),
                "uniques": sorted(list(u.columns) for u in t.uniques),
                "fks": sorted(
                    [list(f.columns), f.ref_table, list(f.ref_columns), f.on_delete or "", f.on_update or ""]
                    for f in t.foreign_keys
                ),
            }
        blob = json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Change:
    """One difference: applying it moves the target towards the reference."""

    kind: str  # one of CHANGE_KINDS
    table: str
    name: str | None = None  # column / index / constraint name, None for table-level kinds
    destructive: bool = False
    detail: str = ""
    # What the reference has (for add/alter kinds) and what the target has (for drop/alter kinds):
    # a Table, Column, Index, UniqueConstraint, ForeignKey or a tuple of pk column names.
    reference: object | None = field(default=None, compare=False, repr=False)
    current: object | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "table": self.table,
            "name": self.name,
            "destructive": self.destructive,
            "detail": self.detail,
        }

    def describe(self) -> str:
        target = f"{self.table}.{self.name}" if self.name else self.table
        return f"{self.kind} {target}" + (f" ({self.detail})" if self.detail else "")
