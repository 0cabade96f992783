"""Verify: the checks of SPEC §3, each passed/failed with a one-line detail.

Heavy reads stay off the live file where the verified backup copy can answer
(``verify_database`` changes nothing, so the copy taken by the run *is* the live
schema and data at that moment), and rows are compared inside SQLite by ATTACHing
the backup instead of hashing them in Python.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from .config import Target
from .dburl import open_engine, sqlite_path, translate_error
from .diff import diff
from .model import Change, Snapshot
from .snapshot import table_counts, take_snapshot


@dataclass
class Check:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class VerifyResult:
    checks: list[Check] = field(default_factory=list)
    drift_after: list[Change] = field(default_factory=list)
    tables_after: dict = field(default_factory=dict)
    planned_drops: list[dict] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _open_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.execute("PRAGMA mmap_size=2147483648")
    return conn


def integrity(path: Path) -> tuple[bool, str]:
    conn = _open_ro(path)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    finally:
        conn.close()
    ok = rows == ["ok"]
    return ok, "ok" if ok else f"{len(rows)} problem(s): " + "; ".join(rows[:3])


def fk_check(path: Path) -> Counter:
    """Rows whose declared foreign key points at a missing parent, enforced or not: (table, parent) -> n.

    Same counting as the migration's own check (a key SQLite cannot check, "foreign key mismatch",
    counts once instead of failing the whole check).
    """
    from .migrate import fk_violations

    engine = open_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return fk_violations(conn)
    finally:
        engine.dispose()


def _fmt_fk(c: Counter) -> str:
    return ", ".join(f"{t} -> {p}: {n}" for (t, p), n in sorted(c.items()))


def rows_preserved(live: Path, backup: Path, backup_snapshot: Snapshot, live_snapshot: Snapshot,
                   ignore: tuple[str, ...]) -> tuple[Check, list[dict]]:
    """Every row of every kept table of the backup is still in the live file with the same kept values."""
    conn = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
    drops: list[dict] = []
    problems: list[str] = []
    compared = rows_total = 0
    try:
        conn.execute("PRAGMA mmap_size=2147483648")
        conn.execute("ATTACH DATABASE ? AS bk", (f"file:{backup}?mode=ro",))
        for name, bt in sorted(backup_snapshot.tables.items()):
            if name in ignore:
                continue
            n_rows = conn.execute(f"SELECT count(*) FROM bk.{_q(name)}").fetchone()[0]
            lt = live_snapshot.tables.get(name)
            if lt is None:
                drops.append({"table": name, "column": None, "rows": n_rows, "values": None})
                continue
            live_cols = set(lt.column_names)
            kept = [c for c in bt.column_names if c in live_cols]
            for c in bt.column_names:
                if c not in live_cols:
                    values = conn.execute(f"SELECT count({_q(c)}) FROM bk.{_q(name)}").fetchone()[0]
                    drops.append({"table": name, "column": c, "rows": n_rows, "values": values})
            if not kept:
                continue
            keys = [c for c in bt.primary_key if c in live_cols] if bt.primary_key else []
            if keys and len(keys) == len(bt.primary_key):
                join = " AND ".join(f"m.{_q(c)} = b.{_q(c)}" for c in keys)
                same = " AND ".join(f"m.{_q(c)} IS b.{_q(c)}" for c in kept if c not in keys) or "1"
                missing = conn.execute(
                    f"SELECT count(*) FROM bk.{_q(name)} AS b WHERE NOT EXISTS "
                    f"(SELECT 1 FROM main.{_q(name)} AS m WHERE {join} AND {same})"
                ).fetchone()[0]
            else:  # no primary key: whole rows of kept columns as multisets (a lost duplicate counts)
                cols = ", ".join(_q(c) for c in kept)
                on = " AND ".join(f"m.{_q(c)} IS b.{_q(c)}" for c in kept)
                missing = conn.execute(
                    f"SELECT coalesce(sum(b.mp_n_ - coalesce(m.mp_n_, 0)), 0) FROM "
                    f"(SELECT {cols}, count(*) AS mp_n_ FROM bk.{_q(name)} GROUP BY {cols}) AS b LEFT JOIN "
                    f"(SELECT {cols}, count(*) AS mp_n_ FROM main.{_q(name)} GROUP BY {cols}) AS m ON {on} "
                    f"WHERE coalesce(m.mp_n_, 0) < b.mp_n_"
                ).fetchone()[0]
            compared += 1
            rows_total += n_rows
            if missing:
                problems.append(f"{name}: {missing} row(s) missing or changed")
    except sqlite3.DatabaseError as e:
        return Check("rows_preserved", False, f"could not compare rows: {e}"), drops
    finally:
        conn.close()
    dropped = "; planned drops: " + ", ".join(
        f"{d['table']}.{d['column']} ({d['values']} values)" if d["column"] else f"{d['table']} ({d['rows']} rows)"
        for d in drops) if drops else ""
    if problems:
        return Check("rows_preserved", False, "; ".join(problems[:5]) + dropped), drops
    return Check("rows_preserved", True,
                 f"all {rows_total} rows of {compared} kept tables present with the same values{dropped}"), drops


def run_user_check(conn: sa.Connection, check) -> Check:
    try:
        value = conn.exec_driver_sql(check.sql).scalar()
    except sa.exc.DBAPIError as e:
        first = " ".join(str(e.orig).split())[:200]
        return Check(check.name, False, f"SQL failed: {first}")
    ok = value == check.expect or str(value) == str(check.expect)
    return Check(check.name, ok, f"returned {value!r}, expected {check.expect!r}")


def verify_target(target: Target, reference: Snapshot, *, backup_path: Path | None, backup_verified: bool,
                  backup_detail: str = "", mode: str = "maintain", refused: list[Change] = (),
                  restored_manifest: dict | None = None, planned_drift: list[Change] | None = None) -> VerifyResult:
    """Run every check. ``mode``: maintain (changes were made), verify (nothing changed), restore.

    ``planned_drift``: for a dry run, what the planned changes would leave (computed on a scratch
    copy); the schema check then judges the plan, since the target itself was not changed.
    """
    out = VerifyResult()
    live_path = sqlite_path(target.url)
    engine = open_engine(target.url)
    try:
        with engine.connect() as conn:
            live = take_snapshot(conn, ignore_tables=target.ignore_tables)
            out.fingerprint = live.fingerprint
            out.tables_after = table_counts(conn, sorted(live.tables))
            out.drift_after = diff(live, reference, ignore_tables=target.ignore_tables)
            user = [run_user_check(conn, c) for c in target.checks]
    except sa.exc.DBAPIError as e:
        raise translate_error(e, target.url) from None
    finally:
        engine.dispose()

    # schema
    if out.drift_after:
        names = "; ".join(c.describe() for c in out.drift_after[:8])
        more = f" (+{len(out.drift_after) - 8} more)" if len(out.drift_after) > 8 else ""
        hint = " — destructive changes refused under align: additive" if refused else ""
        schema = Check("schema_matches_reference", False,
                       f"{len(out.drift_after)} difference(s): {names}{more}{hint}")
    else:
        schema = Check("schema_matches_reference", True, f"{len(live.tables)} tables equal the reference")
    if mode == "restore":
        schema = Check(schema.name, True, ("reported only in restore: " + schema.detail))
    elif planned_drift is not None:
        left = "; ".join(c.describe() for c in planned_drift[:8])
        schema = Check(schema.name, not planned_drift,
                       "dry run, nothing changed: the planned changes would make the schema equal the reference"
                       if not planned_drift else f"dry run: the planned changes would leave {len(planned_drift)} "
                       f"difference(s): {left}")
    out.checks.append(schema)

    if live_path is None:  # other dialects: added with PostgreSQL support
        out.checks.extend(user)
        return out

    # integrity
    if mode == "verify" and backup_path is not None and backup_verified:
        out.checks.append(Check("integrity", True, "ok (PRAGMA integrity_check on this run's backup, a consistent "
                                                   "copy of the live file; the live file was not read twice)"))
    else:
        ok, detail = integrity(live_path)
        out.checks.append(Check("integrity", ok, f"PRAGMA integrity_check: {detail}"))

    # foreign keys
    if mode == "verify" and backup_path is not None:
        now = fk_check(backup_path)
        out.checks.append(Check("foreign_keys", not now,
                                "no row points at a missing parent" if not now else
                                f"{sum(now.values())} orphan row(s): {_fmt_fk(now)}"))
    else:
        now = fk_check(live_path)
        before = fk_check(backup_path) if backup_path is not None else Counter()
        introduced = Counter({k: n - before.get(k, 0) for k, n in now.items() if n > before.get(k, 0)})
        if introduced:
            out.checks.append(Check("foreign_keys", False, f"this run introduced {sum(introduced.values())} "
                                                           f"orphan row(s): {_fmt_fk(introduced)}"))
        elif now:
            out.checks.append(Check("foreign_keys", True, f"no new orphans; {sum(now.values())} orphan row(s) "
                                                          f"existed before this run: {_fmt_fk(now)}"))
        else:
            out.checks.append(Check("foreign_keys", True, "no row points at a missing parent"))

    # rows
    if backup_path is not None and mode != "restore":
        bconn_engine = open_engine(f"sqlite:///{backup_path}")
        try:
            with bconn_engine.connect() as bconn:
                bsnap = take_snapshot(bconn, ignore_tables=target.ignore_tables)
        finally:
            bconn_engine.dispose()
        check, out.planned_drops = rows_preserved(live_path, backup_path, bsnap, live, target.ignore_tables)
        out.checks.append(check)
    elif mode == "restore" and restored_manifest is not None:
        want_fp = restored_manifest.get("fingerprint")
        want_rows = restored_manifest.get("row_counts") or {}
        got_rows = {t: v["rows"] for t, v in out.tables_after.items()}
        diffs = [t for t in set(want_rows) | set(got_rows)
                 if t not in target.ignore_tables and want_rows.get(t) != got_rows.get(t)]
        # the manifest's fingerprint covers every table (ignored ones too): compare like with like
        engine = open_engine(target.url)
        try:
            with engine.connect() as conn:
                full_fp = take_snapshot(conn).fingerprint
        finally:
            engine.dispose()
        fp_ok = want_fp in (None, full_fp)
        out.checks.append(Check("matches_restored_backup", fp_ok and not diffs,
                                "schema fingerprint and row counts equal the backup's manifest" if fp_ok and not diffs
                                else f"differs from the backup: fingerprint {'ok' if fp_ok else 'differs'}; "
                                     f"row counts differ for {', '.join(sorted(diffs)) or 'none'}"))

    out.checks.append(Check("backup_verified", bool(backup_verified),
                            backup_detail or ("verified" if backup_verified else "backup not verified")))
    out.checks.extend(user)
    return out
