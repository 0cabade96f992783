"""The SQLite alignment executor (``core/migrate.py`` + ``core/align.py``) on real files.

Every test builds a target and a reference file in tmp_path with plain CREATE TABLE/INSERT,
runs ``migrate()`` and then checks with a fresh snapshot + diff that nothing is left, and with
sqlite3 that every row is there with the same values. Failures must leave the file bytewise
as it was (sha256).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from maintenance_pipeline.core import dburl
from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.diff import diff
from maintenance_pipeline.core.errors import DatabaseLockedError, MigrationError
from maintenance_pipeline.core.migrate import fk_violations, migrate
from maintenance_pipeline.core.model import ADDITIVE_KINDS
from maintenance_pipeline.core.reference import reference_snapshot
from maintenance_pipeline.core.snapshot import take_snapshot

# ------------------------------------------------------------------------ helpers


def make_db(path: Path, sql: str) -> Path:
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.commit()
    con.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Case:
    """A target file and a reference file; ``run()`` aligns the target."""

    def __init__(self, folder: Path, target_sql: str, reference_sql: str):
        self.path = make_db(folder / "target.db", target_sql)
        self.ref_path = make_db(folder / "reference.db", reference_sql)
        self.target = Target(name="t", url=f"sqlite:///{self.path}", reference_url=f"sqlite:///{self.ref_path}")
        self.ref = reference_snapshot(url=self.target.reference_url, target_dialect="sqlite",
                                      ignore_tables=self.target.ignore_tables)
        self.sha_before = sha256(self.path)

    def run(self, align: str = "full", dry_run: bool = False):
        return migrate(self.target, self.ref, align=align, dry_run=dry_run)

    def remaining(self) -> list:
        engine = dburl.open_engine(self.target.url)
        try:
            live = take_snapshot(engine, ignore_tables=self.target.ignore_tables)
        finally:
            engine.dispose()
        return diff(live, self.ref, ignore_tables=self.target.ignore_tables)

    def q(self, sql: str, *params) -> list[tuple]:
        con = sqlite3.connect(self.path)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def table_sql(self, name: str) -> str:
        return self.q("SELECT sql FROM sqlite_master WHERE name = ?", name)[0][0]

    def unchanged(self) -> bool:
        return sha256(self.path) == self.sha_before


@pytest.fixture
def case(tmp_path):
    def build(target_sql: str, reference_sql: str) -> Case:
        return Case(tmp_path, target_sql, reference_sql)

    return build


@pytest.fixture
def statements():
    """Every statement any SQLAlchemy engine sends while the test runs (independent of result.sql)."""
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", listener)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", listener)


def rebuilt(result) -> list[str]:
    return [a["description"] for a in result.applied if a["description"].startswith("rebuilt table")]


def indexes(c: Case, table: str) -> set[tuple]:
    return {(r[1], r[2]) for r in c.q(f'PRAGMA index_list("{table}")') if r[3] == "c"}


def fk_list(c: Case, table: str) -> set[tuple]:
    return {(r[2], r[3], r[4], r[6]) for r in c.q(f'PRAGMA foreign_key_list("{table}")')}


def assert_aligned(c: Case, result) -> None:
    assert c.remaining() == [], [ch.describe() for ch in c.remaining()]
    assert result.drift_after == []
    assert c.q("PRAGMA integrity_check") == [("ok",)]
    assert c.q("PRAGMA foreign_key_check") == []


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
    assert rebuilt(result) == ["rebuilt table items (rows kept): alter_column items.note (nullable -> NOT NULL)"]
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
    pytest.param(", flag TEXT", "CREATE INDEX ix_live ON items (code) WHERE flag IS NULL;", True,
                 id="column-in-a-partial-index-where"),
    pytest.param(", flag TEXT, CHECK (flag IS NULL OR flag <> '')", "", True, id="column-in-a-table-check"),
    # the table is rebuilt for the constraint anyway (drop_unique / drop_foreign_key): no native attempt
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


# ------------------------------------------------------------------ ON DELETE CASCADE


def _foreign_keys_on_by_default(monkeypatch) -> None:
    """Connections with PRAGMA foreign_keys=ON from the start (SQLITE_DEFAULT_FOREIGN_KEYS=1 builds,
    or an application's connect hook)."""
    original = dburl._sqlite_connect_factory

    def factory(path, timeout):  # noqa: ANN001
        connect = original(path, timeout)

        def connect_with_fks():
            con = connect()
            con.execute("PRAGMA foreign_keys=ON")
            return con

        return connect_with_fks

    monkeypatch.setattr(dburl, "_sqlite_connect_factory", factory)


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
    assert rebuilt(result) == ["rebuilt table p (rows kept): alter_column p.name (nullable -> NOT NULL)"]
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
    engine = dburl.open_engine(c.target.url)
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


# -------------------------------------------------------------------- align modes


MIXED_TARGET = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT, gone TEXT);
CREATE TABLE old (id INTEGER PRIMARY KEY);
INSERT INTO a VALUES (1, '1', 'g');
"""
MIXED_REFERENCE = """
CREATE TABLE a (id INTEGER PRIMARY KEY, v INTEGER, added TEXT);
CREATE INDEX ix_a_added ON a (added);
CREATE TABLE new (id INTEGER PRIMARY KEY);
"""


def test_additive_applies_only_additive_kinds_and_returns_the_rest(case):
    c = case(MIXED_TARGET, MIXED_REFERENCE)
    result = c.run(align="additive")
    assert {ch.kind for ch in result.aligned} == {"add_table", "add_column", "add_index"}
    assert all(ch.kind in ADDITIVE_KINDS for ch in result.aligned)
    assert sorted(ch.describe() for ch in result.refused) == [
        "alter_column a.v (type TEXT -> INTEGER)", "drop_column a.gone (TEXT NULL)", "drop_table old (1 columns)"]
    assert rebuilt(result) == []
    assert sorted(ch.describe() for ch in c.remaining()) == sorted(ch.describe() for ch in result.refused)
    assert sorted(ch.describe() for ch in result.drift_after) == sorted(ch.describe() for ch in result.refused)
    assert c.q("SELECT id, v, gone, added FROM a") == [(1, "1", "g", None)]


def test_align_none_applies_nothing(case):
    c = case(MIXED_TARGET, MIXED_REFERENCE)
    result = c.run(align="none")
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
    assert "_alembic_tmp_a" in text  # the rebuild for the type change
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


def test_a_rebuild_keeps_what_the_diff_does_not_compare(case):
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
             "CREATE TABLE u (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE, age INTEGER, v INTEGER);"
             "CREATE INDEX ix_u_v ON u (v);"
             "CREATE INDEX ix_u_lower ON u (lower(email));"
             "CREATE TABLE log (msg TEXT);")
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert_aligned(c, result)
    sql = c.table_sql("u")
    assert "AUTOINCREMENT" in sql and "COLLATE NOCASE" in sql and "CHECK (age >= 0)" in sql
    assert "CONSTRAINT ck_v CHECK (v IS NULL\n OR v <> 'x:y')" in sql  # over two lines, ":" kept
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
    c = case("CREATE TABLE a (id INTEGER PRIMARY KEY, x TEXT, y TEXT); CREATE VIEW vx AS SELECT x FROM a;"
             "INSERT INTO a VALUES (1, 'a', 'b');",
             "CREATE TABLE a (id INTEGER PRIMARY KEY, y TEXT);")
    with pytest.raises(MigrationError, match=r"break view vx.*no such column: x"):
        c.run()
    assert c.unchanged()


def test_a_table_with_generated_columns_is_refused_not_flattened(case):
    c = case("CREATE TABLE g (id INTEGER PRIMARY KEY, x TEXT, y TEXT GENERATED ALWAYS AS (upper(x)) VIRTUAL);"
             "INSERT INTO g (id, x) VALUES (1, 'a');",
             "CREATE TABLE g (id INTEGER PRIMARY KEY, x TEXT NOT NULL, y TEXT GENERATED ALWAYS AS (upper(x)) VIRTUAL);")
    with pytest.raises(MigrationError, match=r"table g .*generated column\(s\) y"):
        c.run()
    assert c.unchanged()


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
    c = case(schema.format(t="TEXT") + """INSERT INTO "order" VALUES (1, 'a', '5');
             INSERT INTO "Line Items" VALUES (1, 1);
             CREATE TRIGGER "tr order" AFTER DELETE ON "order" BEGIN SELECT 1; END;""",
             schema.format(t="INTEGER"))
    result = c.run()
    assert len(rebuilt(result)) == 1
    assert_aligned(c, result)
    assert c.q('SELECT * FROM "order"') == [(1, "a", 5)]
    assert "COLLATE NOCASE" in c.table_sql("order") and c.table_sql("order").rstrip().endswith("STRICT")
    assert c.q("SELECT name FROM sqlite_master WHERE type = 'trigger'") == [("tr order",)]
    assert fk_list(c, "Line Items") == {("order", "order", "group", "NO ACTION")}


def test_a_database_locked_by_another_writer_is_a_clear_error(case, monkeypatch):
    original = dburl._sqlite_connect_factory
    monkeypatch.setattr(dburl, "_sqlite_connect_factory", lambda path, timeout: original(path, 0.1))
    c = case("CREATE TABLE t (id INTEGER PRIMARY KEY);", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
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
    c = case("CREATE TABLE a (id INTEGER PRIMARY KEY); CREATE TABLE old (x TEXT); CREATE VIEW vo AS SELECT x FROM old;",
             "CREATE TABLE a (id INTEGER PRIMARY KEY);")
    with pytest.raises(MigrationError, match=r"break view vo .*no such table: main.old"):
        c.run()
    assert c.unchanged()
