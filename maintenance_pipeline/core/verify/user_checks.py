"""The targets file's own SQL checks: read-only, validated before anything is committed.

A check is one read-only query whose first value is compared with ``expect``. Its text is decided before it
runs: one statement (``core/statements.py``; a second one, ``SELECT 0; COMMIT; DROP TABLE t``, would run outside
the check's transaction), starting with a query keyword of the engine (``Engine.query_keywords``). It runs
inside the engine's ``read_only`` block (SQLite: an authorizer that allows only reads; PostgreSQL: a read-only
savepoint that is always rolled back, the statement sent through the extended protocol, which refuses a
second command, and the transaction confirmed to be the same one afterwards). A check that tries to write
fails with "checks must be read-only queries". What read-only cannot stop: a function whose effect lies
outside the transaction (PostgreSQL's ``pg_terminate_backend``, ``pg_cancel_backend``, ``dblink``; time and
load); the README says so.

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
from ..statements import first_keyword, split_statements

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
    refused = not_one_query(check.sql, engine_of(conn).query_keywords)
    if refused:
        return Check(check.name, False, f"{READ_ONLY}; {refused}")
    seen: dict = {}
    try:
        with _read_only(conn, restore_authorizer, hidden) as seen:
            value = engine_of(conn).run_check(conn, check.sql)
    except sa.exc.ResourceClosedError:  # it ran (a write refused or ignored by the guard) and returned no rows
        return Check(check.name, False, f"{READ_ONLY}; this one is not a query (it returns no rows)")
    except sa.exc.DBAPIError as e:
        writes, text = _error_text(e, seen)
        if writes:
            return Check(check.name, False, f"{READ_ONLY}; this one tried to write ({text})")
        return Check(check.name, False, f"SQL failed: {text}")
    ok = value == check.expect or str(value) == str(check.expect)
    return Check(check.name, ok, f"returned {value!r}, expected {check.expect!r}")


def not_one_query(sql: str, keywords) -> str | None:
    """Why ``sql`` is not one query (said after "checks must be read-only queries; "), or None. Decided from the
    text before anything runs: a second statement (``SELECT 0; COMMIT; DROP TABLE t``) would run outside the
    check's read-only transaction."""
    statements = split_statements(sql)
    if len(statements) != 1:
        firsts = ", ".join(first_keyword(s) or "?" for s in statements[:4])
        return (f"a check is one statement and this one has {len(statements)} ({firsts}); keep one SELECT"
                if statements else "this one has no statement")
    word = first_keyword(sql)
    if word not in keywords:
        return f"this one is not a query (it starts with {word or 'no keyword'}; one of {', '.join(sorted(keywords))})"
    return None


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
