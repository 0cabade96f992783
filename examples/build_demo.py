"""Build the demo databases of the seed scenario, deterministically.

``goals.db``      PRODUCTION as it was before the seed's migration of 2026-01-04:
                  13 tables incl. the legacy ``scheduled_sessions``; ``goals`` has 20
                  columns (no ``program_day_id``, no ``completed_at``), ``program_days``
                  has 6 (no ``is_completed``); 39 goals with 5 roots.
``goals_dev.db``  DEVELOPMENT after it: ``program_day_templates`` instead of
                  ``scheduled_sessions``, ``goals`` with 22 columns, ``program_days`` with 7.

Both files come from the same constants -- the tables in ``demo_schema.py``, the rows in
``demo_rows.py``, what the migration changes below -- so they cannot drift apart by
accident. The development tables that the migration changes are the production
tables with the added columns appended *after* the existing columns and *before* the
table constraints -- exactly where SQLite's ``ALTER TABLE ... ADD COLUMN`` puts them --
so that production after revision 0002 plus ``ALTER TABLE goals ADD COLUMN
completed_at DATETIME`` is, pragma for pragma, the development schema
(``tests/test_demo_revisions.py`` checks this).

No randomness, no wall clock: ids are UUID5s of fixed keys, timestamps are fixed.

    python examples/build_demo.py          # (re)builds examples/data/goals.db and goals_dev.db

The sibling modules are imported by name: this folder is on ``sys.path`` when the file runs
as a script, and ``pg_demo.py`` and the tests put it there before importing this module.
"""

import sqlite3
from pathlib import Path

from demo_rows import database_rows
from demo_schema import (
    ACTIVITY_DEFINITIONS,
    ACTIVITY_GROUPS,
    ACTIVITY_INSTANCES,
    GOALS,
    METRIC_DEFINITIONS,
    METRIC_VALUES,
    PRACTICE_SESSION_GOALS,
    PROGRAM_BLOCKS,
    PROGRAM_DAYS,
    PROGRAMS,
    SCHEDULED_SESSIONS,
    SESSION_TEMPLATES,
    SPLIT_DEFINITIONS,
    Table,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
PRODUCTION_FILE = "goals.db"
DEVELOPMENT_FILE = "goals_dev.db"

# --------------------------------------------------------------------------- schema
# The tables themselves are in demo_schema.py; here, what makes production and development.

# --- what the migration changes (revision 0002 + the seed's "schema alignment fix") ---
# Column definitions exactly as ALTER TABLE ... ADD COLUMN adds them.
GOALS_PROGRAM_DAY_ID = "program_day_id TEXT REFERENCES program_days (id)"  # revision 0002
GOALS_COMPLETED_AT = "completed_at DATETIME"  # in dev only: the drift the pipeline aligns
PROGRAM_DAYS_IS_COMPLETED = "is_completed BOOLEAN NOT NULL DEFAULT 0"  # revision 0002

PROGRAM_DAY_TEMPLATES = Table(  # revision 0002: the new junction table
    "program_day_templates",
    (
        "program_day_id TEXT NOT NULL",
        "session_template_id TEXT NOT NULL",
        '"order" INTEGER NOT NULL DEFAULT 0',
    ),
    (
        "PRIMARY KEY (program_day_id, session_template_id)",
        "FOREIGN KEY (program_day_id) REFERENCES program_days (id) ON DELETE CASCADE",
        "FOREIGN KEY (session_template_id) REFERENCES session_templates (id) ON DELETE CASCADE",
    ),
    (
        "CREATE INDEX ix_program_day_templates_session_template_id"
        " ON program_day_templates (session_template_id)",
    ),
)

# The 12 tables both databases share, unchanged by the migration.
_UNCHANGED = (
    PRACTICE_SESSION_GOALS,
    ACTIVITY_GROUPS,
    ACTIVITY_DEFINITIONS,
    METRIC_DEFINITIONS,
    SPLIT_DEFINITIONS,
    ACTIVITY_INSTANCES,
    METRIC_VALUES,
    SESSION_TEMPLATES,
    PROGRAMS,
    PROGRAM_BLOCKS,
)

PRODUCTION_TABLES: tuple[Table, ...] = (GOALS, *_UNCHANGED, PROGRAM_DAYS, SCHEDULED_SESSIONS)
DEVELOPMENT_TABLES: tuple[Table, ...] = (
    GOALS.with_columns(
        GOALS_PROGRAM_DAY_ID,
        GOALS_COMPLETED_AT,
        indexes=("CREATE INDEX ix_goals_program_day_id ON goals (program_day_id)",),
    ),
    *_UNCHANGED,
    PROGRAM_DAYS.with_columns(PROGRAM_DAYS_IS_COMPLETED),
    PROGRAM_DAY_TEMPLATES,
)

PRODUCTION_DDL: list[str] = [stmt for table in PRODUCTION_TABLES for stmt in table.ddl()]
DEVELOPMENT_DDL: list[str] = [stmt for table in DEVELOPMENT_TABLES for stmt in table.ddl()]

# --------------------------------------------------------------------------- build


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _create(path: Path, ddl: list[str], batches: list[tuple[str, list[dict]]]) -> None:
    _remove(path)
    conn = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        conn.execute("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT
        for statement in ddl:
            conn.execute(statement)
        for table, rows in batches:
            for row in rows:
                columns = ", ".join(f'"{c}"' for c in row)
                marks = ", ".join("?" for _ in row)
                conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))
        conn.execute("COMMIT")
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"{path.name}: foreign key violations: {problems}")
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise RuntimeError(f"{path.name}: integrity_check failed")
    finally:
        conn.close()


def build(data_dir: Path = DATA_DIR) -> tuple[Path, Path]:
    """(Re)build ``goals.db`` (production) and ``goals_dev.db`` (development) in data_dir."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    production = data_dir / PRODUCTION_FILE
    development = data_dir / DEVELOPMENT_FILE
    _create(production, PRODUCTION_DDL, database_rows(dev=False))
    _create(development, DEVELOPMENT_DDL, database_rows(dev=True))
    return production, development


if __name__ == "__main__":
    for built in build():
        print(built)
