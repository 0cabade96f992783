"""Benchmark: the WAL copy (``sqlite-wal-copy``) against the online backup API and `cp` + fsync, ~1 GiB, live writer.

    .venv/bin/python benchmarks/bench_wal_copy.py [--size-mb 1024] [--rounds 5]

The database is ``benchmarks/.work/backup_bench.db`` (made by ``bench_backup.py``; made here the same way
when missing), copied to a scratch file of its own and switched to WAL. A separate writer process commits
one small transaction after another during each copy (a pair of rows and a counter, as ``bench_backup.py``'s
writer). Each round runs, in a rotating order:

* `cp` of the live file + fsync of the copy (the speed baseline; not a consistent copy of a live WAL file);
* our copy step as a backup runs it (``backup.copy_pinned`` with the -wal pinned: the main file's bytes and
  the WAL's committed frames under one read transaction), fsynced, under ``TrickleSync`` as in a backup;
* the same step without the -wal's descriptor: the online backup API in one step (the fallback, and what a
  WAL backup did before), fsynced the same way.

A fresh writer is started for each copy (its first commit in before the copy starts), so that no copy runs
in the aftermath of the one before (a reader held for seconds leaves a WAL of hundreds of MiB that the
writer's checkpoints then copy back, on the same disk).

Reported: medians over the rounds, each copy's consistency (integrity_check ok and count(a) = count(b) =
counter: one committed state), the writer's commits during each copy and its longest single commit (the
copy must not hold it up). Warm page cache for everyone (the first read is discarded). Copies are deleted
once checked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_backup import (SOURCE, WORK, Writer, consistent as rows_consistent, counter, fsync_path,  # noqa: E402
                          generate, longest_in, remove)  # the same database, writer and helpers

from maintenance_pipeline.core.shared.files import TrickleSync  # noqa: E402
from maintenance_pipeline.core.engines.sqlite import live_file, walcopy  # noqa: E402
from maintenance_pipeline.core.engines.sqlite.backup import copy_pinned, integrity_check  # noqa: E402

LIVE = WORK / "wal_copy_bench_live.db"
COPY = WORK / "wal_copy_bench_copy.db"


def cp_fsync() -> float:
    t = time.perf_counter()
    subprocess.run(["cp", str(LIVE), str(COPY)], check=True)
    fsync_path(COPY)
    return time.perf_counter() - t


def our_copy(*, pin_wal: bool) -> tuple[float, str]:
    """copy_pinned as ``_sqlite_copy`` calls it (with the -wal pinned) or without the -wal (backup API)."""
    t = time.perf_counter()
    fd = os.open(COPY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        wal = walcopy.pinned_wal(LIVE) if pin_wal else contextlib.nullcontext()  # no -wal pinned: the backup API
        with live_file.pinned(LIVE) as src_fd, wal as wal_fd:
            with TrickleSync(fds=(fd,)):
                method, _ = copy_pinned(src_fd, LIVE, f"sqlite:///{LIVE}", COPY, fd, busy_timeout=60,
                                        timings={}, wal_fd=wal_fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - t, method


def consistent(path: Path) -> bool:
    return rows_consistent(path) and integrity_check(path) == (True, "ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rounds = max(3, args.rounds)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    have = SOURCE.stat().st_size if SOURCE.exists() else 0
    if abs(have - (args.size_mb << 20)) > (args.size_mb << 20) * 0.1:
        free = shutil.disk_usage(WORK).free
        if free < 4 * (args.size_mb << 20):
            raise SystemExit(f"not enough disk space in {WORK}: need ~{4 * args.size_mb} MiB")
        print(f"generating {SOURCE.relative_to(ROOT)} (~{args.size_mb} MiB)…", flush=True)
        generate(SOURCE, args.size_mb)
    remove(LIVE, COPY)
    subprocess.run(["cp", str(SOURCE), str(LIVE)], check=True)
    c = sqlite3.connect(LIVE, isolation_level=None)
    assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    c.close()
    fsync_path(LIVE)
    size = LIVE.stat().st_size
    print(f"live WAL database: {size / (1 << 20):.0f} MiB, {os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}",
          flush=True)
    subprocess.run(["cat", str(LIVE)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache

    names = ("cp+fsync", "wal-copy", "backup-api")
    r: dict[str, list] = {k: [] for k in names}
    ok: dict[str, list] = {k: [] for k in names[1:]}
    during: dict[str, list] = {k: [] for k in names}
    longest: dict[str, list] = {k: [] for k in names}
    wal_sizes: list[int] = []
    try:
        for i in range(rounds):
            order = names[i % 3:] + names[:i % 3]
            for name in order:
                writer = Writer(LIVE, "wal_copy_bench_writer")  # a fresh writer for each copy: none starts in the aftermath of another
                try:
                    n0, t0 = counter(LIVE), time.time()
                    if name == "wal-copy":
                        wal_sizes.append(Path(f"{LIVE}-wal").stat().st_size)
                    if name == "cp+fsync":
                        dt, method = cp_fsync(), "cp"
                    else:
                        dt, method = our_copy(pin_wal=name == "wal-copy")
                        want = "sqlite-wal-copy" if name == "wal-copy" else "sqlite-backup-api"
                        if method != want:
                            print(f"  (round {i + 1}: {name} fell back to {method})", flush=True)
                    t1 = time.time()
                    during[name].append(counter(LIVE) - n0)
                finally:
                    stats = writer.close()
                longest[name].append(longest_in(stats, t0, t1))
                r[name].append(dt)
                if name != "cp+fsync":
                    ok[name].append(consistent(COPY))
                remove(COPY)
            print(f"  round {i + 1} ({' → '.join(order)}): " + "  ".join(f"{k} {r[k][-1]:.2f}s" for k in names),
                  flush=True)
    finally:
        remove(LIVE, COPY)

    med = {k: statistics.median(v) for k, v in r.items()}
    base = med["cp+fsync"]
    print()
    print(f"SQLite WAL copy with a live writer: {size / (1 << 20):.0f} MiB, {rounds} rounds, alternating, medians")
    print(f"{'':<44} {'median s':>9} {'x cp+fsync':>11}  rounds (s)")
    for k, label in (("cp+fsync", "cp + fsync (baseline, not consistent)"),
                     ("wal-copy", "WAL copy (sqlite-wal-copy) + fsync"),
                     ("backup-api", "online backup API, one step + fsync")):
        print(f"{label:<44} {med[k]:>9.2f} {med[k] / base:>11.2f}  {[round(x, 2) for x in r[k]]}")
    print(f"WAL size when each WAL copy began (bytes): {wal_sizes}")
    for k in names[1:]:
        print(f"{k}: consistent (integrity_check ok, count(a) = count(b) = counter) {ok[k]}; writer commits "
              f"during it {during[k]}; its longest single commit {[round(x, 3) for x in longest[k]]} s")
    print(f"cp+fsync: writer commits during it {during['cp+fsync']}; longest single commit "
          f"{[round(x, 3) for x in longest['cp+fsync']]} s")
    print(f"total benchmark time {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
