"""A SQLite snapshot's catalog work grows linearly with the schema: counted, never timed.

The same schema shape is built with 10 and with 200 tables (real files) and snapshotted, first of the main
database, then of the same file attached under another name (the migration's rows guard reads its backup
so). Three counts, each of which a tables² catalog read breaks:

* the statements the snapshot sends (SQLAlchemy's ``before_cursor_execute``): the same number whatever the
  number of tables (a query per table from Python grows it);
* the statements SQLite runs for them, the table-valued pragma functions' own included (SQLite's trace:
  ``pragma_table_xinfo(m.name)`` joined with ``sqlite_master`` runs ``PRAGMA table_xinfo`` once per table):
  none runs twice in one snapshot (a pragma correlated with every ``sqlite_master`` row, e.g.
  ``(SELECT type FROM pragma_table_list WHERE name = m.name)``, lists every table once per row), and
  those that name no object (listings of the whole schema) are as many for 200 tables as for 10;
* the virtual machine instructions SQLite executes (its progress handler, called every instruction): per
  table, no more for 200 tables than for 10 (plus a margin of 10 %). Any work per table that grows with
  the number of tables shows here, wherever it hides in the SQL.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import event

from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.schema.snapshot import take_snapshot

SIZES = (10, 200)
MARGIN = 1.10  # instructions per table, 200 tables / 10 tables: 0.82 now, 5.6 with pragma_table_list per row
# a pragma run for one table or index (its argument is the name; an attached database's name before it)
_PER_OBJECT = re.compile(r"^-- PRAGMA (?:'[^']*'\.)?\w+=")


def _table(i: int) -> str:
    parent = f", parent_id INTEGER REFERENCES t{i - 1} (id) ON DELETE CASCADE" if i else ""
    return (f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, code VARCHAR(20) NOT NULL UNIQUE, "
            f"amount NUMERIC(10, 2) DEFAULT 0 CHECK (amount >= 0), note TEXT COLLATE NOCASE, "
            f"twice INT GENERATED ALWAYS AS (amount * 2) VIRTUAL{parent});\n"
            f"CREATE INDEX ix_t{i}_note ON t{i} (note, amount);\n")


def build(path: Path, tables: int) -> Path:
    """``tables`` tables (a key, a unique column, a CHECK, a collation, a generated column, an index, a foreign
    key each), a view and a trigger per 10 tables and one full-text (virtual) table with its shadow tables."""
    script = ["BEGIN;"] + [_table(i) for i in range(tables)]
    for i in range(0, tables, 10):
        script.append(f"CREATE VIEW v{i} AS SELECT id, code FROM t{i};\n"
                      f"CREATE TRIGGER tr{i} AFTER INSERT ON t{i} BEGIN UPDATE t{i} SET note = 'x' "
                      f"WHERE id = NEW.id; END;\n")
    script.append("CREATE VIRTUAL TABLE docs USING fts5(body);\nCOMMIT;")
    con = sqlite3.connect(path)
    try:
        con.executescript("".join(script))
    finally:
        con.close()
    return path


@dataclass
class Reading:
    tables: int
    sent: list[str]  # statements the snapshot sent through SQLAlchemy
    ran: Counter  # statements SQLite ran, pragma functions' own included
    instructions: int  # virtual machine instructions

    @property
    def listings(self) -> int:
        """Statements SQLite ran that name no single table or index."""
        return sum(n for sql, n in self.ran.items() if not _PER_OBJECT.match(sql))


def read(path: Path, schema: str | None) -> Reading:
    """Snapshot ``path`` (attached as ``schema`` to a connection of an empty file when ``schema`` is given),
    counting what it costs."""
    main = path
    if schema:
        main = path.parent / "host.db"
        con = sqlite3.connect(main)
        con.execute("CREATE TABLE IF NOT EXISTS host (id INTEGER PRIMARY KEY)")
        con.close()
    engine = open_engine(f"sqlite:///{main}")
    try:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            if schema:  # before the first statement begins a transaction (no ATTACH inside one)
                raw.execute("ATTACH DATABASE ? AS " + schema, (str(path),))
            sent: list[str] = []
            ran: Counter = Counter()
            steps = [0]

            def step() -> int:
                steps[0] += 1
                return 0  # go on

            event.listen(conn, "before_cursor_execute", lambda *a: sent.append(a[2]))
            raw.set_trace_callback(lambda sql: ran.update([sql]))
            raw.set_progress_handler(step, 1)
            try:
                snap = take_snapshot(conn, schema=schema)
            finally:
                raw.set_progress_handler(None, 0)
                raw.set_trace_callback(None)
    finally:
        engine.dispose()
    tables = int(path.stem.split("_")[1])
    assert {f"t{i}" for i in range(tables)} <= set(snap.tables) and f"t{tables}" not in snap.tables
    return Reading(tables, sent, ran, steps[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[int, Path]:
    out = {}
    for n in SIZES:
        folder = tmp_path_factory.mktemp(f"tables{n}")
        out[n] = build(folder / f"tables_{n}.db", n)
    return out


@pytest.fixture(scope="module", params=[None, "attached"], ids=["main", "attached"])
def readings(request, files) -> dict[int, Reading]:
    return {n: read(path, request.param) for n, path in files.items()}


def test_the_statements_sent_do_not_grow_with_the_tables(readings):
    small, big = readings[SIZES[0]], readings[SIZES[-1]]
    assert len(big.sent) == len(small.sent), (
        f"{len(small.sent)} statements for {small.tables} tables, {len(big.sent)} for {big.tables}: a query per "
        f"table? {Counter(big.sent).most_common(2)}")


def test_no_catalog_statement_runs_twice_and_whole_schema_listings_do_not_grow(readings):
    for r in readings.values():
        repeated = [(sql, n) for sql, n in r.ran.most_common(3) if n > 1]
        assert not repeated, f"{r.tables} tables: SQLite ran these more than once in one snapshot: {repeated}"
    small, big = readings[SIZES[0]], readings[SIZES[-1]]
    assert big.listings == small.listings, (small.listings, big.listings)
    # the per-object pragmas are there (the trace sees inside the pragma functions): one per table at least
    assert sum(big.ran.values()) - big.listings >= big.tables


def test_the_work_per_table_does_not_grow_with_the_tables(readings):
    small, big = readings[SIZES[0]], readings[SIZES[-1]]
    per_small, per_big = small.instructions / small.tables, big.instructions / big.tables
    assert per_big <= per_small * MARGIN, (
        f"SQLite ran {per_small:.0f} instructions per table for {small.tables} tables, {per_big:.0f} per table "
        f"for {big.tables}: the snapshot's catalog reads grow faster than the schema")
