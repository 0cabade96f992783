"""Cost of one schema_drift_sensor tick over 100 SQLite targets of 200 tables each.

    .venv/bin/python benchmarks/bench_sensor_tick.py [--targets 100] [--tables 200] [--rounds 5]

Figures, each a median over alternating rounds, all through the real Dagster sensor
(`build_sensor_context` + `evaluate_tick`):
- an unchanged tick (every target answers from `PRAGMA schema_version` and the cursor);
- the same tick after touching one target (`ALTER TABLE … ADD COLUMN`: that target is
  snapshotted and diffed again);
- the baseline: reflecting ONE target with SQLAlchemy (`MetaData.reflect`), and our own
  snapshot + diff of one target.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402

from maintenance_pipeline.core import snapshot_url  # noqa: E402
from maintenance_pipeline.core.config import load_config  # noqa: E402
from maintenance_pipeline.core.schema.diff import diff  # noqa: E402
from maintenance_pipeline.orchestration.definitions import build_definitions  # noqa: E402


def make_schema(path: Path, tables: int) -> None:
    conn = sqlite3.connect(path)
    for i in range(tables):
        fk = f", parent_id INTEGER REFERENCES t{i - 1:04d}(id)" if i else ""
        conn.execute(f"CREATE TABLE t{i:04d} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, amount REAL, "
                     f"created_at DATETIME, flag BOOLEAN DEFAULT 0{fk})")
        conn.execute(f"CREATE INDEX ix_t{i:04d}_name ON t{i:04d}(name)")
    conn.commit()
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--tables", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sensor-"))
    try:
        make_schema(work / "reference.db", args.tables)
        names = [f"db{i:03d}" for i in range(args.targets)]
        for n in names:
            shutil.copyfile(work / "reference.db", work / f"{n}.db")
        config_path = work / "maintenance.yaml"
        config_path.write_text(yaml.safe_dump({
            "alerts": {"log_file": "alerts.jsonl"},
            "targets": {n: {"url": f"sqlite:///{n}.db", "reference": {"url": "sqlite:///reference.db"}}
                        for n in names},
        }))
        defs = build_definitions(load_config(config_path))
        sensor = defs.resolve_sensor_def("schema_drift_sensor")

        def tick(cursor):
            t0 = time.perf_counter()
            result = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, definitions=defs))
            return time.perf_counter() - t0, result

        first_s, first = tick(None)
        cursor = first.cursor
        unchanged, touched, reflect_one, ours_one = [], [], [], []
        for r in range(args.rounds):
            s, res = tick(cursor)
            # targets touched in earlier rounds still drift (answered from the cursor, not reflected)
            assert sorted(q.partition_key for q in res.run_requests) == names[:r]
            unchanged.append(s)
            with sqlite3.connect(work / f"{names[r]}.db") as conn:  # touch one more target
                conn.execute("ALTER TABLE t0000 ADD COLUMN extra TEXT")
            s, res = tick(cursor)
            assert sorted(q.partition_key for q in res.run_requests) == names[:r + 1], "touched target must drift"
            touched.append(s)
            cursor = res.cursor  # the drift is now in the cursor; next round's unchanged tick reuses it
            t0 = time.perf_counter()
            md = sa.MetaData()
            engine = sa.create_engine(f"sqlite:///{work / (names[-1] + '.db')}")
            md.reflect(engine)  # noqa: the baseline
            engine.dispose()
            reflect_one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            diff(snapshot_url(f"sqlite:///{work / (names[-1] + '.db')}"), snapshot_url(f"sqlite:///{work / 'reference.db'}"))
            ours_one.append(time.perf_counter() - t0)
        m = {k: statistics.median(v) for k, v in
             {"unchanged": unchanged, "touched": touched, "reflect": reflect_one, "ours": ours_one}.items()}
        print(f"{args.targets} targets x {args.tables} tables; first (cold) tick {first_s:.2f} s "
              f"(reflects every target once)")
        print(f"{'figure':58} {'median':>9}")
        print(f"{'tick, all targets unchanged':58} {m['unchanged'] * 1000:8.1f} ms")
        print(f"{'tick, one target touched (ALTER TABLE)':58} {m['touched'] * 1000:8.1f} ms")
        print(f"{'baseline: SQLAlchemy MetaData.reflect of ONE target':58} {m['reflect'] * 1000:8.1f} ms")
        print(f"{'our snapshot + diff of ONE target':58} {m['ours'] * 1000:8.1f} ms")
        print(f"unchanged tick of {args.targets} targets / reflecting one target: "
              f"{m['unchanged'] / m['reflect']:.2f}x  ({m['reflect'] / m['unchanged']:.1f}x cheaper)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
