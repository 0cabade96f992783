"""The demo's Alembic revisions (examples/migrations), on the files examples/build_demo.py builds.

The central check is ``verify_equivalence``: production, stamped at the baseline and
upgraded with the revisions, plus the seed's ``ALTER TABLE goals ADD COLUMN
completed_at DATETIME``, must be the development schema pragma for pragma.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from targets import EXAMPLES, MIGRATIONS
from demo_helpers import (  # noqa: F401 - demo is a fixture
    UNCHANGED_TABLES,
    add_completed_at,
    alembic_config,
    alembic_version,
    connect,
    demo,
    migrate,
    reflected,
    rows,
    sqlite_engine,
    tables,
    verify_equivalence,
)

# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def production_copy(demo, tmp_path) -> Path:
    copy = tmp_path / "goals.db"
    shutil.copyfile(demo[0], copy)
    return copy


@pytest.fixture(scope="module")
def migrated(demo, tmp_path_factory) -> Path:
    """Production after the seed's migration: stamp 0001, upgrade head, add completed_at."""
    copy = tmp_path_factory.mktemp("migrated") / "goals.db"
    shutil.copyfile(demo[0], copy)
    migrate(copy, stamp="0001")
    add_completed_at(copy)
    return copy


# --------------------------------------------------------------------------- the revisions


def test_migration_reproduces_development(demo, migrated):
    production, development = demo
    assert verify_equivalence(migrated, development) == []
    assert alembic_version(migrated) == ["0002"]


def test_migration_reproduces_development_as_sqlalchemy_reflects_it(demo, migrated):
    assert reflected(migrated) == reflected(demo[1])


def test_migration_carries_the_schedule_over_and_keeps_every_row(demo, migrated):
    production, _ = demo
    assert rows(migrated, "program_day_templates") == rows(
        production, "scheduled_sessions", 'program_day_id, session_template_id, "order"'
    )
    with connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM goals").fetchone() == (39,)
        assert conn.execute("SELECT count(*) FROM goals WHERE parent_id IS NULL").fetchone() == (5,)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute(
            "SELECT count(*) FROM goals WHERE program_day_id IS NOT NULL OR completed_at IS NOT NULL"
        ).fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM program_days WHERE is_completed != 0"
        ).fetchone() == (0,)
    for table in UNCHANGED_TABLES:
        assert rows(migrated, table) == rows(production, table), table
    kept = "id, type, name, parent_id, root_id, created_at, updated_at, deleted_at, attributes"
    assert rows(migrated, "goals", kept) == rows(production, "goals", kept)


def test_baseline_on_an_empty_database_is_production(demo, tmp_path):
    empty = tmp_path / "new.db"
    sqlite3.connect(empty).close()
    migrate(empty, to="0001")
    assert alembic_version(empty) == ["0001"]
    assert verify_equivalence(empty, demo[0]) == []
    assert reflected(empty) == reflected(demo[0])


def test_all_revisions_on_an_empty_database_give_development(demo, tmp_path):
    empty = tmp_path / "new.db"
    sqlite3.connect(empty).close()
    migrate(empty)
    add_completed_at(empty)
    assert verify_equivalence(empty, demo[1]) == []


def test_downgrade_gives_production_back(demo, production_copy):
    production, _ = demo
    migrate(production_copy, stamp="0001")
    engine = sqlite_engine(production_copy)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
    finally:
        engine.dispose()
    assert alembic_version(production_copy) == ["0001"]
    assert verify_equivalence(production_copy, production) == []
    columns = 'program_day_id, session_template_id, "order"'
    assert rows(production_copy, "scheduled_sessions", columns) == rows(
        production, "scheduled_sessions", columns
    )


def test_revisions_commit_nothing_themselves(demo, production_copy):
    """The pipeline runs stamp + upgrade in one transaction it controls: a rollback undoes all."""
    before = production_copy.read_bytes()
    engine = sqlite_engine(production_copy)
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            config = alembic_config(conn)
            command.stamp(config, "0001")
            command.upgrade(config, "head")
            assert "program_day_templates" in sa.inspect(conn).get_table_names()
            transaction.rollback()
    finally:
        engine.dispose()
    assert production_copy.read_bytes() == before
    assert verify_equivalence(production_copy, demo[0]) == []


def test_alembic_ini_works_by_hand(production_copy):
    """What `alembic -c examples/alembic.ini stamp 0001 && ... upgrade head` does (env.py's own engine)."""
    ini = EXAMPLES / "alembic.ini"
    config = Config(str(ini))
    assert Path(config.get_main_option("script_location")) == MIGRATIONS
    assert config.get_main_option("sqlalchemy.url") == f"sqlite:///{EXAMPLES / 'data' / 'goals.db'}"

    config.set_main_option("sqlalchemy.url", f"sqlite:///{production_copy}")
    config.attributes["configure_logger"] = False
    command.stamp(config, "0001")
    command.upgrade(config, "head")
    assert alembic_version(production_copy) == ["0002"]
    assert "scheduled_sessions" not in tables(production_copy)

    offline = io.StringIO()
    config = Config(str(ini), output_buffer=offline)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "0001:head", sql=True)
    sql = offline.getvalue()
    assert "CREATE TABLE program_day_templates" in sql
    assert "ALTER TABLE goals ADD COLUMN program_day_id TEXT REFERENCES program_days (id)" in sql
    assert "DROP TABLE scheduled_sessions" in sql
