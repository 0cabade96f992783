"""Verify: the checks of SPEC §3, each passed/failed with a one-line detail.

Heavy reads stay off the live file where the verified backup copy can answer
(``verify_database`` changes nothing, so the copy taken by the run *is* the live
schema and data at that moment), and rows are compared inside SQLite by ATTACHing
the backup instead of hashing them in Python.

PostgreSQL (in the target's ``schema``):

* ``integrity``: ``amcheck`` (``bt_index_check``, ``verify_heapam``) when installed and allowed,
  else a passed check whose detail says it was skipped and why (``pg_checks.integrity``);
* ``foreign_keys``: an anti-join per declared key, ``NOT VALID`` keys named in the detail. In
  ``verify`` mode every violation fails; after ``maintain`` (and ``restore``) only violations this
  run introduced fail: when there are any, the backup is restored into a scratch database to count
  its own (``pg_backup.scratch_restore``);
* ``rows_preserved``: the backup restored into a scratch database (``pg_backup.scratch_restore``)
  and compared with the live one (``pg_backup.compare_rows``); a role that may not create a
  database gets a failed check saying so;
* ``backup_verified``, ``matches_restored_backup`` and user checks as on SQLite (each user check
  in its own savepoint, so a failing one does not abort the others).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from . import pg_checks
from .config import Target
from .dburl import open_engine, sqlite_path, translate_error
from .diff import diff
from .errors import MaintenanceError
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
    # a savepoint on servers: a failed statement would abort the transaction for every later check
    savepoint = conn.begin_nested() if conn.dialect.name != "sqlite" else None
    try:
        value = conn.exec_driver_sql(check.sql).scalar()
    except sa.exc.DBAPIError as e:
        if savepoint is not None:
            savepoint.rollback()
        first = " ".join(str(e.orig).split())[:200]
        return Check(check.name, False, f"SQL failed: {first}")
    if savepoint is not None:
        savepoint.commit()
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
    pg_schema = target.schema if live_path is None else None
    pg_live: dict = {}
    engine = open_engine(target.url)
    try:
        with engine.connect() as conn:
            pg = conn.dialect.name == "postgresql"
            if pg and pg_schema:  # unqualified names in user checks resolve in the target's schema
                conn.execute(sa.text("SELECT set_config('search_path', :v, false)"),
                             {"v": pg_checks.quote_ident(pg_schema) + (", public" if pg_schema != "public" else "")})
            live = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=pg_schema)
            out.fingerprint = live.fingerprint
            out.tables_after = table_counts(conn, sorted(live.tables), schema=pg_schema)
            out.drift_after = diff(live, reference, ignore_tables=target.ignore_tables)
            if pg:
                pg_live["integrity"] = pg_checks.integrity(conn, pg_schema)
                pg_live["fk"] = pg_checks.fk_violations(conn, pg_schema)
                pg_live["not_valid"] = pg_checks.not_valid_foreign_keys(conn, pg_schema)
                if mode == "restore" and restored_manifest is not None:
                    pg_live["full_fp"] = take_snapshot(conn, schema=pg_schema).fingerprint
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

    if live_path is None:
        if pg_live:
            out.checks.extend(_postgres_checks(target, out, live, pg_live, backup_path=backup_path, mode=mode,
                                               restored_manifest=restored_manifest))
            out.checks.append(Check("backup_verified", bool(backup_verified),
                                    backup_detail or ("verified" if backup_verified else "backup not verified")))
        out.checks.extend(user)  # other dialects: the schema and user checks only
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
        # the manifest's fingerprint covers every table (ignored ones too): compare like with like
        engine = open_engine(target.url)
        try:
            with engine.connect() as conn:
                full_fp = take_snapshot(conn).fingerprint
        finally:
            engine.dispose()
        out.checks.append(_matches_manifest(target, out, restored_manifest, full_fp))

    out.checks.append(Check("backup_verified", bool(backup_verified),
                            backup_detail or ("verified" if backup_verified else "backup not verified")))
    out.checks.extend(user)
    return out


def _matches_manifest(target: Target, out: VerifyResult, manifest: dict, full_fp: str) -> Check:
    """restore: the schema fingerprint and row counts of the restored backup's manifest."""
    want_fp = manifest.get("fingerprint")
    want_rows = manifest.get("row_counts") or {}
    got_rows = {t: v["rows"] for t, v in out.tables_after.items()}
    diffs = [t for t in set(want_rows) | set(got_rows)
             if t not in target.ignore_tables and want_rows.get(t) != got_rows.get(t)]
    fp_ok = want_fp in (None, full_fp)
    return Check("matches_restored_backup", fp_ok and not diffs,
                 "schema fingerprint and row counts equal the backup's manifest" if fp_ok and not diffs
                 else f"differs from the backup: fingerprint {'ok' if fp_ok else 'differs'}; "
                      f"row counts differ for {', '.join(sorted(diffs)) or 'none'}")


# ------------------------------------------------------------------------------ PostgreSQL


def _scrub(message: str, *urls: str) -> str:
    """A message with any password of ``urls`` replaced (a scratch URL carries the target's credentials)."""
    from sqlalchemy.engine import make_url

    for url in urls:
        try:
            password = make_url(url).password
        except Exception:  # noqa: BLE001 - only for a message
            continue
        if password:
            message = message.replace(str(password), "***")
    return " ".join(message.split())


def _scratch_error(e: BaseException, target: Target) -> str:
    if isinstance(e, sa.exc.DBAPIError):
        e = translate_error(e, target.url)
    text = str(e) if isinstance(e, MaintenanceError) else f"{type(e).__name__}: {e}"
    if "permission denied to create database" in text.lower() and "createdb" not in text.lower():
        text += " (the role needs CREATEDB to restore the backup into a scratch database)"
    return _scrub(text, target.url)


def _compare_with_backup(target: Target, live: Snapshot, backup_path: Path, *, rows: bool,
                         fk_before: bool) -> dict:
    """Restore the backup into a scratch database once: rows compared, the backup's own FK violations.

    Returns ``{"rows": (passed, detail, drops) | None, "fk_before": Counter | None, "error": str | None}``.
    """
    out: dict = {"rows": None, "fk_before": None, "error": None}
    try:
        from .pg_backup import compare_rows, scratch_restore
    except ImportError as e:
        out["error"] = f"PostgreSQL backup support is not available ({e})"
        return out
    schema = target.schema
    try:
        with scratch_restore(backup_path, target.url, schema=schema) as scratch_url:
            engine = open_engine(scratch_url)
            try:
                with engine.connect() as sconn:
                    bsnap = take_snapshot(sconn, ignore_tables=target.ignore_tables, schema=schema)
                    if fk_before:
                        out["fk_before"] = pg_checks.fk_violations(sconn, schema)
            finally:
                engine.dispose()
            if rows:
                out["rows"] = compare_rows(target.url, scratch_url, bsnap, live, target.ignore_tables,
                                           schema=schema)
    except Exception as e:  # noqa: BLE001 - any failure is a failed check with its reason, never a crash
        out["error"] = _scratch_error(e, target)
    return out


def _postgres_checks(target: Target, out: VerifyResult, live: Snapshot, pg_live: dict, *,
                     backup_path: Path | None, mode: str, restored_manifest: dict | None) -> list[Check]:
    checks: list[Check] = []
    ok, detail = pg_live["integrity"]
    checks.append(Check("integrity", ok, detail))

    now: Counter = pg_live["fk"]
    not_valid: list[str] = pg_live["not_valid"]
    nv = (f"; NOT VALID (not enforced for old rows, their rows checked too): {', '.join(not_valid[:5])}"
          + (f" (+{len(not_valid) - 5} more)" if len(not_valid) > 5 else "")) if not_valid else ""
    want_rows = backup_path is not None and mode != "restore"
    want_fk_before = bool(now) and mode != "verify" and backup_path is not None
    scratch = _compare_with_backup(target, live, backup_path, rows=want_rows, fk_before=want_fk_before) \
        if (want_rows or want_fk_before) else {"rows": None, "fk_before": None, "error": None}

    if not now:
        checks.append(Check("foreign_keys", True, "no row points at a missing parent (one anti-join per declared "
                                                  f"key){nv}"))
    elif mode == "verify":
        checks.append(Check("foreign_keys", False, f"{sum(now.values())} orphan row(s): {_fmt_fk(now)}{nv}"))
    else:
        before = scratch["fk_before"] if backup_path is not None else Counter()
        if before is None:
            checks.append(Check("foreign_keys", False,
                                f"{sum(now.values())} orphan row(s): {_fmt_fk(now)}; could not compare with the "
                                f"backup ({scratch['error']}){nv}"))
        else:
            introduced = Counter({k: n - before.get(k, 0) for k, n in now.items() if n > before.get(k, 0)})
            if introduced:
                checks.append(Check("foreign_keys", False, f"this run introduced {sum(introduced.values())} orphan "
                                                           f"row(s): {_fmt_fk(introduced)}{nv}"))
            else:
                checks.append(Check("foreign_keys", True, f"no new orphans; {sum(now.values())} orphan row(s) "
                                                          f"existed before this run: {_fmt_fk(now)}{nv}"))

    if want_rows:
        if scratch["rows"] is None:
            checks.append(Check("rows_preserved", False, "could not restore the backup into a scratch database to "
                                                         f"compare rows: {scratch['error']}"))
        else:
            passed, detail, drops = scratch["rows"]
            out.planned_drops = list(drops or [])
            checks.append(Check("rows_preserved", bool(passed), _scrub(str(detail), target.url)))
    elif mode == "restore" and restored_manifest is not None:
        checks.append(_matches_manifest(target, out, restored_manifest, pg_live["full_fp"]))
    return checks
