"""rows_preserved on a ~1 GiB SQLite database: our in-engine comparison vs hashing rows in Python.

    .venv/bin/python benchmarks/bench_rows_preserved.py [--size-mb 1024] [--rounds 3]

Both sides answer the same question on the same pair of files (a live database and its
backup): is every row of the backup still in the live file, by primary key, with the same
values? Ours ATTACHes the backup and lets SQLite join on the primary key
(`maintenance_pipeline.core.engines.sqlite.checks.rows_preserved`); the baseline reads every row of both
files in primary-key order and compares a sha1 per row in Python. The live copy has a few
rows changed and deleted, so both must find the same number of problems. Rounds alternate;
medians are printed with the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from maintenance_pipeline.core.schema.snapshot import snapshot_url  # noqa: E402
from maintenance_pipeline.core.engines.sqlite.checks import rows_preserved  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
ROW_BYTES = 85  # roughly, on disk, per events row (incl. tags and index)


def generate(path: Path, size_mb: int) -> None:
    rows = size_mb * 1024 * 1024 // ROW_BYTES
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    c = sqlite3.connect(tmp)
    c.execute("PRAGMA journal_mode=OFF")
    c.execute("PRAGMA synchronous=OFF")
    c.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, created_at TEXT)")
    c.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), "
              "kind TEXT NOT NULL, amount REAL, note TEXT, created_at TEXT NOT NULL)")
    c.execute("CREATE TABLE tags (event_id INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (event_id, tag))")
    c.executemany("INSERT INTO users VALUES (?, ?, ?)",
                  ((i, f"user{i}@example.com", "2026-01-01T00:00:00") for i in range(1, 10001)))
    batch = 200_000
    for start in range(0, rows, batch):
        c.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            ((i, i % 10000 + 1, ("click", "view", "buy")[i % 3], (i % 997) * 1.25,
              f"note {i} " + "x" * (i % 40), f"2026-01-{i % 28 + 1:02d}T12:00:00")
             for i in range(start + 1, min(rows, start + batch) + 1)))
        c.execute("INSERT INTO tags SELECT id, kind FROM events WHERE id > ? AND id <= ? AND id % 10 = 0",
                  (start, start + batch))
        c.commit()
    c.close()
    tmp.rename(path)


def python_hash_compare(live: Path, backup: Path, tables: dict[str, list[str]]) -> int:
    """Baseline: read both files in primary-key order, compare a sha1 of each row by key."""
    problems = 0
    for table, pk in tables.items():
        seen: dict[tuple, bytes] = {}
        order = ", ".join(pk)
        with sqlite3.connect(f"file:{live}?mode=ro", uri=True) as conn:
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                key = row[: len(pk)]
                seen[key] = hashlib.sha1(repr(row).encode()).digest()
        with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as conn:
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                if seen.get(row[: len(pk)]) != hashlib.sha1(repr(row).encode()).digest():
                    problems += 1
    return problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    backup = WORK / f"rows_backup_{args.size_mb}.db"
    live = WORK / f"rows_live_{args.size_mb}.db"
    if shutil.disk_usage(WORK).free < 3 * args.size_mb * 1024 * 1024:
        sys.exit("not enough free disk for two copies")
    if not backup.exists():
        t0 = time.monotonic()
        generate(backup, args.size_mb)
        print(f"generated {backup.name} ({backup.stat().st_size / 2**20:.0f} MiB) in {time.monotonic() - t0:.0f} s")
    shutil.copyfile(backup, live)
    with sqlite3.connect(live) as conn:  # the "migration" changed 3 values and lost 2 rows
        conn.execute("UPDATE events SET amount = -1 WHERE id IN (10, 2000, 300000)")
        conn.execute("DELETE FROM events WHERE id IN (77, 78)")
    bsnap, lsnap = snapshot_url(f"sqlite:///{backup}", ignore_tables=()), snapshot_url(f"sqlite:///{live}", ignore_tables=())
    tables = {"users": ["id"], "events": ["id"], "tags": ["event_id", "tag"]}
    ours, base = [], []
    found_ours = found_base = None
    for r in range(args.rounds):
        t0 = time.monotonic()
        check, _ = rows_preserved(live, backup, bsnap, lsnap, ())
        ours.append(time.monotonic() - t0)
        found_ours = check.detail
        t0 = time.monotonic()
        found_base = python_hash_compare(live, backup, tables)
        base.append(time.monotonic() - t0)
        print(f"round {r + 1}: ours {ours[-1]:.2f} s   python hashing {base[-1]:.2f} s")
    mo, mb = statistics.median(ours), statistics.median(base)
    print(f"\nfile: {backup.stat().st_size / 2**20:.0f} MiB, rows: events "
          f"{sqlite3.connect(backup).execute('SELECT count(*) FROM events').fetchone()[0]}")
    print(f"{'figure':40} {'ours':>9} {'baseline':>9} {'ratio':>7}")
    print(f"{'rows_preserved (median s)':40} {mo:9.2f} {mb:9.2f} {mb / mo:6.1f}x")
    print(f"ours found: {found_ours}")
    print(f"python hashing found: {found_base} rows missing or changed")
    live.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
