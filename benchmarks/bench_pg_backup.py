"""Benchmark: our PostgreSQL backup (defaults: directory format, 2 jobs, no compression, verified)
against a bare default ``pg_dump -Fc``, and the restore time of our dump, on a ~1 GiB database.

    .venv/bin/python benchmarks/bench_pg_backup.py [--size-mb 1024] [--rounds 3]

Starts a throwaway PostgreSQL server (``tests/helpers/pgserver.py``), generates ``--size-mb`` of table data
(four tables of numbers, timestamps and text, ``INSERT ... SELECT generate_series``, primary keys),
then, after one warm-up (discarded), alternating rounds (medians):

1. ``backup_database`` with the default settings: the whole step (snapshot + exact row counts,
   ``pg_dump -Fd -j 2 -Z0 --snapshot``, sha256 of every file, ``pg_restore --list``, manifest);
2. a bare ``pg_dump -Fc`` with its default compression of the same database (the baseline; the aim
   is our backup in at most 1/5 of its time);
3. ``restore_database`` of our dump into a second database holding the same data (checks the sha256
   and the listing, then ``pg_restore --clean --if-exists`` piped into ``psql --single-transaction``),
   and, for reference, a bare ``pg_restore --clean --if-exists --single-transaction -d`` of the same dump
   (a CHECKPOINT before each restore, and they take turns at going first).

The server is stopped and every file removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

from pgserver import SUPERPASS, SUPERUSER, PgServer, find_bindir  # noqa: E402

from maintenance_pipeline.core import backup as bk  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "pg_backup_bench"
DB, RESTORE_DB = "bench", "bench_restore"
ROW_BYTES = 175  # about, per row on disk (heap), for the generator's row count

TABLES = {
    "events": "id bigint PRIMARY KEY, user_id integer NOT NULL, kind text NOT NULL, amount numeric(12,2), "
              "created_at timestamptz NOT NULL, payload text",
    "orders": "id bigint PRIMARY KEY, customer text NOT NULL, total double precision, status varchar(20), "
              "placed_at timestamp, note text",
    "readings": "id bigint PRIMARY KEY, sensor integer NOT NULL, value double precision, quality smallint, "
                "taken_at timestamptz, label text",
    "messages": "id bigint PRIMARY KEY, thread bigint, sender text, body text, sent_at timestamptz",
}
FILL = {
    "events": "SELECT i, (i * 7919) % 100000, (ARRAY['view','click','buy','share'])[1 + i % 4], "
              "((i * 31) % 100000) / 100.0, now() - (i || ' seconds')::interval, "
              "md5(i::text) || ' ' || md5((i * 3)::text) || ' ' || md5((i * 7)::text)",
    "orders": "SELECT i, 'customer-' || (i % 50000), (i % 997) * 1.37, (ARRAY['new','paid','shipped'])[1 + i % 3], "
              "timestamp '2024-01-01' + (i || ' minutes')::interval, repeat(md5(i::text), 2) || ' note ' || i",
    "readings": "SELECT i, i % 5000, sin(i) * 100, (i % 100)::smallint, now() - (i || ' ms')::interval, "
                "'sensor reading ' || md5(i::text) || ' ' || md5((i + 1)::text) || ' ' || md5((i + 2)::text)",
    "messages": "SELECT i, i / 20, 'user' || (i % 10000), 'hello ' || md5(i::text) || ' ' || md5((i * 5)::text) "
                "|| ' ' || md5((i * 11)::text), now() - (i || ' seconds')::interval",
}


def run(argv: list[str], **kw) -> float:
    t = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {out.stderr.strip()[:500]}")
    return time.perf_counter() - t


def generate(server: PgServer, size_mb: int) -> int:
    server.create_database(DB)
    per_table = size_mb * (1 << 20) // len(TABLES) // ROW_BYTES
    chunk = 1_000_000
    for name, cols in TABLES.items():
        server.psql(f"CREATE TABLE {name} ({cols})", DB)
        for start in range(1, per_table + 1, chunk):
            end = min(per_table, start + chunk - 1)
            server.psql(f"INSERT INTO {name} {FILL[name]} FROM generate_series({start}::bigint, {end}::bigint) AS i", DB)
    server.psql("VACUUM ANALYZE", DB)
    return int(server.psql("SELECT sum(pg_table_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r' "
                           "AND c.relnamespace = 'public'::regnamespace", DB))


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="table data to generate (default 1024)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    args = ap.parse_args()

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found; install postgresql to run this benchmark")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    server = PgServer(bindir).start()
    try:
        print(f"PostgreSQL {server.psql('SHOW server_version')} on 127.0.0.1:{server.port}, "
              f"{os.cpu_count()} CPUs; generating ~{args.size_mb} MiB ...", flush=True)
        t = time.perf_counter()
        data_bytes = generate(server, args.size_mb)
        rows = int(server.psql("SELECT sum(n_live_tup) FROM pg_stat_user_tables", DB))
        print(f"generated {data_bytes / (1 << 20):.0f} MiB of table data, {rows:,} rows, in "
              f"{time.perf_counter() - t:.0f}s", flush=True)
        url = server.url(DB)
        server.psql(f'CREATE DATABASE "{RESTORE_DB}" TEMPLATE "{DB}"')
        restore_url = server.url(RESTORE_DB)
        env = {**os.environ, "PGPASSWORD": SUPERPASS}
        conn = ["-h", "127.0.0.1", "-p", str(server.port), "-U", SUPERUSER]
        backups = WORK / "backups"
        fc_file = WORK / "bare.dump"

        def ours():
            return bk.backup_database(url, backups, "bench", label="bench")

        def bare_fc() -> float:
            fc_file.unlink(missing_ok=True)
            return run([str(bindir / "pg_dump"), *conn, "-Fc", "-f", str(fc_file), DB], env=env)

        def bare_restore(dump: Path) -> float:
            server.psql("CHECKPOINT")  # each restore starts without the previous one's dirty buffers and WAL
            return run([str(bindir / "pg_restore"), *conn, "-d", RESTORE_DB, "--clean", "--if-exists",
                        "--single-transaction", str(dump)], env=env)

        times: dict[str, list[float]] = {k: [] for k in ("ours", "fc", "restore", "bare_restore")}
        parts: dict[str, list[float]] = {}
        sizes = {}
        for rnd in range(args.rounds + 1):  # round 0 warms the caches and is discarded
            shutil.rmtree(backups, ignore_errors=True)
            t = time.perf_counter()
            res = ours()
            t_ours = time.perf_counter() - t
            t_fc = bare_fc()
            def ours_restore() -> float:
                server.psql("CHECKPOINT")
                t = time.perf_counter()
                out = bk.restore_database(res.path, restore_url)
                assert out["matches_manifest"], "restored database differs from the backup's manifest"
                return time.perf_counter() - t

            if rnd % 2:  # alternate which restore runs first (checkpoints and file cleanup of the previous one)
                t_restore, t_bare_restore = ours_restore(), bare_restore(res.path)
            else:
                t_bare_restore, t_restore = bare_restore(res.path), ours_restore()
            sizes = {"ours": res.bytes, "fc": fc_file.stat().st_size}
            label = "warm-up" if rnd == 0 else f"round {rnd}"
            print(f"{label}: ours {t_ours:.2f}s ({', '.join(f'{k} {v:.2f}' for k, v in res.timings.items())}), "
                  f"pg_dump -Fc {t_fc:.2f}s, restore {t_restore:.2f}s, bare pg_restore -1 {t_bare_restore:.2f}s",
                  flush=True)
            if rnd == 0:
                continue
            times["ours"].append(t_ours)
            times["fc"].append(t_fc)
            times["restore"].append(t_restore)
            times["bare_restore"].append(t_bare_restore)
            for k, v in res.timings.items():
                parts.setdefault(k, []).append(v)

        med = {k: statistics.median(v) for k, v in times.items()}
        print()
        print(f"database: {data_bytes / (1 << 20):.0f} MiB of table data, {rows:,} rows; {args.rounds} rounds, medians")
        print(f"{'step':<58} {'median s':>9} {'min s':>7} {'max s':>7} {'size MiB':>9}")
        lines = [
            ("backup_database, defaults (-Fd -j 2 -Z0, verified)", "ours", sizes["ours"]),
            ("bare pg_dump -Fc (default compression)", "fc", sizes["fc"]),
            ("restore_database of our dump (one transaction)", "restore", None),
            ("bare pg_restore --clean --if-exists -1 of our dump", "bare_restore", None),
        ]
        for title, key, size in lines:
            v = times[key]
            print(f"{title:<58} {med[key]:>9.2f} {min(v):>7.2f} {max(v):>7.2f} "
                  f"{(f'{size / (1 << 20):.0f}' if size else ''):>9}")
        for k, v in parts.items():
            print(f"{'  of which ' + k:<58} {statistics.median(v):>9.2f} {min(v):>7.2f} {max(v):>7.2f}")
        ratio = med["ours"] / med["fc"]
        print(f"\nours / bare pg_dump -Fc = {ratio:.3f} (1/{1 / ratio:.1f}); aim <= 1/5: "
              f"{'met' if ratio <= 0.2 else 'NOT met'}")
    finally:
        server.stop()
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
