"""The demo (SPEC §7): examples/build_demo.py and the Alembic revisions in examples/migrations.

The central check is ``verify_equivalence``: production, stamped at the baseline and
upgraded with the revisions, plus the seed's ``ALTER TABLE goals ADD COLUMN
completed_at DATETIME``, must be the development schema pragma for pragma.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.pool import NullPool

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MIGRATIONS = EXAMPLES / "migrations"
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


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_demo", EXAMPLES / "build_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_demo = _load_builder()


# --------------------------------------------------------------------------- helpers


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-write connection to an existing file, closed afterwards."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def tables(path: Path) -> list[str]:
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'alembic_version' ORDER BY name"
        ).fetchall()
    return [name for (name,) in rows]


def schema(path: Path) -> dict[str, dict]:
    """Per table, what SQLite's pragmas say (alembic_version and sqlite_* left out)."""
    out: dict[str, dict] = {}
    with _connect(path) as conn:
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
    with _connect(path) as conn:
        return sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr)


def dump(path: Path) -> list[str]:
    with _connect(path) as conn:
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
    with _connect(path) as conn:
        return [v for (v,) in conn.execute("SELECT version_num FROM alembic_version")]


def add_completed_at(path: Path) -> None:
    with _connect(path) as conn:
        conn.execute(COMPLETED_AT)
        conn.commit()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, Path]:
    return build_demo.build(tmp_path_factory.mktemp("demo"))


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


# --------------------------------------------------------------------------- the build


def test_build_returns_both_files_and_defaults_to_examples_data(demo):
    production, development = demo
    assert (production.name, development.name) == ("goals.db", "goals_dev.db")
    assert build_demo.DATA_DIR == EXAMPLES / "data"
    assert build_demo.build.__defaults__ == (EXAMPLES / "data",)


def test_build_is_deterministic(demo, tmp_path):
    again = build_demo.build(tmp_path)
    for first, second in zip(demo, again):
        assert dump(first) == dump(second)
        assert schema(first) == schema(second)
        # Same statements on the same SQLite: even the bytes are the same.
        assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(
            second.read_bytes()
        ).digest()


def test_build_replaces_old_files_and_their_journals(tmp_path):
    (tmp_path / "goals.db").write_bytes(b"not a database")
    for suffix in ("-wal", "-shm", "-journal"):
        (tmp_path / f"goals.db{suffix}").write_bytes(b"stale")
        (tmp_path / f"goals_dev.db{suffix}").write_bytes(b"stale")
    build_demo.build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["goals.db", "goals_dev.db"]


def test_production_is_the_seed_before_migration(demo):
    production, _ = demo
    assert tables(production) == sorted(PRODUCTION_COLUMNS)
    columns = {t: len(info["table_info"]) for t, info in schema(production).items()}
    assert columns == PRODUCTION_COLUMNS
    goal_columns = [c[1] for c in schema(production)["goals"]["table_info"]]
    assert "program_day_id" not in goal_columns and "completed_at" not in goal_columns
    assert "is_completed" not in [c[1] for c in schema(production)["program_days"]["table_info"]]

    with _connect(production) as conn:
        assert conn.execute("SELECT count(*) FROM goals").fetchone() == (39,)
        roots = conn.execute(
            "SELECT type, name FROM goals WHERE parent_id IS NULL ORDER BY type DESC, name"
        ).fetchall()
        assert len(roots) == 5
        assert roots[:2] == [
            ("UltimateGoal", "Become a Great Guitar Player"),
            ("UltimateGoal", "Become an Elite Calisthenics Athlete"),
        ]
        assert [t for t, _ in roots[2:]] == ["PracticeSession"] * 3
        assert conn.execute("SELECT count(*) FROM goals WHERE root_id IS NULL").fetchone() == (0,)
        # every non-root goal belongs to one of the two ultimate goals
        assert conn.execute(
            "SELECT count(*) FROM goals g JOIN goals r ON r.id = g.root_id"
            " WHERE g.parent_id IS NOT NULL AND r.type = 'UltimateGoal'"
        ).fetchone() == (34,)
        # the targets file's user check (SPEC §2)
        assert conn.execute(
            "SELECT count(*) FROM goals g WHERE g.parent_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM goals p WHERE p.id = g.parent_id)"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM scheduled_sessions").fetchone()[0] > 0
        for table in PRODUCTION_COLUMNS:
            if table != "scheduled_sessions":
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        named = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchone()[0]
        assert 28 <= named <= 31  # "Indexes: 28-31"


def test_development_is_the_schema_after_migration(demo):
    _, development = demo
    assert tables(development) == sorted(DEVELOPMENT_COLUMNS)
    dev = schema(development)
    assert {t: len(info["table_info"]) for t, info in dev.items()} == DEVELOPMENT_COLUMNS
    # added by ALTER TABLE ... ADD COLUMN, hence last
    assert [c[1] for c in dev["goals"]["table_info"][-2:]] == ["program_day_id", "completed_at"]
    assert dev["program_days"]["table_info"][-1][1:] == ("is_completed", "BOOLEAN", 1, "0", 0)
    assert dev["goals"]["table_info"][-1][1:] == ("completed_at", "DATETIME", 0, None, 0)
    pdt_fks = {(fk[2], fk[3], fk[6]) for fk in dev["program_day_templates"]["foreign_key_list"]}
    assert pdt_fks == {
        ("program_days", "program_day_id", "CASCADE"),
        ("session_templates", "session_template_id", "CASCADE"),
    }
    with _connect(development) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM goals").fetchone() == (39,)
        assert conn.execute("SELECT count(*) FROM program_day_templates").fetchone()[0] > 0


def test_the_two_files_differ_exactly_where_the_seed_says(demo):
    production, development = demo
    problems = verify_equivalence(production, development)
    assert "table scheduled_sessions only in goals.db" in problems
    assert "table program_day_templates only in goals_dev.db" in problems
    changed = {line.split()[0] for line in problems if not line.startswith("table ")}
    assert changed == {"goals", "program_days"}


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
    with _connect(migrated) as conn:
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
