"""Names and a column's own sequence on PostgreSQL, against a models reference and a database reference, judged by
``pg_dump --schema-only`` (``schema_judges.pg_judge``) of the target and of a database made from the reference.

* a models reference compares the names the models give (``name=``, a naming convention's) and leaves the others to
  the server: a live key the models leave unnamed is never a rename, whatever the server called it;
* a name the models give and the database does not have is a ``rename_constraint`` / ``rename_index`` that ``align``
  applies with ``ALTER ... RENAME`` (additive), rows kept;
* a foreign key the models declare twice (once on the column, once named in ``__table_args__``, as MLflow's
  ``evaluation_dataset_records`` does) pairs the live copy with its namesake: the other copy is added, no
  ``ADD CONSTRAINT`` of a name that exists;
* ``Identity(start=5, increment=7)`` on a new column gets its options; serial -> bigserial makes the sequence
  ``AS bigint`` (``nextval`` goes past 2,147,483,647);
* an empty models reference (the model modules never imported) is an error naming the likely cause.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

pytest.register_assert_rewrite("schema_judges")

from maintenance_pipeline.core.config import Target  # noqa: E402
from maintenance_pipeline.core.errors import ReferenceImportError  # noqa: E402
from maintenance_pipeline.core.migrate.executor import migrate  # noqa: E402
from maintenance_pipeline.core.schema.diff import diff  # noqa: E402
from maintenance_pipeline.core.schema.reference import reference_snapshot  # noqa: E402
from maintenance_pipeline.core.schema.snapshot import snapshot_url  # noqa: E402
from pg_migrate_helpers import db_state  # noqa: E402
from schema_judges import pg_judge  # noqa: E402
from fidelity_models import twice_declared_foreign_key


def _db(pg, sql: str = "", metadata: sa.MetaData | None = None) -> tuple[str, str]:
    name = f"n_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(name)
    if sql:
        pg.psql(sql, name)
    if metadata is not None:
        engine = sa.create_engine(url)
        metadata.create_all(engine)
        engine.dispose()
    return name, url


def _models_case(pg, live_sql: str, metadata: sa.MetaData):
    """(live name, url, the models' reference snapshot, the judge of a database made from the models)."""
    name, url = _db(pg, live_sql)
    made, _ = _db(pg, metadata=metadata)
    ref = reference_snapshot(metadata=metadata, target_dialect="postgresql", target_url=url)
    return name, url, ref, pg_judge(pg, made)


def _rows(url: str) -> dict:
    return {t: v[0] for t, v in db_state(url, snapshot=False)["rows"].items()}


def test_names_the_models_leave_to_the_server_are_not_compared(pg):
    md = sa.MetaData()
    sa.Table("p", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("c", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("p_id", sa.Integer, sa.ForeignKey("p.id")), sa.Column("code", sa.String(9), unique=True),
             sa.CheckConstraint("id > 0"))
    # the live database names every key its own way (a hand-written schema, a renamed table): none is a difference
    _name, url, ref, _judge = _models_case(
        pg, "CREATE TABLE p (id serial CONSTRAINT my_p PRIMARY KEY);"
            "CREATE TABLE c (id serial CONSTRAINT my_c PRIMARY KEY, p_id int CONSTRAINT my_fk REFERENCES p (id), "
            "code varchar(9) CONSTRAINT my_uq UNIQUE, CONSTRAINT my_ck CHECK (id > 0));"
            "ALTER SEQUENCE c_id_seq RENAME TO old_c_seq", md)
    assert diff(snapshot_url(url), ref) == [], [c.describe() for c in diff(snapshot_url(url), ref)]
    assert {"c_pkey", "c_p_id_fkey", "c_code_key", "c_id_check", None} <= set(ref.tables["c"].server_names)


def test_a_naming_convention_is_compared_and_aligned_by_renames_keeping_rows(pg):
    md = sa.MetaData(naming_convention={"pk": "pk_%(table_name)s", "fk": "fk_%(table_name)s_%(column_0_name)s",
                                        "uq": "uq_%(table_name)s_%(column_0_name)s", "ix": "ix_%(column_0_label)s",
                                        "ck": "ck_%(table_name)s_%(constraint_name)s"})
    sa.Table("p", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("c", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("p_id", sa.Integer, sa.ForeignKey("p.id"), index=True),
             sa.Column("code", sa.String(9), unique=True),
             sa.CheckConstraint("id > 0", name="positive"))
    name, url, ref, judged = _models_case(
        pg, "CREATE TABLE p (id serial PRIMARY KEY); CREATE TABLE c (id serial PRIMARY KEY, p_id int REFERENCES p (id),"
            " code varchar(9) UNIQUE, CONSTRAINT c_positive CHECK (id > 0)); CREATE INDEX c_p_idx ON c (p_id);"
            "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1, 'a'), (2, NULL, 'b');", md)
    assert pg_judge(pg, name) != judged
    changes = diff(snapshot_url(url), ref)
    assert sorted((c.kind, c.table, c.name) for c in changes) == [
        ("rename_constraint", "c", "c_code_key"), ("rename_constraint", "c", "c_p_id_fkey"),
        ("rename_constraint", "c", "c_pkey"), ("rename_constraint", "c", "c_positive"),
        ("rename_constraint", "p", "p_pkey"), ("rename_index", "c", "c_p_idx")]
    assert not any(c.destructive for c in changes)
    before = _rows(url)
    result = migrate(Target(name="c", url=url, reference_metadata="x:md", align="additive"), ref, align="additive")
    assert result.drift_after == []
    assert any("RENAME CONSTRAINT" in s for s in result.sql) and any("ALTER INDEX" in s for s in result.sql)
    assert pg_judge(pg, name) == judged and _rows(url) == before


def test_a_foreign_key_declared_twice_adds_the_missing_copy_not_the_existing_one(pg):
    # MLflow's evaluation_dataset_records: ForeignKey on the column and a named ForeignKeyConstraint, the same key; the
    # server names the first copy evaluation_dataset_records_dataset_id_fkey, which sorts before the named one
    md = twice_declared_foreign_key()
    name, url, ref, judged = _models_case(
        pg, "CREATE TABLE evaluation_datasets (dataset_id varchar(36) PRIMARY KEY);"
            "CREATE TABLE evaluation_dataset_records (record_id varchar(36) PRIMARY KEY, "
            "dataset_id varchar(36) NOT NULL, CONSTRAINT fk_evaluation_dataset_records_dataset_id "
            "FOREIGN KEY (dataset_id) REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE);"
            "INSERT INTO evaluation_datasets VALUES ('d'); INSERT INTO evaluation_dataset_records VALUES ('r', 'd');",
        md)
    changes = diff(snapshot_url(url), ref)
    assert [(c.kind, c.name) for c in changes] == [("add_foreign_key", "evaluation_dataset_records_dataset_id_fkey")]
    result = migrate(Target(name="r", url=url, reference_metadata="x:md", align="additive"), ref, align="additive")
    assert result.drift_after == [] and not any("fk_evaluation_dataset_records" in s for s in result.sql)
    assert pg_judge(pg, name) == judged
    assert _rows(url) == {"evaluation_datasets": 1, "evaluation_dataset_records": 1}


def test_identity_options_of_a_new_column_from_the_models(pg):
    md = sa.MetaData()
    sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("n", sa.Integer, sa.Identity(start=5, increment=7), nullable=False))
    name, url, ref, judged = _models_case(pg, "CREATE TABLE t (id serial PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
                                          md)
    assert ref.tables["t"].column("n").sequence.startswith("AS integer, START WITH 5, INCREMENT BY 7,")
    migrate(Target(name="t", url=url, reference_metadata="x:md", align="additive"), ref, align="additive")
    assert pg_judge(pg, name) == judged
    assert diff(snapshot_url(url), ref) == []


def test_serial_to_bigserial_lets_nextval_pass_the_integer_limit(pg):
    name, url = _db(pg, "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) VALUES ('a');")
    ref_name, ref_url = _db(pg, "CREATE TABLE t (id bigserial PRIMARY KEY, v text);")
    target = Target(name="t", url=url, reference_url=ref_url, align="full")
    ref = reference_snapshot(url=ref_url, target_dialect="postgresql")
    [change] = diff(snapshot_url(url), ref)
    assert change.kind == "alter_column" and "sequence AS integer, MAXVALUE 2147483647 -> AS bigint, MAXVALUE " \
                                             "9223372036854775807" in change.detail
    migrate(target, ref, align="full")
    assert pg_judge(pg, name) == pg_judge(pg, ref_name)
    pg.psql("SELECT setval('t_id_seq', 2147483647); INSERT INTO t (v) VALUES ('past the limit')", name)
    assert pg.psql("SELECT max(id) FROM t", name) == "2147483648"


def test_an_empty_models_reference_is_an_error_naming_the_cause(pg):
    _name, url = _db(pg, "CREATE TABLE t (id int PRIMARY KEY);")
    with pytest.raises(ReferenceImportError, match=r"^no tables in the reference MetaData: are the model modules "
                                                   r"imported\?"):
        reference_snapshot(metadata=sa.MetaData(), target_dialect="postgresql", target_url=url)
    _empty, empty_url = _db(pg)
    with pytest.raises(ReferenceImportError, match=r"the reference database .* has no tables: is it the right "
                                                   r"database and schema\?"):
        reference_snapshot(url=empty_url, target_dialect="postgresql")
    with pytest.raises(ReferenceImportError) as e:
        reference_snapshot(url=empty_url, target_dialect="postgresql")
    assert "pg-super-secret" not in str(e.value) and "\n" not in str(e.value)  # one line, the password masked
