"""baseline: the production schema before Alembic

The fractal-goals database predates Alembic: its schema was built by hand-run scripts
(the last one, ``migrate_database_improvements.py`` of 2026-01-01, added root_id
denormalisation, indexes, soft deletes and audit columns). This revision is that
schema. An existing production database is *stamped* at 0001 (the pipeline does it
through ``baseline_revision: "0001"``), so this upgrade never runs on it; it runs on
an empty database, so that a new database can be built from the revisions alone.

Revision ID: 0001
Revises:
Create Date: 2026-01-01 00:00:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# sa.false()/sa.true() render as 0/1 on SQLite (same text as the hand-built schema) and as
# false/true on PostgreSQL, where an integer default on a BOOLEAN column is an error.
FALSE = sa.false()
TRUE = sa.true()
ZERO = sa.text("0")


def _audit(deleted: bool = True) -> list[sa.Column]:
    columns = [sa.Column("created_at", sa.DateTime()), sa.Column("updated_at", sa.DateTime())]
    if deleted:
        columns.append(sa.Column("deleted_at", sa.DateTime()))
    return columns


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    """Create the pre-Alembic production schema (13 tables, 30 indexes)."""
    # Goals form a tree (parent_id); root_id points at the tree's root (denormalised).
    op.create_table(
        "goals",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("deadline", sa.DateTime()),
        sa.Column("completed", sa.Boolean(), nullable=False, server_default=FALSE),
        *_audit(),
        sa.Column("parent_id", sa.Text()),
        sa.Column("root_id", sa.Text()),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("targets", sa.Text()),
        sa.Column("relevance_statement", sa.Text()),
        sa.Column("is_smart", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("session_start", sa.DateTime()),
        sa.Column("session_end", sa.DateTime()),
        sa.Column("total_duration_seconds", sa.Integer()),
        sa.Column("template_id", sa.Text()),
        sa.Column("attributes", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["parent_id"], ["goals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"]),
        # goals <-> session_templates reference each other. SQLite accepts a forward reference;
        # other databases get this foreign key once session_templates exists (below).
        *([sa.ForeignKeyConstraint(["template_id"], ["session_templates.id"], ondelete="SET NULL")]
          if _sqlite() else []),
    )
    for column in ("parent_id", "root_id", "type", "deleted_at", "template_id", "session_start"):
        op.create_index(f"ix_goals_{column}", "goals", [column])

    op.create_table(
        "practice_session_goals",
        sa.Column("practice_session_id", sa.Text(), nullable=False),
        sa.Column("goal_id", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("practice_session_id", "goal_id"),
        sa.ForeignKeyConstraint(["practice_session_id"], ["goals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["goal_id"], ["goals.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_practice_session_goals_goal_id", "practice_session_goals", ["goal_id"])

    op.create_table(
        "activity_groups",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default=ZERO),
        *_audit(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_activity_groups_root_id", "activity_groups", ["root_id"])

    op.create_table(
        "activity_definitions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("group_id", sa.Text()),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("has_sets", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("has_metrics", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("metrics_multiplicative", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("has_splits", sa.Boolean(), nullable=False, server_default=FALSE),
        *_audit(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["group_id"], ["activity_groups.id"], ondelete="SET NULL"),
    )
    op.create_index("ix_activity_definitions_root_id", "activity_definitions", ["root_id"])
    op.create_index("ix_activity_definitions_group_id", "activity_definitions", ["group_id"])

    op.create_table(
        "metric_definitions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("activity_id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(50), nullable=False),
        sa.Column("is_top_set_metric", sa.Boolean(), nullable=False, server_default=FALSE),
        sa.Column("is_multiplicative", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=TRUE),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default=ZERO),
        *_audit(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["activity_id"], ["activity_definitions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_metric_definitions_activity_id", "metric_definitions", ["activity_id"])
    op.create_index("ix_metric_definitions_root_id", "metric_definitions", ["root_id"])

    op.create_table(
        "split_definitions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("activity_id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default=ZERO),
        *_audit(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["activity_id"], ["activity_definitions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_split_definitions_activity_id", "split_definitions", ["activity_id"])
    op.create_index("ix_split_definitions_root_id", "split_definitions", ["root_id"])

    op.create_table(
        "activity_instances",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("practice_session_id", sa.Text(), nullable=False),
        sa.Column("activity_definition_id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("time_start", sa.DateTime()),
        sa.Column("time_stop", sa.DateTime()),
        sa.Column("duration_seconds", sa.Integer()),
        sa.Column("sort_order", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("notes", sa.Text()),
        sa.Column("data", sa.Text()),
        sa.Column("completed", sa.Boolean(), nullable=False, server_default=FALSE),
        *_audit(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["practice_session_id"], ["goals.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["activity_definition_id"], ["activity_definitions.id"]),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    for column in ("practice_session_id", "activity_definition_id", "root_id", "deleted_at"):
        op.create_index(f"ix_activity_instances_{column}", "activity_instances", [column])

    op.create_table(
        "metric_values",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("activity_instance_id", sa.Text(), nullable=False),
        sa.Column("metric_definition_id", sa.Text(), nullable=False),
        sa.Column("split_definition_id", sa.Text()),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        *_audit(deleted=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["activity_instance_id"], ["activity_instances.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["metric_definition_id"], ["metric_definitions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["split_definition_id"], ["split_definitions.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    for column in ("activity_instance_id", "metric_definition_id", "split_definition_id", "root_id"):
        op.create_index(f"ix_metric_values_{column}", "metric_values", [column])

    op.create_table(
        "session_templates",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("template_data", sa.Text()),
        *_audit(),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_session_templates_root_id", "session_templates", ["root_id"])

    if not _sqlite():
        op.create_foreign_key("fk_goals_template_id", "goals", "session_templates", ["template_id"], ["id"],
                              ondelete="SET NULL")

    op.create_table(
        "programs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("root_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("start_date", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=False),
        sa.Column("goal_ids", sa.Text()),
        sa.Column("weekly_schedule", sa.Text()),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=TRUE),
        *_audit(deleted=False),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["root_id"], ["goals.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_programs_root_id", "programs", ["root_id"])
    op.create_index("ix_programs_is_active", "programs", ["is_active"])

    op.create_table(
        "program_blocks",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("program_id", sa.Text(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("start_date", sa.Date()),
        sa.Column("end_date", sa.Date()),
        sa.Column("color", sa.String(20)),
        sa.Column("goal_ids", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_program_blocks_program_id", "program_blocks", ["program_id"])

    op.create_table(
        "program_days",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("block_id", sa.Text(), nullable=False),
        sa.Column("date", sa.Date()),
        sa.Column("day_number", sa.Integer()),
        sa.Column("name", sa.String(255)),
        sa.Column("notes", sa.Text()),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["block_id"], ["program_blocks.id"], ondelete="CASCADE"),
    )
    op.create_index(
        "uq_program_days_block_id_day_number", "program_days", ["block_id", "day_number"], unique=True
    )
    op.create_index("ix_program_days_date", "program_days", ["date"])

    # Legacy: which session templates are scheduled on a program day (replaced in 0002).
    op.create_table(
        "scheduled_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("program_day_id", sa.Text(), nullable=False),
        sa.Column("session_template_id", sa.Text(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False, server_default=ZERO),
        sa.Column("created_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["program_day_id"], ["program_days.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["session_template_id"], ["session_templates.id"], ondelete="CASCADE"),
    )
    op.create_index("ix_scheduled_sessions_program_day_id", "scheduled_sessions", ["program_day_id"])
    op.create_index(
        "ix_scheduled_sessions_session_template_id", "scheduled_sessions", ["session_template_id"]
    )


def downgrade() -> None:
    """Drop everything (children before parents)."""
    for table in (
        "scheduled_sessions",
        "program_days",
        "program_blocks",
        "programs",
        "metric_values",
        "activity_instances",
        "split_definitions",
        "metric_definitions",
        "activity_definitions",
        "activity_groups",
        "practice_session_goals",
        "goals",
        "session_templates",
    ):
        op.drop_table(table)
