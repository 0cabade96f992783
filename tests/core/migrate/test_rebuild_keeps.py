"""What a SQLite table rebuild must keep, and the rebuilds it must refuse rather than lose something.

Rebuilding a parent must never cascade to child rows (ON DELETE CASCADE, with or without
foreign keys on by default); a rebuild keeps WITHOUT ROWID, composite primary keys,
AUTOINCREMENT, COLLATE, CHECK, partial and expression indexes, triggers, views, untyped and
quoted names, STRICT; it refuses to break a view or flatten generated columns, leaving the file
bytewise as it was. Shared helpers are in sqlite_cases.py.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from maintenance_pipeline.core.engines.sqlite import files as sqlite_files
from maintenance_pipeline.core.errors import MigrationError

# sqlite_cases is rewritten like a test module (its asserts report in full); case is a fixture
pytest.register_assert_rewrite("sqlite_cases")
from sqlite_cases import assert_aligned, case, fk_list, indexes, rebuilt  # noqa: E402, F401


# ------------------------------------------------------------------ ON DELETE CASCADE


def _foreign_keys_on_by_default(monkeypatch) -> None:
    """Connections with PRAGMA foreign_keys=ON from the start (SQLITE_DEFAULT_FOREIGN_KEYS=1 builds,
    or an application's connect hook)."""
    original = sqlite_files.connect_factory

    def factory(path, timeout):  # noqa: ANN001
        connect = original(path, timeout)

        def connect_with_fks():
            con = connect()
            con.execute("PRAGMA foreign_keys=ON")
            return con

        return connect_with_fks

    monkeypatch.setattr(sqlite_files, "connect_factory", factory)


CASCADE = """
CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT{nn});
CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER NOT NULL REFERENCES p (id) ON DELETE CASCADE, v TEXT);
CREATE TABLE gc (id INTEGER PRIMARY KEY, c_id INTEGER REFERENCES c (id) ON DELETE CASCADE);
"""
CASCADE_ROWS = """
INSERT INTO p VALUES (1, 'one'), (2, 'two');
INSERT INTO c VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c');
INSERT INTO gc VALUES (1, 1), (2, 3);
"""


@pytest.mark.parametrize("fks_on_by_default", [False, True], ids=["default-connection", "foreign-keys-on-connection"])
def test_rebuilding_a_parent_never_cascades_to_child_rows(case, monkeypatch, fks_on_by_default):
    c = case(CASCADE.format(nn="") + CASCADE_ROWS, CASCADE.format(nn=" NOT NULL"))
    # the trap is real: the rebuild's DROP TABLE p with foreign_keys=ON deletes every child row
    scratch = c.path.with_name("scratch.db")
    shutil.copy(c.path, scratch)
    con = sqlite3.connect(scratch)
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("DROP TABLE p")
    con.commit()
    assert con.execute("SELECT count(*) FROM c").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM gc").fetchone() == (0,)
    con.close()

    if fks_on_by_default:
        _foreign_keys_on_by_default(monkeypatch)
    result = c.run()
    assert rebuilt(result) == ["rebuilt table p (rows kept): alter_column p.name (NULL -> NOT NULL)"]
    assert_aligned(c, result)
    assert c.q("SELECT * FROM p ORDER BY id") == [(1, "one"), (2, "two")]
    assert c.q("SELECT * FROM c ORDER BY id") == [(1, 1, "a"), (2, 1, "b"), (3, 2, "c")]
    assert c.q("SELECT * FROM gc ORDER BY id") == [(1, 1), (2, 3)]
    assert fk_list(c, "c") == {("p", "p_id", "id", "CASCADE")}


def test_drop_table_of_a_parent_with_cascade_is_refused_not_cascaded(case, monkeypatch):
    # the reference drops p but keeps c pointing at it: c's rows would be orphans (never deleted)
    _foreign_keys_on_by_default(monkeypatch)
    without_p = CASCADE.format(nn="").split(";", 1)[1]
    c = case(CASCADE.format(nn="") + CASCADE_ROWS, without_p)
    with pytest.raises(MigrationError, match=r"c -> p: 3"):
        c.run()
    assert c.unchanged()

# -------------------------------------------------------- what a rebuild must keep


def test_without_rowid_and_composite_primary_key_survive_a_rebuild(case):
    c = case("CREATE TABLE w (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;"
             "CREATE TABLE cp (a INTEGER, b TEXT, v TEXT, PRIMARY KEY (a, b));"
             "CREATE INDEX ix_cp_v ON cp (v);"
             "INSERT INTO w VALUES ('a', '1'), ('b', '2');"
             "INSERT INTO cp VALUES (1, 'x', '1'), (1, 'y', '2'), (2, 'x', NULL);",
             "CREATE TABLE w (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;"
             "CREATE TABLE cp (a INTEGER, b TEXT, v INTEGER, PRIMARY KEY (a, b));"
             "CREATE INDEX ix_cp_v ON cp (v);")
    result = c.run()
    assert len(rebuilt(result)) == 2
    assert_aligned(c, result)
    assert "WITHOUT ROWID" in c.table_sql("w")
    assert c.q("SELECT * FROM w ORDER BY k") == [("a", 1), ("b", 2)]
    assert c.q("SELECT * FROM cp ORDER BY a, b") == [(1, "x", 1), (1, "y", 2), (2, "x", None)]
    assert c.q("SELECT name FROM pragma_table_info('cp') WHERE pk > 0 ORDER BY pk") == [("a",), ("b",)]
    assert ("ix_cp_v", 0) in indexes(c, "cp")


def test_a_batch_rebuild_keeps_what_only_the_sql_text_holds(case):
    # AUTOINCREMENT (and its high-water mark), COLLATE, CHECK, a partial index, an expression index,
    # a trigger, a view
    c = case("CREATE TABLE u (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT COLLATE NOCASE UNIQUE,"
             " age INTEGER CHECK (age >= 0), v TEXT, CONSTRAINT ck_v CHECK (v IS NULL\n OR v <> 'x:y'));"
             "CREATE INDEX ix_u_v ON u (v) WHERE v IS NOT NULL;"
             "CREATE INDEX ix_u_lower ON u (lower(email));"
             "CREATE TABLE log (msg TEXT);"
             "CREATE TRIGGER tr_u AFTER INSERT ON u BEGIN INSERT INTO log VALUES ('new: ' || new.email); END;"
             "CREATE VIEW adults AS SELECT email FROM u WHERE age >= 18;"
             "INSERT INTO u VALUES (1, 'A@x', 20, '1'); INSERT INTO u VALUES (9, 'b@x', 3, '2');"
             "DELETE FROM u WHERE id = 9; DELETE FROM log;",
             # the reference has them all too (they are compared now): only v's type differs, and the batch
             # rebuild that changes it must carry them over
             "CREATE TABLE u (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT COLLATE NOCASE UNIQUE,"
             " age INTEGER CHECK (age >= 0), v INTEGER, CONSTRAINT ck_v CHECK (v IS NULL OR v <> 'x:y'));"
             "CREATE INDEX ix_u_v ON u (v) WHERE v IS NOT NULL;"
             "CREATE INDEX ix_u_lower ON u (lower(email));"
             "CREATE TABLE log (msg TEXT);"
             "CREATE TRIGGER tr_u AFTER INSERT ON u BEGIN INSERT INTO log VALUES ('new: ' || new.email); END;"
             "CREATE VIEW adults AS SELECT email FROM u WHERE age >= 18;")
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert_aligned(c, result)
    sql = c.table_sql("u")
    assert "AUTOINCREMENT" in sql and "COLLATE NOCASE" in sql and "CHECK (age >= 0)" in sql
    assert "CONSTRAINT ck_v CHECK (v IS NULL OR v <> 'x:y')" in sql  # the reference's own text, ":" kept
    assert "WHERE v IS NOT NULL" in c.table_sql("ix_u_v")
    assert c.table_sql("ix_u_lower") == "CREATE INDEX ix_u_lower ON u (lower(email))"
    assert c.q("SELECT seq FROM sqlite_sequence WHERE name = 'u'") == [(9,)]
    con = sqlite3.connect(c.path)
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO u (email, age) VALUES ('a@X', 30)")  # NOCASE unique
    with pytest.raises(sqlite3.IntegrityError):
        con.execute("INSERT INTO u (email, age) VALUES ('c@x', -1)")  # CHECK
    con.execute("INSERT INTO u (email, age) VALUES ('c@x', 40)")
    con.commit()
    assert con.execute("SELECT max(id) FROM u").fetchone() == (10,)  # ids are not reused
    assert con.execute("SELECT msg FROM log").fetchall() == [("new: c@x",)]  # the trigger is back
    assert con.execute("SELECT email FROM adults ORDER BY email").fetchall() == [("A@x",), ("c@x",)]
    con.close()


def test_untyped_columns_survive_a_rebuild(case):
    c = case("CREATE TABLE n (id INTEGER PRIMARY KEY, a, b TEXT); INSERT INTO n VALUES (1, x'00ff', 'x');",
             "CREATE TABLE n (id INTEGER PRIMARY KEY, a, b TEXT NOT NULL);")
    assert_aligned(c, c.run())
    assert c.q("SELECT id, a, b FROM n") == [(1, b"\x00\xff", "x")]


def test_a_rebuild_that_would_break_a_view_is_refused(case):
    # the reference keeps the view (as it is compared now) but drops the column it reads
    c = case("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT, y TEXT); CREATE VIEW vx AS SELECT x FROM a;"
             "INSERT INTO a VALUES (1, 'a', 'b');",
             "CREATE TABLE a (id INTEGER PRIMARY KEY, y TEXT); CREATE VIEW vx AS SELECT x FROM a;")
    with pytest.raises(MigrationError, match=r"break view vx.*no such column: x"):
        c.run()
    assert c.unchanged()


def test_a_table_with_generated_columns_is_rebuilt_not_flattened(case):
    c = case("CREATE TABLE g (id INTEGER PRIMARY KEY, x TEXT, y TEXT GENERATED ALWAYS AS (upper(x)) VIRTUAL);"
             "INSERT INTO g (id, x) VALUES (1, 'a');",
             "CREATE TABLE g (id INTEGER PRIMARY KEY, x TEXT NOT NULL, y TEXT GENERATED ALWAYS AS (upper(x)) VIRTUAL);")
    assert_aligned(c, c.run())
    assert c.q("SELECT name, hidden FROM pragma_table_xinfo('g') WHERE name = 'y'") == [("y", 2)]  # still generated
    assert c.q("SELECT id, x, y FROM g") == [(1, "a", "A")]


def test_a_changed_on_delete_action_replaces_the_foreign_key(case):
    schema = ("CREATE TABLE p (id INTEGER PRIMARY KEY);"
              "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id){action});")
    c = case(schema.format(action="") + "INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1);",
             schema.format(action=" ON DELETE CASCADE"))
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert_aligned(c, result)
    assert fk_list(c, "c") == {("p", "p_id", "id", "CASCADE")}
    assert c.q("SELECT * FROM c") == [(1, 1)]


def test_names_that_need_quoting_and_a_strict_table(case):
    schema = ('CREATE TABLE "order" ("group" INTEGER PRIMARY KEY, "my col" TEXT COLLATE "NOCASE" NOT NULL,'
              ' v {t}) STRICT;'
              'CREATE INDEX "ix order v" ON "order" (v);'
              'CREATE TABLE "Line Items" (id INTEGER PRIMARY KEY, "order" INTEGER REFERENCES "order" ("group"));')
    trigger = """CREATE TRIGGER "tr order" AFTER DELETE ON "order" BEGIN SELECT 1; END;"""
    c = case(schema.format(t="TEXT") + """INSERT INTO "order" VALUES (1, 'a', '5');
             INSERT INTO "Line Items" VALUES (1, 1);""" + trigger,
             schema.format(t="INTEGER") + trigger)
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert_aligned(c, result)
    assert c.q('SELECT * FROM "order"') == [(1, "a", 5)]
    assert 'COLLATE "NOCASE"' in c.table_sql("order") and c.table_sql("order").rstrip().endswith("STRICT")
    assert c.q("SELECT name FROM sqlite_master WHERE type = 'trigger'") == [("tr order",)]
    assert fk_list(c, "Line Items") == {("order", "order", "group", "NO ACTION")}
