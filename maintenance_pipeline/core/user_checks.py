"""The targets file's own SQL checks: read-only, validated before anything is committed.

A check is one read-only query whose first value is compared with ``expect``. It can never change
the database: on SQLite an authorizer allows only reads while it is prepared and run (SQLite asks
it for every table, column and function a statement touches, when the statement is prepared); on
PostgreSQL it runs in a savepoint that is made read-only (``SET LOCAL transaction_read_only``) and
always rolled back, so even a function with side effects undoes them. A check that tries to write
fails with "checks must be read-only queries".

``validate_in_migration`` runs every check inside the migration's transaction, on the schema the
checks will run on, before COMMIT: a check that does not run (a typo, a column the migration
drops), writes, or returns something else than ``expect`` stops the run with nothing committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import contextmanager

import sqlalchemy as sa

from .checks import Check
from .errors import UserCheckError

READ_ONLY = "checks must be read-only queries"

_SQLITE_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                 getattr(sqlite3, "SQLITE_RECURSIVE", 33)}


def _sqlite_read_only(action, arg1, arg2, db_name, inner):  # noqa: ANN001 - sqlite3's callback
    if db_name not in (None, "main", "temp"):  # e.g. the run's attached backup
        return sqlite3.SQLITE_DENY
    if action in _SQLITE_READS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg2 is None:  # reading a pragma, not setting one
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@contextmanager
def _sqlite_guard(conn: sa.Connection, restore):
    raw = conn.connection.driver_connection
    raw.set_authorizer(_sqlite_read_only)
    try:
        yield None
    finally:
        raw.set_authorizer(restore)


@contextmanager
def _pg_guard(conn: sa.Connection, restore):
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql("SET LOCAL transaction_read_only = on")
        yield None
    finally:
        savepoint.rollback()  # whatever the check did (a function with side effects) is undone


def _read_only(conn: sa.Connection, restore=None):
    return _sqlite_guard(conn, restore) if conn.dialect.name == "sqlite" else _pg_guard(conn, restore)


def _error_text(e: sa.exc.DBAPIError) -> tuple[bool, str]:
    """(the check tried to write, its error on one line)."""
    text = " ".join(str(e.orig).split())[:200]
    low = text.lower()
    writes = "not authorized" in low or "read-only transaction" in low or "readonly" in low
    return writes, text


def run_user_check(conn: sa.Connection, check, *, restore_authorizer=None) -> Check:
    """Run one check read-only: passed when its first value equals ``expect``."""
    try:
        with _read_only(conn, restore_authorizer):
            value = conn.exec_driver_sql(check.sql).scalar()
    except sa.exc.DBAPIError as e:
        writes, text = _error_text(e)
        if writes:
            return Check(check.name, False, f"{READ_ONLY}; this one tried to write ({text})")
        return Check(check.name, False, f"SQL failed: {text}")
    ok = value == check.expect or str(value) == str(check.expect)
    return Check(check.name, ok, f"returned {value!r}, expected {check.expect!r}")


def validate_in_migration(conn: sa.Connection, checks: Iterable, *, restore_authorizer=None,
                          judge: bool = True) -> list[Check]:
    """Every check on the migrated schema, inside the migration's transaction. Raises ``UserCheckError``
    for a check that does not run or writes, and (``judge``) for one whose value is not ``expect``."""
    results = []
    for check in checks:
        c = run_user_check(conn, check, restore_authorizer=restore_authorizer)
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
