"""The SQLite alignment executor (``core/migrate.py`` + ``core/align.py``) as a whole: failures and align modes.

What makes a run fail and that a failure leaves the file bytewise as it was (sha256): constraints
the rows cannot meet, foreign-key violations the run would introduce, everything in one
transaction, a database locked by another writer, a dropped table a view still reads. Then the
align modes (full / additive / none) and dry runs. Rebuilds are in test_rebuild.py and
test_rebuild_keeps.py; the shared ``Case`` helpers are in sqlite_cases.py.
"""

from __future__ import annotations

import dataclasses

import sqlite3

import pytest

from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.engines.sqlite import files as sqlite_files
from maintenance_pipeline.core.errors import (
    DatabaseLockedError,
    DestructiveChangeRefusedError,
    MigrationError,
    SchemaLeftDifferentError,
)
from maintenance_pipeline.core.migrate.executor import fk_violations
from maintenance_pipeline.core.schema.model import ADDITIVE_KINDS

# sqlite_cases is rewritten like a test module (its asserts report in full); case is a fixture
pytest.register_assert_rewrite("sqlite_cases")
from sqlite_cases import case, rebuilt  # noqa: E402, F401


# ---------------------------------------------------------------------- failures


@pytest.mark.parametrize("target, reference, table", [
    pytest.param("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                 "INSERT INTO notes VALUES (1, 'a'), (2, NULL);",
                 "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);", "notes", id="not-null-on-nulls"),
    pytest.param("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);"
                 "INSERT INTO users VALUES (1, 'a'), (2, 'a');",
                 "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE);", "users", id="unique-on-duplicates"),
    pytest.param("CREATE TABLE notes (id INTEGER PRIMARY KEY); INSERT INTO notes VALUES (1);",
                 "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);", "notes",
                 id="add-not-null-column-without-default"),
])
def test_alignment_that_cannot_succeed_rolls_back_bytewise(case, target, reference, table):
    c = case(target, reference)
    with pytest.raises(MigrationError) as err:
        c.run()
    message = str(err.value)
    assert "\n" not in message
    assert f"table {table}" in message or f"{table}." in message
    assert "_alembic_tmp" not in message
    assert "rolled back" in message
    assert c.unchanged()


def test_foreign_key_violations_introduced_by_the_run_abort_it(case):
    c = case("CREATE TABLE p (id INTEGER PRIMARY KEY);"
             "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER);"
             "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1), (2, 7), (3, 8);",
             "CREATE TABLE p (id INTEGER PRIMARY KEY);"
             "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id));")
    with pytest.raises(MigrationError) as err:
        c.run()
    assert "missing parents (c -> p: 2)" in str(err.value)
    assert c.unchanged()


def test_pre_existing_violations_do_not_abort_the_run(case):
    c = case("CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT);"
             "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id), v TEXT);"
             "CREATE TABLE m (id INTEGER PRIMARY KEY, p_code TEXT REFERENCES p (code));"  # unusable: code not unique
             "INSERT INTO p VALUES (1, 'x'); INSERT INTO c VALUES (1, 1, '1'), (2, 99, '2');"
             "INSERT INTO m VALUES (1, 'x');",
             "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT);"
             "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id), v INTEGER);"
             "CREATE TABLE m (id INTEGER PRIMARY KEY, p_code TEXT REFERENCES p (code));"
             "CREATE TABLE extra (id INTEGER PRIMARY KEY);")
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert c.remaining() == []
    assert c.q("SELECT * FROM c ORDER BY id") == [(1, 1, 1), (2, 99, 2)]
    engine = open_engine(c.target.url)
    with engine.connect() as conn:
        assert fk_violations(conn) == {("c", "p"): 1, ("m", "p (foreign key mismatch)"): 1}
    engine.dispose()


def test_everything_is_one_transaction(case):
    # add_table, add_column and add_index succeed, then the rebuild for the unique key fails
    c = case("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO users VALUES (1, 'a'), (2, 'a');",
             "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, nick TEXT);"
             "CREATE INDEX ix_users_nick ON users (nick);"
             "CREATE TABLE audit (id INTEGER PRIMARY KEY);")
    with pytest.raises(MigrationError, match="users"):
        c.run()
    assert c.unchanged()
    assert c.q("SELECT name FROM sqlite_master ORDER BY name") == [("users",)]


def test_a_database_locked_by_another_writer_is_a_clear_error(case, monkeypatch):
    original = sqlite_files.connect_factory
    monkeypatch.setattr(sqlite_files, "connect_factory", lambda path, timeout: original(path, 0.1))
    c = case("CREATE TABLE t (id INTEGER PRIMARY KEY);", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
    c.target = dataclasses.replace(c.target, lock_timeout="100ms", lock_retries=1)  # one short retry
    other = sqlite3.connect(c.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseLockedError, match="locked"):
            c.run()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert c.unchanged()


def test_dropping_a_table_a_view_reads_is_refused(case):
    # the reference keeps the view but not the table it reads: dropping the table would break the view
    c = case("CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE old (x TEXT); CREATE VIEW vo AS SELECT x FROM old;",
             "CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE VIEW vo AS SELECT x FROM old;")
    with pytest.raises(MigrationError, match=r"break view vo .*no such table: main.old"):
        c.run()
    assert c.unchanged()


# -------------------------------------------------------------------- align modes


MIXED_TARGET = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, gone TEXT);
CREATE TABLE old (id INTEGER PRIMARY KEY);
INSERT INTO a VALUES (1, '1', 'g');
"""
MIXED_REFERENCE = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v INTEGER, added DATETIME);
CREATE INDEX ix_a_added ON a (added);
CREATE TABLE new (id INTEGER PRIMARY KEY);
"""


def test_additive_with_a_destructive_difference_refuses_the_whole_run(case):
    c = case(MIXED_TARGET, MIXED_REFERENCE)
    with pytest.raises(DestructiveChangeRefusedError, match="align: full") as err:
        c.run(align="additive")
    assert c.unchanged()  # not even the additive part: the plan is refused before COMMIT
    result = err.value.result
    assert sorted(ch.describe() for ch in result.refused) == [
        "alter_column a.v (type TEXT -> INTEGER)", "drop_column a.gone (TEXT NULL)", "drop_table old (1 columns)"]
    for refused in result.refused:
        assert refused.describe() in str(err.value)
    assert result.rolled_back and result.applied == []


def test_additive_applies_additive_kinds_when_nothing_is_refused(case):
    c = case(MIXED_TARGET, """
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, gone TEXT, added TEXT);
CREATE INDEX ix_a_added ON a (added);
CREATE TABLE old (id INTEGER PRIMARY KEY);
CREATE TABLE new (id INTEGER PRIMARY KEY);
""")
    result = c.run(align="additive")
    assert {ch.kind for ch in result.aligned} == {"add_table", "add_column", "add_index"}
    assert all(ch.kind in ADDITIVE_KINDS for ch in result.aligned)
    assert result.refused == [] and rebuilt(result) == [] and c.remaining() == []
    assert c.q("SELECT id, v, gone, added FROM a") == [(1, "1", "g", None)]


def test_align_none_with_a_difference_left_commits_nothing(case):
    c = case(MIXED_TARGET, MIXED_REFERENCE)
    with pytest.raises(SchemaLeftDifferentError, match="6 place") as err:
        c.run(align="none")
    result = err.value.result
    assert result.applied == [] and result.aligned == [] and result.refused == []
    assert len(result.drift_after) == 6
    assert c.unchanged()


def test_dry_run_returns_the_sql_and_changes_nothing(case):
    c = case(MIXED_TARGET, MIXED_REFERENCE)
    result = c.run(dry_run=True)
    assert result.dry_run and c.unchanged()
    assert result.drift_after == []
    text = "\n".join(result.sql)
    assert "CREATE TABLE new" in text and "ALTER TABLE a ADD COLUMN added" in text
    assert "CREATE INDEX ix_a_added" in text and "DROP TABLE old" in text
    assert "_mp_new_a" in text  # the rebuild for the type change, from the reference's CREATE TABLE
    assert {ch.kind for ch in result.aligned} == {"add_table", "add_column", "add_index", "alter_column",
                                                  "drop_column", "drop_table"}
    # and the real run does what the dry run said
    assert c.run().drift_after == [] and c.remaining() == []


def test_dry_run_additive_reports_what_the_plan_leaves(case):
    c = case(MIXED_TARGET, MIXED_REFERENCE)
    result = c.run(align="additive", dry_run=True)
    assert c.unchanged()
    assert {ch.kind for ch in result.drift_after} == {"alter_column", "drop_column", "drop_table"}


def test_dry_run_failure_names_the_target_not_the_scratch_copy(case):
    c = case("CREATE TABLE n (id INTEGER PRIMARY KEY, b TEXT); INSERT INTO n VALUES (1, NULL);",
             "CREATE TABLE n (id INTEGER PRIMARY KEY, b TEXT NOT NULL);")
    with pytest.raises(MigrationError) as err:
        c.run(dry_run=True)
    assert str(c.path) in str(err.value) and "dryrun" not in str(err.value)
    assert c.unchanged()
