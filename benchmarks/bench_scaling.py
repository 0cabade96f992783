"""Benchmark: a whole maintain_database run and a whole verify_database run on SQLite, by schema size.

For each size (default 100, 1,000 and 10,000 tables) a live database and its reference are generated in
``benchmarks/.work/scaling/`` (the live tables: 8-12 columns, 5 rows, an index on every third, a foreign key
on every fourth; the reference adds a nullable column to every tenth table: 10 % of the tables change). Each
round copies the pristine live file into a fresh folder with its own targets file (align: additive), then
times, through ``pipeline.run_job`` as the command line runs it (backup, diff, migrate, verify, report):

  maintain_database   which aligns the 10 % of tables;
  verify_database     on the file it left (backup, diff, checks, report; nothing to change).

Printed per size: the medians, the cost per table, the ratio to the previous size (linear in the schema: the
ratio of the sizes, e.g. ~10x per 10x tables), the schema snapshots a run takes and the SQL statements it
sends through SQLAlchemy, and the median time of each step of the maintain run.

``--baseline REV`` runs the same rounds with the code of git revision REV too (``git archive`` into
``benchmarks/.work/code-REV``; each code runs in a process of its own, alternating), and prints both side by
side: e.g. ``--sizes 250,2000 --baseline a05fc74``.

At 10,000 tables one maintain run takes ~2.5 minutes on a 2-core box (SQLite re-parses the whole schema for every
``ALTER TABLE ... ADD COLUMN``: see BENCHMARKS.md), so the defaults take ~10 minutes, twice that with --baseline.

Run: .venv/bin/python benchmarks/bench_scaling.py [--sizes 100,1000,10000] [--rounds 3] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().parent / ".work"
DATA = WORK / "scaling"
TYPES = ["INTEGER", "TEXT", "VARCHAR(40)", "REAL", "DATETIME", "BOOLEAN", "NUMERIC(10, 2)", "VARCHAR(200)"]
ROWS = 5
CHANGED_EVERY = 10  # the reference adds a column to every 10th table


# ------------------------------------------------------------------------------------------ the databases


def table_sql(i: int, reference: bool) -> str:
    name = f"t{i:05d}"
    cols = ["id INTEGER PRIMARY KEY"]
    for j in range(1, 8 + i % 5):  # 8..12 columns including id
        ctype = TYPES[(i + j) % len(TYPES)]
        cols.append(f"c{j} {ctype}" + (" NOT NULL DEFAULT 0" if ctype == "BOOLEAN" else ""))
    if i % 4 == 1:
        cols.append(f"parent_id INTEGER REFERENCES t{i - 1:05d} (id) ON DELETE CASCADE")
    if reference and i % CHANGED_EVERY == 0:
        cols.append("added_note TEXT")
    stmts = [f"CREATE TABLE {name} ({', '.join(cols)});"]
    if i % 3 == 0:
        stmts.append(f"CREATE INDEX ix_{name}_c1_c2 ON {name} (c1, c2);")
    if not reference:
        parent = ", parent_id" if i % 4 == 1 else ""
        values = ", ".join(f"({r}, '{r}'{f', {r}' if parent else ''})" for r in range(1, ROWS + 1))
        stmts.append(f"INSERT INTO {name} (id, c1{parent}) VALUES {values};")
    return "\n".join(stmts)


def build(path: Path, tables: int, reference: bool) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.executescript("\n".join(["BEGIN;", *(table_sql(i, reference) for i in range(tables)), "COMMIT;"]))
    finally:
        con.close()
    tmp.replace(path)


def databases(tables: int) -> tuple[Path, Path]:
    """The pristine live file and the reference of ``tables`` tables (generated once, cached)."""
    DATA.mkdir(parents=True, exist_ok=True)
    live, ref = DATA / f"live_{tables}.db", DATA / f"reference_{tables}.db"
    for path, reference in ((live, False), (ref, True)):
        if not path.exists():
            t = time.perf_counter()
            build(path, tables, reference)
            print(f"generated {path.name} ({tables} tables) in {time.perf_counter() - t:.1f} s", flush=True)
    return live, ref


def code_of(rev: str) -> Path:
    """The package as it was at git revision ``rev`` (read with ``git archive``; the checkout is untouched)."""
    dest = WORK / f"code-{rev}"
    if not (dest / "maintenance_pipeline").is_dir():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "maintenance_pipeline"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


# ------------------------------------------------------------------------------- one code, one size (worker)


def _imports():
    try:  # the package as it is now
        from maintenance_pipeline.core.config import load_config
        from maintenance_pipeline.core.run.pipeline import run_job
    except ImportError:  # before core/ had sub-packages
        from maintenance_pipeline.core.config import load_config
        from maintenance_pipeline.core.pipeline import run_job
    return load_config, run_job


def _count_snapshots() -> list:
    """Count and time the SQLite snapshots taken (wrapping the SQLite reader wherever this code keeps it):
    [calls, seconds]."""
    import importlib

    calls = [0, 0.0]
    for module, attr in (("maintenance_pipeline.core.engines.sqlite.snapshot", "sqlite_snapshot"),
                         ("maintenance_pipeline.core.snapshot", "_sqlite_snapshot")):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, attr):
            original = getattr(mod, attr)

            def counted(*a, _original=original, **k):
                calls[0] += 1
                t = time.perf_counter()
                try:
                    return _original(*a, **k)
                finally:
                    calls[1] += time.perf_counter() - t

            setattr(mod, attr, counted)
    return calls


def _config(folder: Path, live: Path, ref: Path) -> Path:
    import yaml

    (folder / "live.db").write_bytes(live.read_bytes())  # not open by anyone: a plain copy
    data = {"backups": {"dir": "backups", "keep_last": 2, "keep_days": 0}, "reports": {"dir": "reports"},
            "alerts": {"log_file": "alerts.jsonl"},
            "targets": {"bench": {"url": "sqlite:///live.db", "reference": {"url": f"sqlite:///{ref}"},
                                  "align": "additive"}}}
    path = folder / "maintenance.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def worker(tables: int, rounds: int) -> None:
    """Rounds of one size with the code on ``sys.path``: one JSON line per run on stdout."""
    import sqlalchemy as sa

    load_config, run_job = _imports()
    snapshots = _count_snapshots()
    statements = [0]
    ddl = [0.0, None]  # seconds in CREATE / ALTER / DROP statements, the one under way's start

    def sent(conn, cursor, statement, *_a):
        statements[0] += 1
        if statement.lstrip()[:6].upper() in ("CREATE", "ALTER ", "DROP T", "DROP I"):
            ddl[1] = time.perf_counter()

    def done(*_a):
        if ddl[1] is not None:
            ddl[0] += time.perf_counter() - ddl[1]
            ddl[1] = None

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", sent)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", done)
    live, ref = databases(tables)
    warm_live, warm_ref = databases(10)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-warm-") as tmp:  # imports, caches: not timed
        config = load_config(_config(Path(tmp), warm_live, warm_ref))
        for job in ("maintain_database", "verify_database"):
            run_job(config, "bench", job)
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=WORK) as tmp:
            config = load_config(_config(Path(tmp), live, ref))
            for job in ("maintain_database", "verify_database"):
                snapshots[:] = [0, 0.0]
                statements[0], ddl[0] = 0, 0.0
                t = time.perf_counter()
                report = run_job(config, "bench", job)
                seconds = time.perf_counter() - t
                steps = {e["step"]: e["seconds"] for e in report.get("timeline") or []}
                print(json.dumps({"tables": tables, "round": r, "job": job, "seconds": seconds,
                                  "status": report["status"], "error": report.get("error"),
                                  "snapshots": snapshots[0], "snapshot_seconds": snapshots[1],
                                  "ddl_seconds": ddl[0], "statements": statements[0], "steps": steps}),
                      flush=True)


# ------------------------------------------------------------------------------------------------ driver


def run_worker(code: Path, tables: int, rounds: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(code), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", "--sizes", str(tables),
                           "--rounds", str(rounds)], env=env, cwd=str(code), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the worker for {tables} tables ({code}) failed")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _med(rows: list[dict], job: str, key: str = "seconds") -> float:
    return statistics.median(r[key] for r in rows if r["job"] == job)


def report(label: str, results: dict[int, list[dict]]) -> None:
    print(f"\n{label}")
    print("| tables | maintain_database | per table | x previous | verify_database | per table | x previous |")
    print("|---|---|---|---|---|---|---|")
    prev = None
    for n in sorted(results):
        rows = results[n]
        m, v = _med(rows, "maintain_database"), _med(rows, "verify_database")
        xm = f"{m / prev[1]:.1f}x ({n / prev[0]:.0f}x tables)" if prev else "-"
        xv = f"{v / prev[2]:.1f}x" if prev else "-"
        print(f"| {n:,} | {m:.2f} s | {m / n * 1000:.2f} ms | {xm} | {v:.2f} s | {v / n * 1000:.2f} ms | {xv} |")
        prev = (n, m, v)
    print("\nwhere a run's time goes (medians): snapshots taken and their time, SQLite's DDL statements, SQL "
          "statements sent; steps of maintain_database")
    print("| tables | job | snapshots | in snapshots | in DDL (CREATE/ALTER/DROP) | statements | steps |")
    print("|---|---|---|---|---|---|---|")
    for n in sorted(results):
        for job in ("maintain_database", "verify_database"):
            rows = [r for r in results[n] if r["job"] == job]
            steps: dict[str, list[float]] = {}
            for r in rows:
                for step, sec in r["steps"].items():
                    steps.setdefault(step, []).append(sec or 0.0)
            print(f"| {n:,} | {job} | {_med(rows, job, 'snapshots'):.0f} | {_med(rows, job, 'snapshot_seconds'):.2f} s "
                  f"| {_med(rows, job, 'ddl_seconds'):.2f} s | {_med(rows, job, 'statements'):.0f} | "
                  + ", ".join(f"{step} {statistics.median(sec):.2f}" for step, sec in steps.items()) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000", help="numbers of tables, comma separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="a git revision to time beside the code as it is (e.g. a05fc74)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        sys.path.insert(0, os.getcwd())
        worker(sizes[0], args.rounds)
        return 0

    codes = {"now": ROOT}
    if args.baseline:
        codes[args.baseline] = code_of(args.baseline)
    results: dict[str, dict[int, list[dict]]] = {label: {} for label in codes}
    for n in sizes:
        databases(n)
    databases(10)
    for n in sizes:
        for r in range(args.rounds):  # one process per code and round, alternating
            for label, code in codes.items():
                rows = run_worker(code, n, 1)
                for row in rows:
                    row["round"] = r
                    print(f"{label:>8} {n:>6,} tables round {r + 1}: {row['job']:<18} {row['seconds']:7.2f} s  "
                          f"{row['status']}  snapshots {row['snapshots']}  statements {row['statements']}", flush=True)
                results[label].setdefault(n, []).extend(rows)
    ok = all(row["status"] == "success" for res in results.values() for rows in res.values() for row in rows)
    for label in codes:
        report(f"{label} ({'this checkout' if label == 'now' else 'git ' + label}), medians of {args.rounds}:",
               results[label])
    if args.baseline:
        print(f"\nnow vs {args.baseline}, same machine, alternating:")
        print(f"| tables | maintain now | maintain {args.baseline} | ratio | verify now | verify {args.baseline} "
              f"| ratio |")
        print("|---|---|---|---|---|---|---|")
        for n in sizes:
            a, b = results["now"][n], results[args.baseline][n]
            m1, m2 = _med(a, "maintain_database"), _med(b, "maintain_database")
            v1, v2 = _med(a, "verify_database"), _med(b, "verify_database")
            print(f"| {n:,} | {m1:.2f} s | {m2:.2f} s | {m1 / m2:.2f} | {v1:.2f} s | {v2:.2f} s | {v1 / v2:.2f} |")
    if not ok:
        for res in results.values():
            for rows in res.values():
                for row in rows:
                    if row["status"] != "success":
                        print(f"FAILED: {row['tables']} tables {row['job']}: {row['error']}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
