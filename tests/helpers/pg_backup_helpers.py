"""Helpers shared by the PostgreSQL backup and restore test modules (``test_backup``, ``test_restore`` of
``tests/core/engines/postgresql``).

``demo`` is a module-scoped fixture (import it into the test module): the seed demo loaded into
bk_goals / bk_goals_dev once per module; tests that change data use a copy (``copy_db``). Test modules
register this module for pytest's assertion rewriting before importing it, so
``assert_one_line_without`` reports its failures like an assert in the test itself.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from targets import pg_demo

from maintenance_pipeline.core.schema.snapshot import take_snapshot

PROD, DEV = "bk_goals", "bk_goals_dev"


@pytest.fixture(scope="module")
def demo(pg, tmp_path_factory):
    """The seed demo loaded into bk_goals / bk_goals_dev once; tests that change data use a copy."""
    prod, dev = pg_demo.load(pg.url(), prod=PROD, dev=DEV, data_dir=tmp_path_factory.mktemp("pgdemo") / "data")
    return prod


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
