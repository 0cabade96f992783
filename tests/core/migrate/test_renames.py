"""A renamed column: seen as a possible rename and refused until the target says what it is; declared
(``renames: {goals.age: dog_age}``), applied as RENAME COLUMN with every value kept; declared not a rename
(``null``), dropped and added."""

from __future__ import annotations

import dataclasses

import pytest

pytest.register_assert_rewrite("sqlite_cases", "schema_judges")

from maintenance_pipeline.core.config import load_config  # noqa: E402
from maintenance_pipeline.core.errors import UnalignableChangeError  # noqa: E402
from schema_judges import sqlite_judge  # noqa: E402
from sqlite_cases import Case  # noqa: E402

CURRENT = ("CREATE TABLE goals (id INTEGER PRIMARY KEY, name TEXT, age INT); CREATE INDEX ix_age ON goals (age);"
           "INSERT INTO goals VALUES (1, 'a', 3), (2, 'b', NULL), (3, 'c', 7);")
REFERENCE = "CREATE TABLE goals (id INTEGER PRIMARY KEY, name TEXT, dog_age INT); CREATE INDEX ix_age ON goals (dog_age);"


def test_an_undeclared_possible_rename_is_refused_with_the_setting_to_write(tmp_path):
    c = Case(tmp_path, CURRENT, REFERENCE)
    drop = next(ch for ch in c.remaining() if ch.kind == "drop_column")
    assert "possible rename to dog_age" in drop.detail
    with pytest.raises(UnalignableChangeError, match=r"rename to dog_age: declare renames: \{goals.age: dog_age\}"):
        c.run()
    assert c.unchanged()


def test_a_declared_rename_keeps_the_values(tmp_path):
    c = Case(tmp_path, CURRENT, REFERENCE)
    c.target = dataclasses.replace(c.target, renames=(("goals", "age", "dog_age"),))
    assert [ch.kind for ch in c.remaining() if ch.kind.endswith("_column")] == ["rename_column"]
    result = c.run()
    assert sqlite_judge(c.path) == sqlite_judge(c.ref_path)
    assert c.q("SELECT id, dog_age FROM goals ORDER BY id") == [(1, 3), (2, None), (3, 7)]
    assert result.rows[0] and "renamed (values kept): goals.age -> dog_age" in result.rows[1]
    assert not any(d.get("column") == "age" for d in result.rows[2])  # not a planned drop


def test_declared_not_a_rename_drops_and_adds(tmp_path):
    c = Case(tmp_path, CURRENT, REFERENCE)
    c.target = dataclasses.replace(c.target, renames=(("goals", "age", None),))
    c.run()
    assert sqlite_judge(c.path) == sqlite_judge(c.ref_path)
    assert c.q("SELECT count(*) FROM goals WHERE dog_age IS NOT NULL") == [(0,)]


def test_the_targets_file_setting(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "targets:\n  goals:\n    url: sqlite:///g.db\n    reference: {url: sqlite:///r.db}\n"
        "    renames: {goals.age: dog_age, goals.legacy: null}\n")
    (tmp_path / "g.db").write_bytes(b"")
    (tmp_path / "r.db").write_bytes(b"")
    target = load_config(tmp_path / "m.yaml").target("goals")
    assert target.renames == (("goals", "age", "dog_age"), ("goals", "legacy", None))
    (tmp_path / "bad.yaml").write_text(
        "targets:\n  goals:\n    url: sqlite:///g.db\n    reference: {url: sqlite:///r.db}\n    renames: {age: x}\n")
    with pytest.raises(Exception, match="renames.*table.old_column"):
        load_config(tmp_path / "bad.yaml")
