"""Benchmark: our SQLite backup against `cp`, and the online backup API, on a ~1 GiB database.

    .venv/bin/python benchmarks/bench_backup.py [--size-mb 1024] [--rounds 3]

Generates ``benchmarks/.work/backup_bench.db`` (reused when present and about the right size),
then, alternating and repeated (medians):

1. rollback-journal file, no other connections: `cp` (and `cp` + fsync of the copy) against
   our copy step (``backup_database(..., verify=False)``, a copy under a SHARED lock with
   copy_file_range, fsynced), the full verified backup (integrity_check + sha256 + manifest),
   and Python's online backup API in one step (``pages=-1``);
2. the same file in rollback-journal mode with a concurrent writer process: how long the
   writer is held up while the locked copy runs;
3. a WAL copy of it with a concurrent writer process committing small transactions in a
   loop: our backup (online backup API, one step), how many transactions the writer
   committed while the backup ran (writers are not blocked in WAL mode), and that the copy is
   a consistent snapshot (the writer inserts pairs of rows and bumps a counter in one
   transaction; the copy must have count(a) = count(b) = counter).

All timings are with a warm page cache for both sides (the first, cold read is discarded).
Big copies are deleted as soon as they are measured.
"""

from __future__ import annotations

import argparse
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

from maintenance_pipeline.core import backup as bk  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
SOURCE = WORK / "backup_bench.db"
WAL_SOURCE = WORK / "backup_bench_wal.db"
BACKUPS = WORK / "backup_bench_backups"
CP_COPY = WORK / "backup_bench_cp.db"

WRITER = r"""
import os, sqlite3, sys
db, stop, ready = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=120, isolation_level=None)
c.execute("PRAGMA synchronous=NORMAL")
first = True
while not os.path.exists(stop):
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO a(payload) VALUES (randomblob(100))")
    c.execute("INSERT INTO b(a_id, payload) VALUES (last_insert_rowid(), randomblob(100))")
    c.execute("UPDATE counter SET n = n + 1")
    c.execute("COMMIT")
    if first:
        open(ready, "w").close()
        first = False
c.close()
"""


# --------------------------------------------------------------------------- helpers


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def remove(*paths: Path) -> None:
    for p in paths:
        for q in (p, Path(f"{p}-journal"), Path(f"{p}-wal"), Path(f"{p}-shm")):
            try:
                q.unlink()
            except FileNotFoundError:
                pass


def drop_result(res: bk.BackupResult) -> None:
    remove(res.path)
    res.manifest_path.unlink(missing_ok=True)


def url(path: Path) -> str:
    return f"sqlite:///{path}"


def generate(path: Path, size_mb: int) -> None:
    """~size_mb MiB: a big table with an index, plus the writer's small tables a, b, counter."""
    remove(path)
    tmp = path.with_suffix(".tmp")
    remove(tmp)
    c = sqlite3.connect(tmp, isolation_level=None)
    c.execute("PRAGMA journal_mode=OFF")
    c.execute("PRAGMA synchronous=OFF")
    c.execute("PRAGMA cache_size=-262144")
    c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, name TEXT NOT NULL, payload BLOB)")
    c.execute("CREATE INDEX ix_items_k ON items (k)")
    c.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    c.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER NOT NULL REFERENCES a(id), payload BLOB)")
    c.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
    c.execute("INSERT INTO counter VALUES (0)")
    done, batch = 0, 100_000
    while tmp.stat().st_size < size_mb << 20:
        c.execute("BEGIN")
        c.execute(
            "INSERT INTO items(k, name, payload) WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
            "LIMIT ?) SELECT abs(random()) % 100000, 'item-' || (? + i), randomblob(180) FROM s",
            (batch, done),
        )
        c.execute("COMMIT")
        done += batch
    c.execute("PRAGMA journal_mode=DELETE")
    c.close()
    os.replace(tmp, path)


def cp(src: Path, *, fsync: bool) -> float:
    t = time.perf_counter()
    subprocess.run(["cp", str(src), str(CP_COPY)], check=True)
    if fsync:
        fsync_path(CP_COPY)
    dt = time.perf_counter() - t
    remove(CP_COPY)
    return dt


def backup_api(src: Path) -> float:
    """Python's online backup API, one step, into a fresh file, then fsync (as our WAL path does)."""
    dest_path = WORK / "backup_bench_api.db"
    remove(dest_path)
    t = time.perf_counter()
    s = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    d = sqlite3.connect(dest_path, isolation_level=None)
    d.execute("PRAGMA synchronous=OFF")
    s.execute(f"PRAGMA mmap_size={1 << 40}")
    s.backup(d, pages=-1)
    d.close()
    s.close()
    fsync_path(dest_path)
    dt = time.perf_counter() - t
    remove(dest_path)
    return dt


def counter(path: Path) -> int:
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=120)
    try:
        return int(c.execute("SELECT n FROM counter").fetchone()[0])
    finally:
        c.close()


def consistent(path: Path) -> bool:
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        a = c.execute("SELECT count(*) FROM a").fetchone()[0]
        b = c.execute("SELECT count(*) FROM b").fetchone()[0]
        n = c.execute("SELECT n FROM counter").fetchone()[0]
    finally:
        c.close()
    return a == b == n


class Writer:
    """A separate process committing one small transaction after another."""

    def __init__(self, db: Path):
        self.stop = WORK / "backup_bench_writer.stop"
        self.ready = WORK / "backup_bench_writer.ready"
        self.stop.unlink(missing_ok=True)
        self.ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(self.stop), str(self.ready)], stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while not self.ready.exists():  # poll with a deadline until its first commit
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"writer did not start: {self.proc.stderr.read().decode()}")
            time.sleep(0.01)

    def close(self) -> None:
        self.stop.touch()
        try:
            rc = self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.stop.unlink(missing_ok=True)
        self.ready.unlink(missing_ok=True)
        if rc != 0:
            raise SystemExit(f"writer failed: {self.proc.stderr.read().decode()}")


def commit_rate(db: Path, seconds: float = 1.0) -> float:
    n0, t0 = counter(db), time.perf_counter()
    time.sleep(seconds)  # measuring a rate over a wall-clock window, not synchronising
    return (counter(db) - n0) / (time.perf_counter() - t0)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = max(3, args.rounds)
    WORK.mkdir(parents=True, exist_ok=True)
    BACKUPS.mkdir(exist_ok=True)

    have = SOURCE.stat().st_size if SOURCE.exists() else 0
    need_source = 0 if abs(have - (args.size_mb << 20)) <= (args.size_mb << 20) * 0.1 else args.size_mb << 20
    need = need_source + 2 * (args.size_mb << 20) * 1.2 + (256 << 20)  # WAL copy + one backup at a time
    free = shutil.disk_usage(WORK).free
    if free < need:
        raise SystemExit(f"not enough disk space in {WORK}: need ~{int(need) >> 20} MiB, {free >> 20} MiB free")
    started = time.perf_counter()
    if need_source:
        print(f"generating {SOURCE.relative_to(ROOT)} (~{args.size_mb} MiB)…", flush=True)
        dt, _ = timed(generate, SOURCE, args.size_mb)
        print(f"  done in {dt:.1f}s", flush=True)
    else:
        print(f"reusing {SOURCE.relative_to(ROOT)}", flush=True)
    size = SOURCE.stat().st_size
    print(f"source: {size / (1 << 20):.0f} MiB, {os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}", flush=True)

    # warm the page cache for everyone (the first read of the source is from disk)
    cp(SOURCE, fsync=False)

    # ---- 1. rollback journal, quiet database
    r = {k: [] for k in ("cp", "cp_fsync", "copy", "nover_total", "api", "full_total", "integrity")}
    for i in range(rounds):
        r["cp"].append(cp(SOURCE, fsync=False))
        res = bk.backup_database(url(SOURCE), BACKUPS, "bench", label="nover", verify=False)
        assert res.method == "sqlite-locked-copy", res.method
        r["copy"].append(res.timings["copy"])
        r["nover_total"].append(res.seconds)
        drop_result(res)
        r["cp_fsync"].append(cp(SOURCE, fsync=True))
        r["api"].append(backup_api(SOURCE))
        res = bk.backup_database(url(SOURCE), BACKUPS, "bench", label="full")
        assert res.verified
        r["full_total"].append(res.seconds)
        r["integrity"].append(res.timings["verify"])
        drop_result(res)
        print(f"  round {i + 1}: cp {r['cp'][-1]:.2f}s  cp+fsync {r['cp_fsync'][-1]:.2f}s  ours copy "
              f"{r['copy'][-1]:.2f}s  api {r['api'][-1]:.2f}s  full {r['full_total'][-1]:.2f}s", flush=True)

    # ---- 2. rollback journal with a writer: how long is it held up?
    rb = {"copy": [], "held": [], "consistent": []}
    writer = Writer(SOURCE)
    try:
        rate_rb = commit_rate(SOURCE)
        for _ in range(rounds):
            n0 = counter(SOURCE)
            t0 = time.perf_counter()
            res = bk.backup_database(url(SOURCE), BACKUPS, "bench", label="rbwriter", verify=False)
            t_copy_end = time.perf_counter()
            n1 = counter(SOURCE)
            rb["copy"].append(res.timings["copy"])
            rb["held"].append((n1 - n0, t_copy_end - t0))
            rb["consistent"].append(consistent(res.path))
            drop_result(res)
    finally:
        writer.close()

    # ---- 3. WAL with a concurrent writer
    remove(WAL_SOURCE)
    subprocess.run(["cp", str(SOURCE), str(WAL_SOURCE)], check=True)
    c = sqlite3.connect(WAL_SOURCE, isolation_level=None)
    assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    c.close()
    w = {"cp": [], "copy": [], "total": [], "during": [], "consistent": [], "integrity": []}
    writer = Writer(WAL_SOURCE)
    try:
        rate_wal = commit_rate(WAL_SOURCE)
        for i in range(rounds):
            w["cp"].append(cp(WAL_SOURCE, fsync=True))
            n0 = counter(WAL_SOURCE)
            t0 = time.perf_counter()
            res = bk.backup_database(url(WAL_SOURCE), BACKUPS, "bench", label="wal", verify=True)
            dt = time.perf_counter() - t0
            n1 = counter(WAL_SOURCE)
            assert res.method == "sqlite-backup-api", res.method
            w["copy"].append(res.timings["copy"])
            w["total"].append(res.seconds)
            w["during"].append((n1 - n0, dt))
            w["consistent"].append(consistent(res.path) and res.verified)
            w["integrity"].append(res.timings["verify"])
            drop_result(res)
            print(f"  WAL round {i + 1}: ours copy {w['copy'][-1]:.2f}s full {w['total'][-1]:.2f}s, writer "
                  f"committed {n1 - n0} transactions during it", flush=True)
    finally:
        writer.close()
        remove(WAL_SOURCE)
    shutil.rmtree(BACKUPS, ignore_errors=True)

    # ---- report
    rows = [
        ("rollback: copy step (locked copy, fsync)  vs cp+fsync", med(r["copy"]), med(r["cp_fsync"])),
        ("rollback: copy step                       vs cp (no fsync)", med(r["copy"]), med(r["cp"])),
        ("rollback: backup(verify=False) total      vs cp+fsync", med(r["nover_total"]), med(r["cp_fsync"])),
        ("rollback: full verified backup total      vs cp+fsync", med(r["full_total"]), med(r["cp_fsync"])),
        ("rollback: copy step  vs online backup API pages=-1", med(r["copy"]), med(r["api"])),
        ("WAL+writer: copy step (backup API, fsync) vs cp+fsync", med(w["copy"]), med(w["cp"])),
        ("WAL+writer: full verified backup total    vs cp+fsync", med(w["total"]), med(w["cp"])),
    ]
    print()
    print(f"SQLite backup benchmark: {size / (1 << 20):.0f} MiB, {rounds} rounds each, medians, warm page cache")
    print(f"{'figure':<62} {'ours s':>8} {'base s':>8} {'ratio':>7}")
    for name, ours, base in rows:
        print(f"{name:<62} {ours:>8.2f} {base:>8.2f} {ours / base:>7.2f}")
    print(f"{'  of which integrity_check + sha256 (parallel), rollback':<62} {med(r['integrity']):>8.2f}")
    print(f"{'  of which integrity_check + sha256 (parallel), WAL':<62} {med(w['integrity']):>8.2f}")
    print()
    during = [n for n, _ in w["during"]]
    secs = [s for _, s in w["during"]]
    print(f"WAL writer: {rate_wal:.0f} commits/s when undisturbed; during the backups it committed "
          f"{during} transactions in {[round(s, 2) for s in secs]} s "
          f"(= {[round(n / s) for n, s in w['during']]} commits/s): not blocked")
    print(f"WAL copies consistent (integrity_check ok, count(a) = count(b) = counter): {all(w['consistent'])} "
          f"{w['consistent']}")
    held = [(n, round(s, 2)) for n, s in rb["held"]]
    print(f"rollback writer: {rate_rb:.0f} commits/s when undisturbed; during backups (verify=False, copy "
          f"{[round(x, 2) for x in rb['copy']]} s) it committed (transactions, seconds) {held}: it waits while "
          "the SHARED lock is held")
    print(f"rollback copies consistent: {all(rb['consistent'])} {rb['consistent']}")
    print(f"total benchmark time {time.perf_counter() - started:.0f}s (source kept at {SOURCE.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
