"""Benchmark: our pragma-based snapshot + diff against Alembic's compare_metadata.

Two SQLite schemas of 1,000 tables each (8-12 columns, an index on every third table,
a foreign key on every fourth) are generated in ``benchmarks/.work/``; the second has a
handful of differences. Each round times, alternately:

  (a) ours:    take_snapshot(db1) + take_snapshot(db2) + diff(...)
  (b) alembic: MetaData().reflect(db2) + compare_metadata(MigrationContext(db1), metadata)
               (reflecting db2 is part of the price of using Alembic for this)

and the medians, their ratio and a comparison of what both found are printed.

Run: .venv/bin/python benchmarks/bench_diff.py [--tables 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.migration import MigrationContext  # noqa: E402

from maintenance_pipeline.core.engines import open_engine  # noqa: E402
from maintenance_pipeline.core.schema.diff import diff, summarize  # noqa: E402
from maintenance_pipeline.core.schema.snapshot import take_snapshot  # noqa: E402

WORK = Path(__file__).resolve().parent / ".work"
TYPES = ["INTEGER", "TEXT", "VARCHAR(40)", "REAL", "DATETIME", "BOOLEAN", "NUMERIC(10, 2)", "VARCHAR(200)"]

# what the second database changes: (table index, change)
ADD_COLUMNS = {10: "extra_note TEXT", 500: "flag BOOLEAN", 999: "score REAL"}
DROP_COLUMNS = {20: "c3", 700: "c5"}
TYPE_CHANGE = (300, "c2", "INTEGER", "TEXT")
ADD_INDEX = (400, "c1")
NEW_TABLE = "t_new"

EXPECTED = (
    {("add_column", f"t{i:04d}", spec.split()[0]) for i, spec in ADD_COLUMNS.items()}
    | {("drop_column", f"t{i:04d}", c) for i, c in DROP_COLUMNS.items()}
    | {("alter_column", f"t{TYPE_CHANGE[0]:04d}", TYPE_CHANGE[1])}
    | {("add_index", f"t{ADD_INDEX[0]:04d}", f"ix_t{ADD_INDEX[0]:04d}_{ADD_INDEX[1]}")}
    | {("add_table", NEW_TABLE, None)}
)


def table_sql(i: int, second: bool) -> str:
    name = f"t{i:04d}"
    cols = ["id INTEGER PRIMARY KEY"]
    for j in range(1, 8 + i % 5):  # 8..12 columns including id
        ctype = TYPES[(i + j) % len(TYPES)]
        if (i, f"c{j}") == (TYPE_CHANGE[0], TYPE_CHANGE[1]):
            ctype = TYPE_CHANGE[3] if second else TYPE_CHANGE[2]
        if second and DROP_COLUMNS.get(i) == f"c{j}":
            continue
        default = " NOT NULL DEFAULT 0" if ctype == "BOOLEAN" else ""
        cols.append(f"c{j} {ctype}{default}")
    if second and i in ADD_COLUMNS:
        cols.append(ADD_COLUMNS[i])
    if i % 4 == 1 and i > 0:
        cols.append(f"parent_id INTEGER REFERENCES t{i - 1:04d} (id) ON DELETE CASCADE")
    stmts = [f"CREATE TABLE {name} ({', '.join(cols)});"]
    if i % 3 == 0:
        stmts.append(f"CREATE INDEX ix_{name}_c1_c2 ON {name} (c1, c2);")
    if second and i == ADD_INDEX[0]:
        stmts.append(f"CREATE INDEX ix_{name}_{ADD_INDEX[1]} ON {name} ({ADD_INDEX[1]});")
    return "\n".join(stmts)


def build(path: Path, tables: int, second: bool) -> None:
    if path.exists():
        path.unlink()
    script = ["BEGIN;"] + [table_sql(i, second) for i in range(tables)]
    if second:
        script.append(f"CREATE TABLE {NEW_TABLE} (id INTEGER PRIMARY KEY, t0001_id INTEGER REFERENCES t0001 (id),"
                      f" label VARCHAR(50) NOT NULL);")
        script.append(f"CREATE INDEX ix_{NEW_TABLE}_label ON {NEW_TABLE} (label);")
    script.append("COMMIT;")
    con = sqlite3.connect(path)
    con.executescript("\n".join(script))
    con.close()


def ours(e1, e2):
    return diff(take_snapshot(e1), take_snapshot(e2))


def alembic(e1, e2):
    with e1.connect() as c1, e2.connect() as c2:
        md = sa.MetaData()
        md.reflect(c2)
        ctx = MigrationContext.configure(c1, opts={"compare_type": True})
        return compare_metadata(ctx, md)


def ours_as_set(changes) -> set:
    return {(c.kind, c.table, None if c.kind.endswith("foreign_key") else c.name) for c in changes}


def alembic_as_set(diffs) -> set:
    out = set()
    added = {d[1].name for d in diffs if isinstance(d, tuple) and d[0] == "add_table"}
    for d in diffs:
        if isinstance(d, list):  # modify_type / modify_nullable / modify_default of one column
            for m in d:
                out.add(("alter_column", m[2], m[3]))
            continue
        kind = d[0]
        if kind == "add_table":
            out.add(("add_table", d[1].name, None))
        elif kind == "remove_table":
            out.add(("drop_table", d[1].name, None))
        elif kind in ("add_column", "remove_column"):
            out.add(("add_column" if kind == "add_column" else "drop_column", d[2], d[3].name))
        elif kind in ("add_index", "remove_index"):
            if d[1].table.name in added:
                continue  # part of the new table (our add_table carries its indexes)
            out.add(("add_index" if kind == "add_index" else "drop_index", d[1].table.name, d[1].name))
        elif kind in ("add_constraint", "remove_constraint"):
            out.add(("add_unique" if kind == "add_constraint" else "drop_unique", d[1].table.name, d[1].name))
        elif kind in ("add_fk", "remove_fk"):
            if d[1].parent.name in added:
                continue
            out.add(("add_foreign_key" if kind == "add_fk" else "drop_foreign_key", d[1].parent.name, None))
        else:
            out.add((kind, "?", repr(d)[:80]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    db1, db2 = WORK / "bench_current.db", WORK / "bench_reference.db"
    t0 = time.perf_counter()
    build(db1, args.tables, second=False)
    build(db2, args.tables, second=True)
    print(f"generated 2 x {args.tables} tables in {WORK} ({time.perf_counter() - t0:.1f} s)")
    e1, e2 = open_engine(f"sqlite:///{db1}"), open_engine(f"sqlite:///{db2}")

    ours(e1, e2)  # warm up imports and the file cache for both
    alembic(e1, e2)
    times_ours, times_alembic = [], []
    for r in range(args.rounds):
        gc.collect()  # neither side pays for the other's garbage
        t = time.perf_counter()
        ours_changes = ours(e1, e2)
        times_ours.append(time.perf_counter() - t)
        gc.collect()
        t = time.perf_counter()
        alembic_diffs = alembic(e1, e2)
        times_alembic.append(time.perf_counter() - t)
        print(f"round {r + 1}: ours {times_ours[-1]:.3f} s   alembic {times_alembic[-1]:.3f} s")

    med_ours, med_alembic = statistics.median(times_ours), statistics.median(times_alembic)
    print(f"median ours (2 snapshots + diff):            {med_ours:.3f} s")
    print(f"median alembic (reflect + compare_metadata): {med_alembic:.3f} s")
    print(f"ratio: ours is {med_alembic / med_ours:.1f}x faster")

    a, b = ours_as_set(ours_changes), alembic_as_set(alembic_diffs)
    print(f"ours found {len(ours_changes)}: {summarize(ours_changes)}")
    for c in ours_changes:
        print(f"  {c.describe()}")
    ok = True
    if a == b:
        print(f"alembic found the same {len(b)} changes")
    else:
        ok = False
        for x in sorted(a - b, key=str):
            print(f"  MISMATCH only ours:    {x}")
        for x in sorted(b - a, key=str):
            print(f"  MISMATCH only alembic: {x}")
    if args.tables == 1000 and a != EXPECTED:
        ok = False
        print(f"  ours differs from the planted differences: missing {EXPECTED - a}, extra {a - EXPECTED}")
    e1.dispose()
    e2.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
