"""Names and empty references on SQLite, judged by SQLite's own output (``schema_judges.sqlite_judge``: pragmas and
the ``sqlite_master.sql`` text, where SQLite keeps a constraint's name) of the target and of a file made from the
reference.

* a models reference compares the names the models give; a key they leave unnamed is not compared (SQLite's own
  default is no name at all);
* a foreign key declared twice in the models (MLflow's ``evaluation_dataset_records``) pairs the live copy with its
  namesake: the unnamed copy is the one added (a rebuild from the models' CREATE TABLE), rows kept;
* an empty reference (models whose classes were never imported, a database with no table) is an error, never a plan
  to drop every table.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import sqlalchemy as sa

pytest.register_assert_rewrite("schema_judges", "sqlite_cases")

from maintenance_pipeline.core.config import Target  # noqa: E402
from maintenance_pipeline.core.errors import ReferenceImportError  # noqa: E402
from maintenance_pipeline.core.migrate.executor import migrate  # noqa: E402
from maintenance_pipeline.core.schema.diff import diff  # noqa: E402
from maintenance_pipeline.core.schema.reference import reference_snapshot  # noqa: E402
from maintenance_pipeline.core.schema.snapshot import snapshot_url  # noqa: E402
from schema_judges import sqlite_judge  # noqa: E402
from sqlite_cases import make_db  # noqa: E402
from fidelity_models import twice_declared_foreign_key


def _made_from(tmp_path, md: sa.MetaData):
    path = tmp_path / "made.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    md.create_all(engine)
    engine.dispose()
    return path


def _align(tmp_path, path, md: sa.MetaData, align: str = "additive"):
    target = Target(name="t", url=f"sqlite:///{path}", reference_metadata="x:md", align=align)
    ref = reference_snapshot(metadata=md, target_dialect="sqlite")
    backup = tmp_path / "backup.db"
    shutil.copyfile(path, backup)
    return migrate(target, ref, align=align, backup=backup)


def _count(path, table: str) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_names_the_models_give_are_compared_and_the_others_are_not(tmp_path):
    md = sa.MetaData()
    sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.Integer, unique=True),
             sa.Column("b", sa.Integer), sa.UniqueConstraint("b", name="uq_t_b"))
    ref = reference_snapshot(metadata=md, target_dialect="sqlite")
    live = make_db(tmp_path / "live.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER CONSTRAINT my_a UNIQUE, "
                                         "b INTEGER, CONSTRAINT my_b UNIQUE (b)); INSERT INTO t VALUES (1, 1, 1);")
    # my_a: the models leave a's key unnamed, not compared; my_b: the models call it uq_t_b
    changes = diff(snapshot_url(f"sqlite:///{live}"), ref)
    assert [(c.kind, c.name, c.detail) for c in changes] == [
        ("rename_constraint", "my_b", "unique (b): my_b -> uq_t_b")]
    result = _align(tmp_path, live, md)
    assert result.drift_after == [] and _count(live, "t") == 1
    assert "CONSTRAINT uq_t_b UNIQUE" in sqlite3.connect(live).execute(
        "SELECT sql FROM sqlite_master WHERE name = 't'").fetchone()[0]


def test_a_foreign_key_declared_twice_adds_the_missing_copy(tmp_path):
    md = twice_declared_foreign_key()
    made = _made_from(tmp_path, md)
    live = make_db(tmp_path / "live.db",
                   "CREATE TABLE evaluation_datasets (dataset_id VARCHAR(36) NOT NULL, PRIMARY KEY (dataset_id));"
                   "CREATE TABLE evaluation_dataset_records (record_id VARCHAR(36) NOT NULL, dataset_id VARCHAR(36) "
                   "NOT NULL, PRIMARY KEY (record_id), CONSTRAINT fk_evaluation_dataset_records_dataset_id FOREIGN "
                   "KEY(dataset_id) REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE);"
                   "INSERT INTO evaluation_datasets VALUES ('d'); INSERT INTO evaluation_dataset_records VALUES "
                   "('r', 'd');")
    ref = reference_snapshot(metadata=md, target_dialect="sqlite")
    assert [(c.kind, c.name) for c in diff(snapshot_url(f"sqlite:///{live}"), ref)] == [("add_foreign_key", None)]
    result = _align(tmp_path, live, md)
    assert result.drift_after == [] and _count(live, "evaluation_dataset_records") == 1
    table = "table evaluation_dataset_records"
    assert sqlite_judge(live)[table] == sqlite_judge(made)[table]


def test_an_empty_reference_is_an_error_never_a_plan_to_drop_every_table(tmp_path):
    with pytest.raises(ReferenceImportError, match=r"^no tables in the reference MetaData: are the model modules "
                                                   r"imported\?"):
        reference_snapshot(metadata=sa.MetaData(), target_dialect="sqlite")
    (tmp_path / "models_pkg").mkdir()
    (tmp_path / "models_pkg" / "__init__.py").write_text(
        "from sqlalchemy.orm import DeclarativeBase\n\n\nclass Base(DeclarativeBase):\n    pass\n")
    with pytest.raises(ReferenceImportError, match=r"^no tables in `models_pkg:Base.metadata`: are the model modules "
                                                   r"imported\?"):
        reference_snapshot(metadata="models_pkg:Base.metadata", target_dialect="sqlite", search_paths=[tmp_path])
    empty = make_db(tmp_path / "empty.db", "CREATE TABLE alembic_version (version_num VARCHAR(32));")
    with pytest.raises(ReferenceImportError, match=r"the reference database .*empty.db has no tables: is it the "
                                                   r"right database and schema\?"):
        reference_snapshot(url=f"sqlite:///{empty}", target_dialect="sqlite", ignore_tables=["alembic_version"])
