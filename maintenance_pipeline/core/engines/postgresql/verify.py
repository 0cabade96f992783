"""Verify on PostgreSQL: the checks that need the backup restored into a scratch database.

``verify.verify_target`` reads the live database once and hands over here for ``integrity``
(``engines.postgresql.catalog.integrity``), ``foreign_keys`` (only violations this run introduced fail after
``maintain``/``restore``: the backup's own are counted in a scratch restore) and ``rows_preserved``
(``engines.postgresql.rows.compare_rows`` against that scratch restore). Any failure to restore or compare is a
failed check with its reason (passwords scrubbed), never a crash.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from . import catalog as pg_checks
from ...checks import UNCHANGED_ROWS, Check, VerifyResult, fmt_fk, introduced_violations, matches_manifest
from ...config import Target
from ...dburl import open_engine, scrub_passwords, translate_error
from ...errors import MaintenanceError
from ...model import Snapshot
from .rows import compare_rows, scratch_restore
from ...snapshot import take_snapshot


def _scratch_error(e: BaseException, target: Target) -> str:
    if isinstance(e, sa.exc.DBAPIError):
        e = translate_error(e, target.url)
    text = str(e) if isinstance(e, MaintenanceError) else f"{type(e).__name__}: {e}"
    if "permission denied to create database" in text.lower() and "createdb" not in text.lower():
        text += " (the role needs CREATEDB to restore the backup into a scratch database)"
    return scrub_passwords(text, target.url)


def _compare_with_backup(target: Target, live: Snapshot, backup_path: Path, *, rows: bool,
                         fk_before: bool, only: set[str] | None = None) -> dict:
    """Restore the backup into a scratch database once: rows compared, the backup's own FK violations.

    Returns ``{"rows": (passed, detail, drops) | None, "fk_before": Counter | None, "error": str | None}``.
    """
    out: dict = {"rows": None, "fk_before": None, "error": None}
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
                                           schema=schema, only=only)
    except Exception as e:  # noqa: BLE001 - any failure is a failed check with its reason, never a crash
        out["error"] = _scratch_error(e, target)
    return out


def postgres_checks(target: Target, out: VerifyResult, live: Snapshot, pg_live: dict, *,
                     backup_path: Path | None, mode: str, restored_manifest: dict | None,
                     migrated: bool = False, migration_rows: tuple | None = None,
                     dry_run: bool = False) -> list[Check]:
    """integrity, foreign_keys and rows_preserved (or matches_restored_backup) of a PostgreSQL target.

    ``pg_live``: what ``verify_target`` read on the live database (``integrity``, ``fk``, ``not_valid``,
    ``full_fp``); the backup is restored into a scratch database at most once for the rest.
    """
    checks: list[Check] = []
    ok, detail = pg_live["integrity"]
    checks.append(Check("integrity", ok, detail))

    now: Counter = pg_live["fk"]
    not_valid: list[str] = pg_live["not_valid"]
    nv = (f"; NOT VALID (not enforced for old rows, their rows checked too): {', '.join(not_valid[:5])}"
          + (f" (+{len(not_valid) - 5} more)" if len(not_valid) > 5 else "")) if not_valid else ""
    # after a migration its own rows check, made inside its transaction before COMMIT, is the verdict; a
    # migration that wrote no existing table's rows made none, and there is nothing to compare
    want_rows = backup_path is not None and mode not in ("restore", "verify") and not migrated
    want_fk_before = bool(now) and mode != "verify" and backup_path is not None
    scratch = _compare_with_backup(target, live, backup_path, rows=want_rows, fk_before=want_fk_before) \
        if (want_rows or want_fk_before) else {"rows": None, "fk_before": None, "error": None}

    if not now:
        checks.append(Check("foreign_keys", True, "no row points at a missing parent (one anti-join per declared "
                                                  f"key){nv}"))
    elif mode == "verify":
        checks.append(Check("foreign_keys", False, f"{sum(now.values())} orphan row(s): {fmt_fk(now)}{nv}"))
    else:
        # after this run's migration, which checked the keys PostgreSQL does not enforce inside its own
        # transaction, a new orphan was written by another session since the backup, not by the run
        ours = "the migration introduced no orphan (checked inside its transaction); "
        before = scratch["fk_before"] if backup_path is not None else Counter()
        if before is None:
            checks.append(Check("foreign_keys", migrated,
                                f"{ours if migrated else ''}{sum(now.values())} orphan row(s): {fmt_fk(now)}; "
                                f"could not compare with the backup ({scratch['error']}){nv}"))
        else:
            introduced = introduced_violations(now, before)
            if introduced and migrated:
                pre = f"; {sum(before.values())} existed before this run" if before else ""
                checks.append(Check("foreign_keys", True, f"{ours}{sum(introduced.values())} orphan row(s) written "
                                                          f"by another session since the backup: "
                                                          f"{fmt_fk(introduced)}{pre}{nv}"))
            elif introduced:
                checks.append(Check("foreign_keys", False, f"this run introduced {sum(introduced.values())} orphan "
                                                           f"row(s): {fmt_fk(introduced)}{nv}"))
            else:
                checks.append(Check("foreign_keys", True, f"no new orphans; {sum(now.values())} orphan row(s) "
                                                          f"existed before this run: {fmt_fk(now)}{nv}"))

    if migrated and mode == "maintain":
        if migration_rows is None:
            checks.append(Check("rows_preserved", True, "the migration changed no existing table's rows (no update, "
                                                        "delete, rewrite or column change inside its transaction)"))
        else:
            passed, detail, drops = migration_rows
            out.planned_drops = list(drops or [])
            where = ("dry run, compared inside its transaction before the rollback" if dry_run
                     else "compared inside the migration's transaction, before its commit")
            checks.append(Check("rows_preserved", bool(passed), f"{scrub_passwords(str(detail), target.url)} ({where})"))
    elif want_rows:
        if scratch["rows"] is None:
            checks.append(Check("rows_preserved", False, "could not restore the backup into a scratch database to "
                                                         f"compare rows: {scratch['error']}"))
        else:
            passed, detail, drops = scratch["rows"]
            out.planned_drops = list(drops or [])
            checks.append(Check("rows_preserved", bool(passed), scrub_passwords(str(detail), target.url)))
    elif backup_path is not None and mode == "verify":
        checks.append(UNCHANGED_ROWS)
    elif mode == "restore" and restored_manifest is not None:
        checks.append(matches_manifest(target, out, restored_manifest, pg_live["full_fp"]))
    return checks
