"""Benchmark: a whole maintain_database run and a whole verify_database run by schema size, SQLite and PostgreSQL.

For each size (default 100, 1,000 and 10,000 tables) a live database and its reference are generated (the live
tables: 8-12 columns, 5 rows, an index on every third, a foreign key on every fourth; the reference adds a
nullable column to every tenth table: 10 % of the tables change). Each round starts from the pristine live
database, in a fresh folder with its own targets file (align: additive, backups and reports in that folder), then
times, through ``pipeline.run_job`` as the command line runs it (backup, diff, migrate, verify, report):

  maintain_database   which aligns the 10 % of tables;
  verify_database     on the database it left (backup, diff, checks, report; nothing to change).

``--engine`` chooses the databases:

  sqlite       (the default) files generated once into ``benchmarks/.work/scaling/`` and kept for later runs
               (columns of SQLite's types); each round copies the live file.
  postgresql   a throwaway server started like the tests start theirs (``tests/helpers/pgserver.py``) and
               stopped at the end, even on failure. Its ``max_locks_per_transaction`` is 1024: a backup locks
               every table in one transaction (pg_dump, and the row counts beside it), and with the default 64
               the 10,000-table runs failed with "out of shared memory" (README says so for owners). Per size
               the live database is built once as a template, ``live_<n>_tpl``, and
               the reference as ``reference_<n>`` (columns of PostgreSQL's types: integer, text, varchar,
               double precision, timestamp, boolean, numeric); each round's live database is a
               ``CREATE DATABASE ... TEMPLATE live_<n>_tpl`` (untimed), dropped after the round; the reference
               is shared. The targets file takes the password from the environment (``${BENCH_PG_PASSWORD}``,
               as README shows), the backups use the server's own pg_dump (``MAINTENANCE_PG_BINDIR``), and
               after each round every file the round left (reports, alerts, backups) is searched for the
               password: found, the round fails.
  both         SQLite's sizes, then PostgreSQL's.

Printed per engine and size: the medians, the cost per table, the ratio to the previous size (linear in the
schema: the ratio of the sizes, e.g. ~10x per 10x tables), the schema snapshots a run takes (each engine's
schema reader wrapped: SQLite's ``sqlite_snapshot``, PostgreSQL's ``PostgresEngine.snapshot``) and the SQL
statements it sends through SQLAlchemy (not what pg_dump, pg_restore and psql send: PostgreSQL's backup and its
rows check run those as child processes), the time in CREATE/ALTER/DROP statements, and the median time of each
step of the maintain run.

``--baseline REV`` runs the same rounds with the code of git revision REV too (``git archive`` into
``benchmarks/.work/code-REV``; each code runs in a process of its own, alternating), and prints both side by
side: e.g. ``--sizes 250,2000 --baseline a05fc74``.

Run time on a 2-core box: SQLite, a 10,000-table maintain run ~12 s (the defaults ~2 minutes, generating the
files once included); PostgreSQL, a 10,000-table maintain run ~1 minute and a verify run ~45 s, ~40 s to build
its two 10,000-table databases (the defaults ~8 minutes). ``--baseline`` doubles the runs.

Run: .venv/bin/python benchmarks/bench_scaling.py [--engine sqlite|postgresql|both] [--sizes 100,1000,10000]
     [--rounds 3] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
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
PG_TYPES = ["INTEGER", "TEXT", "VARCHAR(40)", "DOUBLE PRECISION", "TIMESTAMP", "BOOLEAN", "NUMERIC(10, 2)",
            "VARCHAR(200)"]
ROWS = 5
CHANGED_EVERY = 10  # the reference adds a column to every 10th table
ENGINES = ("sqlite", "postgresql")
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PG_PASSWORD_ENV = "BENCH_PG_PASSWORD"  # the targets file reads the server's password from here
PG_LOCKS = 1024  # max_locks_per_transaction: a backup locks every table of the database in one transaction
PG_CHUNK = 500  # tables a transaction while building a PostgreSQL database


# ------------------------------------------------------------------------------------------ the databases


def _pg_value(ctype: str, r: int) -> str:
    """Row ``r``'s value of column c1 in PostgreSQL (SQLite takes ``'r'`` whatever the type)."""
    if ctype == "BOOLEAN":
        return "true" if r % 2 else "false"
    if ctype == "TIMESTAMP":
        return f"'2024-01-0{r} 12:00'"
    return f"'{r}'"


def table_sql(i: int, reference: bool, engine: str = "sqlite") -> str:
    """Table ``i`` (and its index, and its rows in the live database) in SQLite's or PostgreSQL's types."""
    pg = engine == "postgresql"
    types = PG_TYPES if pg else TYPES
    name = f"t{i:05d}"
    cols = ["id INTEGER PRIMARY KEY"]
    for j in range(1, 8 + i % 5):  # 8..12 columns including id
        ctype = types[(i + j) % len(types)]
        cols.append(f"c{j} {ctype}" + ((" NOT NULL DEFAULT false" if pg else " NOT NULL DEFAULT 0")
                                       if ctype == "BOOLEAN" else ""))
    if i % 4 == 1:
        cols.append(f"parent_id INTEGER REFERENCES t{i - 1:05d} (id) ON DELETE CASCADE")
    if reference and i % CHANGED_EVERY == 0:
        cols.append("added_note TEXT")
    stmts = [f"CREATE TABLE {name} ({', '.join(cols)});"]
    if i % 3 == 0:
        stmts.append(f"CREATE INDEX ix_{name}_c1_c2 ON {name} (c1, c2);")
    if not reference:
        parent = ", parent_id" if i % 4 == 1 else ""
        c1 = types[(i + 1) % len(types)]
        values = ", ".join(f"({r}, {_pg_value(c1, r) if pg else repr(str(r))}{f', {r}' if parent else ''})"
                           for r in range(1, ROWS + 1))
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


def _pgserver():
    """``tests/helpers/pgserver.py`` (the tests' throwaway server), imported by name as the tests do."""
    helpers = str(ROOT / "tests" / "helpers")
    if helpers not in sys.path:
        sys.path.insert(0, helpers)
    import pgserver

    return pgserver


def pg_start():
    """A throwaway PostgreSQL server, as the tests start theirs, with room in its lock table for one transaction that
    locks 10,000 tables (pg_dump's, and the backup's row counts beside it): with the default 64 locks a transaction,
    the 10,000-table runs failed with "out of shared memory"."""
    pgserver = _pgserver()
    bindir = pgserver.find_bindir()
    if bindir is None:
        raise SystemExit(f"PostgreSQL binaries not found; {pgserver.INSTALL_HINT}")
    server = pgserver.PgServer(bindir)
    try:
        server.start(f"-c max_locks_per_transaction={PG_LOCKS}")
        print(f"PostgreSQL {server.psql('SHOW server_version')} on 127.0.0.1:{server.port} "
              f"(max_locks_per_transaction {server.psql('SHOW max_locks_per_transaction')})", flush=True)
    except BaseException:
        server.stop()
        raise
    return server


def pg_databases(server, tables: int) -> None:
    """The live template ``live_<tables>_tpl`` and the reference ``reference_<tables>`` on ``server``."""
    pgserver = _pgserver()
    for name, reference in ((f"live_{tables}_tpl", False), (f"reference_{tables}", True)):
        t = time.perf_counter()
        server.create_database(name)
        script = []
        for start in range(0, tables, PG_CHUNK):
            script += ["BEGIN;", *(table_sql(i, reference, "postgresql")
                                   for i in range(start, min(tables, start + PG_CHUNK))), "COMMIT;"]
        out = subprocess.run([str(server.bindir / "psql"), "-h", "127.0.0.1", "-p", str(server.port),
                              "-U", pgserver.SUPERUSER, "-d", name, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-f", "-"],
                             input="\n".join(script), capture_output=True, text=True,
                             env={**os.environ, "PGPASSWORD": pgserver.SUPERPASS})
        if out.returncode != 0:
            raise SystemExit(f"building {name} failed: {out.stderr.strip()[:500]}")
        if not reference:  # no session (autovacuum neither) may be in a database CREATE DATABASE copies
            server.psql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true')
        print(f"generated {name} ({tables} tables) in {time.perf_counter() - t:.1f} s", flush=True)


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
    """Count and time the schema snapshots taken (wrapping each engine's schema reader wherever this code keeps
    it: SQLite's function, PostgreSQL's engine method): [calls, seconds]."""
    import importlib

    calls = [0, 0.0]
    for module, where in (("maintenance_pipeline.core.engines.sqlite.snapshot", "sqlite_snapshot"),
                          ("maintenance_pipeline.core.snapshot", "_sqlite_snapshot"),
                          ("maintenance_pipeline.core.engines.postgresql", "PostgresEngine.snapshot")):
        try:
            owner = importlib.import_module(module)
        except ImportError:
            continue
        *path, attr = where.split(".")
        for name in path:
            owner = getattr(owner, name, None)
        if owner is not None and hasattr(owner, attr):
            original = getattr(owner, attr)

            def counted(*a, _original=original, **k):
                calls[0] += 1
                t = time.perf_counter()
                try:
                    return _original(*a, **k)
                finally:
                    calls[1] += time.perf_counter() - t

            setattr(owner, attr, counted)
    return calls


def _config(folder: Path, url: str, ref_url: str) -> Path:
    import yaml

    data = {"backups": {"dir": "backups", "keep_last": 2, "keep_days": 0}, "reports": {"dir": "reports"},
            "alerts": {"log_file": "alerts.jsonl"},
            "targets": {"bench": {"url": url, "reference": {"url": ref_url}, "align": "additive"}}}
    path = folder / "maintenance.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class _SqliteRounds:
    """A round's live database: a copy of the pristine file in the round's folder."""

    def __init__(self):
        databases(10)

    def prepare(self, folder: Path, tables: int, tag: str) -> Path:
        live, ref = databases(tables)
        (folder / "live.db").write_bytes(live.read_bytes())  # not open by anyone: a plain copy
        return _config(folder, "sqlite:///live.db", f"sqlite:///{ref}")

    def finish(self, folder: Path) -> str | None:
        return None


class _PgRounds:
    """A round's live database: ``CREATE DATABASE <tag>_<n> TEMPLATE live_<n>_tpl``, dropped at the round's end."""

    def __init__(self, port: int):
        import sqlalchemy as sa

        self.port = port
        self.user = _pgserver().SUPERUSER
        self.password = os.environ[PG_PASSWORD_ENV]
        self.admin = sa.create_engine(
            sa.URL.create("postgresql+psycopg", username=self.user, password=self.password, host="127.0.0.1",
                          port=port, database="postgres"),
            isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        self.made: list[str] = []

    def _url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}:${{{PG_PASSWORD_ENV}}}@127.0.0.1:{self.port}/{database}"

    def prepare(self, folder: Path, tables: int, tag: str) -> Path:
        name = f"{tag}_{tables}"
        with self.admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "live_{tables}_tpl"')
        self.made.append(name)
        return _config(folder, self._url(name), self._url(f"reference_{tables}"))

    def finish(self, folder: Path) -> str | None:
        """Drop the round's database; the first file of the round's folder holding the password, if any."""
        with self.admin.connect() as c:
            while self.made:
                c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.made.pop()}" WITH (FORCE)')
        secret = self.password.encode()
        for path in sorted(folder.rglob("*")):
            if path.is_file() and secret in path.read_bytes():
                return str(path.relative_to(folder))
        return None


def worker(engine: str, tables: int, rounds: int, port: int | None) -> None:
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
    dbs = _SqliteRounds() if engine == "sqlite" else _PgRounds(port)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-warm-") as tmp:  # imports, caches: not timed
        config = load_config(dbs.prepare(Path(tmp), 10, "warm"))
        for job in ("maintain_database", "verify_database"):
            run_job(config, "bench", job)
        dbs.finish(Path(tmp))
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=WORK) as tmp:
            config = load_config(dbs.prepare(Path(tmp), tables, f"round{r}"))
            rows = []
            for job in ("maintain_database", "verify_database"):
                snapshots[:] = [0, 0.0]
                statements[0], ddl[0] = 0, 0.0
                t = time.perf_counter()
                report = run_job(config, "bench", job)
                seconds = time.perf_counter() - t
                steps = {e["step"]: e["seconds"] for e in report.get("timeline") or []}
                rows.append({"engine": engine, "tables": tables, "round": r, "job": job, "seconds": seconds,
                             "status": report["status"], "error": report.get("error"),
                             "snapshots": snapshots[0], "snapshot_seconds": snapshots[1],
                             "ddl_seconds": ddl[0], "statements": statements[0], "steps": steps})
            leaked = dbs.finish(Path(tmp))
            for row in rows:
                if leaked:
                    row["status"], row["error"] = "failed", f"the database password is in {leaked}"
                print(json.dumps(row), flush=True)


# ------------------------------------------------------------------------------------------------ driver


def run_worker(code: Path, engine: str, tables: int, rounds: int, server=None) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(code), PYTHONDONTWRITEBYTECODE="1")
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", "--engine", engine, "--sizes", str(tables),
            "--rounds", str(rounds)]
    if server is not None:
        env.update({PG_PASSWORD_ENV: _pgserver().SUPERPASS, "MAINTENANCE_PG_BINDIR": str(server.bindir)})
        argv += ["--pg-port", str(server.port)]
    proc = subprocess.run(argv, env=env, cwd=str(code), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the {LABEL[engine]} worker for {tables} tables ({code}) failed")
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
    print("\nwhere a run's time goes (medians): snapshots taken and their time, the DDL statements, SQL statements "
          "sent through SQLAlchemy; steps")
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


def measure(engine: str, sizes: list[int], rounds: int, codes: dict[str, Path]) -> dict[str, dict[int, list[dict]]]:
    """Every round of every size of ``engine``, one process per code and round, alternating."""
    results: dict[str, dict[int, list[dict]]] = {label: {} for label in codes}
    server = pg_start() if engine == "postgresql" else None
    try:
        for n in sorted({*sizes, 10}):  # 10: the workers' warm-up
            if server is None:
                databases(n)
            else:
                pg_databases(server, n)
        for n in sizes:
            for r in range(rounds):
                for label, code in codes.items():
                    rows = run_worker(code, engine, n, 1, server)
                    for row in rows:
                        row["round"] = r
                        print(f"{LABEL[engine]:>10} {label:>8} {n:>6,} tables round {r + 1}: {row['job']:<18} "
                              f"{row['seconds']:7.2f} s  {row['status']}  snapshots {row['snapshots']}  "
                              f"statements {row['statements']}", flush=True)
                    results[label].setdefault(n, []).extend(rows)
    finally:
        if server is not None:
            server.stop()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=(*ENGINES, "both"), default="sqlite",
                    help="the databases to time (default sqlite)")
    ap.add_argument("--sizes", default="100,1000,10000", help="numbers of tables, comma separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", help="a git revision to time beside the code as it is (e.g. a05fc74)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pg-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.worker:
        sys.path.insert(0, os.getcwd())
        worker(args.engine, sizes[0], args.rounds, args.pg_port)
        return 0

    engines = ENGINES if args.engine == "both" else (args.engine,)
    codes = {"now": ROOT}
    if args.baseline:
        codes[args.baseline] = code_of(args.baseline)
    results = {engine: measure(engine, sizes, args.rounds, codes) for engine in engines}
    for engine in engines:
        for label in codes:
            report(f"{LABEL[engine]}, {label} ({'this checkout' if label == 'now' else 'git ' + label}), "
                   f"medians of {args.rounds}:", results[engine][label])
    for engine in engines if args.baseline else ():
        res = results[engine]
        print(f"\n{LABEL[engine]}, now vs {args.baseline}, same machine, alternating:")
        print(f"| tables | maintain now | maintain {args.baseline} | ratio | verify now | verify {args.baseline} "
              f"| ratio |")
        print("|---|---|---|---|---|---|---|")
        for n in sizes:
            a, b = res["now"][n], res[args.baseline][n]
            m1, m2 = _med(a, "maintain_database"), _med(b, "maintain_database")
            v1, v2 = _med(a, "verify_database"), _med(b, "verify_database")
            print(f"| {n:,} | {m1:.2f} s | {m2:.2f} s | {m1 / m2:.2f} | {v1:.2f} s | {v2:.2f} s | {v1 / v2:.2f} |")
    failed = [row for by_code in results.values() for res in by_code.values() for rows in res.values()
              for row in rows if row["status"] != "success"]
    for row in failed:
        print(f"FAILED: {LABEL[row['engine']]} {row['tables']} tables {row['job']}: {row['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
