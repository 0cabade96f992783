"""What a migration plans and does, as plain values that flow from step to step and into the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..schema.model import Change


@dataclass
class MigrationPlan:
    has_version_table: bool
    current: tuple[str, ...]
    stamp: str | None
    pending: list[tuple[str, str]]  # (revision, message) in the order they will run

    def to_dict(self) -> dict:
        return {
            "before": ",".join(self.current) or self.stamp or None,
            "stamp": self.stamp,
            "pending": [r for r, _ in self.pending],
        }


@dataclass
class MigrationResult:
    plan: MigrationPlan
    dry_run: bool
    align: str
    applied: list[dict] = field(default_factory=list)  # {"source", "description", "seconds"}
    aligned: list[Change] = field(default_factory=list)
    refused: list[Change] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    revision_after: str | None = None
    failing_revision: str | None = None  # the revision running when a failure happened
    drift_after: list[Change] = field(default_factory=list)  # what the plan leaves (seen inside the transaction)
    rows: tuple[bool, str, list[dict]] | None = None  # rows_preserved, decided inside the transaction
    written: set[str] | None = None  # PostgreSQL: tables whose existing rows the migration may have changed
    declared_rows: dict[str, str] = field(default_factory=dict)  # table -> revision declaring changes_rows
    checks: list = field(default_factory=list)  # the user checks as run inside the transaction
    rolled_back: bool = False  # the run failed: everything in ``applied`` was undone
    replanned: str | None = None  # the database moved between the diff step and the migration: what changed

    def to_dict(self) -> dict:
        return {
            "revisions": {**self.plan.to_dict(), "after": self.revision_after},
            "applied": self.applied,
            "refused": [c.to_dict() for c in self.refused],
            "sql": self.sql,
            "dry_run": self.dry_run,
            "align": self.align,
        }


