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
   loop: our backup (the WAL copy, else the online backup API), how many transactions the writer
   committed while the backup ran (writers are not blocked in WAL mode), and that the copy is
   a consistent snapshot (the writer inserts pairs of rows and bumps a counter in one
   transaction; the copy must have count(a) = count(b) = counter).

All timings are with a warm page cache for both sides (the first, cold read is discarded).
Big copies are deleted as soon as they are measured.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from maintenance_pipeline.core import backup as bk  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
SOURCE = WORK / "backup_bench.db"
LIVE = WORK / "backup_bench_live.db"  # scratch copy the writers write to
BACKUPS = WORK / "backup_bench_backups"
CP_COPY = WORK / "backup_bench_cp.db"

WRITER = r"""
import json, os, sqlite3, sys, time
db, stop, ready = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=120, isolation_level=None)
c.execute("PRAGMA synchronous=NORMAL")
commits, slow = 0, []
while not os.path.exists(stop):
    start, t = time.time(), time.perf_counter()
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO a(payload) VALUES (randomblob(100))")
    c.execute("INSERT INTO b(a_id, payload) VALUES (last_insert_rowid(), randomblob(100))")
    c.execute("UPDATE counter SET n = n + 1")
    c.execute("COMMIT")
    took = time.perf_counter() - t
    if took > 0.01:
        slow.append([start, took])
    commits += 1
    if commits == 1:
        open(ready, "w").close()
c.close()
print(json.dumps({"commits": commits, "slow": slow}))
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

    def __init__(self, db: Path, name: str = "backup_bench_writer"):
        self.stop = WORK / f"{name}.stop"  # its own names: another benchmark may run a writer of its own
        self.ready = WORK / f"{name}.ready"
        self.stop.unlink(missing_ok=True)
        self.ready.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(self.stop), str(self.ready)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not self.ready.exists():  # poll with a deadline until its first commit
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"writer did not start: {self.proc.stderr.read().decode()}")
            time.sleep(0.01)

    def close(self) -> dict:
        """Stop it; return {"commits", "slow": [[start (epoch s), seconds], ...]} (transactions over 10 ms)."""
        self.stop.touch()
        try:
            out, err = self.proc.communicate(timeout=120)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.stop.unlink(missing_ok=True)
        self.ready.unlink(missing_ok=True)
        if self.proc.returncode != 0:
            raise SystemExit(f"writer failed: {err.decode()}")
        return json.loads(out)


def longest_in(stats: dict, t0: float, t1: float) -> float:
    """The writer's longest transaction (BEGIN IMMEDIATE..COMMIT) overlapping [t0, t1] (epoch s)."""
    return max([took for start, took in stats["slow"] if start <= t1 and start + took >= t0], default=0.0)


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
    os.sync()

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

    # ---- 2. rollback journal with a writer (one writer per round): how long is it held up?
    remove(LIVE)
    subprocess.run(["cp", str(SOURCE), str(LIVE)], check=True)
    fsync_path(LIVE)  # no 1 GiB of dirty pages left to slow down the first round's fsyncs
    rb = {"copy": [], "lock_wait": [], "locked": [], "during": [], "longest": [], "consistent": []}
    for _ in range(rounds) if LIVE.exists() else ():
        writer = Writer(LIVE)
        try:
            n0, t0 = counter(LIVE), time.time()
            res = bk.backup_database(url(LIVE), BACKUPS, "bench", label="rbwriter", verify=False)
            t1 = time.time()
            rb["during"].append(counter(LIVE) - n0)
            rb["copy"].append(res.timings["copy"])
            rb["lock_wait"].append(res.timings["lock_wait"])
            rb["locked"].append(res.timings["locked"])
            rb["consistent"].append(consistent(res.path))
            drop_result(res)
        finally:
            stats = writer.close()
        rb["longest"].append(longest_in(stats, t0, t1))

    # ---- 3. WAL with a concurrent writer
    c = sqlite3.connect(LIVE, isolation_level=None)
    assert c.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    c.close()
    os.sync()
    w = {"cp": [], "copy": [], "total": [], "during": [], "consistent": [], "integrity": [], "longest": []}
    try:
        for i in range(rounds):
            writer = Writer(LIVE)
            try:
                w["cp"].append(cp(LIVE, fsync=True))
                n0, t0 = counter(LIVE), time.time()
                res = bk.backup_database(url(LIVE), BACKUPS, "bench", label="wal")
                t1 = time.time()
                dt = t1 - t0
                n1 = counter(LIVE)
            finally:
                stats = writer.close()
            assert res.method in ("sqlite-wal-copy", "sqlite-backup-api"), res.method
            w["copy"].append(res.timings["copy"])
            w["total"].append(res.seconds)
            w["during"].append((n1 - n0, dt))
            w["longest"].append(longest_in(stats, t0, t1))
            w["consistent"].append(consistent(res.path) and res.verified)
            w["integrity"].append(res.timings["verify"])
            drop_result(res)
            print(f"  WAL round {i + 1}: ours copy {w['copy'][-1]:.2f}s full {w['total'][-1]:.2f}s, writer "
                  f"committed {n1 - n0} transactions during it, longest commit {w['longest'][-1]:.3f}s", flush=True)
    finally:
        remove(LIVE)
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
    print("WAL + writer (a separate process committing one small transaction after another):")
    print(f"  commits during each backup: {[n for n, _ in w['during']]} in {[round(t, 2) for _, t in w['during']]} s "
          f"(= {[round(n / t) for n, t in w['during']]} commits/s); the writer's longest single commit: "
          f"{[round(x, 3) for x in w['longest']]} s (the backup holds no lock a WAL writer waits for; a slow "
          "commit here is an auto-checkpoint's fsync sharing the disk with the backup's)")
    print(f"  copies consistent (integrity_check ok and count(a) = count(b) = counter): {w['consistent']}")
    print("rollback journal + writer (backup with verify=False):")
    print(f"  copy step {[round(x, 2) for x in rb['copy']]} s, of which waiting for the read lock "
          f"{[round(x, 2) for x in rb['lock_wait']]} s and holding it (writers held off) "
          f"{[round(x, 2) for x in rb['locked']]} s; commits during each backup {rb['during']}; the "
          f"writer's longest single commit {[round(x, 3) for x in rb['longest']]} s (a commit waits while the "
          "SHARED lock is held for the copy)")
    print(f"  copies consistent (count(a) = count(b) = counter): {rb['consistent']}")
    print(f"total benchmark time {time.perf_counter() - started:.0f}s (source kept at {SOURCE.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
