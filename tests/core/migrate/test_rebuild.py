"""Changes SQLite has no ALTER TABLE for, aligned by rebuilding the table; and the changes that never rebuild.

Each rebuild-only kind (column type, NOT NULL, default, unique, foreign key, primary key, a
DROP COLUMN SQLite refuses) must rebuild the table once and keep its rows, its indexes and the
foreign keys pointing at it; the native paths (add/drop column, index, table) must not rebuild
at all. Every test checks with a fresh snapshot + diff that nothing is left and with sqlite3
that every row is there with the same values. Shared helpers are in sqlite_cases.py.
"""

from __future__ import annotations

import shutil
import sqlite3

import pytest
import sqlalchemy as sa

# sqlite_cases is rewritten like a test module (its asserts report in full); case is a fixture
pytest.register_assert_rewrite("sqlite_cases")
from sqlite_cases import Case, assert_aligned, case, fk_list, indexes, rebuilt  # noqa: E402, F401


@pytest.fixture
def statements():
    """Every statement any SQLAlchemy engine sends while the test runs (independent of result.sql)."""
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listener)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", listener)


# A parent table with a child pointing at it and an index: every rebuild of ``items`` must keep
# the rows, the index, and the child's declared and satisfied foreign key.
ITEMS = """
CREATE TABLE items (id INTEGER PRIMARY KEY, code TEXT, qty {qty}, note TEXT{extra});
CREATE INDEX ix_items_code ON items (code);
CREATE TABLE orders (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items (id) ON DELETE CASCADE, n INTEGER);
CREATE INDEX ix_orders_item ON orders (item_id);
"""
ITEM_ROWS = """
INSERT INTO items VALUES (1, 'a', '10', 'x'), (2, 'b', '-3', 'y'), (3, 'c', '007', 'z'), (5, 'e', NULL, 'w');
INSERT INTO orders VALUES (1, 1, 4), (2, 1, 5), (3, 2, 6), (4, 5, 7);
"""


def items_schema(qty: str = "TEXT", extra: str = "") -> str:
    return ITEMS.format(qty=qty, extra=extra)


def assert_items_kept(c: Case, *, qty=("10", "-3", "007", None)) -> None:
    assert c.q("SELECT id, code, qty, note FROM items ORDER BY id") == [
        (1, "a", qty[0], "x"), (2, "b", qty[1], "y"), (3, "c", qty[2], "z"), (5, "e", qty[3], "w")]
    assert c.q("SELECT * FROM orders ORDER BY id") == [(1, 1, 4), (2, 1, 5), (3, 2, 6), (4, 5, 7)]
    assert ("ix_items_code", 0) in indexes(c, "items")
    assert fk_list(c, "orders") == {("items", "item_id", "id", "CASCADE")}


# ------------------------------------------------------------ rebuild-only kinds


def test_alter_column_type_text_to_integer_converts_values_and_keeps_everything(case):
    c = case(items_schema("TEXT") + ITEM_ROWS, items_schema("INTEGER"))
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): alter_column items.qty (type TEXT -> INTEGER)"]
    assert_aligned(c, result)
    assert_items_kept(c, qty=(10, -3, 7, None))
    assert c.q("SELECT typeof(qty) FROM items ORDER BY id") == [("integer",)] * 3 + [("null",)]


def test_alter_column_type_keeps_a_value_that_does_not_convert(case):
    # INTEGER affinity keeps 'n/a' as text; a CAST would have turned it into 0
    c = case("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, '12'), (2, 'n/a');",
             "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER);")
    assert_aligned(c, c.run())
    assert c.q("SELECT id, v, typeof(v) FROM t ORDER BY id") == [(1, 12, "integer"), (2, "n/a", "text")]


def test_alter_column_not_null_without_nulls(case):
    target = items_schema() + ITEM_ROWS
    c = case(target, items_schema().replace("note TEXT", "note TEXT NOT NULL"))
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): alter_column items.note (NULL -> NOT NULL)"]
    assert_aligned(c, result)
    assert_items_kept(c)
    assert c.q("SELECT \"notnull\" FROM pragma_table_info('items') WHERE name = 'note'") == [(1,)]


def test_alter_column_default(case):
    # a default holding ":x" must not be read as a bind parameter
    c = case(items_schema() + ITEM_ROWS, items_schema().replace("note TEXT", "note TEXT DEFAULT 'due :soon'"))
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert_aligned(c, result)
    assert_items_kept(c)
    con = sqlite3.connect(c.path)
    con.execute("INSERT INTO items (id, code) VALUES (9, 'i')")
    con.commit()
    assert con.execute("SELECT note FROM items WHERE id = 9").fetchone() == ("due :soon",)
    con.close()


def test_add_unique(case):
    c = case(items_schema() + ITEM_ROWS, items_schema(extra=", CONSTRAINT uq_items_note UNIQUE (note)"))
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): add_unique items.uq_items_note ((note))"]
    assert_aligned(c, result)
    assert_items_kept(c)
    assert "CONSTRAINT uq_items_note UNIQUE (note)" in c.table_sql("items")
    with pytest.raises(sqlite3.IntegrityError):
        c.q("INSERT INTO items (id, note) VALUES (10, 'x')")


def test_drop_unique(case):
    c = case(items_schema(extra=", UNIQUE (code, note)") + ITEM_ROWS, items_schema())
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): drop_unique items ((code, note))"]
    assert_aligned(c, result)
    assert_items_kept(c)
    c.q("INSERT INTO items (id, code, note) VALUES (10, 'a', 'x')")  # no longer unique


def test_add_foreign_key(case):
    schema = "CREATE TABLE owners (id INTEGER PRIMARY KEY);" + items_schema(extra=", owner_id INTEGER{fk}")
    c = case(schema.format(fk="") + ITEM_ROWS.replace("'x')", "'x', 1)").replace("'y')", "'y', 1)")
             .replace("'z')", "'z', NULL)").replace("'w')", "'w', 2)") + "INSERT INTO owners VALUES (1), (2);",
             schema.format(fk=" REFERENCES owners (id) ON DELETE SET NULL"))
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): add_foreign_key items ((owner_id) -> owners(id) "
                               "ON DELETE SET NULL)"]
    assert_aligned(c, result)
    assert_items_kept(c)
    assert fk_list(c, "items") == {("owners", "owner_id", "id", "SET NULL")}
    assert c.q("SELECT owner_id FROM items ORDER BY id") == [(1,), (1,), (None,), (2,)]


def test_drop_foreign_key(case):
    schema = "CREATE TABLE owners (id INTEGER PRIMARY KEY);" + items_schema(extra=", owner_id INTEGER{fk}")
    c = case(schema.format(fk=" REFERENCES owners (id)") + ITEM_ROWS.replace("')", "', NULL)")
             + "INSERT INTO owners VALUES (1);", schema.format(fk=""))
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): drop_foreign_key items ((owner_id) -> owners(id))"]
    assert_aligned(c, result)
    assert_items_kept(c)
    assert fk_list(c, "items") == set()


def test_alter_primary_key(case):
    c = case("CREATE TABLE k (a INTEGER NOT NULL, b TEXT NOT NULL, v TEXT, PRIMARY KEY (a));"
             "CREATE INDEX ix_k_v ON k (v);"
             "CREATE TABLE kc (id INTEGER PRIMARY KEY, a INTEGER REFERENCES k (a));"
             "INSERT INTO k VALUES (1, 'x', 'p'), (2, 'y', 'q'); INSERT INTO kc VALUES (1, 2);",
             "CREATE TABLE k (a INTEGER NOT NULL, b TEXT NOT NULL, v TEXT, PRIMARY KEY (a, b), UNIQUE (a));"
             "CREATE INDEX ix_k_v ON k (v);"
             "CREATE TABLE kc (id INTEGER PRIMARY KEY, a INTEGER REFERENCES k (a));")
    result = c.run()
    assert len(rebuilt(result)) == 1 and "alter_primary_key k ((a) -> (a, b))" in rebuilt(result)[0]
    assert_aligned(c, result)
    assert c.q("SELECT a, b, v FROM k ORDER BY a") == [(1, "x", "p"), (2, "y", "q")]
    assert c.q("SELECT name FROM pragma_table_info('k') WHERE pk > 0 ORDER BY pk") == [("a",), ("b",)]
    assert ("ix_k_v", 0) in indexes(c, "k")
    assert fk_list(c, "kc") == {("k", "a", "a", "NO ACTION")}


@pytest.mark.parametrize("extra, after, native_tried", [
    # SQLite refuses the native DROP COLUMN: tried, rolled back to its savepoint, then rebuilt
    pytest.param(", flag TEXT REFERENCES items (id) ON DELETE SET NULL", "", False, id="column-in-a-foreign-key"),
    # the table is rebuilt for the constraint anyway (drop_check / drop_unique / drop_foreign_key): no native attempt
    pytest.param(", flag TEXT, CHECK (flag IS NULL OR flag <> '')", "", False, id="column-in-a-table-check"),
    pytest.param(", flag TEXT UNIQUE", "", False, id="column-with-a-unique-constraint"),
    pytest.param(", flag INTEGER REFERENCES items (id)", "", False, id="column-with-a-foreign-key"),
])
def test_drop_column_that_sqlite_cannot_drop_natively_is_rebuilt(case, statements, extra, after, native_tried):
    c = case(items_schema(extra=extra) + after + ITEM_ROWS.replace("')", "', NULL)"),
             items_schema() + after.replace(" WHERE flag IS NULL", ""))
    if native_tried:  # the trap is real: SQLite refuses ALTER TABLE ... DROP COLUMN here
        scratch = c.path.with_name("scratch.db")
        shutil.copy(c.path, scratch)
        con = sqlite3.connect(scratch)
        with pytest.raises(sqlite3.OperationalError):
            con.execute("ALTER TABLE items DROP COLUMN flag")
        con.close()

    result = c.run()
    assert len(rebuilt(result)) == 1 and "drop_column items.flag" in rebuilt(result)[0]
    # tried natively first when nothing else rebuilds the table; the refused attempt is not in the SQL
    assert any("DROP COLUMN" in s for s in statements) == native_tried
    assert not any("DROP COLUMN" in s for s in result.sql)
    assert_aligned(c, result)
    assert_items_kept(c)
    assert "flag" not in c.table_sql("items")
    if after:
        assert ("ix_live", 0) in indexes(c, "items")


def test_drop_column_on_a_table_being_rebuilt_is_folded_into_the_rebuild(case, statements):
    c = case(items_schema(extra=", old TEXT") + ITEM_ROWS.replace("')", "', 'o')"),
             items_schema("INTEGER"))
    result = c.run()
    assert rebuilt(result) == ["rebuilt table items (rows kept): alter_column items.qty (type TEXT -> INTEGER); "
                               "drop_column items.old (TEXT NULL)"]
    assert not any("DROP COLUMN" in s for s in statements)  # the table is copied once, not twice
    assert_aligned(c, result)
    assert_items_kept(c, qty=(10, -3, 7, None))


# --------------------------------------------------------------------- native paths


@pytest.mark.parametrize("target, reference, expect_sql", [
    pytest.param("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);",
                 "CREATE TABLE t (id INTEGER PRIMARY KEY, done_at DATETIME);",
                 "ALTER TABLE t ADD COLUMN done_at DATETIME", id="add_column-nullable"),
    pytest.param("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (id INTEGER PRIMARY KEY);"
                 "INSERT INTO t VALUES (1);",
                 "CREATE TABLE p (id INTEGER PRIMARY KEY);"
                 "CREATE TABLE t (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p (id) ON DELETE SET NULL);",
                 "ALTER TABLE t ADD COLUMN p_id INTEGER NULL REFERENCES p(id) ON DELETE SET NULL",
                 id="add_column-with-foreign-key"),
    pytest.param("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
                 "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE UNIQUE INDEX ix_t_v ON t (v);",
                 "CREATE UNIQUE INDEX ix_t_v ON t (v)", id="add_index"),
    pytest.param("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX ix_t_v ON t (v);"
                 "INSERT INTO t VALUES (1, 'a');",
                 "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);", "DROP INDEX ix_t_v", id="drop_index"),
    pytest.param("CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE TABLE old (id INTEGER PRIMARY KEY);"
                 "INSERT INTO t VALUES (1); INSERT INTO old VALUES (1);",
                 "CREATE TABLE t (id INTEGER PRIMARY KEY);", "DROP TABLE old", id="drop_table"),
    pytest.param("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT); CREATE INDEX ix_t_w ON t (w);"
                 "INSERT INTO t VALUES (1, 'a', 'b');",
                 "CREATE TABLE t (id INTEGER PRIMARY KEY, w TEXT); CREATE INDEX ix_t_w ON t (w);",
                 "ALTER TABLE t DROP COLUMN v", id="drop_column-plain"),
    # the index goes first (drop_index), then the column drops natively
    pytest.param("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT); CREATE INDEX ix_t ON t (v, w);"
                 "INSERT INTO t VALUES (1, 'a', 'b');",
                 "CREATE TABLE t (id INTEGER PRIMARY KEY, w TEXT); CREATE INDEX ix_t ON t (w);",
                 "ALTER TABLE t DROP COLUMN v", id="drop_column-indexed-with-its-index-replaced"),
])
def test_native_paths_never_rebuild(case, statements, target, reference, expect_sql):
    c = case(target, reference)
    result = c.run()
    assert rebuilt(result) == []
    assert not any("_alembic_tmp" in s for s in statements)
    assert expect_sql in result.sql
    assert_aligned(c, result)
    assert c.q("SELECT id FROM t") == [(1,)]


def test_add_column_with_foreign_key_is_one_applied_step(case):
    c = case("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (id INTEGER PRIMARY KEY);",
             "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE t (id INTEGER PRIMARY KEY, p_id INTEGER "
             "REFERENCES p (id));")
    result = c.run(align="additive")
    assert [a["description"] for a in result.applied] == [
        "add_column t.p_id (INTEGER NULL) with foreign key (p_id) -> p(id)"]
    assert {ch.kind for ch in result.aligned} == {"add_column", "add_foreign_key"}
    assert fk_list(c, "t") == {("p", "p_id", "id", "NO ACTION")}


def test_index_names_freed_by_a_drop_are_reused(case):
    # index names are schema-wide: ix is dropped from a and created again on a and on a new table
    c = case("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT, y TEXT); CREATE INDEX ix ON a (x, y);"
             "CREATE TABLE old (id INTEGER PRIMARY KEY, z TEXT); CREATE INDEX ix_z ON old (z);",
             "CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT, y TEXT); CREATE INDEX ix ON a (y);"
             "CREATE TABLE new (id INTEGER PRIMARY KEY, z TEXT); CREATE INDEX ix_z ON new (z);")
    assert_aligned(c, c.run())
