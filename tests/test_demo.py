"""The demo: examples/build_demo.py builds the seed's production and development files.

The Alembic revisions in examples/migrations, which turn the one into the other, are tested in
``test_demo_revisions.py``; the helpers both use are in ``demo_helpers.py``.
"""

from __future__ import annotations

import hashlib

from targets import EXAMPLES, build_demo
from demo_helpers import (  # noqa: F401 - demo is a fixture
    DEVELOPMENT_COLUMNS,
    PRODUCTION_COLUMNS,
    connect,
    demo,
    dump,
    schema,
    tables,
    verify_equivalence,
)

# --------------------------------------------------------------------------- the build


def test_build_returns_both_files_and_defaults_to_examples_data(demo):
    production, development = demo
    assert (production.name, development.name) == ("goals.db", "goals_dev.db")
    assert build_demo.DATA_DIR == EXAMPLES / "data"
    assert build_demo.build.__defaults__ == (EXAMPLES / "data",)


def test_build_is_deterministic(demo, tmp_path):
    again = build_demo.build(tmp_path)
    for first, second in zip(demo, again):
        assert dump(first) == dump(second)
        assert schema(first) == schema(second)
        # Same statements on the same SQLite: even the bytes are the same.
        assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(
            second.read_bytes()
        ).digest()


def test_build_replaces_old_files_and_their_journals(tmp_path):
    (tmp_path / "goals.db").write_bytes(b"not a database")
    for suffix in ("-wal", "-shm", "-journal"):
        (tmp_path / f"goals.db{suffix}").write_bytes(b"stale")
        (tmp_path / f"goals_dev.db{suffix}").write_bytes(b"stale")
    build_demo.build(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["goals.db", "goals_dev.db"]


def test_production_is_the_seed_before_migration(demo):
    production, _ = demo
    assert tables(production) == sorted(PRODUCTION_COLUMNS)
    columns = {t: len(info["table_info"]) for t, info in schema(production).items()}
    assert columns == PRODUCTION_COLUMNS
    goal_columns = [c[1] for c in schema(production)["goals"]["table_info"]]
    assert "program_day_id" not in goal_columns and "completed_at" not in goal_columns
    assert "is_completed" not in [c[1] for c in schema(production)["program_days"]["table_info"]]

    with connect(production) as conn:
        assert conn.execute("SELECT count(*) FROM goals").fetchone() == (39,)
        roots = conn.execute(
            "SELECT type, name FROM goals WHERE parent_id IS NULL ORDER BY type DESC, name"
        ).fetchall()
        assert len(roots) == 5
        assert roots[:2] == [
            ("UltimateGoal", "Become a Great Guitar Player"),
            ("UltimateGoal", "Become an Elite Calisthenics Athlete"),
        ]
        assert [t for t, _ in roots[2:]] == ["PracticeSession"] * 3
        assert conn.execute("SELECT count(*) FROM goals WHERE root_id IS NULL").fetchone() == (0,)
        # every non-root goal belongs to one of the two ultimate goals
        assert conn.execute(
            "SELECT count(*) FROM goals g JOIN goals r ON r.id = g.root_id"
            " WHERE g.parent_id IS NOT NULL AND r.type = 'UltimateGoal'"
        ).fetchone() == (34,)
        # the targets file's user check
        assert conn.execute(
            "SELECT count(*) FROM goals g WHERE g.parent_id IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM goals p WHERE p.id = g.parent_id)"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM scheduled_sessions").fetchone()[0] > 0
        for table in PRODUCTION_COLUMNS:
            if table != "scheduled_sessions":
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        named = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchone()[0]
        assert 28 <= named <= 31  # "Indexes: 28-31"


def test_development_is_the_schema_after_migration(demo):
    _, development = demo
    assert tables(development) == sorted(DEVELOPMENT_COLUMNS)
    dev = schema(development)
    assert {t: len(info["table_info"]) for t, info in dev.items()} == DEVELOPMENT_COLUMNS
    # added by ALTER TABLE ... ADD COLUMN, hence last
    assert [c[1] for c in dev["goals"]["table_info"][-2:]] == ["program_day_id", "completed_at"]
    assert dev["program_days"]["table_info"][-1][1:] == ("is_completed", "BOOLEAN", 1, "0", 0)
    assert dev["goals"]["table_info"][-1][1:] == ("completed_at", "DATETIME", 0, None, 0)
    pdt_fks = {(fk[2], fk[3], fk[6]) for fk in dev["program_day_templates"]["foreign_key_list"]}
    assert pdt_fks == {
        ("program_days", "program_day_id", "CASCADE"),
        ("session_templates", "session_template_id", "CASCADE"),
    }
    with connect(development) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM goals").fetchone() == (39,)
        assert conn.execute("SELECT count(*) FROM program_day_templates").fetchone()[0] > 0


def test_the_two_files_differ_exactly_where_the_seed_says(demo):
    production, development = demo
    problems = verify_equivalence(production, development)
    assert "table scheduled_sessions only in goals.db" in problems
    assert "table program_day_templates only in goals_dev.db" in problems
    changed = {line.split()[0] for line in problems if not line.startswith("table ")}
    assert changed == {"goals", "program_days"}

