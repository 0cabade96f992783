"""Columns added to many tables in one schema update (``engines/sqlite/addcolumns.py``), judged by SQLite itself.

Each test builds a target file, copies it byte for byte before the run, lets ``migrate()`` align the target, then runs
the statements the run recorded as plain ``ALTER TABLE … ADD COLUMN`` on the copy: the two files must then hold the
same ``sqlite_master`` (type, name, table, root page, text) and the same ``PRAGMA table_xinfo`` of every table, the same
rows (old rows reading the new columns' defaults), and pass ``PRAGMA integrity_check``. What does not qualify (a
CHECK, a STRICT table, a generated column, a NOT NULL column without default, a non-constant default) goes one by
one, as before; a run that fails after the update leaves the file bytewise as it was.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3

import pytest

from maintenance_pipeline.core.config import UserCheck
from maintenance_pipeline.core.errors import MigrationError, UserCheckError

pytest.register_assert_rewrite("sqlite_cases")
from sqlite_cases import Case, assert_aligned, case  # noqa: E402, F401

TOGETHER = "one schema update"

# tables of many shapes, each with rows; the reference adds columns to each
TARGET = """
CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO p VALUES (1, 'one'), (2, 'two');
CREATE TABLE plain (id INTEGER PRIMARY KEY, a TEXT);
INSERT INTO plain VALUES (1, 'x'), (2, NULL);
CREATE TABLE wr (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
INSERT INTO wr VALUES ('a', 1), ('b', 2);
CREATE   TABLE   "odd ""name"" t"  (  -- a comment in the text
    id   INTEGER  PRIMARY KEY /* another */ ,
    [br] TEXT ,  `bt` INT   -- trailing
  ) ;
INSERT INTO "odd ""name"" t" VALUES (1, 'q', 3);
CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id));
INSERT INTO c VALUES (1, 1), (2, 2);
CREATE INDEX ix_plain_a ON plain (a);
CREATE TABLE many (id INTEGER PRIMARY KEY, a INT);
INSERT INTO many VALUES (1, 1);
CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
INSERT INTO ai (v) VALUES ('a');
"""

REFERENCE = """
CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT, note TEXT);
CREATE TABLE plain (id INTEGER PRIMARY KEY, a TEXT, n INTEGER DEFAULT -5, s TEXT DEFAULT 'it''s',
                    b BLOB DEFAULT x'00ff');
CREATE TABLE wr (k TEXT PRIMARY KEY, v INTEGER, w REAL DEFAULT 1.5) WITHOUT ROWID;
CREATE TABLE "odd ""name"" t" (id INTEGER PRIMARY KEY, br TEXT, bt INT, "new ""c"" col" TEXT DEFAULT 'n');
CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id), q_id INTEGER REFERENCES p (id));
CREATE INDEX ix_plain_a ON plain (a);
CREATE TABLE many (id INTEGER PRIMARY KEY, a INT, flag BOOLEAN NOT NULL DEFAULT 0, t TEXT, u TEXT COLLATE NOCASE);
CREATE TABLE ai (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT, w TEXT);
"""


def _with_copy(c):
    """A byte copy of the target as it was before the run (no connection is open to it)."""
    copy = c.path.with_name("copy.db")
    shutil.copyfile(c.path, copy)
    return copy


def _plain_alters(copy, statements: list[str]) -> None:
    con = sqlite3.connect(copy, isolation_level=None)
    try:
        con.execute("BEGIN")
        for s in statements:
            con.execute(s)
        con.execute("COMMIT")
    finally:
        con.close()


def _state(path) -> dict:
    """What SQLite says of a file: its sqlite_master, each table's columns and rows, its integrity."""
    con = sqlite3.connect(path)
    try:
        master = con.execute("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master ORDER BY name").fetchall()
        tables = [r[1] for r in master if r[0] == "table"]
        quoted = {t: '"' + t.replace('"', '""') + '"' for t in tables}
        return {
            "master": master,
            "columns": {t: con.execute("SELECT * FROM pragma_table_xinfo(?)", (t,)).fetchall() for t in tables},
            "rows": {t: sorted(con.execute(f"SELECT * FROM {quoted[t]}").fetchall(), key=repr) for t in tables},
            "fks": {t: con.execute("SELECT * FROM pragma_foreign_key_list(?)", (t,)).fetchall() for t in tables},
            "integrity": con.execute("PRAGMA integrity_check").fetchall(),
            "foreign_key_check": con.execute("PRAGMA foreign_key_check").fetchall(),
        }
    finally:
        con.close()


def _header(path) -> bytes:
    with open(path, "rb") as f:  # no connection of this process is open to it
        return f.read(100)


def _together(result) -> list[str]:
    return [a["description"] for a in result.applied if TOGETHER in a["description"]]


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_columns_added_together_are_what_sqlites_own_alter_makes(case, journal):
    c = case(f"PRAGMA journal_mode = {journal};" + TARGET, REFERENCE)
    assert c.q("PRAGMA journal_mode") == [(journal,)]
    copy = _with_copy(c)
    rows_before = _state(c.path)["rows"]
    result = c.run()
    assert_aligned(c, result)
    # every column but the first (a real ALTER) went in the one update
    added = [a for a in result.applied if a["description"].startswith("add_column")]
    assert len(added) == 11 and len(_together(result)) == 10, result.applied
    assert not any(a["description"].startswith("add_foreign_key") for a in result.applied)  # with its column
    _plain_alters(copy, result.sql)
    bulk, plain = _state(c.path), _state(copy)
    assert bulk == plain
    assert bulk["integrity"] == [("ok",)]
    assert _header(c.path)[44:48] == _header(copy)[44:48]  # the schema format number ALTER sets
    # the old rows kept their values and read the new columns' defaults
    assert bulk["rows"]["plain"] == [(1, "x", -5, "it's", b"\x00\xff"), (2, None, -5, "it's", b"\x00\xff")]
    assert bulk["rows"]["wr"] == [("a", 1, 1.5), ("b", 2, 1.5)]
    assert bulk["rows"]["many"] == [(1, 1, 0, None, None)]
    for t, rows in rows_before.items():
        width = len(rows[0]) if rows else 0
        assert sorted((r[:width] for r in bulk["rows"][t]), key=repr) == rows
    assert ("c", "q_id") in {(t, r[3]) for t, fks in bulk["fks"].items() for r in fks}
    # the text keeps its comments and quoting: SQLite put the column where its ALTER puts it
    odd = [r[4] for r in bulk["master"] if r[1] == 'odd "name" t'][0]
    assert "-- a comment in the text" in odd and "/* another */" in odd and '"new ""c"" col"' in odd
    # the rows guard saw the tables as altered, as it sees a real ALTER
    assert "only gained columns" in result.rows[1] and "wr" in result.rows[1] and "many" in result.rows[1]


def test_the_record_shows_each_statement_as_one_by_one_would(case):
    """The report's SQL and measured costs list each ALTER as planned (same text as a single column's run, which
    goes one by one), one measured entry per statement, the ones of the update saying so."""
    c = case(TARGET, REFERENCE)
    result = c.run()
    assert all(s.startswith("ALTER TABLE ") and " ADD COLUMN " in s for s in result.sql), result.sql
    statements = result.measured["statements"]
    assert [e["sql"] for e in statements] == [" ".join(s.split()) for s in result.sql]
    assert sum(1 for e in statements if TOGETHER in e.get("applied", "")) == 10
    assert all(e["locks"] and e["lock_held"] is not None for e in statements)
    # one table alone: fewer than three columns, the old way; its statement's text is the same
    folder = c.path.parent / "single"
    folder.mkdir()
    single = Case(folder, "CREATE TABLE plain (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO plain VALUES (1, 'x');",
                  "CREATE TABLE plain (id INTEGER PRIMARY KEY, a TEXT, n INTEGER DEFAULT -5);")
    alone = single.run()
    assert _together(alone) == []
    assert alone.sql == [s for s in result.sql if s.startswith("ALTER TABLE plain ADD COLUMN n ")]


def test_a_dry_run_shows_what_the_run_does_and_changes_nothing(case):
    c = case(TARGET, REFERENCE)
    dry = c.run(dry_run=True)
    assert c.unchanged()
    assert len(_together(dry)) == 10
    assert len(dry.measured["statements"]) == len(dry.sql)
    real = c.run()
    assert real.sql == dry.sql
    assert [a["description"] for a in real.applied] == [a["description"] for a in dry.applied]


NOT_TOGETHER_TARGET = TARGET + """
CREATE TABLE st (id INTEGER PRIMARY KEY, v TEXT) STRICT;
INSERT INTO st VALUES (1, 'a');
CREATE TABLE ck (id INTEGER PRIMARY KEY, v INT);
INSERT INTO ck VALUES (1, 5);
CREATE TABLE gen (id INTEGER PRIMARY KEY, v INT);
INSERT INTO gen VALUES (1, 5);
CREATE TABLE empty_nn (id INTEGER PRIMARY KEY);
CREATE TABLE empty_now (id INTEGER PRIMARY KEY);
"""

NOT_TOGETHER_REFERENCE = REFERENCE + """
CREATE TABLE st (id INTEGER PRIMARY KEY, v TEXT, w INTEGER) STRICT;
CREATE TABLE ck (id INTEGER PRIMARY KEY, v INT, w INT CHECK (w IS NULL OR w > 0));
CREATE TABLE gen (id INTEGER PRIMARY KEY, v INT, g INT GENERATED ALWAYS AS (v * 2) VIRTUAL);
CREATE TABLE empty_nn (id INTEGER PRIMARY KEY, n TEXT NOT NULL);
CREATE TABLE empty_now (id INTEGER PRIMARY KEY, at TEXT DEFAULT CURRENT_TIMESTAMP);
"""


def test_columns_sqlite_would_check_rows_for_go_one_by_one(case):
    """A STRICT table, a generated column (SQLite reads every row for them), a NOT NULL column without a default and a
    non-constant default (refused on a table with a row; these tables are empty, so ALTER accepts them): each goes
    one by one, as before; the others still go together, and the files match. A CHECK the reference adds with its
    column is not in the ALTER (a rebuild makes it): the column goes together, the rebuild after."""
    c = case(NOT_TOGETHER_TARGET, NOT_TOGETHER_REFERENCE)
    copy = _with_copy(c)
    result = c.run()
    assert_aligned(c, result)
    together = _together(result)
    assert len(together) == 11 and any(d.startswith("add_column ck.w ") for d in together)
    assert any(a["description"].startswith("rebuilt table ck ") for a in result.applied)
    for t in ("st", "gen", "empty_nn", "empty_now"):
        one = [a["description"] for a in result.applied if a["description"].startswith(f"add_column {t}.")]
        assert len(one) == 1 and TOGETHER not in one[0], (t, result.applied)
    _plain_alters(copy, result.sql)
    bulk = _state(c.path)
    assert bulk == _state(copy)
    assert bulk["integrity"] == [("ok",)]
    assert bulk["rows"]["gen"] == [(1, 5, 10)]


def test_a_column_sqlite_refuses_on_rows_fails_the_run_as_before(case):
    """A NOT NULL column without default on a table with rows qualifies nowhere (the probe has a row): it goes one by
    one and SQLite refuses it there; the run is rolled back, the file bytewise as it was."""
    c = case(TARGET + "CREATE TABLE full_nn (id INTEGER PRIMARY KEY); INSERT INTO full_nn VALUES (1);",
             REFERENCE + "CREATE TABLE full_nn (id INTEGER PRIMARY KEY, n TEXT NOT NULL);")
    with pytest.raises(MigrationError) as err:
        c.run()
    assert "full_nn" in str(err.value) and "rolled back" in str(err.value)
    assert "NOT NULL" in str(err.value)
    assert c.unchanged()


@pytest.mark.parametrize("after", ["rebuild", "check", "check-wal"])
def test_a_run_that_fails_after_the_update_leaves_the_file_as_it_was(case, after):
    """The update is part of the migration's one transaction: a failure after it (a table rebuild the rows refuse,
    after the columns were added; a user check that fails) rolls it back with the rest, bytewise."""
    if after == "rebuild":
        c = case(TARGET + "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, NULL);",
                 REFERENCE + "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
    else:
        c = case(("PRAGMA journal_mode = wal;" if after.endswith("wal") else "") + TARGET, REFERENCE)
        c.target = dataclasses.replace(c.target, checks=(UserCheck("no_many", "SELECT count(*) FROM many"),))
    before = _state(c.path)
    with pytest.raises((MigrationError, UserCheckError)) as err:
        c.run()
    result = err.value.result  # type: ignore[attr-defined]
    assert len(_together(result)) == 10, result.applied  # the update had been made
    assert result.rolled_back
    assert c.unchanged()
    assert _state(c.path) == before


def test_many_tables_one_reload(case):
    """200 tables each given a column: all but the first in the update, SQLite's texts, the schema cookie moved twice
    (the first ALTER's and the update's) where one by one moves it 200 times."""
    n = 200
    target = "".join(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t{i} VALUES ({i}, 'v');"
                     for i in range(n))
    reference = "".join(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, a TEXT, b{i % 3} INTEGER DEFAULT {i});"
                        for i in range(n))
    c = case(f"BEGIN; {target} COMMIT;", f"BEGIN; {reference} COMMIT;")  # one transaction each: no fsync per table
    copy = _with_copy(c)
    version = c.q("PRAGMA schema_version")[0][0]
    result = c.run()
    assert len(_together(result)) == n - 1
    assert c.q("PRAGMA schema_version")[0][0] == version + 2
    _plain_alters(copy, result.sql)
    assert _state(c.path) == _state(copy)
    assert c.q("SELECT * FROM t7") == [(7, "v", 7)]


@dataclasses.dataclass
class _Add:
    """A change for ``addcolumns.plan``: its table and the one statement its ``apply`` sends."""

    table: str
    statement: str


def _apply(ops, ch: _Add) -> bool:
    ops.get_bind().exec_driver_sql(ch.statement)
    return True


PLAN_DB = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO a VALUES (1, 'x');
CREATE TABLE s (id INTEGER PRIMARY KEY, v TEXT) STRICT; INSERT INTO s VALUES (1, 'x');
CREATE TABLE m (id INTEGER PRIMARY KEY); INSERT INTO m VALUES (1);
CREATE TABLE k (id INTEGER PRIMARY KEY, v TEXT COLLATE mine);
CREATE VIEW vw AS SELECT id FROM a;
"""


def test_what_sqlite_adds_without_reading_a_row(tmp_path):
    """``addcolumns.plan`` on real statements: only what SQLite's ADD COLUMN adds without reading a row of the table
    (and accepts on a table with a row) qualifies; a table's columns up to the first that does not (order kept)."""
    from maintenance_pipeline.core.engines.sqlite.addcolumns import compiled_live, plan

    path = tmp_path / "plan.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.create_collation("mine", lambda x, y: (x > y) - (x < y))
    con.executescript(PLAN_DB)
    fts = True
    try:
        con.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
    except sqlite3.OperationalError:
        fts = False
    ok = {
        "const": _Add("a", "ALTER TABLE a ADD COLUMN c1 INT DEFAULT 3"),
        "neg": _Add("a", "ALTER TABLE a ADD COLUMN c2 REAL DEFAULT -1.5"),
        "nn_const": _Add("a", "ALTER TABLE a ADD COLUMN c3 INT NOT NULL DEFAULT 0"),
        "ref_null": _Add("a", "ALTER TABLE a ADD COLUMN c4 INT REFERENCES a (id)"),
        "m_first": _Add("m", "ALTER TABLE m ADD COLUMN x INT"),
    }
    refused = {
        "check": _Add("a", "ALTER TABLE a ADD COLUMN d1 INT CHECK (d1 > 0)"),
        "strict": _Add("s", "ALTER TABLE s ADD COLUMN x INTEGER"),
        "generated": _Add("a", "ALTER TABLE a ADD COLUMN d2 AS (id * 2)"),
        "nn_null": _Add("a", "ALTER TABLE a ADD COLUMN d3 TEXT NOT NULL"),
        "now": _Add("a", "ALTER TABLE a ADD COLUMN d4 TEXT DEFAULT CURRENT_TIMESTAMP"),
        "expr": _Add("a", "ALTER TABLE a ADD COLUMN d5 INT DEFAULT (1 + 1)"),
        "ref_default": _Add("a", "ALTER TABLE a ADD COLUMN d6 INT REFERENCES a (id) DEFAULT 1"),
        "unique": _Add("a", "ALTER TABLE a ADD COLUMN d7 INT UNIQUE"),
        "pk": _Add("a", "ALTER TABLE a ADD COLUMN d8 INT PRIMARY KEY"),
        "duplicate": _Add("a", "ALTER TABLE a ADD COLUMN v TEXT"),
        "collation": _Add("k", "ALTER TABLE k ADD COLUMN x INT"),  # the scratch cannot make the table
        "view": _Add("vw", "ALTER TABLE vw ADD COLUMN x INT"),
        "m_check": _Add("m", "ALTER TABLE m ADD COLUMN y INT CHECK (y > 0)"),
        "m_after": _Add("m", "ALTER TABLE m ADD COLUMN z INT"),  # after one that does not: keeps its order
    }
    if fts:
        refused["virtual"] = _Add("docs", "ALTER TABLE docs ADD COLUMN x INT")
    # the refused each alone on its table would stop its table's later ones: plan each alone, then the good together
    for name, ch in refused.items():
        if name == "m_after":
            continue
        changes = [ch, refused["m_after"]] if name == "m_check" else [ch]
        assert plan(con, changes, _apply) == [], name
    assert [s.change for s in plan(con, [ok["m_first"], refused["m_check"], refused["m_after"]], _apply)] \
        == [ok["m_first"]]
    steps = plan(con, list(ok.values()), _apply)
    assert [s.change for s in steps] == list(ok.values())
    assert [s.statements for s in steps] == [(ch.statement,) for ch in ok.values()]
    # SQLite's texts, step by step
    assert steps[0].before == "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)"
    assert steps[3].after == ("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, c1 INT DEFAULT 3, c2 REAL DEFAULT -1.5, "
                              "c3 INT NOT NULL DEFAULT 0, c4 INT REFERENCES a (id))")
    # compiled on the live connection as the real statement: its authorizer is asked, and may refuse
    con.set_authorizer(lambda action, *a: sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ALTER_TABLE
                       and a[1] == "m" else sqlite3.SQLITE_OK)
    assert [s.change for s in compiled_live(con, steps)] == list(ok.values())[:4]
    con.set_authorizer(None)
    assert con.execute("SELECT sql FROM sqlite_master WHERE name = 'a'").fetchone()[0] == steps[0].before  # untouched
    con.close()


@pytest.mark.parametrize("wrong", ["text moved", "unparsable", "columns"])
def test_an_update_that_is_not_proven_rolls_back_to_the_savepoint(tmp_path, wrong):
    """``write_together``'s own checks: a table whose text is no longer the one the scratch started from, a text SQLite
    cannot parse (the reload fails), columns the reloaded schema does not read as planned: it raises, and rolling
    back to the savepoint leaves the file and the connection's schema exactly as they were."""
    from maintenance_pipeline.core.engines.sqlite.addcolumns import NotProven, Step, write_together

    path = tmp_path / "w.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.executescript("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO a VALUES (1, 'x');"
                      "CREATE TABLE b (id INTEGER PRIMARY KEY); INSERT INTO b VALUES (1);")
    before = _state(path)
    version = con.execute("PRAGMA schema_version").fetchone()[0]
    rows = {n: r for r, n in con.execute("SELECT rowid, name FROM sqlite_master")}
    good_cols = [(0, "id", "INTEGER", 0, None, 1, 0), (1, "x", "INT", 0, None, 0, 0)]
    good = Step(_Add("b", ""), (), "CREATE TABLE b (id INTEGER PRIMARY KEY)",
                "CREATE TABLE b (id INTEGER PRIMARY KEY, x INT)", good_cols, rows["b"])
    after = {"text moved": "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, y INT)",
             "unparsable": "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, y INT DEFAULT (",
             "columns": "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, y INT)"}[wrong]
    cols = [(0, "id", "INTEGER", 0, None, 1, 0), (1, "v", "TEXT", 0, None, 0, 0), (2, "y", "INT", 0, None, 0, 0)]
    moved = " " if wrong == "text moved" else ""  # the live text is not the one the scratch started from
    bad = Step(_Add("a", ""), (), "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)" + moved, after,
               cols + ([(3, "z", "INT", 0, None, 0, 0)] if wrong == "columns" else []), rows["a"])
    con.execute("BEGIN IMMEDIATE")
    con.execute("SAVEPOINT s")
    with pytest.raises((NotProven, sqlite3.DatabaseError)):
        write_together(con, [good, bad])
    con.execute("ROLLBACK TO s")
    con.execute("RELEASE s")
    # the connection reads the schema as it was, and so does the file once committed
    assert con.execute("SELECT name FROM pragma_table_xinfo('b')").fetchall() == [("id",)]
    assert con.execute("PRAGMA writable_schema").fetchone()[0] == 0
    con.execute("COMMIT")
    assert con.execute("PRAGMA schema_version").fetchone()[0] == version
    con.close()
    assert _state(path) == before
