"""The demo's tables as the seed's production had them before its migration of 2026-01-04.

Each ``Table`` is written the way SQLite stores it (columns, then table constraints, then
its indexes); ``build_demo.py`` puts these tables together into the production and the
development schema (the latter with the migration's changes).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    indexes: tuple[str, ...] = ()

    def with_columns(self, *added: str, indexes: tuple[str, ...] = ()) -> "Table":
        """This table as ``ALTER TABLE ... ADD COLUMN`` leaves it: new columns last."""
        return Table(self.name, self.columns + added, self.constraints, self.indexes + indexes)

    def ddl(self) -> list[str]:
        body = ",\n    ".join(self.columns + self.constraints)
        return [f"CREATE TABLE {self.name} (\n    {body}\n)", *self.indexes]


GOALS = Table(
    "goals",
    (
        "id TEXT NOT NULL",
        "type VARCHAR(50) NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "description TEXT",
        "deadline DATETIME",
        "completed BOOLEAN NOT NULL DEFAULT 0",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
        "parent_id TEXT",
        "root_id TEXT",
        "sort_order INTEGER NOT NULL DEFAULT 0",
        "targets TEXT",
        "relevance_statement TEXT",
        "is_smart BOOLEAN NOT NULL DEFAULT 0",
        "session_start DATETIME",
        "session_end DATETIME",
        "total_duration_seconds INTEGER",
        "template_id TEXT",
        "attributes TEXT",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (parent_id) REFERENCES goals (id) ON DELETE CASCADE",
        "FOREIGN KEY (root_id) REFERENCES goals (id)",
        "FOREIGN KEY (template_id) REFERENCES session_templates (id) ON DELETE SET NULL",
    ),
    (
        "CREATE INDEX ix_goals_parent_id ON goals (parent_id)",
        "CREATE INDEX ix_goals_root_id ON goals (root_id)",
        "CREATE INDEX ix_goals_type ON goals (type)",
        "CREATE INDEX ix_goals_deleted_at ON goals (deleted_at)",
        "CREATE INDEX ix_goals_template_id ON goals (template_id)",
        "CREATE INDEX ix_goals_session_start ON goals (session_start)",
    ),
)

PRACTICE_SESSION_GOALS = Table(
    "practice_session_goals",
    ("practice_session_id TEXT NOT NULL", "goal_id TEXT NOT NULL"),
    (
        "PRIMARY KEY (practice_session_id, goal_id)",
        "FOREIGN KEY (practice_session_id) REFERENCES goals (id) ON DELETE CASCADE",
        "FOREIGN KEY (goal_id) REFERENCES goals (id) ON DELETE CASCADE",
    ),
    ("CREATE INDEX ix_practice_session_goals_goal_id ON practice_session_goals (goal_id)",),
)

ACTIVITY_GROUPS = Table(
    "activity_groups",
    (
        "id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "description TEXT",
        "sort_order INTEGER NOT NULL DEFAULT 0",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
    ),
    ("PRIMARY KEY (id)", "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE"),
    ("CREATE INDEX ix_activity_groups_root_id ON activity_groups (root_id)",),
)

ACTIVITY_DEFINITIONS = Table(
    "activity_definitions",
    (
        "id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "group_id TEXT",
        "name VARCHAR(255) NOT NULL",
        "description TEXT",
        "has_sets BOOLEAN NOT NULL DEFAULT 0",
        "has_metrics BOOLEAN NOT NULL DEFAULT 1",
        "metrics_multiplicative BOOLEAN NOT NULL DEFAULT 0",
        "has_splits BOOLEAN NOT NULL DEFAULT 0",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE",
        "FOREIGN KEY (group_id) REFERENCES activity_groups (id) ON DELETE SET NULL",
    ),
    (
        "CREATE INDEX ix_activity_definitions_root_id ON activity_definitions (root_id)",
        "CREATE INDEX ix_activity_definitions_group_id ON activity_definitions (group_id)",
    ),
)

METRIC_DEFINITIONS = Table(
    "metric_definitions",
    (
        "id TEXT NOT NULL",
        "activity_id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "unit VARCHAR(50) NOT NULL",
        "is_top_set_metric BOOLEAN NOT NULL DEFAULT 0",
        "is_multiplicative BOOLEAN NOT NULL DEFAULT 1",
        "is_active BOOLEAN NOT NULL DEFAULT 1",
        "sort_order INTEGER NOT NULL DEFAULT 0",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (activity_id) REFERENCES activity_definitions (id) ON DELETE CASCADE",
        "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE",
    ),
    (
        "CREATE INDEX ix_metric_definitions_activity_id ON metric_definitions (activity_id)",
        "CREATE INDEX ix_metric_definitions_root_id ON metric_definitions (root_id)",
    ),
)

SPLIT_DEFINITIONS = Table(
    "split_definitions",
    (
        "id TEXT NOT NULL",
        "activity_id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "sort_order INTEGER NOT NULL DEFAULT 0",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (activity_id) REFERENCES activity_definitions (id) ON DELETE CASCADE",
        "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE",
    ),
    (
        "CREATE INDEX ix_split_definitions_activity_id ON split_definitions (activity_id)",
        "CREATE INDEX ix_split_definitions_root_id ON split_definitions (root_id)",
    ),
)

ACTIVITY_INSTANCES = Table(
    "activity_instances",
    (
        "id TEXT NOT NULL",
        "practice_session_id TEXT NOT NULL",
        "activity_definition_id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "time_start DATETIME",
        "time_stop DATETIME",
        "duration_seconds INTEGER",
        "sort_order INTEGER NOT NULL DEFAULT 0",
        "notes TEXT",
        "data TEXT",
        "completed BOOLEAN NOT NULL DEFAULT 0",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (practice_session_id) REFERENCES goals (id) ON DELETE CASCADE",
        "FOREIGN KEY (activity_definition_id) REFERENCES activity_definitions (id)",
        "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE",
    ),
    (
        "CREATE INDEX ix_activity_instances_practice_session_id"
        " ON activity_instances (practice_session_id)",
        "CREATE INDEX ix_activity_instances_activity_definition_id"
        " ON activity_instances (activity_definition_id)",
        "CREATE INDEX ix_activity_instances_root_id ON activity_instances (root_id)",
        "CREATE INDEX ix_activity_instances_deleted_at ON activity_instances (deleted_at)",
    ),
)

METRIC_VALUES = Table(
    "metric_values",
    (
        "id TEXT NOT NULL",
        "activity_instance_id TEXT NOT NULL",
        "metric_definition_id TEXT NOT NULL",
        "split_definition_id TEXT",
        "root_id TEXT NOT NULL",
        "value FLOAT NOT NULL",
        "created_at DATETIME",
        "updated_at DATETIME",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (activity_instance_id) REFERENCES activity_instances (id) ON DELETE CASCADE",
        "FOREIGN KEY (metric_definition_id) REFERENCES metric_definitions (id) ON DELETE CASCADE",
        "FOREIGN KEY (split_definition_id) REFERENCES split_definitions (id) ON DELETE SET NULL",
        "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE",
    ),
    (
        "CREATE INDEX ix_metric_values_activity_instance_id ON metric_values (activity_instance_id)",
        "CREATE INDEX ix_metric_values_metric_definition_id ON metric_values (metric_definition_id)",
        "CREATE INDEX ix_metric_values_split_definition_id ON metric_values (split_definition_id)",
        "CREATE INDEX ix_metric_values_root_id ON metric_values (root_id)",
    ),
)

SESSION_TEMPLATES = Table(
    "session_templates",
    (
        "id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "description TEXT",
        "template_data TEXT",
        "created_at DATETIME",
        "updated_at DATETIME",
        "deleted_at DATETIME",
    ),
    ("PRIMARY KEY (id)", "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE"),
    ("CREATE INDEX ix_session_templates_root_id ON session_templates (root_id)",),
)

PROGRAMS = Table(
    "programs",
    (
        "id TEXT NOT NULL",
        "root_id TEXT NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "description TEXT",
        "start_date DATETIME NOT NULL",
        "end_date DATETIME NOT NULL",
        "goal_ids TEXT",
        "weekly_schedule TEXT",
        "is_active BOOLEAN NOT NULL DEFAULT 1",
        "created_at DATETIME",
        "updated_at DATETIME",
    ),
    ("PRIMARY KEY (id)", "FOREIGN KEY (root_id) REFERENCES goals (id) ON DELETE CASCADE"),
    (
        "CREATE INDEX ix_programs_root_id ON programs (root_id)",
        "CREATE INDEX ix_programs_is_active ON programs (is_active)",
    ),
)

PROGRAM_BLOCKS = Table(
    "program_blocks",
    (
        "id TEXT NOT NULL",
        "program_id TEXT NOT NULL",
        "name VARCHAR(255) NOT NULL",
        "start_date DATE",
        "end_date DATE",
        "color VARCHAR(20)",
        "goal_ids TEXT",
    ),
    ("PRIMARY KEY (id)", "FOREIGN KEY (program_id) REFERENCES programs (id) ON DELETE CASCADE"),
    ("CREATE INDEX ix_program_blocks_program_id ON program_blocks (program_id)",),
)

PROGRAM_DAYS = Table(
    "program_days",
    (
        "id TEXT NOT NULL",
        "block_id TEXT NOT NULL",
        "date DATE",
        "day_number INTEGER",
        "name VARCHAR(255)",
        "notes TEXT",
    ),
    ("PRIMARY KEY (id)", "FOREIGN KEY (block_id) REFERENCES program_blocks (id) ON DELETE CASCADE"),
    (
        "CREATE UNIQUE INDEX uq_program_days_block_id_day_number"
        " ON program_days (block_id, day_number)",
        "CREATE INDEX ix_program_days_date ON program_days (date)",
    ),
)

# The legacy table the seed's migration replaced (production only).
SCHEDULED_SESSIONS = Table(
    "scheduled_sessions",
    (
        "id TEXT NOT NULL",
        "program_day_id TEXT NOT NULL",
        "session_template_id TEXT NOT NULL",
        '"order" INTEGER NOT NULL DEFAULT 0',
        "created_at DATETIME",
    ),
    (
        "PRIMARY KEY (id)",
        "FOREIGN KEY (program_day_id) REFERENCES program_days (id) ON DELETE CASCADE",
        "FOREIGN KEY (session_template_id) REFERENCES session_templates (id) ON DELETE CASCADE",
    ),
    (
        "CREATE INDEX ix_scheduled_sessions_program_day_id ON scheduled_sessions (program_day_id)",
        "CREATE INDEX ix_scheduled_sessions_session_template_id"
        " ON scheduled_sessions (session_template_id)",
    ),
)
