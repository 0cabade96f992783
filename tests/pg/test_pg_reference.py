"""References for PostgreSQL targets: a database read in a named schema (``reference.schema``, e.g. a
development schema kept in the production database itself), through the pipeline and the drift
sensor's probe; and SQLAlchemy models (``reference.metadata``) whose tables alignment creates.

Every test runs against the real throwaway server of the ``pg`` fixture (``tests/helpers/pgserver.py``).
"""

from __future__ import annotations

import uuid

import pytest

from targets import write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.drift import ReferenceCache, probe_target
from maintenance_pipeline.core.errors import ConfigError
from maintenance_pipeline.core.run.pipeline import run_job

LIVE = "CREATE TABLE items (id serial PRIMARY KEY, label text); INSERT INTO items (label) VALUES ('a'), ('b');"
DEV = ("CREATE SCHEMA dev; CREATE TABLE dev.items (id serial PRIMARY KEY, label text, price numeric(8,2) "
       "DEFAULT 0); CREATE TABLE dev.notes (id serial PRIMARY KEY, body text);")


def _database(pg, sql: str) -> tuple[str, str]:
    name = f"rs_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(name)
    pg.psql(sql, name)
    return name, url


def _config(tmp_path, url: str, reference: dict):
    return load_config(write_config(tmp_path, {"db": {"url": url, "reference": reference, "align": "full"}}))


def test_maintain_aligns_public_with_a_dev_schema_in_the_same_database(pg, tmp_path):
    name, url = _database(pg, LIVE + DEV)
    report = run_job(_config(tmp_path, url, {"url": url, "schema": "dev"}), "db", "maintain_database")
    assert report["status"] == "success", report["error"]
    # compared with dev only: public's own tables are not "extra" and dev's are not "missing twice"
    assert sorted((c["kind"], c["table"], c["name"]) for c in report["drift_before"]) == [
        ("add_column", "items", "price"), ("add_table", "notes", None)]
    assert report["drift_after"] == [] and all(c["passed"] for c in report["checks"]), report["checks"]
    assert pg.psql("SELECT count(*) FROM public.items WHERE price = 0", name).strip() == "2"
    assert pg.psql("SELECT count(*) FROM dev.items", name).strip() == "0"  # the reference is only read


def test_without_reference_schema_the_reference_is_read_in_its_default_schema(pg, tmp_path):
    name, url = _database(pg, LIVE + DEV)
    report = run_job(_config(tmp_path, url, {"url": url}), "db", "verify_database")
    assert report["status"] == "success", report["error"]  # public against public: equal
    assert report["drift_before"] == []


def test_sensor_probe_follows_the_reference_schema(pg, tmp_path):
    name, url = _database(pg, LIVE + DEV)
    target = _config(tmp_path, url, {"url": url, "schema": "dev"}).targets["db"]
    refs = ReferenceCache()
    probe, cursor = probe_target(target, None, refs)
    assert probe.status == "drift", probe
    assert any("the reference has table notes" in c and "(fix: add_table)" in c for c in probe.changes), probe
    # the dev schema moves to what public is: the reference's version moves, the drift goes away
    pg.psql("DROP TABLE dev.notes; ALTER TABLE dev.items DROP COLUMN price", name)
    refs.new_tick()
    probe, _ = probe_target(target, cursor, refs)
    assert probe.status == "ok", probe


def test_a_missing_reference_schema_is_a_clear_error(pg, tmp_path):
    name, url = _database(pg, LIVE)
    report = run_job(_config(tmp_path, url, {"url": url, "schema": "nope"}), "db", "verify_database")
    assert report["status"] == "failed"
    assert "schema 'nope' does not exist" in report["error"] and "reference.schema" in report["error"]
    with pytest.raises(ConfigError, match="reference.schema"):
        _config(tmp_path, "sqlite:///x.db", {"url": "sqlite:///y.db", "schema": "dev"})


MODELS = """
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str | None] = mapped_column(sa.Text)


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, sa.Identity(always=True))
    body: Mapped[str | None] = mapped_column(sa.Text)
"""


def test_tables_created_from_models_get_their_sequence_and_identity(pg, tmp_path):
    name, url = _database(pg, LIVE)
    (tmp_path / "refmodels.py").write_text(MODELS)
    config = _config(tmp_path, url, {"metadata": "refmodels:Base.metadata"})
    report = run_job(config, "db", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert [(c["kind"], c["table"]) for c in report["drift_before"]] == [("add_table", "notes")]
    assert report["drift_after"] == []
    # ids come from the server, as they would in a table made by Base.metadata.create_all
    pg.psql("INSERT INTO notes (body) VALUES ('x'), ('y')", name)
    assert pg.psql("SELECT string_agg(id || ':' || seq, ',' ORDER BY id) FROM notes", name).strip() == "1:1,2:2"
    assert pg.psql("SELECT data_type || ' ' || is_identity || ' ' || identity_generation FROM "
                   "information_schema.columns WHERE table_name = 'notes' AND column_name = 'seq'",
                   name).strip() == "integer YES ALWAYS"
    assert pg.psql("SELECT data_type FROM information_schema.columns WHERE table_name = 'notes' AND "
                   "column_name = 'id'", name).strip() == "bigint"
    # and the next verify run sees no drift between the models and what alignment made
    assert run_job(config, "db", "verify_database")["drift_before"] == []
