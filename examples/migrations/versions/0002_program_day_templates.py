"""program day templates: a junction table replaces scheduled_sessions

The Alembic form of the seed's ``migrate_program_day_templates.py`` (2026-01-04):

* create ``program_day_templates`` (program day <-> session template, with an order),
  and carry the rows of the legacy ``scheduled_sessions`` over to it;
* add ``goals.program_day_id`` (links a practice session to a program day);
* add ``program_days.is_completed``;
* drop ``scheduled_sessions``.

Every change is native SQLite DDL (no table is rebuilt), and nothing here commits:
the caller decides where the transaction ends.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-04 11:46:00

"""
import uuid
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "program_day_templates",
        sa.Column("program_day_id", sa.Text(), nullable=False),
        sa.Column("session_template_id", sa.Text(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("program_day_id", "session_template_id"),
        sa.ForeignKeyConstraint(["program_day_id"], ["program_days.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["session_template_id"], ["session_templates.id"], ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_program_day_templates_session_template_id",
        "program_day_templates",
        ["session_template_id"],
    )

    # Carry the schedule over. A template scheduled twice on the same day becomes one
    # link (the junction table's primary key), keeping its first position.
    op.execute(
        """
        INSERT INTO program_day_templates (program_day_id, session_template_id, "order")
        SELECT program_day_id, session_template_id, MIN("order")
        FROM scheduled_sessions
        GROUP BY program_day_id, session_template_id
        ORDER BY program_day_id, MIN("order"), session_template_id
        """
    )

    # A nullable column with a REFERENCES clause: SQLite adds it natively. (op.add_column
    # with a ForeignKey would need batch mode, i.e. a rebuild of the goals table.)
    op.execute("ALTER TABLE goals ADD COLUMN program_day_id TEXT REFERENCES program_days (id)")
    op.create_index("ix_goals_program_day_id", "goals", ["program_day_id"])

    op.add_column(
        "program_days",
        sa.Column("is_completed", sa.Boolean(), nullable=False, server_default=sa.false()),
    )

    op.drop_index("ix_scheduled_sessions_session_template_id", table_name="scheduled_sessions")
    op.drop_index("ix_scheduled_sessions_program_day_id", table_name="scheduled_sessions")
    op.drop_table("scheduled_sessions")


def downgrade() -> None:
    # Data held only by the new columns (goals.program_day_id, program_days.is_completed)
    # is lost; the schedule goes back to scheduled_sessions.
    op.create_table(
        "scheduled_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("program_day_id", sa.Text(), nullable=False),
        sa.Column("session_template_id", sa.Text(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("created_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id"),
        sa.ForeignKeyConstraint(["program_day_id"], ["program_days.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["session_template_id"], ["session_templates.id"], ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_scheduled_sessions_program_day_id", "scheduled_sessions", ["program_day_id"]
    )
    op.create_index(
        "ix_scheduled_sessions_session_template_id", "scheduled_sessions", ["session_template_id"]
    )

    links = op.get_bind().execute(
        sa.text(
            'SELECT program_day_id, session_template_id, "order" FROM program_day_templates'
            ' ORDER BY program_day_id, "order", session_template_id'
        )
    )
    scheduled_sessions = sa.table(
        "scheduled_sessions",
        sa.column("id", sa.Text()),
        sa.column("program_day_id", sa.Text()),
        sa.column("session_template_id", sa.Text()),
        sa.column("order", sa.Integer()),
    )
    op.bulk_insert(
        scheduled_sessions,
        [
            {
                # the same link always gets the same id
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"scheduled_session:{day}/{template}")),
                "program_day_id": day,
                "session_template_id": template,
                "order": order,
            }
            for day, template, order in links
        ],
    )

    op.drop_column("program_days", "is_completed")
    op.drop_index("ix_goals_program_day_id", table_name="goals")
    op.drop_column("goals", "program_day_id")  # SQLite >= 3.35 drops a column natively
    op.drop_index("ix_program_day_templates_session_template_id", table_name="program_day_templates")
    op.drop_table("program_day_templates")
