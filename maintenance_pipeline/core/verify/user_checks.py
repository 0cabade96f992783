"""The targets file's own SQL checks: read-only, validated before anything is committed.

A check is one read-only query whose first value is compared with ``expect``. It can never change
the database: it runs inside the engine's ``read_only`` block (SQLite: an authorizer that allows only
reads; PostgreSQL: a read-only savepoint that is always rolled back, so even a function with side
effects undoes them). A check that tries to write fails with "checks must be read-only queries".

``validate_in_migration`` runs every check inside the migration's transaction, on the schema the
checks will run on, before COMMIT: a check that does not run (a typo, a column the migration
drops), writes, or returns something else than ``expect`` stops the run with nothing committed.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from .results import Check
from ..engines import engine_of
from ..errors import UserCheckError

READ_ONLY = "checks must be read-only queries"

def _read_only(conn: sa.Connection, restore=None, hidden=None):
    return engine_of(conn).read_only(conn, restore, hidden)


def _error_text(e: sa.exc.DBAPIError, seen: dict) -> tuple[bool, str]:
    """(the check tried to write, its error on one line)."""
    text = " ".join(str(e.orig).split())[:200]
    if "hidden" in seen:  # only the migration's attached reference has that table: it is gone from the database
        return False, f"no such table: {seen['hidden']}"
    low = text.lower()
    writes = "write" in seen or "read-only transaction" in low or "readonly" in low
    return writes, text


def run_user_check(conn: sa.Connection, check, *, restore_authorizer=None, hidden=None) -> Check:
    """Run one check read-only: passed when its first value equals ``expect``."""
    seen: dict = {}
    try:
        with _read_only(conn, restore_authorizer, hidden) as seen:
            value = conn.exec_driver_sql(check.sql).scalar()
    except sa.exc.ResourceClosedError:  # it ran (a write refused or ignored by the guard) and returned no rows
        return Check(check.name, False, f"{READ_ONLY}; this one is not a query (it returns no rows)")
    except sa.exc.DBAPIError as e:
        writes, text = _error_text(e, seen)
        if writes:
            return Check(check.name, False, f"{READ_ONLY}; this one tried to write ({text})")
        return Check(check.name, False, f"SQL failed: {text}")
    ok = value == check.expect or str(value) == str(check.expect)
    return Check(check.name, ok, f"returned {value!r}, expected {check.expect!r}")


def validate_in_migration(conn: sa.Connection, checks: Iterable, *, restore_authorizer=None, hidden=None,
                          judge: bool = True) -> list[Check]:
    """Every check on the migrated schema, inside the migration's transaction. Raises ``UserCheckError``
    for a check that does not run or writes, and (``judge``) for one whose value is not ``expect``."""
    results = []
    for check in checks:
        c = run_user_check(conn, check, restore_authorizer=restore_authorizer, hidden=hidden)
        results.append(c)
        if c.passed:
            continue
        if c.detail.startswith(READ_ONLY):
            raise UserCheckError(f"check {check.name!r}: {c.detail}; rewrite it as a SELECT in the targets file; "
                                 "nothing was committed")
        if c.detail.startswith("SQL failed"):
            raise UserCheckError(f"check {check.name!r} does not run on the migrated schema ({c.detail}); fix its "
                                 "sql in the targets file; nothing was committed")
        if judge:
            raise UserCheckError(f"check {check.name!r} {c.detail.replace('returned', 'would return', 1)} after the "
                                 "migration; nothing was committed; fix the data or the check (verify_database shows "
                                 "it on the live database)")
    return results
