"""Verify: the checks of SPEC §3, each passed/failed with a one-line detail.

Heavy reads stay off the live file where the verified backup copy can answer
(``verify_database`` changes nothing, so the copy taken by the run *is* the live
schema and data at that moment), and rows are compared inside SQLite by ATTACHing
the backup instead of hashing them in Python. ``rows_preserved`` compares rows only after a run
that changed something (``maintain``): in ``verify`` mode the run wrote nothing, so a row that differs
from its backup was written by the application, not lost (``checks.UNCHANGED_ROWS``).

PostgreSQL (in the target's ``schema``; the checks are in ``engines/postgresql/verify.py``):

* ``integrity``: ``amcheck`` (``bt_index_check``, ``verify_heapam``) when installed and allowed,
  else a passed check whose detail says it was skipped and why (``engines.postgresql.catalog.integrity``);
* ``foreign_keys``: an anti-join per declared key, ``NOT VALID`` keys named in the detail. In
  ``verify`` mode every violation fails; after ``maintain`` (and ``restore``) only violations this
  run introduced fail: when there are any, the backup is restored into a scratch database to count
  its own (``engines.postgresql.rows.scratch_restore``);
* ``rows_preserved`` (after ``maintain``): the backup restored into a scratch database (``engines.postgresql.rows.scratch_restore``)
  and compared with the live one (``engines.postgresql.rows.compare_rows``); a role that may not create a
  database gets a failed check saying so;
* ``backup_verified``, ``matches_restored_backup`` and user checks as on SQLite (each user check
  in its own savepoint, so a failing one does not abort the others).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .engines.postgresql import catalog as pg_checks
from .checks import (
    Check,
    VerifyResult,
    AFTER_COMMIT_NOTE,
    fmt_fk,
    introduced_violations,
    matches_manifest,
    UNCHANGED_ROWS,
)
from .config import Target
from .dburl import open_engine, sqlite_path, sqlite_uri, translate_error
from .diff import diff
from .model import Change, Snapshot

if TYPE_CHECKING:
    from .migrate import MigrationResult
from .engines.postgresql.verify import postgres_checks
from .snapshot import snapshot_url, table_counts, take_snapshot
from .engines.sqlite.rows import compare_attached
from .user_checks import run_user_check

__all__ = ["Check", "VerifyResult", "fk_check", "integrity", "rows_preserved", "run_user_check", "verify_target"]


def _open_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(sqlite_uri(path), uri=True)
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


def rows_preserved(live: Path, backup: Path, backup_snapshot: Snapshot, live_snapshot: Snapshot,
                   ignore: tuple[str, ...]) -> tuple[Check, list[dict]]:
    """Every row of every kept table of the backup is still in the live file with the same kept values
    (compared now, on its own connection: after a migration's commit; ``engines.sqlite.rows.RowsGuard`` compares
    inside the migration's transaction)."""
    conn = sqlite3.connect(sqlite_uri(live), uri=True)
    drops: list[dict] = []
    try:
        conn.execute("PRAGMA mmap_size=2147483648")
        conn.execute("ATTACH DATABASE ? AS bk", (sqlite_uri(backup),))
        passed, detail = compare_attached(conn, "bk", backup_snapshot, live_snapshot, ignore, drops,
                                          failure_note=AFTER_COMMIT_NOTE)
    except sqlite3.DatabaseError as e:
        return Check("rows_preserved", False, f"could not compare rows: {e}"), drops
    finally:
        conn.close()
    return Check("rows_preserved", passed, detail), drops


def verify_target(target: Target, reference: Snapshot, *, backup_path: Path | None, backup_verified: bool,
                  backup_detail: str = "", mode: str = "maintain", refused: list[Change] = (),
                  restored_manifest: dict | None = None, migration: MigrationResult | None = None) -> VerifyResult:
    """Run every check. ``mode``: maintain (changes were made), verify (nothing changed), restore.

    ``migration``: this run's migration, when it ran. Its own checks, made inside its transaction,
    are used instead of comparing again now, when the application may have written since the commit:
    a dry run's ``drift_after`` (what the planned changes would leave, computed on a scratch copy: the
    schema check judges the plan), SQLite's ``rows`` (``rows_preserved`` before COMMIT), PostgreSQL's
    ``written`` (only those tables are compared); and its foreign-key check let nothing through that it
    introduced, so orphans found now were there before or were written by another session.
    """
    migrated = migration is not None
    planned_drift = migration.drift_after if migrated and migration.dry_run else None
    migration_rows = migration.rows if migrated else None
    written = migration.written if migrated else None
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
            out.checks.extend(postgres_checks(target, out, live, pg_live, backup_path=backup_path, mode=mode,
                                               restored_manifest=restored_manifest, migrated=migrated,
                                               migration_rows=migration_rows,
                                               dry_run=planned_drift is not None))
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
                                f"{sum(now.values())} orphan row(s): {fmt_fk(now)}"))
    else:
        now = fk_check(live_path)
        before = fk_check(backup_path) if backup_path is not None else Counter()
        introduced = introduced_violations(now, before)
        if introduced and migrated:
            out.checks.append(Check("foreign_keys", True, (
                "the migration introduced no orphan (checked inside its transaction); "
                f"{sum(introduced.values())} orphan row(s) written by another session since the backup: "
                f"{fmt_fk(introduced)}" + (f"; {sum(before.values())} existed before this run" if before else ""))))
        elif introduced:
            out.checks.append(Check("foreign_keys", False, f"this run introduced {sum(introduced.values())} "
                                                           f"orphan row(s): {fmt_fk(introduced)}"))
        elif now:
            out.checks.append(Check("foreign_keys", True, f"no new orphans; {sum(now.values())} orphan row(s) "
                                                          f"existed before this run: {fmt_fk(now)}"))
        else:
            out.checks.append(Check("foreign_keys", True, "no row points at a missing parent"))

    # rows
    if backup_path is not None and mode == "verify":
        out.checks.append(UNCHANGED_ROWS)
    elif migration_rows is not None and mode == "maintain":
        passed, detail, out.planned_drops = migration_rows
        where = ("dry run, compared on the scratch copy after the planned changes" if planned_drift is not None
                 else "compared inside the migration's transaction, before its commit")
        out.checks.append(Check("rows_preserved", passed, f"{detail} ({where})"))
    elif backup_path is not None and mode != "restore":
        bsnap = snapshot_url(f"sqlite:///{backup_path}", ignore_tables=target.ignore_tables)
        check, out.planned_drops = rows_preserved(live_path, backup_path, bsnap, live, target.ignore_tables)
        out.checks.append(check)
    elif mode == "restore" and restored_manifest is not None:
        # the manifest's fingerprint covers every table (ignored ones too): compare like with like
        full_fp = snapshot_url(target.url, ignore_tables=()).fingerprint
        out.checks.append(matches_manifest(target, out, restored_manifest, full_fp))

    out.checks.append(Check("backup_verified", bool(backup_verified),
                            backup_detail or ("verified" if backup_verified else "backup not verified")))
    out.checks.extend(user)
    return out
