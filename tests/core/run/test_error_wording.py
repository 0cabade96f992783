"""Failure output a person can act on: each error a user met is one line that names the problem and the fix,
never longer than 300 characters, through a real Dagster run of the job (``execute_in_process``)."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from targets import copy_migrations, demo_target, revision, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run import pipeline
from maintenance_pipeline.orchestration.definitions import build_definitions


def _failure(config_path, job: str = "maintain_database") -> tuple[str, str]:
    defs = build_definitions(load_config(config_path))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(job).execute_in_process(partition_key="goals", instance=instance,
                                                              raise_on_error=False)
    assert not result.success
    event = next(e for e in result.all_events if e.is_step_failure)
    message = event.step_failure_data.user_failure_data.description
    assert "\n" not in message and len(message) <= 300, message
    return event.step_key, message


def test_a_read_only_database_says_so_and_names_it(demo_dir):
    # SQLite's own refusal to write (query_only makes the connection read-only, as a read-only file does)
    migrations = copy_migrations(demo_dir, {"0003_ro.py": revision("0003", "0002", '    op.execute("PRAGMA query_only = ON")\n'
                                                                   '    op.execute("CREATE TABLE x (a)")')})
    step, message = _failure(write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))}))
    assert step == "migrate"
    assert "goals.db cannot be changed: the database file or its folder is read-only" in message
    assert "Alembic revision" not in message and "fix the revision" not in message


def test_a_revision_that_does_not_import_is_named_with_its_line(demo_dir):
    migrations = copy_migrations(demo_dir, {"0003_bad.py": revision("0003", "0002", "    return )")})
    step, message = _failure(write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))}))
    assert step == "diff"
    assert message.startswith(f"revision file {migrations / 'versions' / '0003_bad.py'} does not import: "
                              "SyntaxError at line ")
    assert "internal error" not in message and message.endswith("fix the file")


def test_a_check_that_writes_is_refused_as_not_read_only(demo_dir):
    target = demo_target(reference={"url": "sqlite:///data/goals.db"},  # in sync: the check is what fails
                         checks=[{"name": "cleanup", "sql": "DELETE FROM programs", "expect": 0}])
    step, message = _failure(write_config(demo_dir, {"goals": target}), job="verify_database")
    assert step == "verify" and "checks must be read-only queries" in message
    assert "ResourceClosedError" not in message and "internal error" not in message
    assert sqlite3.connect(demo_dir / "data" / "goals.db").execute("SELECT count(*) FROM programs").fetchone()[0] > 0


def test_a_corrupt_source_is_one_short_line_with_the_count_and_the_first_problem(demo_dir):
    path = demo_dir / "data" / "goals.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE INDEX ix_filler ON filler (v)")
    con.executemany("INSERT INTO filler (v) VALUES (?)", [(f"value {i} " * 20,) for i in range(3000)])
    con.commit()
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    data = bytearray(path.read_bytes())
    for page in range(pages // 2, pages // 2 + 8):  # trash eight pages in the middle of the index and table
        data[page * 4096:page * 4096 + 64] = b"\x07" * 64
    path.write_bytes(bytes(data))
    step, message = _failure(write_config(demo_dir))
    assert step == "backup"
    # SQLite lists the problems ("N problem(s), the first: ...") or stops at the first ("malformed"): short either way
    assert message.startswith("the backup of goals.db failed its integrity check (") and \
        "restore an earlier backup" in message
    assert len(message) <= 200, len(message)


def test_an_unexpected_exception_is_one_line_saying_it_is_a_bug(demo_dir, monkeypatch):
    def broken(state):
        raise KeyError("no_such_key")

    monkeypatch.setattr(pipeline, "step_diff", broken)  # a bug in our code, on purpose
    step, message = _failure(write_config(demo_dir))
    assert step == "diff" and message.startswith("this is a bug in step diff: KeyError: 'no_such_key'")
    assert "please report it" in message
