"""A models reference runs the models' DDL events as ``create_all`` does, and what they make counts: a function a
``before_create`` event creates (fractal-goals' ``compact_jsonb_octet_length``, used by a CHECK) is part of the
reference, not something to drop from a database made by ``create_all`` of the same models. Judged by the server
(``pg_dump --schema-only``), with nothing left behind; a role that may not create a schema still reads the models
(in its temporary schema)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

pytest.register_assert_rewrite("schema_judges")

import fidelity_models  # noqa: E402
from maintenance_pipeline.core.config import Target  # noqa: E402
from maintenance_pipeline.core.migrate.executor import migrate  # noqa: E402
from maintenance_pipeline.core.schema.diff import diff  # noqa: E402
from maintenance_pipeline.core.schema.reference import reference_snapshot  # noqa: E402
from maintenance_pipeline.core.schema.snapshot import snapshot_url  # noqa: E402
from pg_migrate_helpers import db_state  # noqa: E402
from schema_judges import pg_judge  # noqa: E402

FUNCTION = ("CREATE OR REPLACE FUNCTION compact_jsonb_octet_length(doc jsonb) RETURNS integer LANGUAGE sql IMMUTABLE "
            "AS $$ SELECT octet_length(doc::text) $$")
TRIGGER_FN = ("CREATE OR REPLACE FUNCTION goals_touch() RETURNS trigger LANGUAGE plpgsql AS "
              "$$BEGIN NEW.name := trim(NEW.name); RETURN NEW; END$$")


def models(with_events: bool = True) -> sa.MetaData:
    md = sa.MetaData()
    goals = sa.Table(
        "goals", md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("data", JSONB),
        *([sa.CheckConstraint("compact_jsonb_octet_length(data) <= 4096", name="ck_goals_data_size")]
          if with_events else []))
    if with_events:
        sa.event.listen(md, "before_create", sa.DDL(FUNCTION))
        sa.event.listen(goals, "after_create", sa.DDL(TRIGGER_FN))
        sa.event.listen(goals, "after_create", sa.DDL(
            "CREATE TRIGGER goals_touch BEFORE INSERT ON goals FOR EACH ROW EXECUTE FUNCTION goals_touch()"))
    return md


def _db(pg, create=None) -> tuple[str, str]:
    name = f"e_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(name)
    if create is not None:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            create(conn)
        engine.dispose()
    return name, url


def _leftovers(pg, name: str) -> str:
    return pg.psql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'mp\\_models\\_%'", name)


def test_what_the_models_ddl_events_make_is_part_of_the_reference(pg):
    md = models()
    name, url = _db(pg, md.create_all)
    before = db_state(url)
    ref = reference_snapshot(metadata=md, target_dialect="postgresql", target_url=url)
    assert db_state(url) == before and _leftovers(pg, name) == "0"  # read, then rolled back
    assert "function compact_jsonb_octet_length(doc jsonb)" in ref.objects
    assert "trigger goals_touch on goals" in ref.objects
    assert [c.definition for c in ref.tables["goals"].checks] == ["CHECK (compact_jsonb_octet_length(data) <= 4096)"]
    changes = diff(snapshot_url(url), ref)
    assert changes == [], [c.describe() for c in changes]


def test_a_database_is_aligned_to_models_with_ddl_events(pg):
    ref_name, _ref_url = _db(pg, models().create_all)  # what create_all of the models makes: the judge's reference
    cur_name, cur_url = _db(pg, models(with_events=False).create_all)
    pg.psql("INSERT INTO goals (id, name, data) VALUES (1, 'x', '{\"a\": 1}'), (2, 'y', NULL)", cur_name)
    md = models()
    ref = reference_snapshot(metadata=md, target_dialect="postgresql", target_url=cur_url)
    assert pg_judge(pg, cur_name) != pg_judge(pg, ref_name)
    result = migrate(Target(name="t", url=cur_url, reference_metadata="test_pg_models_ddl_events:models", align="full"), ref, align="full")
    assert result.drift_after == []
    assert pg_judge(pg, cur_name) == pg_judge(pg, ref_name)
    assert pg.psql("SELECT count(*) FROM goals", cur_name) == "2"


def test_a_role_that_may_not_create_a_schema_reads_the_models_in_its_temporary_schema(pg):
    name, url = _db(pg, fidelity_models.metadata.create_all)
    role = f"r_{uuid.uuid4().hex[:8]}"
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw'; GRANT CONNECT, TEMPORARY ON DATABASE {name} TO {role};"
            f"REVOKE CREATE ON DATABASE {name} FROM PUBLIC; GRANT USAGE ON SCHEMA public TO {role};"
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};", name)
    reader = pg.url(name, user=role, password="pw")
    ref = reference_snapshot(metadata=fidelity_models.metadata, target_dialect="postgresql", target_url=reader)
    changes = diff(snapshot_url(url), ref)
    assert changes == [], [c.describe() for c in changes]
    assert _leftovers(pg, name) == "0"
