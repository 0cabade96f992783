"""Crash trials: SIGKILL at random points of ``maintain_database`` on real SQLite files, real processes.

Used by ``tests/safety/test_crash.py`` (a few dozen trials in ``make test``) and
``benchmarks/crash_trials.py`` (as many as asked, with a table). One trial:

1. a fresh copy of the demo (built once into a template, switched to the trial's journal mode:
   ``delete`` or ``wal``) with its own targets file (``targets.write_config``);
2. for half of the trials, a real application writer (``live_app.LiveApp``) committing every 5 ms;
3. the run in a real process, killed with SIGKILL at a random moment of one phase: ``backup``,
   ``diff``, ``migrate`` (while it holds the maintenance lock), ``commit`` (the migration's COMMIT),
   ``verify``, ``report``;
4. the invariants (``check_database``), then the next run (in this process, ``run_job``) and the
   invariants again.

The process that runs the steps is forked from a *zygote* (``crash_zygote.py``: one import of the
pipeline for all trials) and writes a marker at each step, at the lock and at the migration's COMMIT;
the invariants are SQLite's own view of the file (``crash_checks.py``).

Kill points: three uninterrupted runs per (journal mode, writer or not) measure each phase's
window (from its marker to the next; ``migrate``: from ``lock`` to ``unlock``; ``commit``: from the
COMMIT marker to ``unlock``); a trial kills at the window's start + ``fraction`` x its median length,
measured from the child's own marker. The median is over every whole window seen so far (each trial
adds those of the phases it finished before its kill), so the kill points follow the machine's speed.
The phase where the child really died is the last marker it wrote (``landed``). All randomness (which
trial gets which phase, writer, fraction) comes from one seeded ``random.Random``: rerun with the same
seed to replay a plan (the kill lands at the same fraction of the phase; timings still vary a little).

Every wait is a poll with a deadline; the only sleep is the random delay before a kill.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from crash_checks import TARGET, check_database, recover, schema_rows, stale_backup_temp_files, table_rows
from crash_zygote import JOB, RUN_TIMEOUT, Zygote
from live_app import LiveApp, set_journal_mode

MODES = ("delete", "wal")
# "commit": the migration's COMMIT, from just before it is sent to the lock being given back (a uniform
# delay over the whole migration would almost never land there).
PHASES = ("backup", "diff", "migrate", "commit", "verify", "report")
# One cycle of kill phases; the migration (lock held) gets the most kills, it is where the most can go wrong.
PHASE_CYCLE = ("backup", "migrate", "diff", "commit", "verify", "backup", "migrate", "report", "commit")
# phase -> (marker the window starts at, marker it ends at)
WINDOW = {"backup": ("backup", "diff"), "diff": ("diff", "migrate"), "migrate": ("lock", "unlock"),
          "commit": ("commit", "unlock"), "verify": ("verify", "report"), "report": ("report", "done")}
# the last marker a child wrote before it died -> where it died
LANDED = {None: "before backup", "start": "before backup", "backup": "backup", "diff": "diff",
          "migrate": "migrate (before lock)", "lock": "migrate (lock held)",
          "commit": "migrate (COMMIT sent)", "unlock": "migrate (lock given back)",
          "verify": "verify", "report": "report", "done": "after the run (not killed)", "crashed": "child error"}
APP_CONTINUES_TIMEOUT = 15.0


def seed_from_env(var: str = "CRASH_SEED") -> int:
    """``$CRASH_SEED`` when set (to replay), else a fresh random seed (printed with the results)."""
    value = os.environ.get(var, "").strip()
    return int(value) if value else random.SystemRandom().randrange(1 << 32)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class TrialSpec:
    index: int
    mode: str  # journal mode: delete | wal
    writer: bool  # a concurrent application writer
    phase: str  # the phase the kill is aimed at
    fraction: float  # where in that phase's measured window, 0..1

    def describe(self) -> str:
        return (f"#{self.index:03d} {self.mode:6s} {'app' if self.writer else 'alone':5s} "
                f"{self.phase:7s} at {self.fraction:.2f}")


def plan_trials(seed: int, per_mode: int) -> list[TrialSpec]:
    """``per_mode`` trials for each journal mode, half of them with a writer; phases spread evenly."""
    rng = random.Random(seed)
    specs: list[tuple] = []
    for mode in MODES:
        for writer in (False, True):
            n = per_mode // 2 + (per_mode % 2 if writer else 0)
            offset = rng.randrange(len(PHASE_CYCLE))
            for i in range(n):
                specs.append((mode, writer, PHASE_CYCLE[(offset + i) % len(PHASE_CYCLE)], rng.random()))
    rng.shuffle(specs)
    return [TrialSpec(i, *s) for i, s in enumerate(specs)]


# --------------------------------------------------------------------------- trials


@dataclass
class TrialResult:
    spec: TrialSpec
    delay_ms: float = 0.0  # from the window's start marker to the kill
    landed: str = ""  # where the child really died (LANDED)
    killed: bool = False  # died of SIGKILL
    run_status: str | None = None  # the child's own report status, when it finished before the kill
    schema_after_kill: str = ""  # pre-run | migrated | neither | unreadable
    broken: list[str] = field(default_factory=list)  # invariants broken (after the kill or after the next run)
    next_status: str | None = None
    next_error: str | None = None
    temp_after_kill: list[str] = field(default_factory=list)
    temp_after_next: list[str] = field(default_factory=list)  # the pending cleanup: should be empty
    app_commits: int = 0
    app_errors: int = 0
    app_first_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    folder: Path | None = None

    HEADER = (f"{'trial':>5s} {'mode':6s} {'app':5s} {'aimed at':8s} {'at':>4s} {'kill after':>10s}  "
              f"{'died in':26s} {'schema':9s} {'next run':8s} outcome")

    def line(self) -> str:
        s = self.spec
        outcome = "ok" if not self.broken else f"BROKEN ({self.folder}): " + " | ".join(self.broken)
        extra = f"; app {self.app_commits} commits" if s.writer else ""
        if self.app_errors:
            extra += f" ({self.app_errors} app errors: {self.app_first_errors[:1]})"
        if self.temp_after_next:
            extra += f"; backup temp files after the next run: {self.temp_after_next}"
        return (f"{s.index:5d} {s.mode:6s} {'app' if s.writer else 'alone':5s} {s.phase:8s} {s.fraction:4.2f} "
                f"{self.delay_ms:7.1f} ms  {self.landed:26s} {self.schema_after_kill:9s} {self.next_status or '-':8s} "
                f"{outcome}{extra}")


class CrashSuite:
    """The template, the zygote, the measured windows; ``run(spec)`` runs one trial."""

    def __init__(self, work: Path, seed: int, *, keep_passing: bool = False, measure_runs: int = 3,
                 inject: str | None = None):
        """``keep_passing``: keep the folders of trials that broke nothing (else only the others stay: an
        invariant broken or a backup temp file left after the next run). ``inject``: a bug planted in the
        children on purpose (``commit-early``, see ``_commit_early``), for the suite's self-check."""
        self.work = Path(work)
        self.seed = seed
        self.keep_passing = keep_passing
        self.measure_runs = measure_runs
        self.inject = inject
        self.zygote: Zygote | None = None
        # (mode, writer) -> phase -> seconds of each whole window seen (uninterrupted runs, then every trial's
        # phases that ended before its kill): the kill points follow the machine's speed as it changes
        self.samples: dict[tuple[str, bool], dict[str, list[float]]] = {}
        self.pre_schema: dict[str, list] = {}
        self.migrated_schema: dict[str, list] = {}
        self.pre_rows: dict[str, dict] = {}
        self.setup_seconds = 0.0
        self._n = 0

    # ---- set-up

    def __enter__(self) -> "CrashSuite":
        t0 = time.monotonic()
        from targets import build_demo

        self.work.mkdir(parents=True, exist_ok=True)
        build_demo.build(self.work / "template" / "data")
        for mode in MODES:
            data = self.work / f"template-{mode}" / "data"
            shutil.copytree(self.work / "template" / "data", data)
            set_journal_mode(data / "goals.db", mode)
            leftovers = [p.name for p in data.iterdir() if p.name not in ("goals.db", "goals_dev.db")]
            assert not leftovers, f"template {data} has {leftovers}"
            self.pre_schema[mode] = schema_rows(data / "goals.db")
            self.pre_rows[mode] = table_rows(data / "goals.db")
        self.zygote = Zygote(self.work, self.inject)
        try:
            warm = self.zygote.warm(self._fresh("warm-up", "delete"))
            assert warm["status"] == "success", f"the zygote's warm-up run failed: {warm}"
            self._measure(self.measure_runs)
        except BaseException:
            self.zygote.close()
            raise
        self.setup_seconds = time.monotonic() - t0
        return self

    def __exit__(self, *exc) -> None:
        if self.zygote is not None:
            self.zygote.close()

    def _fresh(self, name: str, mode: str) -> Path:
        """A fresh copy of the demo in its own folder with its own targets file; returns that file."""
        from targets import write_config

        self._n += 1
        folder = self.work / f"{self._n:03d}-{name}"
        shutil.copytree(self.work / f"template-{mode}" / "data", folder / "data")
        return write_config(folder)

    def _measure(self, runs: int = 3) -> None:
        """Uninterrupted runs: each phase's window; the migrated schema (SQLite's own catalogue)."""
        for mode in MODES:
            for writer in (False, True):
                spans = self.samples.setdefault((mode, writer), {p: [] for p in PHASES})
                for i in range(runs):
                    config = self._fresh(f"measure-{mode}-{'app' if writer else 'alone'}-{i}", mode)
                    db = config.parent / "data" / "goals.db"
                    app = LiveApp(db, config.parent / "app") if writer else None
                    if app:
                        app.__enter__()
                    try:
                        if app:
                            app.wait_for_commits(3)
                        pid = self.zygote.fork_run(config)
                        exit_msg, marks = self.zygote.reap(pid)
                    finally:
                        if app:
                            app.__exit__(None, None, None)
                    at: dict[str, dict] = {}
                    for m in marks:
                        at.setdefault(m["name"], m)
                    assert "commit" in at, ("no COMMIT seen while the migration held the lock (SQLAlchemy's "
                                            f"commit event): adjust the harness's marker; {marks}")
                    done = at.get("done", {})
                    assert exit_msg.get("code") == 0 and done.get("status") == "success" \
                        and done.get("drift_after") == 0, f"an uninterrupted run failed: {exit_msg} {marks}"
                    self._record(spans, marks)
                    recover(db)
                    schema = schema_rows(db)
                    if mode not in self.migrated_schema:
                        self.migrated_schema[mode] = schema
                    assert schema == self.migrated_schema[mode], "two uninterrupted runs left different schemas"
                    assert schema != self.pre_schema[mode], "an uninterrupted run left the schema as it was"
                    if not self.keep_passing:
                        shutil.rmtree(config.parent, ignore_errors=True)

    # ---- one trial

    def run(self, spec: TrialSpec) -> TrialResult:
        from maintenance_pipeline.core.config import load_config
        from maintenance_pipeline.core.run.pipeline import run_job

        t0 = time.monotonic()
        result = TrialResult(spec)
        config = self._fresh(f"trial{spec.index:03d}-{spec.mode}-{'app' if spec.writer else 'alone'}-{spec.phase}",
                             spec.mode)
        folder = config.parent
        db = folder / "data" / "goals.db"
        app = LiveApp(db, folder / "app") if spec.writer else None
        try:
            if app:
                app.__enter__()
                app.wait_for_commits(3)
            self._kill_run(config, spec, result)
            if app:  # the application goes on after the crash: its next BEGIN recovers the file
                n = len(app.committed())
                try:
                    app.wait_for_commits(n + 3, timeout=APP_CONTINUES_TIMEOUT)
                except AssertionError:
                    result.broken.append(f"the application committed fewer than 3 rows in "
                                         f"{APP_CONTINUES_TIMEOUT:.0f} s after the kill")
                app.stop()
                result.app_commits = app.commits
                result.app_errors = sum(r.get("errors", 0) for r in app.results)
                result.app_first_errors = [e for r in app.results for e in r.get("first_errors", [])]
        finally:
            if app:
                app.__exit__(None, None, None)
        app_ids = app.committed() if app else set()
        result.temp_after_kill = stale_backup_temp_files(folder)

        expected = dict(pre_schema=self.pre_schema[spec.mode], migrated_schema=self.migrated_schema[spec.mode],
                        pre_rows=self.pre_rows[spec.mode], app_ids=app_ids)
        recover(db)
        result.schema_after_kill, broken = check_database(db, **expected)
        result.broken += [f"after the kill: {b}" for b in broken]

        try:
            report = run_job(load_config(config), TARGET, JOB)
            result.next_status, result.next_error = report["status"], report["error"]
            if report["status"] != "success" or report["drift_after"] != []:
                result.broken.append(f"next run: status {report['status']}, failed step {report['failed_step']}, "
                                     f"drift_after {report['drift_after']}, error {report['error']}"[:600])
        except Exception as e:  # noqa: BLE001 - a crash of the next run is a finding, not a harness error
            result.next_status, result.next_error = "raised", f"{type(e).__name__}: {e}"
            result.broken.append(f"next run raised {type(e).__name__}: {e}"[:600])
        _, broken = check_database(db, **expected, must_be="migrated")
        result.broken += [f"after the next run: {b}" for b in broken]
        result.temp_after_next = stale_backup_temp_files(folder)
        result.folder = folder
        if not (result.broken or result.temp_after_next or self.keep_passing):
            shutil.rmtree(folder, ignore_errors=True)
        result.seconds = time.monotonic() - t0
        return result

    @staticmethod
    def _record(spans: dict[str, list[float]], marks: list[dict]) -> None:
        """Each phase window that is whole in ``marks`` (both of its markers, the first of each)."""
        at: dict[str, float] = {}
        for m in marks:
            at.setdefault(m["name"], m["t"])
        for p in PHASES:
            a, b = WINDOW[p]
            if a in at and b in at:
                spans[p].append(at[b] - at[a])

    def window(self, mode: str, writer: bool, phase: str) -> float:
        """The median length of ``phase``'s window seen so far, in seconds."""
        return statistics.median(self.samples[(mode, writer)][phase])

    def windows_text(self) -> str:
        """The phase windows (medians of every whole window seen), in ms."""
        return "phase windows, median ms: " + "; ".join(
            f"{mode} {'app' if writer else 'alone'}: " + " ".join(
                f"{p} {self.window(mode, writer, p) * 1000:.0f}" for p in PHASES)
            for (mode, writer) in self.samples)

    def _kill_run(self, config: Path, spec: TrialSpec, result: TrialResult) -> None:
        z = self.zygote
        anchor = WINDOW[spec.phase][0]
        length = self.window(spec.mode, spec.writer, spec.phase)
        delay = spec.fraction * length
        pid = z.fork_run(config)
        marks: list[dict] = []
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            msg = z.next(deadline)
            if msg.get("pid") != pid or msg["ev"] != "mark":
                continue
            marks.append(msg)
            if msg["name"] == anchor:
                wait = msg["t"] + delay - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the random delay before the kill: the point of the trial
                killed_at = time.monotonic()
                os.kill(pid, signal.SIGKILL)  # not reaped until we say so: cannot be another process
                result.delay_ms = (killed_at - msg["t"]) * 1000
                break
            if msg["name"] in ("done", "crashed"):
                break
        exit_msg, rest = z.reap(pid)
        marks += rest
        self._record(self.samples[(spec.mode, spec.writer)], marks)
        result.killed = exit_msg.get("signal") == signal.SIGKILL
        last = marks[-1] if marks else None
        result.landed = LANDED.get(last["name"] if last else None, last["name"] if last else "?")
        done = next((m for m in marks if m["name"] == "done"), None)
        if done is not None:
            result.run_status = done.get("status")
            if done.get("status") != "success" or done.get("drift_after") != 0:
                result.broken.append(f"the run ended before the kill and failed: {done.get('error')}")
        crashed = next((m for m in marks if m["name"] == "crashed"), None)
        if crashed is not None:
            result.broken.append(f"the run raised outside the pipeline's error handling: {crashed.get('error')}")


# --------------------------------------------------------------------------- figures


def summary(results: list[TrialResult], seed: int, seconds: float | None = None) -> str:
    """The figures: trials, kill points, outcomes, per journal mode and writer."""
    lines = []
    per_mode = Counter(r.spec.mode for r in results)
    took = f", {seconds:.1f} s" if seconds is not None else ""
    lines.append(f"crash trials: seed {seed} (replay: CRASH_SEED={seed}), {len(results)} trials "
                 f"({', '.join(f'{m} {n}' for m, n in sorted(per_mode.items()))}; "
                 f"{sum(r.spec.writer for r in results)} with a concurrent writer){took}")
    head = f"{'mode':6s} {'app':5s} {'died in':28s} {'trials':>6s} {'schema pre-run':>14s} " \
           f"{'migrated':>8s} {'other':>5s} {'next run ok':>11s} {'tmp left':>8s} {'broken':>6s}"
    lines.append(head)
    lines.append("-" * len(head))
    order = list(dict.fromkeys(LANDED.values()))
    groups: dict[tuple, list[TrialResult]] = {}
    for r in results:
        groups.setdefault((r.spec.mode, r.spec.writer, r.landed), []).append(r)

    def row(label_mode, label_app, landed, rs):
        return (f"{label_mode:6s} {label_app:5s} {landed:28s} {len(rs):6d} "
                f"{sum(r.schema_after_kill == 'pre-run' for r in rs):14d} "
                f"{sum(r.schema_after_kill == 'migrated' for r in rs):8d} "
                f"{sum(r.schema_after_kill not in ('pre-run', 'migrated') for r in rs):5d} "
                f"{sum(r.next_status == 'success' for r in rs):11d} "
                f"{sum(bool(r.temp_after_kill) for r in rs):8d} {sum(bool(r.broken) for r in rs):6d}")

    for (mode, writer, landed), rs in sorted(groups.items(), key=lambda kv: (
            MODES.index(kv[0][0]), kv[0][1], order.index(kv[0][2]) if kv[0][2] in order else 99)):
        lines.append(row(mode, "app" if writer else "alone", landed, rs))
    lines.append("-" * len(head))
    lines.append(row("all", "", "", results))
    killed = sum(r.killed for r in results)
    aimed = Counter(r.spec.phase for r in results)
    lines.append(f"killed: {killed} of {len(results)} (aimed at: "
                 f"{', '.join(f'{p} {aimed[p]}' for p in PHASES)}); "
                 f"died in: {', '.join(f'{k} {v}' for k, v in Counter(r.landed for r in results).most_common())}")
    app = [r for r in results if r.spec.writer]
    if app:
        lines.append(f"application: {sum(r.app_commits for r in app)} commits in {len(app)} trials, "
                     f"{sum(r.app_errors for r in app)} errors")
    lines.append(f"backup temp files: left by the kill in {sum(bool(r.temp_after_kill) for r in results)} trials; "
                 f"still there after the next run in {sum(bool(r.temp_after_next) for r in results)} trials")
    broken = [r for r in results if r.broken]
    lines.append(f"invariants broken: {len(broken)} trial(s)")
    for r in broken:
        lines.append("  " + r.line())
    return "\n".join(lines)
