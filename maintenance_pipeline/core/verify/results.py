"""Verify's results: ``VerifyResult`` (what ``verify.verify_target`` returns, its ``Check`` list: ``Check`` itself and
the rows walk both engines run are on the floor below them, ``shared/verdicts.py``), foreign-key summaries and the
restore's manifest comparison.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


from ..config import Target
from ..schema.model import Change
from ..shared.verdicts import Check

__all__ = ["Check", "Verification", "VerifyResult", "fmt_fk", "introduced_violations", "matches_manifest",
           "UNCHANGED_ROWS"]


@dataclass
class Verification:
    """A verification in progress (``checks.verify_target`` fills it, then hands out ``freeze()``)."""

    checks: list[Check] = field(default_factory=list)
    drift_after: list[Change] = field(default_factory=list)
    tables_after: dict = field(default_factory=dict)
    planned_drops: list[dict] = field(default_factory=list)
    fingerprint: str = ""
    measures: dict = field(default_factory=dict)

    def freeze(self) -> VerifyResult:
        return VerifyResult(list(self.checks), list(self.drift_after), dict(self.tables_after),
                            list(self.planned_drops), self.fingerprint, dict(self.measures))


@dataclass(frozen=True)
class VerifyResult:
    """What a verification found: its checks, the drift left, the tables after, the planned drops."""

    checks: list[Check] = field(default_factory=list)
    drift_after: list[Change] = field(default_factory=list)
    tables_after: dict = field(default_factory=dict)
    planned_drops: list[dict] = field(default_factory=list)
    fingerprint: str = ""
    # numbers the catalog plots over nights: fk_orphans (rows pointing at a missing parent, the run's own or
    # not), integrity_seconds (when the engine's check ran on the live database)
    measures: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def fmt_fk(c: Counter) -> str:
    return ", ".join(f"{t} -> {p}: {n}" for (t, p), n in sorted(c.items()))


def introduced_violations(now: Counter, before: Counter) -> Counter:
    """Foreign-key violations per (table, parent) that ``now`` has beyond ``before``."""
    return Counter({k: n - before.get(k, 0) for k, n in now.items() if n > before.get(k, 0)})


def matches_manifest(target: Target, out: VerifyResult, manifest: dict, full_fp: str) -> Check:
    """restore: the schema fingerprint and row counts of the restored backup's manifest.

    Compared with the restored database as the restore itself measured it (``manifest["measured"]``:
    SQLite on its own connection before any other commit, PostgreSQL inside its transaction), so rows the
    application writes after the restore are not taken for a wrong restore; without that measurement,
    with the database as it is now."""
    measured = manifest.get("measured") or {}
    want_fp = manifest.get("fingerprint")
    want_rows = manifest.get("row_counts") or {}
    if measured:
        got_fp, got_rows, exact = measured.get("fingerprint"), measured.get("row_counts") or {}, measured.get("exact")
    else:
        got_fp, got_rows, exact = full_fp, {t: v["rows"] for t, v in out.tables_after.items()}, True
    diffs = [t for t in set(want_rows) | set(got_rows)
             if t not in target.ignore_tables and want_rows.get(t) != got_rows.get(t)]
    fp_ok = want_fp in (None, got_fp)
    if not exact and fp_ok:
        return Check("matches_restored_backup", True,
                     "schema fingerprint equals the backup's manifest; row counts not compared: another session "
                     "committed between the restore and its check, so they are no longer the backup's alone")
    return Check("matches_restored_backup", fp_ok and not diffs,
                 "schema fingerprint and row counts equal the backup's manifest" if fp_ok and not diffs
                 else f"differs from the backup: fingerprint {'ok' if fp_ok else 'differs'}; "
                      f"row counts differ for {', '.join(sorted(diffs)) or 'none'}")


# verify_database writes no row: a row that differs from this run's backup was written by another session
# (the application), which is not a loss; comparing would only turn the application's own writes into
# failed runs and alerts (and cost a full read of both copies, on PostgreSQL a scratch restore). So the check is
# skipped, with that reason: it does not fail the run, and it never reads as a passed comparison.
UNCHANGED_ROWS = Check("rows_preserved", True, "skipped: this run changed no row (verify_database only reads): rows "
                                               "are compared with the backup in maintain_database runs")
