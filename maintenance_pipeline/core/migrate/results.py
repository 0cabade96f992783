"""What a migration plans and does, as frozen values that flow from step to step and into the report.

The executor fills a ``MigrationRecord`` as the migration goes (revisions applied, changes aligned, the
SQL it ran) and hands out its frozen ``MigrationResult`` (``freeze``), on success and with the error of a
rolled-back run alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..schema.model import Change


@dataclass(frozen=True)
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

    def status(self) -> dict:
        """The plan as a read-only job reports it (nothing is stamped): the database's own revision (None before
        Alembic), the baseline maintain_database would stamp it at, and what is pending."""
        return {"before": ",".join(self.current) or None, "baseline": self.stamp,
                "pending": [r for r, _ in self.pending]}


@dataclass
class MigrationRecord:
    """A migration in progress (the executor's and ``revisions.run_revisions``'s to fill)."""

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
    after_revisions: list[Change] | None = None  # the drift the revisions left (alignment's work); None: not reached
    cleaned: list[str] = field(default_factory=list)  # what a killed run left, removed under the lock first
    attempts: list[dict] = field(default_factory=list)  # each attempt at the transaction (attempts.py)
    measured: dict | None = None  # each statement's time, rows, locks, rewrites; the longest lock (measure.py)
    on_copy: bool = False  # a dry run rehearsed on a copy (nothing of the live database locked)

    def freeze(self) -> MigrationResult:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if values["after_revisions"] is not None:
            values["after_revisions"] = list(values["after_revisions"])
        for name in ("applied", "aligned", "refused", "sql", "drift_after", "checks", "cleaned", "attempts"):
            values[name] = list(values[name])  # copies: the record may go on, the result does not
        values["written"] = frozenset(self.written) if self.written is not None else None
        values["declared_rows"] = dict(self.declared_rows)
        if self.rows is not None:
            passed, detail, drops = self.rows
            values["rows"] = (passed, detail, list(drops))
        return MigrationResult(**values)


@dataclass(frozen=True)
class MigrationResult:
    """What a migration did (or, ``rolled_back``, tried and undid; ``dry_run``: would do)."""

    plan: MigrationPlan
    dry_run: bool
    align: str
    applied: list[dict] = field(default_factory=list)  # {"source", "description", "seconds"}
    aligned: list[Change] = field(default_factory=list)
    refused: list[Change] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    revision_after: str | None = None
    failing_revision: str | None = None
    drift_after: list[Change] = field(default_factory=list)
    rows: tuple | None = None  # (passed, detail, planned drops)
    written: frozenset[str] | None = None
    declared_rows: dict[str, str] = field(default_factory=dict)
    checks: list = field(default_factory=list)
    rolled_back: bool = False
    replanned: str | None = None
    after_revisions: list[Change] | None = None
    cleaned: list[str] = field(default_factory=list)  # PostgreSQL: the scratch databases of killed runs dropped
    attempts: list[dict] = field(default_factory=list)  # {"attempt", "waited_for_lock", "blockers", "seconds"}
    measured: dict | None = None  # {"statements": [...], "longest_lock": {...}, "transaction_seconds"}
    on_copy: bool = False  # a dry run rehearsed on a copy (nothing of the live database locked)

    def to_dict(self) -> dict:
        return {
            "revisions": {**self.plan.to_dict(), "after": self.revision_after},
            "applied": list(self.applied),
            "refused": [c.to_dict() for c in self.refused],
            "sql": list(self.sql),
            "dry_run": self.dry_run,
            "align": self.align,
            "cleaned": list(self.cleaned),
            "attempts": list(self.attempts),
            "measured": self.measured,
        }


