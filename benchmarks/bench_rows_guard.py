"""What comparing rows inside the migration's transaction costs (``core/sqlite_rows.RowsGuard``):
one small migration (add a column) on a ~1 GiB SQLite database, with the run's backup attached
(rows compared before COMMIT, while other writers wait) and without it, side by side.

    .venv/bin/python benchmarks/bench_rows_guard.py [--size-mb 1024] [--rounds 3]

Four variants per round, alternating: no guard (the migration alone); the guard with a byte-copy
backup nobody wrote to since (the header check answers at BEGIN; only the table the migration wrote
to, ``users``, is compared before COMMIT); the guard after another session wrote between backup and
migration (rollback journal: the file is copied at BEGIN under the write lock and stands in for the
backup); the same in WAL mode (a reader checks the written table's state at BEGIN at the end, and a
table changed since the backup is compared with that state). The users table is 10,000 rows; the file is
dominated by ``events``, which the migration does not touch. Medians are printed with the time the
write lock is held longer than the migration alone.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_rows_preserved import WORK, generate  # noqa: E402

from maintenance_pipeline.core.config import Target  # noqa: E402
from maintenance_pipeline.core.migrate.executor import migrate  # noqa: E402
from maintenance_pipeline.core.schema.reference import reference_snapshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    source = WORK / f"rows_backup_{args.size_mb}.db"  # shared with bench_rows_preserved
    if shutil.disk_usage(WORK).free < 4 * args.size_mb * 1024 * 1024:
        sys.exit("not enough free disk for three copies")
    if not source.exists():
        generate(source, args.size_mb)
    live, backup, ref = WORK / "guard_live.db", WORK / "guard_backup.db", WORK / "guard_ref.db"
    ref.unlink(missing_ok=True)
    with sqlite3.connect(ref) as c:  # the reference: the same tables plus one column
        for (sql,) in sqlite3.connect(source).execute("SELECT sql FROM sqlite_master WHERE type = 'table'"):
            c.execute(sql)
        c.execute("ALTER TABLE users ADD COLUMN plan TEXT")
    target = Target(name="bench", url=f"sqlite:///{live}", reference_url=f"sqlite:///{ref}")
    reference = reference_snapshot(url=target.reference_url, target_dialect="sqlite")

    def one(variant: str) -> float:
        for side in ("-wal", "-shm"):  # a WAL left by the previous round would be replayed onto the fresh copy
            Path(f"{live}{side}").unlink(missing_ok=True)
        shutil.copyfile(source, live)
        shutil.copyfile(source, backup)  # the run's backup: a byte copy, as the pipeline takes it
        if variant.startswith("WAL"):
            c = sqlite3.connect(live)
            c.execute("PRAGMA journal_mode=wal")
            c.close()
        if "written since backup" in variant:
            c = sqlite3.connect(live)  # closed at once: a sqlite3 connection lives until the cyclic GC otherwise
            with c:
                c.execute("UPDATE users SET email = 'changed@example.com' WHERE id = 1")
            c.close()
        t0 = time.monotonic()
        result = migrate(target, reference, backup=None if variant == "no guard" else backup)
        seconds = time.monotonic() - t0
        assert [a["description"] for a in result.applied] == ["add_column users.plan (TEXT NULL)"], result.applied
        if variant != "no guard":
            assert result.rows is not None and result.rows[0], result.rows
            assert ("at BEGIN" in result.rows[1]) == ("written since backup" in variant), result.rows[1]
        return seconds

    variants = ["no guard", "guard", "written since backup", "WAL, written since backup"]
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            times[v].append(one(v))
        print(f"round {r + 1}: " + "   ".join(f"{v} {times[v][-1]:.2f} s" for v in variants))
    base = statistics.median(times["no guard"])
    print(f"\nfile: {source.stat().st_size / 2**20:.0f} MiB")
    print(f"{'migrate (median s)':32} {'seconds':>8} {'lock held longer':>17} {'ratio':>7}")
    for v in variants:
        m = statistics.median(times[v])
        print(f"{v:32} {m:8.2f} {m - base:16.2f}s {m / base:6.1f}x")
    for p in (live, backup, ref, Path(f"{live}-wal"), Path(f"{live}-shm")):
        p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
