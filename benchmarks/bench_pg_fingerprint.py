"""The drift sensor's PostgreSQL fingerprint against full reflection, on a 1,000-table schema.

    .venv/bin/python benchmarks/bench_pg_fingerprint.py [--tables 1000] [--rounds 7]

Starts a throwaway PostgreSQL server (``tests/helpers/pgserver.py``: initdb + pg_ctl on a free 127.0.0.1
port; needs the PostgreSQL server binaries), creates ``--tables`` tables (serial primary key, 5 more
columns, a default, an index and a foreign key to the previous table each), then times, in
alternating order each round, medians over the rounds:

- the sensor's fingerprint query (``pg_checks.catalog_fingerprint``: one catalog query) on an open
  connection, and the sensor's whole per-target probe (``Engine.cheap_version``: new engine, connect
  with scram authentication, the one query, disconnect);
- SQLAlchemy's reflection of the schema (``MetaData.reflect``);
- our own snapshot (``snapshot.take_snapshot``: the inspector's batched ``get_multi_*``).

It also counts the statements each one sends.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

import sqlalchemy as sa  # noqa: E402

from maintenance_pipeline.core.engines import engine_named  # noqa: E402
from maintenance_pipeline.core.engines.postgresql.catalog import catalog_fingerprint  # noqa: E402
from maintenance_pipeline.core.schema.snapshot import take_snapshot  # noqa: E402
from pgserver import PgServer, find_bindir  # noqa: E402


def make_schema(engine: sa.Engine, tables: int) -> None:
    with engine.begin() as conn:
        for i in range(tables):
            fk = f", parent_id integer REFERENCES t{i - 1:04d}(id)" if i else ""
            conn.exec_driver_sql(
                f"CREATE TABLE t{i:04d} (id serial PRIMARY KEY, name text NOT NULL, amount real, "
                f"created_at timestamp, flag boolean DEFAULT false, code varchar(20){fk})")
            conn.exec_driver_sql(f"CREATE INDEX ix_t{i:04d}_name ON t{i:04d} (name)")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")


def count_statements(engine: sa.Engine, fn) -> int:
    n = [0]

    def seen(*_a):
        n[0] += 1

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        fn()
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    return n[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tables", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    server = PgServer(bindir).start()
    try:
        url = server.create_database("bench")
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        t0 = time.perf_counter()
        make_schema(engine, args.tables)
        print(f"PostgreSQL {server.psql('SHOW server_version')}, {args.tables} tables created in "
              f"{time.perf_counter() - t0:.1f} s")

        conn = engine.connect()

        def fingerprint():
            return catalog_fingerprint(conn)

        def probe():
            return engine_named("postgresql").cheap_version(url, None, ())

        def reflect():
            md = sa.MetaData()
            md.reflect(conn)
            return md

        def snapshot():
            return take_snapshot(conn)

        methods = {"fingerprint query": fingerprint, "sensor probe (connect + query)": probe,
                   "MetaData.reflect": reflect, "take_snapshot": snapshot}
        # warm-up (and a sanity check that everything sees every table)
        assert len(reflect().tables) == args.tables and len(snapshot().tables) == args.tables
        assert fingerprint() == probe()[3:]
        # the probe makes its own engine: count on the Engine class (SQLAlchemy's own connection set-up
        # does not go through the cursor events; the probe sends one statement of its own)
        statements = {name: count_statements(sa.engine.Engine if fn is probe else engine, fn)
                      for name, fn in methods.items()}
        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # alternate who goes first
            for name in order:
                t = time.perf_counter()
                methods[name]()
                times[name].append(time.perf_counter() - t)
        conn.close()
        engine.dispose()

        base = statistics.median(times["fingerprint query"])
        print(f"\nmedians over {args.rounds} alternating rounds:")
        print(f"{'method':34} {'median':>10} {'min':>10} {'max':>10} {'statements':>11} {'x fingerprint':>14}")
        for name in names:
            m = statistics.median(times[name])
            print(f"{name:34} {m * 1000:8.1f}ms {min(times[name]) * 1000:8.1f}ms {max(times[name]) * 1000:8.1f}ms "
                  f"{statements[name]:>11} {m / base:13.1f}x")
        print(f"\nreflect / fingerprint = {statistics.median(times['MetaData.reflect']) / base:.0f}x, "
              f"take_snapshot / fingerprint = {statistics.median(times['take_snapshot']) / base:.0f}x, "
              f"reflect / take_snapshot = {statistics.median(times['MetaData.reflect']) / statistics.median(times['take_snapshot']):.1f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
