"""The throwaway PostgreSQL server the PostgreSQL tests use really runs, with password auth."""

from __future__ import annotations

import sqlalchemy as sa


def test_server_runs_and_checks_passwords(pg):
    url = pg.create_database("smoke")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_database()").scalar() == "smoke"
    engine.dispose()
    bad = sa.create_engine(pg.url("smoke", password="wrong"))
    try:
        with bad.connect():
            raise AssertionError("a wrong password must be refused")
    except sa.exc.OperationalError as e:
        assert "password authentication failed" in str(e)
    finally:
        bad.dispose()
