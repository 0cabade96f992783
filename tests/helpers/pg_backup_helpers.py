"""Helpers shared by the PostgreSQL backup and restore test modules (``test_backup``, ``test_restore`` of
``tests/core/engines/postgresql``).

The ``demo`` fixture (the seed demo loaded into bk_goals / bk_goals_dev once per module) is in that folder's
``conftest.py``, which also registers this module for pytest's assertion rewriting, so ``assert_one_line_without``
reports its failures like an assert in the test itself; tests that change data use a copy (``copy_db``).
"""

from __future__ import annotations

import sqlalchemy as sa

from maintenance_pipeline.core.schema.snapshot import take_snapshot

PROD, DEV = "bk_goals", "bk_goals_dev"


def copy_db(pg, name: str, template: str = PROD) -> str:
    pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return pg.url(name)


def assert_one_line_without(err: BaseException, *secrets: str) -> str:
    msg = str(err)
    assert "\n" not in msg and msg.strip() == msg and msg
    for s in secrets:
        assert s not in msg
    return msg


def snapshot(url: str):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return take_snapshot(conn)
    finally:
        engine.dispose()


def scratch_databases(pg) -> list[str]:
    out = pg.psql("SELECT datname FROM pg_database WHERE datname LIKE '%\\_mp\\_scratch\\_%'")
    return [x for x in out.splitlines() if x]
