"""The reference as a MetaData import path or a database URL."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import uuid

import pytest
import sqlalchemy as sa

from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.schema.diff import diff
from maintenance_pipeline.core.errors import MissingDatabaseError, ReferenceImportError
from maintenance_pipeline.core.schema.reference import import_metadata, metadata_snapshot, reference_snapshot
from maintenance_pipeline.core.schema.snapshot import take_snapshot

MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Goal(Base):
    __tablename__ = "goals"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("goals.id", ondelete="CASCADE"), index=True)
    done: Mapped[bool] = mapped_column(server_default=sa.false())
    created_at = mapped_column(sa.DateTime, server_default=sa.func.current_timestamp())
    completed_at = mapped_column(sa.DateTime, nullable=True)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(sa.String(50), unique=True)
    weight: Mapped[float] = mapped_column(server_default="0")


not_metadata = 42
"""

# the same schema as MODELS, written by hand the way a real database often is
TARGET = """
CREATE TABLE goals (
    id INTEGER PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    parent_id INT REFERENCES goals (id) ON DELETE CASCADE,
    done BOOLEAN NOT NULL DEFAULT 0,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    completed_at DATETIME
);
CREATE INDEX ix_goals_parent_id ON goals (parent_id);
CREATE TABLE tags (id INTEGER PRIMARY KEY, label VARCHAR(50) NOT NULL UNIQUE, weight FLOAT NOT NULL DEFAULT '0');
"""


@pytest.fixture
def models(tmp_path):
    """A module file in tmp_path with a unique name (modules are cached per process)."""
    name = f"refmodels_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODELS))
    return name


def target(tmp_path, sql, name="target.db"):
    path = tmp_path / name
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.close()
    engine = open_engine(f"sqlite:///{path}")
    try:
        return take_snapshot(engine)
    finally:
        engine.dispose()


def test_equal_schema_gives_no_changes(tmp_path, models):
    ref = reference_snapshot(metadata=f"{models}:Base.metadata", target_dialect="sqlite", search_paths=[tmp_path])
    assert sorted(ref.tables) == ["goals", "tags"]
    assert diff(target(tmp_path, TARGET), ref) == []
    # the index the models name (``index=True``: SQLAlchemy's ix_<table>_<column>) under another name is a rename: a
    # revision written from the models drops it by that name
    other = diff(target(tmp_path, TARGET.replace("ix_goals_parent_id", "ix_goals_parent"), "other.db"), ref)
    assert [(c.kind, c.name, c.detail) for c in other] == [
        ("rename_index", "ix_goals_parent", "index (parent_id): ix_goals_parent -> ix_goals_parent_id")]


def test_schema_created_from_the_models_gives_no_changes(tmp_path, models):
    md = import_metadata(f"{models}:Base.metadata", search_paths=[tmp_path])
    path = tmp_path / "created.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    md.create_all(engine)
    engine.dispose()
    ref = reference_snapshot(metadata=md, target_dialect="sqlite")
    live = take_snapshot(open_engine(f"sqlite:///{path}"))
    assert diff(live, ref) == []
    assert live.fingerprint == ref.fingerprint


def test_missing_column_is_add_column(tmp_path, models):
    sql = TARGET.replace(",\n    completed_at DATETIME\n", "\n")
    assert "completed_at" not in sql
    ref = reference_snapshot(metadata=f"{models}:Base.metadata", target_dialect="sqlite", search_paths=[tmp_path])
    changes = diff(target(tmp_path, sql), ref)
    assert [(c.kind, c.table, c.name, c.detail, c.destructive) for c in changes] == [
        ("add_column", "goals", "completed_at", "DATETIME NULL", False)
    ]


def test_declarative_base_is_accepted_and_sys_path_restored(tmp_path, models):
    before = list(sys.path)
    md = import_metadata(f"{models}:Base", search_paths=[tmp_path])
    assert isinstance(md, sa.MetaData) and set(md.tables) == {"goals", "tags"}
    assert sys.path == before


def test_type_trap_against_the_models(tmp_path, models):
    sql = TARGET.replace("name VARCHAR(255) NOT NULL", "name STRING NOT NULL")
    ref = reference_snapshot(metadata=f"{models}:Base.metadata", target_dialect="sqlite", search_paths=[tmp_path])
    changes = diff(target(tmp_path, sql), ref)
    assert [(c.kind, c.name, c.detail) for c in changes] == [("alter_column", "name", "type STRING -> VARCHAR(200)")]


@pytest.mark.parametrize(
    "path, message",
    [
        ("no_colon_here", "not an import path"),
        ("", "not an import path"),
        ("{models}:", "not an import path"),
        ("definitely_not_a_module_xyz:Base.metadata", "no module named 'definitely_not_a_module_xyz'"),
        ("{models}.sub:Base", "no module named"),
        ("{models}:Missing.metadata", "has no attribute 'Missing'"),
        ("{models}:Base.nope", "has no attribute 'Base.nope'"),
        ("{models}:not_metadata", "is a int, not a SQLAlchemy MetaData"),
        ("broken_{models}:md", "importing 'broken_{models}' failed: ZeroDivisionError"),
    ],
)
def test_bad_import_paths(tmp_path, models, path, message):
    (tmp_path / f"broken_{models}.py").write_text("x = 1 / 0\n")
    path, message = path.format(models=models), message.format(models=models)
    with pytest.raises(ReferenceImportError) as info:
        import_metadata(path, search_paths=[tmp_path])
    text = str(info.value)
    assert message in text
    assert "\n" not in text and repr(path) in text


def test_reference_url(tmp_path):
    live = target(tmp_path, TARGET)
    ref_path = tmp_path / "dev.db"
    con = sqlite3.connect(ref_path)
    con.executescript(TARGET + "ALTER TABLE goals ADD COLUMN program_day_id INTEGER;")
    con.close()
    ref = reference_snapshot(url=f"sqlite:///{ref_path}", target_dialect="sqlite", ignore_tables=["tags"])
    assert list(ref.tables) == ["goals"]
    assert [(c.kind, c.name) for c in diff(live, ref, ignore_tables=["tags"])] == [("add_column", "program_day_id")]


def test_reference_url_to_a_missing_file_is_never_created(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(MissingDatabaseError):
        reference_snapshot(url=f"sqlite:///{missing}", target_dialect="sqlite")
    assert not missing.exists()


def test_metadata_for_another_dialect_is_built_without_a_database(tmp_path, models):
    md = import_metadata(f"{models}:Base.metadata", search_paths=[tmp_path])
    snap = metadata_snapshot(md, "postgresql")
    goals = snap.tables["goals"]
    assert snap.dialect == "postgresql"
    assert goals.column("name").type_key == "VARCHAR(200)"
    assert goals.column("created_at").type_key == "TIMESTAMP"
    assert goals.column("done").default == "false"
    assert goals.primary_key == ("id",)
    assert [(f.columns, f.ref_table, f.ref_columns, f.on_delete) for f in goals.foreign_keys] == [
        (("parent_id",), "goals", ("id",), "CASCADE")
    ]
    assert [(u.columns) for u in snap.tables["tags"].uniques] == [("label",)]
    assert reference_snapshot(metadata=md, target_dialect="postgresql") == snap


def test_metadata_that_cannot_be_created_is_a_reference_error():
    md = sa.MetaData()
    sa.Table("t", md, sa.Column("x", sa.ForeignKey("nope.id")))
    with pytest.raises(ReferenceImportError, match="cannot be created on SQLite"):
        reference_snapshot(metadata=md, target_dialect="sqlite")
