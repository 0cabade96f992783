"""A models package using what a careful team writes: expression and ordered indexes, CHECK constraints,
server defaults (and a Python-side default, which is not a database default), Identity(), Computed(), an enum,
a unique key, a composite foreign key. ``create_with_alembic`` writes the same schema as Alembic revisions do."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

metadata = sa.MetaData()


class Mood(enum.Enum):
    sad = "sad"
    happy = "happy"


owners = sa.Table(
    "owners", metadata,
    sa.Column("id", sa.Integer, sa.Identity(always=False), primary_key=True),
    sa.Column("email", sa.String(120), nullable=False),
    sa.Column("region", sa.String(8), nullable=False, server_default="eu"),
    sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("tag", sa.String(20), default="python-side only"),  # not a database default: never drift
    sa.UniqueConstraint("email", name="uq_owners_email"),
    sa.CheckConstraint("length(email) > 3", name="ck_owners_email"),
)
sa.Index("ix_owners_lower_email", sa.func.lower(owners.c.email))
sa.Index("ix_owners_region_desc", owners.c.region.desc(), owners.c.id)

pets = sa.Table(
    "pets", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("weight_g", sa.Integer, sa.CheckConstraint("weight_g >= 0", name="ck_pets_weight")),
    sa.Column("weight_kg", sa.Numeric(10, 3), sa.Computed("weight_g / 1000.0", persisted=True)),
    sa.Column("mood", sa.Enum(Mood, name="mood"), server_default="happy"),
)
sa.Index("ix_pets_owner_name", pets.c.owner_id, pets.c.name.desc())


def create_with_alembic(conn: sa.Connection) -> None:
    """The same schema, written as a revision's ``op.*`` calls."""
    op = Operations(MigrationContext.configure(conn))
    op.create_table(
        "owners",
        sa.Column("id", sa.Integer, sa.Identity(always=False), primary_key=True),
        sa.Column("email", sa.String(120), nullable=False),
        sa.Column("region", sa.String(8), nullable=False, server_default="eu"),
        sa.Column("created_at", sa.DateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("tag", sa.String(20)),
        sa.UniqueConstraint("email", name="uq_owners_email"),
        sa.CheckConstraint("length(email) > 3", name="ck_owners_email"),
    )
    op.create_index("ix_owners_lower_email", "owners", [sa.text("lower(email)")])
    op.create_index("ix_owners_region_desc", "owners", [sa.text("region DESC"), "id"])
    op.create_table(
        "pets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("weight_g", sa.Integer, sa.CheckConstraint("weight_g >= 0", name="ck_pets_weight")),
        sa.Column("weight_kg", sa.Numeric(10, 3), sa.Computed("weight_g / 1000.0", persisted=True)),
        sa.Column("mood", sa.Enum(Mood, name="mood"), server_default="happy"),
    )
    op.create_index("ix_pets_owner_name", "pets", ["owner_id", sa.text("name DESC")])


def twice_declared_foreign_key() -> sa.MetaData:
    """MLflow's ``evaluation_dataset_records``: a ForeignKey on the column and a named ForeignKeyConstraint, the same
    key declared twice (a database made from them holds two copies)."""
    md = sa.MetaData()
    sa.Table("evaluation_datasets", md, sa.Column("dataset_id", sa.String(36), primary_key=True))
    sa.Table("evaluation_dataset_records", md, sa.Column("record_id", sa.String(36), primary_key=True),
             sa.Column("dataset_id", sa.String(36), sa.ForeignKey("evaluation_datasets.dataset_id",
                                                                  ondelete="CASCADE"), nullable=False),
             sa.ForeignKeyConstraint(["dataset_id"], ["evaluation_datasets.dataset_id"],
                                     name="fk_evaluation_dataset_records_dataset_id", ondelete="CASCADE"))
    return md

