"""verify's row and foreign-key checks on real SQLite files."""

from __future__ import annotations

import shutil
import sqlite3

from maintenance_pipeline.core import snapshot_url
from maintenance_pipeline.core.engines.sqlite.checks import fk_check, rows_preserved


def _db(path, *sql):
    with sqlite3.connect(path) as conn:
        for s in sql:
            conn.execute(s)
    return path


def test_rows_preserved_counts_a_lost_duplicate_in_a_table_without_primary_key(tmp_path):
    backup = _db(tmp_path / "b.db", "CREATE TABLE log (msg TEXT, n INTEGER)",
                 "INSERT INTO log VALUES ('same', 1), ('same', 1), ('other', NULL)")
    live = tmp_path / "l.db"
    shutil.copyfile(backup, live)
    _db(live, "DELETE FROM log WHERE rowid = 1", "INSERT INTO log VALUES ('new', 2)")
    check, _ = rows_preserved(live, backup, snapshot_url(f"sqlite:///{backup}"), snapshot_url(f"sqlite:///{live}"), ())
    assert not check.passed and "log: 1 row(s)" in check.detail
    _db(live, "INSERT INTO log VALUES ('same', 1)")  # back to two copies: nothing is missing
    check, _ = rows_preserved(live, backup, snapshot_url(f"sqlite:///{backup}"), snapshot_url(f"sqlite:///{live}"), ())
    assert check.passed, check.detail


def test_rows_preserved_by_primary_key_sees_changed_values_and_lists_planned_drops(tmp_path):
    backup = _db(tmp_path / "b.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, gone TEXT)",
                 "CREATE TABLE old (x)", "INSERT INTO t VALUES (1, 'x', 'g'), (2, NULL, NULL)",
                 "INSERT INTO old VALUES (1), (2)")
    live = tmp_path / "l.db"
    shutil.copyfile(backup, live)
    _db(live, "ALTER TABLE t DROP COLUMN gone", "DROP TABLE old")
    check, drops = rows_preserved(live, backup, snapshot_url(f"sqlite:///{backup}"),
                                  snapshot_url(f"sqlite:///{live}"), ())
    assert check.passed, check.detail
    assert {"table": "old", "column": None, "rows": 2, "values": None} in drops
    assert {"table": "t", "column": "gone", "rows": 2, "values": 1} in drops
    _db(live, "UPDATE t SET a = 'changed' WHERE id = 2")
    check, _ = rows_preserved(live, backup, snapshot_url(f"sqlite:///{backup}"), snapshot_url(f"sqlite:///{live}"), ())
    assert not check.passed and "t: 1 row(s)" in check.detail


def test_fk_check_counts_orphans_and_survives_a_foreign_key_mismatch(tmp_path):
    db = _db(tmp_path / "d.db", "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT)",
             "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id))",
             "CREATE TABLE bad (code TEXT REFERENCES p(code))",  # p.code is not unique: a mismatch
             "INSERT INTO p VALUES (1, 'a')", "INSERT INTO c VALUES (1, 1), (2, 99), (3, 98)")
    counts = fk_check(db)
    assert counts[("c", "p")] == 2
    assert any(t == "bad" and "mismatch" in parent for t, parent in counts)
