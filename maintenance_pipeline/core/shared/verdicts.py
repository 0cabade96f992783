"""Verdicts below the engines: a check's result (``Check``) and the rows check of a migration (``RowsVerdict``, the
walk over a backup's kept tables both engines run: ``compare_kept_rows``, ``merge_keyed``, ``merge_counted``). The
engines build them; verify and the report read them (``verify/results.py`` names them again for its readers)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from ..schema.model import Snapshot


CHECK_STATUSES = ("passed", "failed", "skipped")


@dataclass(frozen=True)
class Check:
    """One check's result. ``status``: passed, failed or skipped (a check the engine could not run, e.g. PostgreSQL
    without amcheck: it does not fail the run, and it is never reported as passed). Given by the one who builds the
    check, or, left empty, filled from the detail: ``skipped`` when it starts so, else from ``passed``."""

    name: str
    passed: bool
    detail: str
    status: str = ""

    def __post_init__(self) -> None:
        if not self.status:
            said = "skipped" if self.detail.startswith("skipped") else "passed" if self.passed else "failed"
            object.__setattr__(self, "status", said)
        elif self.status not in CHECK_STATUSES:
            raise ValueError(f"check {self.name}: status {self.status!r} is none of {', '.join(CHECK_STATUSES)}")

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "status": self.status, "detail": self.detail}


SAMPLE_KEYS = 3  # keys of missing or changed rows named per table


@dataclass(frozen=True)
class RowsVerdict:
    """The rows check of one migration, made inside its transaction before COMMIT (both dialects)."""

    passed: bool
    detail: str
    drops: list[dict]
    losses: list[dict]  # {"table", "rows", "keys"}: rows missing or changed that no revision declared
    error: str | None = None  # the comparison itself failed


SAMPLE_KEY_CHARS = 60  # of one key named (a key may be a long text)
SAMPLE_NAMES = 10  # tables named per list of a rows detail (declared changes, not compared, planned drops)


def _key_text(key) -> str:
    text = str(key)
    return text if len(text) <= SAMPLE_KEY_CHARS else text[:SAMPLE_KEY_CHARS] + "…"


def _first(items: list[str]) -> str:
    """At most ``SAMPLE_NAMES`` of ``items``, joined, with how many more: a detail does not grow with the schema."""
    more = f" (+{len(items) - SAMPLE_NAMES} more)" if len(items) > SAMPLE_NAMES else ""
    return ", ".join(items[:SAMPLE_NAMES]) + more


def describe_loss(loss: dict) -> str:
    """``goals: 3 row(s) missing or changed (keys: 'a', 'b', 'c')``."""
    keys = [_key_text(k) for k in (loss.get("keys") or [])[:SAMPLE_KEYS]]
    more = f" (key{'s' if len(keys) > 1 else ''}: {', '.join(keys)})" if keys else ""
    return f"{loss['table']}: {loss['rows']} row(s) missing or changed{more}"


def compare_kept_rows(backup_snapshot: Snapshot, live_snapshot: Snapshot, ignore, drops: list[dict], *,
                      count_rows: Callable[[str], int], count_values: Callable[[str, str], int],
                      missing_rows: Callable[[str, list[str], list[str] | None], tuple[int, list[str]]],
                      not_compared: dict[str, str] | None = None, failure_note: str = "",
                      only: Collection[str] | None = None, declared: Mapping[str, str] | None = None,
                      losses: list[dict] | None = None) -> tuple[bool, str]:
    """Every row of every kept table of the backup is still live with the same kept values: (passed, detail).

    By primary key when the backup's key columns are all kept, else as multisets of rows (a lost
    duplicate counts). The dialect runs the queries: ``count_rows(table)`` and ``count_values(table,
    column)`` on the backup, ``missing_rows(table, kept columns, key columns or None)`` -> (rows missing
    or changed, a few of their keys). ``drops`` gets the planned drops (``{"table", "column", "rows",
    "values"}``) as they are found, so a caller whose query fails midway still has those; ``losses`` (if
    given) gets ``{"table", "rows", "keys"}`` per table with rows missing or changed (undeclared ones).
    ``not_compared``: tables left out, with the reason (named in the detail; they do not fail the check).
    ``only``: look at these tables only (the caller knows the others did not change). ``declared``:
    table -> the revision that declared it changes its rows (``changes_rows``): reported with counts,
    not failed.
    """
    not_compared = not_compared or {}
    declared = declared or {}
    problems: list[dict] = []
    changed: list[str] = []
    compared = rows_total = 0
    for name, bt in sorted(backup_snapshot.tables.items()):
        if name in ignore or (only is not None and name not in only):
            continue
        n_rows = count_rows(name)
        lt = live_snapshot.tables.get(name)
        if lt is None:
            drops.append({"table": name, "column": None, "rows": n_rows, "values": None})
            continue
        live_cols = set(lt.column_names)
        kept = [c for c in bt.data_column_names if c in set(lt.data_column_names)]  # computed values are not data
        for col in bt.column_names:
            if col not in live_cols:
                drops.append({"table": name, "column": col, "rows": n_rows, "values": count_values(name, col)})
        if not kept or name in not_compared:
            continue
        keys = [c for c in bt.primary_key if c in live_cols] if bt.primary_key else []
        missing, sample = missing_rows(name, kept, keys if keys and len(keys) == len(bt.primary_key) else None)
        compared += 1
        rows_total += n_rows
        if missing and name in declared:
            changed.append(f"{name}: {missing} row(s) changed as revision {declared[name]} declares")
        elif missing:
            problems.append({"table": name, "rows": missing, "keys": list(sample)[:SAMPLE_KEYS]})
    if losses is not None:
        losses.extend(problems)
    skipped = "; not compared: " + _first([f"{t} ({why})" for t, why in sorted(not_compared.items())]) \
        if not_compared else ""
    dropped = "; planned drops: " + _first([
        f"{d['table']}.{d['column']} ({d['values']} values)" if d["column"] else f"{d['table']} ({d['rows']} rows)"
        for d in drops]) if drops else ""
    declared_text = "; declared changes: " + _first(changed) if changed else ""
    if problems:
        return False, "; ".join(describe_loss(p) for p in problems[:5]) + failure_note + skipped + declared_text \
            + dropped
    if not compared:
        return True, f"no kept table's rows were written{declared_text}{skipped}{dropped}"
    tables = f"{compared} kept table{'' if compared == 1 else 's'}"
    return True, f"all {rows_total} rows of {tables} present with the same values{declared_text}{skipped}{dropped}"


def merge_keyed(ref_rows: Iterable[tuple], live_rows: Iterable[tuple]) -> tuple[int, list[str]]:
    """Rows of ``ref_rows`` (``(key, value, …)`` ordered by ``key``) with no equal row in ``live_rows`` (same
    shape and order): (how many, a few of their keys). Two streams from two connections merged in
    Python, for the comparisons one SQL statement cannot make (two PostgreSQL databases; a SQLite
    transaction's own changes against the state at its BEGIN, which only another connection sees).
    A key the live side holds more than once (its own key may differ) matches any of its rows."""
    missing, sample = 0, []
    live = iter(live_rows)
    cur = next(live, None)
    for row in ref_rows:
        key, values = row[0], row[1:]
        while cur is not None and cur[0] < key:
            cur = next(live, None)
        found = set()
        while cur is not None and cur[0] == key:
            found.add(tuple(cur[1:]))
            cur = next(live, None)
        if tuple(values) not in found:
            missing += 1
            if len(sample) < SAMPLE_KEYS:
                sample.append(key)
    return missing, sample


def merge_counted(ref_rows: Iterable[tuple], live_rows: Iterable[tuple]) -> tuple[int, list[str]]:
    """Rows of the multiset ``ref_rows`` (``(row digest, n)`` ordered by digest) not in ``live_rows``: (how
    many, []): rows without a key have no key to name."""
    missing = 0
    live = iter(live_rows)
    cur = next(live, None)
    for digest, n in ref_rows:
        while cur is not None and cur[0] < digest:
            cur = next(live, None)
        have = cur[1] if cur is not None and cur[0] == digest else 0
        if have < n:
            missing += n - have
    return missing, []


# said with a failed comparison made after the run's commit: the application may have written since the backup
AFTER_COMMIT_NOTE = (" (compared with this run's backup after its commit: a change by the run and a write by "
                     "another session since the backup both count)")


