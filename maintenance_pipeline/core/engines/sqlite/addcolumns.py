"""SQLite: several ``ALTER TABLE … ADD COLUMN`` with one schema reload instead of one each.

Why: SQLite's ADD COLUMN rewrites the table's CREATE TABLE text in ``sqlite_master``, then reloads and re-parses the
whole schema (``renameReloadSchema`` in alter.c): adding a column to 10 % of N tables parses a schema of N tables N/10
times (133 ms a statement at 10,000 tables). Here the columns are added exactly as SQLite's own ALTER adds them, by
SQLite, and the schema is reloaded once.

What SQLite's ADD COLUMN does (alter.c ``sqlite3AlterBeginAddColumn`` / ``sqlite3AlterFinishAddColumn``, 3.40), and
where each part is done here:

1. refuses a view, a virtual or system table, a PRIMARY KEY or UNIQUE column, a duplicate name, a type a STRICT table
   does not know, an unknown collation, …, and asks the authorizer (``SQLITE_ALTER_TABLE``): the very statements
   ``apply`` sends (Alembic's, or ours for a column with its foreign key), run by SQLite on a scratch copy of the table
   (its exact CREATE TABLE text from the live ``sqlite_master``, in an in-memory database), then compiled, not run
   (``EXPLAIN``), on the migration's own connection, against the live schema and its authorizer (the rows guard sees
   the ALTER as it sees a real one);
2. when the table has a row, refuses a NOT NULL column whose default is NULL, a non-constant default, a REFERENCES
   column with a default (foreign keys on), a STORED column: the same statements run by SQLite on a probe, a table of
   the same name that has one row (foreign keys on);
3. writes the new CREATE TABLE text (the column's definition before the column list's closing parenthesis): the
   scratch's text, SQLite's own;
4. raises the file format to at least 3, bumps the schema cookie, reloads main's and temp's schema: the first column
   is added by a real ALTER (the file format, and anything else ALTER does); the others' texts are written in one
   ``PRAGMA writable_schema`` update inside a savepoint, each replacing exactly the text the scratch started from, the
   cookie is bumped once (as ALTER bumps it: by one) so the next statement reloads main's and temp's schema, and the
   result is proven before going on: every table's columns as the reloaded live schema reads them
   (``pragma_table_xinfo``) equal the scratch's, and a row of it reads; anything else rolls the savepoint back and
   those columns are added one by one as before;
5. a column with a CHECK, a NOT NULL generated column, or any column of a STRICT table makes SQLite read every row
   (``pragma_quick_check`` of the table): such columns are never added here (nor a generated column at all), so what
   is added here is what SQLite adds without reading a row.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass

import sqlalchemy as sa

from ...errors import says_damaged
from ..base import AddedColumn

MIN_TOGETHER = 2  # columns written in the one update (beside the first, a real ALTER): fewer save no reload

_ALTER_ADD = re.compile(r"^\s*ALTER\s+TABLE\s.*\sADD\s", re.IGNORECASE | re.DOTALL)
_CHECK = re.compile(r"\bCHECK\b", re.IGNORECASE)
_PROBE_COLUMN = "mp_probe_row_"
_NOT_RECORDED = ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "EXPLAIN")


class NotProven(Exception):
    """The live schema after the update is not what the scratch made: the savepoint is rolled back."""


@dataclass
class Step:
    """One column as the scratch added it: the statements ``apply`` sent, the table's text before and after, and its
    columns after (``pragma_table_xinfo`` rows)."""

    change: object
    statements: tuple[str, ...]
    before: str
    after: str
    columns: list
    rowid: int  # the table's row of the live sqlite_master


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def add_columns(ops, changes: list, apply) -> list[AddedColumn]:
    """``Engine.add_columns`` for SQLite (see the module): the columns of ``changes`` that qualify, the first by a
    real ALTER and the others in one schema update; [] when fewer than ``MIN_TOGETHER`` + 1 qualify."""
    if len(changes) < MIN_TOGETHER + 1:
        return []
    bind = ops.get_bind()
    raw = bind.connection.driver_connection
    began = time.perf_counter()
    steps = plan(raw, changes, apply)
    if len(steps) < MIN_TOGETHER + 1:
        return []
    first, rest = steps[0], steps[1:]
    t = time.perf_counter()
    if not apply(ops, first.change):  # a real ALTER (through SQLAlchemy: recorded as it runs)
        return []
    added = [AddedColumn(first.change, None, t, time.perf_counter() - t)]
    t_rest = time.perf_counter()
    rest = compiled_live(raw, rest)
    if len(rest) < MIN_TOGETHER:
        return added
    savepoint = bind.begin_nested()
    try:
        write_together(raw, rest)
    except (sqlite3.Error, NotProven) as e:
        if isinstance(e, sqlite3.Error) and (not raw.in_transaction or says_damaged(str(e))):
            raise  # the disk or the file failed (SQLite may have ended the transaction): the run fails with it
        savepoint.rollback()  # the file and the schema as they were after the first column: the rest one by one
        return added
    savepoint.commit()
    share = ((t - began) + (time.perf_counter() - t_rest)) / len(rest)
    return added + [AddedColumn(s.change, s.statements, t_rest, share) for s in rest]


# ------------------------------------------------------------------ what SQLite makes of each statement


def plan(raw: sqlite3.Connection, changes: list, apply) -> list[Step]:
    """The changes, in order, that SQLite adds without reading a row (steps 1, 2, 3 and 5 of the module), with the
    statements and texts the scratch and the probe gave. A table's columns qualify up to the first that does not
    (its later ones keep their order, one by one)."""
    by_table: dict[str, list] = {}
    for ch in changes:
        by_table.setdefault(ch.table, []).append(ch)
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    probe = sqlite3.connect(":memory:", isolation_level=None)
    engine = sa.create_engine("sqlite://", creator=lambda: scratch, poolclass=sa.pool.StaticPool)
    try:
        probe.execute("PRAGMA foreign_keys = ON")
        with engine.connect() as conn:
            sent: list[tuple[str, object]] = []

            def capture(c, cursor, statement, parameters, context, executemany):  # noqa: ANN001
                head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
                if head not in _NOT_RECORDED:
                    sent.append((statement.strip(), parameters))

            sa.event.listen(conn, "before_cursor_execute", capture)
            from alembic.operations import Operations
            from alembic.runtime.migration import MigrationContext

            ops = Operations(MigrationContext.configure(conn))
            qualified: dict[int, Step] = {}
            # one read of the live texts (sqlite_master has no index on its names: a lookup each would read it all)
            live = {name: (rowid, text) for rowid, name, text in
                    raw.execute("SELECT rowid, name, sql FROM main.sqlite_master WHERE type = 'table'")}
            for table, chs in by_table.items():
                steps = _on_scratch(live.get(table), scratch, ops, sent, table, chs, apply)
                for s in _on_probe(probe, table, steps):
                    qualified[id(s.change)] = s
    finally:
        engine.dispose()
        scratch.close()
        probe.close()
    return [qualified[id(ch)] for ch in changes if id(ch) in qualified]


def _on_scratch(live: tuple[int, str] | None, scratch, ops, sent: list, table: str, changes: list, apply) -> list[Step]:
    rowid, text = live if live else (None, None)
    if not text or text.lstrip()[:14].upper().startswith("CREATE VIRTUAL"):
        return []
    steps: list[Step] = []
    try:
        scratch.execute(text)
    except sqlite3.Error:  # what this connection cannot make (a collation, a module, a function): one by one
        return []
    try:
        if _text(scratch, table) != text or _strict(scratch, table):
            return []
        for ch in changes:
            before, columns_before = _text(scratch, table), _columns(scratch, table)
            del sent[:]
            try:
                if not apply(ops, ch):
                    break
            except Exception:  # noqa: BLE001 - SQLite refused it here: it goes one by one, and says why there
                break
            statements = tuple(s for s, _ in sent)
            if not statements or any(p for _, p in sent) or not all(_ALTER_ADD.match(s) for s in statements) \
                    or any(_CHECK.search(s) for s in statements):
                break
            columns = _columns(scratch, table)
            known = {c[1].lower() for c in columns_before}
            new = [c for c in columns if c[1].lower() not in known]
            if not new or any(c[6] != 0 for c in new) or columns[:len(columns_before)] != columns_before:
                break  # generated (hidden 2 or 3), or not an added column at the end
            steps.append(Step(ch, statements, before, _text(scratch, table), columns, rowid))
    finally:  # the scratch holds one table at a time (each ALTER there re-parses its schema too)
        for (name,) in scratch.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' "
                                          "AND name NOT LIKE 'sqlite^_%' ESCAPE '^'").fetchall():
            scratch.execute(f"DROP TABLE main.{_q(name)}")
    return steps


def _on_probe(probe: sqlite3.Connection, table: str, steps: list[Step]) -> list[Step]:
    """The steps whose statements SQLite accepts on a table of that name that has a row (step 2 of the module)."""
    if not steps:
        return []
    kept: list[Step] = []
    probe.execute("BEGIN")
    try:
        probe.execute(f"CREATE TABLE main.{_q(table)} ({_PROBE_COLUMN})")
        probe.execute(f"INSERT INTO main.{_q(table)} VALUES (1)")
        for s in steps:
            for statement in s.statements:
                probe.execute(statement)
            kept.append(s)
    except sqlite3.Error:
        pass
    finally:
        probe.execute("ROLLBACK")
    return kept


def _text(conn: sqlite3.Connection, table: str) -> str | None:
    row = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return row[0] if row else None


def _columns(conn: sqlite3.Connection, table: str) -> list:
    return conn.execute("SELECT * FROM pragma_table_xinfo(?, 'main')", (table,)).fetchall()


def _strict(conn: sqlite3.Connection, table: str) -> bool:
    try:
        row = conn.execute("SELECT strict FROM pragma_table_list(?, 'main')", (table,)).fetchone()
    except sqlite3.Error:  # an SQLite without pragma_table_list (before 3.37): the text says it
        return bool(re.search(r"\bSTRICT\b", _text(conn, table) or "", re.IGNORECASE))
    return bool(row and row[0])


# ------------------------------------------------------------------ on the live connection


def compiled_live(raw: sqlite3.Connection, steps: list[Step]) -> list[Step]:
    """The steps whose statements compile on the live connection (EXPLAIN: prepared against the live schema and
    asked of its authorizer as the real statement is, not run); a table's later steps go with one that does not."""
    kept, refused = [], set()
    for s in steps:
        if s.change.table in refused:
            continue
        try:
            for statement in s.statements:
                raw.execute("EXPLAIN " + statement).fetchall()
        except sqlite3.Error:
            refused.add(s.change.table)
            continue
        kept.append(s)
    return kept


def write_together(raw: sqlite3.Connection, steps: list[Step]) -> None:
    """Step 4 of the module: each table's text written once, the schema cookie bumped once, the reloaded schema
    proven to hold what the scratch made (``NotProven`` otherwise). Call it inside a savepoint."""
    tables: dict[str, list] = {}  # table -> [its row, text before its first step, text after its last, columns after]
    for s in steps:
        t = tables.setdefault(s.change.table, [s.rowid, s.before, s.after, s.columns])
        t[2], t[3] = s.after, s.columns
    version = raw.execute("PRAGMA main.schema_version").fetchone()[0]
    raw.execute("PRAGMA writable_schema = ON")
    try:
        for table, (rowid, before, after, _) in tables.items():
            n = raw.execute("UPDATE main.sqlite_master SET sql = ? WHERE rowid = ? AND type = 'table' AND name = ? "
                            "AND sql = ?", (after, rowid, table, before)).rowcount
            if n != 1:
                raise NotProven(f"{table}: its CREATE TABLE text is not the one the scratch started from")
        raw.execute(f"PRAGMA main.schema_version = {int(version) + 1}")
    finally:
        raw.execute("PRAGMA writable_schema = OFF")
    # the first statement on main after the cookie moved reloads main's and temp's schema (SQLITE_SCHEMA, prepared
    # again), as ALTER's own reload does; a text SQLite cannot parse fails here
    try:
        raw.execute("SELECT count(*) FROM main.sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        if "malformed database schema" in str(e):  # the texts written, not the file: the savepoint undoes them
            raise NotProven(f"the reloaded schema does not parse: {e}") from None
        raise
    if raw.execute("PRAGMA main.schema_version").fetchone()[0] != int(version) + 1:
        raise NotProven("the schema cookie did not move")
    for table, (_, _, _, columns) in tables.items():
        if _columns(raw, table) != columns:
            raise NotProven(f"{table}: the reloaded schema does not read the columns the scratch made")
        raw.execute(f"SELECT * FROM main.{_q(table)} LIMIT 1").fetchall()
