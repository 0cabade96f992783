"""What the PostgreSQL backup and restore tests of this folder share: the ``demo`` fixture, and pytest's assertion
rewriting for ``pg_backup_helpers`` (registered here, before the test modules import it, so its asserts report like
the tests' own)."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("pg_backup_helpers")
from pg_backup_helpers import DEV, PROD  # noqa: E402
from targets import pg_demo  # noqa: E402


@pytest.fixture(scope="module")
def demo(pg, tmp_path_factory):
    """The seed demo loaded into bk_goals / bk_goals_dev once per module; tests that change data use a copy."""
    prod, _dev = pg_demo.load(pg.url(), prod=PROD, dev=DEV, data_dir=tmp_path_factory.mktemp("pgdemo") / "data")
    return prod
