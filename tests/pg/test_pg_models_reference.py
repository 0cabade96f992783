"""A models reference on PostgreSQL says what the server makes of the models (created in a temporary schema of
the target's server, read back, rolled back): against a database created from the same models by ``create_all``
and by the Alembic operations written for them, zero differences; a real difference is seen; nothing is left
behind on the server."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

import fidelity_models
from maintenance_pipeline.core.schema.diff import diff
from maintenance_pipeline.core.schema.reference import reference_snapshot
from maintenance_pipeline.core.schema.snapshot import snapshot_url
from pg_migrate_helpers import db_state


def _db(pg, create) -> str:
    name = f"m_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(name)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        create(conn)
    engine.dispose()
    return url


def test_models_and_a_database_made_from_them_give_zero_differences(pg):
    for create in (fidelity_models.metadata.create_all, fidelity_models.create_with_alembic):
        url = _db(pg, create)
        before = db_state(url)
        ref = reference_snapshot(metadata=fidelity_models.metadata, target_dialect="postgresql", target_url=url)
        assert db_state(url) == before  # the models were read in a temporary schema, rolled back
        live = snapshot_url(url)
        assert diff(live, ref) == [], [c.describe() for c in diff(live, ref)]
        # what the server made of the models is really there: expression and DESC members, CHECKs, identity
        owners = ref.tables["owners"]
        assert any("lower((email)::text)" in i.definition for i in owners.indexes)
        assert any("region DESC" in i.definition for i in owners.indexes)
        assert {c.name for c in owners.checks} == {"ck_owners_email"}
        assert "IDENTITY" in owners.column("id").type_key
        assert "GENERATED" in ref.tables["pets"].column("weight_kg").type_key
        assert "type mood" in ref.objects


def test_a_difference_from_the_models_is_seen(pg):
    url = _db(pg, fidelity_models.metadata.create_all)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_owners_lower_email; CREATE INDEX ix_owners_lower_email ON owners "
                             "(upper(email)); ALTER TABLE owners ALTER COLUMN region SET DEFAULT 'us';"
                             "ALTER TABLE pets DROP CONSTRAINT ck_pets_weight")
    engine.dispose()
    ref = reference_snapshot(metadata=fidelity_models.metadata, target_dialect="postgresql", target_url=url)
    kinds = {(c.kind, c.table) for c in diff(snapshot_url(url), ref)}
    assert {("add_index", "owners"), ("drop_index", "owners"), ("alter_column", "owners"),
            ("add_check", "pets")} <= kinds
