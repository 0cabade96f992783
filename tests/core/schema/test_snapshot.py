"""Reading a real SQLite file into a Snapshot."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.errors import NotADatabaseError
from maintenance_pipeline.core.schema.model import Column, ForeignKey, Index, UniqueConstraint
from maintenance_pipeline.core.schema.snapshot import schema_version, table_counts, take_snapshot

SCHEMA = '''
CREATE TABLE parent (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code VARCHAR(10) NOT NULL UNIQUE,
    region TEXT,
    created_at DATETIME DEFAULT (datetime('now')),
    score REAL DEFAULT 0,
    label STRING DEFAULT 'x',
    CONSTRAINT uq_parent_code_region UNIQUE (code, region)
);
CREATE TABLE child (
    parent_id INTEGER NOT NULL REFERENCES parent ON DELETE CASCADE,
    seq INT NOT NULL,
    code VARCHAR(10),
    region TEXT,
    note TEXT,
    PRIMARY KEY (parent_id, seq),
    CONSTRAINT fk_child_pair FOREIGN KEY (code, region) REFERENCES parent (code, region) ON UPDATE SET NULL
);
CREATE INDEX ix_child_note ON child (note);
CREATE UNIQUE INDEX ux_child_code_seq ON child (code, seq);
CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
CREATE TABLE "odd ""name""" ("a b" int, "c" text);
INSERT INTO parent (code, region) VALUES ('a', 'eu'), ('b', 'us');
INSERT INTO child (parent_id, seq, note) VALUES (1, 1, 'n');
INSERT INTO "odd ""name""" VALUES (1, 'x'), (2, 'y'), (3, 'z');
ANALYZE;
'''


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "app.db"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.close()
    engine = open_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def test_tables_and_internal_tables_skipped(db):
    snap = take_snapshot(db)
    assert snap.dialect == "sqlite"
    # sqlite_sequence (AUTOINCREMENT) and sqlite_stat1 (ANALYZE) exist but are not listed
    assert sorted(snap.tables) == ["child", "kv", 'odd "name"', "parent"]
    assert sorted(take_snapshot(db, ignore_tables=["kv", "child"]).tables) == ['odd "name"', "parent"]


def test_columns_in_declared_order_with_types_defaults_and_keys(db):
    parent = take_snapshot(db).tables["parent"]
    assert parent.columns == (
        Column("id", "INTEGER", False, None, "INTEGER"),  # rowid alias: NOT NULL although pragma says notnull=0
        Column("code", "VARCHAR(10)", False, None, "TEXT"),
        Column("region", "TEXT", True, None, "TEXT"),
        Column("created_at", "DATETIME", True, "datetime('now')", "NUMERIC:DATETIME"),
        Column("score", "REAL", True, "0", "REAL"),
        Column("label", "STRING", True, "'x'", "NUMERIC:STRING"),
    )
    assert parent.primary_key == ("id",)


def test_uniques_indexes_and_primary_key(db):
    snap = take_snapshot(db)
    parent, child, kv = snap.tables["parent"], snap.tables["child"], snap.tables["kv"]
    # UNIQUE constraints (origin 'u') are uniques, in declared order, named when the SQL names them
    assert parent.uniques == (UniqueConstraint(None, ("code",)),
                              UniqueConstraint("uq_parent_code_region", ("code", "region")))
    assert parent.indexes == ()
    # explicit CREATE [UNIQUE] INDEX are indexes; the pk's own index (origin 'pk') is not listed
    assert [(i.name, i.columns, i.unique) for i in child.indexes] == [("ix_child_note", ("note",), False),
                                                                       ("ux_child_code_seq", ("code", "seq"), True)]
    assert child.uniques == ()
    assert child.primary_key == ("parent_id", "seq")
    assert kv.primary_key == ("k",) and kv.indexes == () and kv.uniques == ()
    assert kv.column("k").nullable is False  # WITHOUT ROWID enforces NOT NULL on the key


def test_foreign_keys_grouped_and_resolved(db):
    child = take_snapshot(db).tables["child"]
    fks = sorted(child.foreign_keys, key=lambda f: f.columns)
    assert fks == [
        # composite key stays one key; ON UPDATE kept, NO ACTION -> None; name from CONSTRAINT clause
        ForeignKey("fk_child_pair", ("code", "region"), "parent", ("code", "region"), None, "SET NULL"),
        # "REFERENCES parent" without columns points at the parent's primary key
        ForeignKey(None, ("parent_id",), "parent", ("id",), "CASCADE", None),
    ]


def test_engine_and_connection_give_the_same_snapshot(db):
    with db.connect() as conn:
        via_conn = take_snapshot(conn)
    assert via_conn == take_snapshot(db)
    assert via_conn.fingerprint == take_snapshot(db).fingerprint


def test_few_queries_whatever_the_number_of_tables(tmp_path):
    path = tmp_path / "many.db"
    con = sqlite3.connect(path)
    for i in range(200):
        con.execute(f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, p INT REFERENCES t0(id), v TEXT UNIQUE)")
        con.execute(f"CREATE INDEX ix_t{i} ON t{i} (p)")
    con.close()
    engine = open_engine(f"sqlite:///{path}")
    statements = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    snap = take_snapshot(engine)
    assert len(snap.tables) == 200
    assert [(i.name, i.columns, i.definition) for i in snap.tables["t7"].indexes] == [("ix_t7", ("p",), "(p)")]
    assert snap.tables["t7"].uniques == (UniqueConstraint(None, ("v",)),)
    assert len(statements) <= 5, statements


def test_schema_version_moves_when_the_schema_changes(db):
    before = schema_version(db)
    assert isinstance(before, int)
    assert schema_version(db) == before
    with db.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE parent ADD COLUMN extra TEXT")
    assert schema_version(db) > before


def test_table_counts_quotes_identifiers(db):
    counts = table_counts(db, ["parent", "child", 'odd "name"', "kv", "missing"])
    assert counts == {
        "parent": {"columns": 6, "rows": 2},
        "child": {"columns": 5, "rows": 1},
        'odd "name"': {"columns": 2, "rows": 3},
        "kv": {"columns": 2, "rows": 0},
    }


def test_corrupt_file_is_not_a_database_error(tmp_path):
    path = tmp_path / "broken.db"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);" * 1)
    con.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 500,)] * 200)
    con.commit()
    con.close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # trash the schema page behind a valid header
    path.write_bytes(bytes(data))
    engine = open_engine(f"sqlite:///{path}", check=False)
    with pytest.raises(NotADatabaseError, match="broken.db"):
        take_snapshot(engine)


def test_in_memory_connection(tmp_path):
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE a (x INT)")
        snap = take_snapshot(conn)
    assert list(snap.tables) == ["a"]
