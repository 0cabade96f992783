"""Crash trials, a longer series: SIGKILL at random points of ``maintain_database`` on real SQLite files.

    .venv/bin/python benchmarks/crash_trials.py [--trials-per-mode 50] [--seed N] [--only 7 12] [--keep]

The same trials as ``tests/safety/test_crash.py`` (``tests/helpers/crash_harness.py`` runs them; how,
in its docstring), as many as asked: for each journal mode (``delete``, ``wal``) ``--trials-per-mode``
trials, half beside a real application writer, each killing the run in one of backup, diff, migrate
(lock held), the migration's COMMIT, verify, report at a random moment. After each kill and after the
next run: integrity_check ok, the schema exactly the pre-run one or the migrated one, no pre-run row
lost, no application row lost, the next run succeeds aligned, no backup temp file left after it.

Prints one line per trial (where the kill was aimed, when it came, where the process died, the schema
it left, the next run, the invariants), then the figures per journal mode, writer and kill point.
Exits 1 if any invariant broke (the folders of those trials are kept and named). ``--seed`` replays a
plan (same phases, writers, fractions; the timings vary a little); ``--only`` runs some of its trials.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work"
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "helpers")]  # the helpers (targets.write_config), the harness

from crash_harness import CrashSuite, TrialResult, plan_trials, seed_from_env, summary  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials-per-mode", type=int, default=50, help="trials per journal mode (default 50)")
    ap.add_argument("--seed", type=int, default=None, help="the plan's seed (default: a fresh one, printed)")
    ap.add_argument("--only", type=int, nargs="+", default=None, help="run only these trial numbers of the plan")
    ap.add_argument("--keep", action="store_true", help="keep every trial's folder (default: only broken ones)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else seed_from_env()
    specs = plan_trials(seed, args.trials_per_mode)
    if args.only:
        specs = [s for s in specs if s.index in set(args.only)]
    WORK.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="crash-", dir=WORK))
    print(f"crash trials: seed {seed}, {len(specs)} trials, work folder {work}", flush=True)
    t0 = time.monotonic()
    results = []
    with CrashSuite(work, seed, keep_passing=args.keep) as suite:
        print(f"set-up {suite.setup_seconds:.1f} s; {suite.windows_text()}", flush=True)
        print(TrialResult.HEADER, flush=True)
        for spec in specs:
            r = suite.run(spec)
            results.append(r)
            print(r.line(), flush=True)
    seconds = time.monotonic() - t0
    print()
    print(summary(results, seed, seconds))
    bad = [r for r in results if r.broken or r.temp_after_next]
    if not bad and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if bad:
        print(f"\nFAILED: {sum(bool(r.broken) for r in results)} trial(s) broke an invariant, "
              f"{sum(bool(r.temp_after_next) for r in results)} left backup temp files after the next run; "
              f"replay with --seed {seed} --only {' '.join(str(r.spec.index) for r in bad[:10])}; "
              f"folders under {work}")
        return 1
    print("\nall invariants held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
