"""Helpers of the demo tests (``test_demo.py``, ``test_demo_revisions.py``): what the seed says
about the two files, SQLite's view of a schema (pragmas, SQLAlchemy's reflection), Alembic
over one connection, and the ``demo`` fixture (import it into the test module: both files,
built once per module).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from targets import MIGRATIONS, build_demo
from sqlalchemy import event
from sqlalchemy.pool import NullPool

COMPLETED_AT = "ALTER TABLE goals ADD COLUMN completed_at DATETIME"

PRODUCTION_COLUMNS = {
    "activity_definitions": 12,
    "activity_groups": 8,
    "activity_instances": 14,
    "goals": 20,
    "metric_definitions": 12,
    "metric_values": 8,
    "practice_session_goals": 2,
    "program_blocks": 7,
    "program_days": 6,
    "programs": 11,
    "scheduled_sessions": 5,
    "session_templates": 8,
    "split_definitions": 8,
}
DEVELOPMENT_COLUMNS = {
    **{t: n for t, n in PRODUCTION_COLUMNS.items() if t != "scheduled_sessions"},
    "goals": 22,
    "program_days": 7,
    "program_day_templates": 3,
}
UNCHANGED_TABLES = sorted(set(PRODUCTION_COLUMNS) - {"goals", "program_days", "scheduled_sessions"})


# --------------------------------------------------------------------------- helpers


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-write connection to an existing file, closed afterwards."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def tables(path: Path) -> list[str]:
    with connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'alembic_version' ORDER BY name"
        ).fetchall()
    return [name for (name,) in rows]


def schema(path: Path) -> dict[str, dict]:
    """Per table, what SQLite's pragmas say (alembic_version and sqlite_* left out)."""
    out: dict[str, dict] = {}
    with connect(path) as conn:
        for table in tables(path):
            indexes = []
            for _seq, name, unique, origin, partial in conn.execute(
                "SELECT * FROM pragma_index_list(?)", (table,)
            ):
                info = conn.execute("SELECT * FROM pragma_index_info(?)", (name,)).fetchall()
                xinfo = conn.execute("SELECT * FROM pragma_index_xinfo(?)", (name,)).fetchall()
                indexes.append((name, unique, origin, partial, tuple(info), tuple(xinfo)))
            out[table] = {
                "table_info": conn.execute("SELECT * FROM pragma_table_info(?)", (table,)).fetchall(),
                "index_list": sorted(indexes),
                "foreign_key_list": conn.execute(
                    "SELECT * FROM pragma_foreign_key_list(?)", (table,)
                ).fetchall(),
            }
    return out


def verify_equivalence(actual: Path, expected: Path) -> list[str]:
    """Every pragma difference between two databases' schemas, one line each ([] = equal)."""
    a, b = schema(actual), schema(expected)
    problems = [f"table {t} only in {actual.name}" for t in sorted(a.keys() - b.keys())]
    problems += [f"table {t} only in {expected.name}" for t in sorted(b.keys() - a.keys())]
    for table in sorted(a.keys() & b.keys()):
        for pragma in ("table_info", "index_list", "foreign_key_list"):
            if a[table][pragma] != b[table][pragma]:
                problems.append(
                    f"{table} {pragma}: {a[table][pragma]!r} != {b[table][pragma]!r}"
                )
    return problems


def reflected(path: Path) -> dict[str, dict]:
    """The same schema as SQLAlchemy's inspector sees it (what a diff is likely built on)."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        inspector = sa.inspect(engine)
        out = {}
        for table in tables(path):
            out[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c["default"], c["primary_key"])
                    for c in inspector.get_columns(table)
                ],
                "pk": inspector.get_pk_constraint(table),
                "fks": sorted(
                    inspector.get_foreign_keys(table), key=lambda fk: fk["constrained_columns"]
                ),
                "indexes": sorted(inspector.get_indexes(table), key=lambda ix: ix["name"]),
                "uniques": inspector.get_unique_constraints(table),
                "checks": inspector.get_check_constraints(table),
            }
        return out
    finally:
        engine.dispose()


def rows(path: Path, table: str, columns: str = "*") -> list[tuple]:
    with connect(path) as conn:
        return sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr)


def dump(path: Path) -> list[str]:
    with connect(path) as conn:
        return list(conn.iterdump())


def sqlite_engine(path: Path) -> sa.Engine:
    """An engine whose transactions really include DDL (SQLAlchemy emits BEGIN)."""
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _connect_hook(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(path: Path, *, stamp: str | None = None, to: str = "head") -> None:
    """Stamp (optional) and upgrade inside ONE transaction, over a passed-in connection."""
    engine = sqlite_engine(path)
    try:
        with engine.begin() as conn:
            config = alembic_config(conn)
            if stamp:
                command.stamp(config, stamp)
            command.upgrade(config, to)
    finally:
        engine.dispose()


def alembic_version(path: Path) -> list[str]:
    with connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version_num FROM alembic_version")]


def add_completed_at(path: Path) -> None:
    with connect(path) as conn:
        conn.execute(COMPLETED_AT)
        conn.commit()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    return build_demo.build(tmp_path_factory.mktemp("demo"))
