"""Real application processes (``app_process.py``) beside every job on the SQLite demo: nothing corrupted,
nothing lost, the migration committed.

Each run builds the demo fresh, starts the application, waits for it to have committed a few rows, runs
the job in this process (``run_job``), lets the application commit a few more rows, stops it, and then
reads the file with plain ``sqlite3`` (``live_app.py``), never with the product's code:

* ``PRAGMA integrity_check`` is ``ok``;
* every row a writer saw ``COMMIT`` return for is in ``goals`` (its log: ``LiveApp.committed``);
* a maintain run's migration is there: ``alembic_version`` is ``0002`` (the head of the demo's
  migrations), ``program_day_templates`` exists, ``goals`` has ``program_day_id``;
* the backup the job took is a consistent snapshot: of each writer's commits it holds exactly a prefix;
* the application saw no error other than busy/locked.

Scenarios 1 and 2 failed (20/20 and 3/3) while the rows guard read the live file's header with
``open()`` inside the migration's transaction: closing that descriptor dropped SQLite's POSIX locks,
so a writer committed inside the migration (a corrupt file, lost rows) or a closing reader deleted the
WAL the migration had committed into (a lost migration). ``test_the_checks_catch_the_old_bug`` puts
that read back and requires these same checks to fail.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from targets import build_demo, write_config
from live_app import LiveApp, ids, integrity, journal_mode, migrated_schema, set_journal_mode
from maintenance_pipeline.core import backup as backup_mod
from maintenance_pipeline.core.migrate import executor as migrate_mod
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job

MIGRATED = {"revision": "0002", "program_day_templates": True, "goals.program_day_id": True}
BEFORE = 3  # rows the application commits before a run starts
AFTER = 3  # ... and after it returned


def run(config, job: str, **kw) -> dict:
    """``run_job``; an exception escaping it becomes a failed report (the file is still checked)."""
    try:
        return run_job(config, "goals", job, **kw)
    except Exception as e:  # noqa: BLE001
        return {"status": "raised", "failed_step": "?", "error": f"{type(e).__name__}: {e}", "checks": [],
                "backup": None}


def fresh_demo(folder: Path, mode: str):
    """The demo built into ``folder/data`` in journal mode ``mode``; (config, live file, its goal ids)."""
    build_demo.build(folder / "data")
    db = folder / "data" / "goals.db"
    set_journal_mode(db, mode)
    return load_config(write_config(folder)), db, ids(db)


def snapshot_problems(seqs: list[list[str]], snap: set[str], what: str) -> list[str]:
    """A consistent snapshot holds, of each writer's commits (in commit order), exactly a prefix, and no
    application row that no writer saw committed."""
    out = []
    for i, seq in enumerate(seqs):
        have = [gid in snap for gid in seq]
        k = sum(have)
        if have != [True] * k + [False] * (len(seq) - k):
            last = max(j for j, h in enumerate(have) if h)
            holes = [j for j in range(last) if not have[j]]
            out.append(f"{what}: writer {i}'s commits in it are not a prefix of its commit order "
                       f"(missing commit(s) {holes[:5]} before later ones)")
    unknown = {x for x in snap if x.startswith("app-")} - {g for seq in seqs for g in seq}
    if unknown:
        out.append(f"{what}: application rows no writer saw committed: {sorted(unknown)[:3]}")
    return out


def app_problems(app: LiveApp, *, writers: int, readers: int) -> list[str]:
    out = []
    if app.non_busy_errors():
        out.append(f"the application saw errors: {app.non_busy_errors()[:3]}")
    if writers and app.commits < BEFORE + AFTER:
        out.append(f"the writers committed only {app.commits} rows")
    if readers and app.reads == 0:
        out.append("the readers read nothing")
    return out


def live_problems(db: Path, app: LiveApp, original: set[str]) -> list[str]:
    """integrity ok; every committed application row and every row of the demo present."""
    out = []
    ok = integrity(db)
    if ok != "ok":
        out.append(f"integrity_check: {ok}")
        return out  # the rest cannot be read reliably from a corrupt file
    have = ids(db)
    lost = app.committed() - have
    if lost:
        out.append(f"{len(lost)} of {len(app.committed())} committed application rows lost, e.g. {sorted(lost)[:3]}")
    gone = original - have
    if gone:
        out.append(f"{len(gone)} rows of the demo gone, e.g. {sorted(gone)[:3]}")
    return out


def migration_problems(db: Path, report: dict) -> list[str]:
    out = []
    if report["status"] != "success":
        out.append(f"run {report['status']} at {report['failed_step']}: {report['error']}")
    if integrity(db) == "ok":
        got = migrated_schema(db)
        if got != MIGRATED:
            out.append(f"the migration is not in the file: {got}")
    return out


RUNNING: list = []  # the LiveApp of the run in progress (the planted bug waits for its writer)


def maintain_beside(folder: Path, mode: str, *, writers: int, short: bool = False, readers: int = 0) -> list[str]:
    """One maintain_database run beside the application; every problem found (empty: all held)."""
    config, db, original = fresh_demo(folder, mode)
    with LiveApp(db, folder / "app", writers=writers, short=short, readers=readers) as app:
        RUNNING.append(app)
        try:
            if writers:
                app.wait_for_commits(BEFORE)
            report = run(config, "maintain_database")
            if writers:
                app.wait_for_commits(len(app.committed()) + AFTER)
            app.stop()
        finally:
            RUNNING.remove(app)
    problems = migration_problems(db, report) + live_problems(db, app, original)
    problems += app_problems(app, writers=writers, readers=readers)
    if report.get("backup"):
        problems += snapshot_problems(app.sequences(), ids(Path(report["backup"]["path"])), "pre-migration backup")
    problems += mode_problems(db, mode)
    return problems


def mode_problems(db: Path, mode: str) -> list[str]:
    """The file keeps the journal mode it had (a restore or a rebuild must not switch it)."""
    if integrity(db) != "ok":
        return []  # reported already
    got = journal_mode(db)
    return [] if got == mode else [f"journal mode is {got}, was {mode}"]


def assert_all_runs_held(outcomes: list[list[str]]) -> None:
    bad = {i: p for i, p in enumerate(outcomes) if p}
    assert not bad, f"{len(bad)}/{len(outcomes)} runs broke something:\n" + "\n".join(
        f"run {i}: " + "; ".join(p) for i, p in bad.items())


# ------------------------------------------------------------------------------------------ scenario 1


def test_scenario_1_rollback_journal_writer_during_maintain(tmp_path):
    """Rollback-journal mode, an application writer (BEGIN IMMEDIATE; INSERT; COMMIT every 5 ms) on a
    persistent connection (6 runs) and on a new connection per write (6 runs), each during one
    maintain_database: every run succeeds, the file is intact, no committed row is lost, the migration is
    committed (revision 0002 and its schema)."""
    outcomes = [maintain_beside(tmp_path / f"run{i}", "delete", writers=1, short=i % 2 == 1) for i in range(12)]
    assert_all_runs_held(outcomes)


# ------------------------------------------------------------------------------------------ scenario 2


def test_scenario_2_wal_readers_during_maintain(tmp_path):
    """WAL mode, two processes looping open -> SELECT count(*) FROM goals -> close during maintain_database
    (10 runs): the migration is still in the file after the readers closed (a reader that believes it is
    the last connection checkpoints and deletes the WAL), the file is intact, every run succeeds."""
    outcomes = [maintain_beside(tmp_path / f"run{i}", "wal", writers=0, readers=2) for i in range(10)]
    assert_all_runs_held(outcomes)


# ------------------------------------------------------------------------- every job, both journal modes


def _positions(seqs: list[list[str]]) -> list[int]:
    return [len(s) for s in seqs]


@pytest.mark.parametrize("mode", ["delete", "wal"])
@pytest.mark.parametrize("job", ["maintain_database", "verify_database", "backup alone"])
def test_writer_and_readers_during_every_job(tmp_path, job, mode):
    """A writer and two short-lived readers during the job (two runs, the writer persistent in one and
    short-lived in the other; verify runs on the demo migrated first): integrity ok, every committed row
    present, the journal mode kept, the backup the job took a consistent snapshot (verified, intact, each
    writer's commits in it a prefix), and for maintain the migration committed; maintain and verify
    succeed. (The restore has its own test below.)"""
    outcomes = []
    for i, short in enumerate((False, True)):
        folder = tmp_path / f"run{i}"
        if job == "maintain_database":
            outcomes.append(maintain_beside(folder, mode, writers=1, short=short, readers=2))
            continue
        config, db, original = fresh_demo(folder, mode)
        problems = []
        if job == "verify_database":  # verify passes on a migrated database only
            first = run_job(config, "goals", "maintain_database")
            assert first["status"] == "success", first["error"]
        with LiveApp(db, folder / "app", writers=1, short=short, readers=2) as app:
            app.wait_for_commits(BEFORE)
            if job == "backup alone":
                t = config.target("goals")
                result = backup_mod.backup_database(t.url, config.backups.dir, "goals", label="alone")
                made = {"path": str(result.path), "verified": result.verified}
            else:
                report = run(config, job)
                if report["status"] != "success":
                    problems.append(f"run {report['status']} at {report['failed_step']}: {report['error']}")
                made = report["backup"] or {}
            app.wait_for_commits(len(app.committed()) + AFTER)
            app.stop()
        problems += live_problems(db, app, original) + app_problems(app, writers=1, readers=2)
        problems += mode_problems(db, mode)
        if not made.get("verified"):
            problems.append(f"the backup was not verified: {made}")
        else:
            copy = Path(made["path"])
            if integrity(copy) != "ok":
                problems.append(f"backup integrity_check: {integrity(copy)}")
            else:
                problems += snapshot_problems(app.sequences(), ids(copy), "the backup")
                if not original <= ids(copy):
                    problems.append("the backup lacks rows of the demo")
        outcomes.append(problems)
    assert_all_runs_held(outcomes)


def restore_problems(seqs: list[list[str]], backup: set[str], live: set[str], started: list[int],
                     returned: list[int]) -> list[str]:
    """What a restore beside a writer must leave (see the test's docstring)."""
    out = []
    if not backup <= live:
        out.append(f"{len(backup - live)} rows of the restored backup missing, e.g. {sorted(backup - live)[:3]}")
    committed = {g for seq in seqs for g in seq}
    foreign = live - backup - committed
    if foreign:
        out.append(f"rows neither in the backup nor committed by the application: {sorted(foreign)[:3]}")
    for i, seq in enumerate(seqs):
        after_backup = [(j, g) for j, g in enumerate(seq) if g not in backup]
        kept = [g in live for _, g in after_backup]
        k = sum(kept)
        if kept != [False] * (len(kept) - k) + [True] * k:
            out.append(f"writer {i}: its rows kept after the restore are not the commits after one point "
                       f"({[j for (j, _), h in zip(after_backup, kept) if h][:5]} kept, "
                       f"{[j for (j, _), h in zip(after_backup, kept) if not h][-5:]} gone)")
        early = [g for j, g in after_backup if j < started[i] and g in live]
        if early:
            out.append(f"writer {i}: rows committed before the restore began are back: {early[:3]}")
        late = [g for j, g in after_backup if j > returned[i] and g not in live]
        if late:
            out.append(f"writer {i}: rows committed after the restore returned are lost: {late[:3]}")
        if not any(j < started[i] for j, _ in after_backup):
            out.append(f"writer {i}: committed nothing between the backup and the restore (the test proves nothing)")
        if not any(j > returned[i] for j, _ in after_backup):
            out.append(f"writer {i}: committed nothing after the restore (the test proves nothing)")
    return out


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_writer_and_readers_during_restore(tmp_path, mode):
    """restore_database beside a writer and two short-lived readers (two runs: persistent and short-lived
    writer connections). A restore puts an older state back, in one transaction, at one point in the
    writer's commit order; so, with B the rows of the restored backup (taken with the application
    running, after it committed a few rows; then it commits more before the restore starts), L the rows
    in the file afterwards and each writer's commits in their order:

    * integrity ok, and the application saw no error other than busy/locked;
    * B is in L (the application only inserts), and L holds nothing but B and committed application rows;
    * per writer, of its commits not in B, those in L are exactly the ones after one point: none before
      it is back, none after it is lost; every commit logged before the run started is gone (it was not
      in B) and every commit that began after the run returned is there (its log held N lines when the
      run returned: commit N may have been in flight, commits N+1 on began afterwards);
    * B was a consistent snapshot (each writer's commits in it a prefix), so was the pre-restore backup;
    * the run succeeds: ``matches_restored_backup`` compares the backup's manifest with the database as
      the restore itself measured it, so the application's writes after the restore do not count.
    """
    outcomes = []
    for i, short in enumerate((False, True)):
        folder = tmp_path / f"run{i}"
        config, db, original = fresh_demo(folder, mode)
        t = config.target("goals")
        with LiveApp(db, folder / "app", writers=1, short=short, readers=2) as app:
            app.wait_for_commits(BEFORE)
            chosen = backup_mod.backup_database(t.url, config.backups.dir, "goals", label="chosen")
            app.wait_for_commits(len(app.committed()) + BEFORE)
            started = _positions(app.sequences())
            report = run(config, "restore_database", restore_backup=str(chosen.path))
            returned = _positions(app.sequences())
            app.wait_for_commits(len(app.committed()) + AFTER + 1)
            app.stop()
        problems = []
        ok = integrity(db)
        if ok != "ok":
            problems.append(f"integrity_check: {ok}")
        else:
            backup_rows = ids(chosen.path)
            problems += restore_problems(app.sequences(), backup_rows, ids(db), started, returned)
            problems += snapshot_problems(app.sequences(), backup_rows, "the chosen backup")
            if not original <= backup_rows:
                problems.append("the chosen backup lacks rows of the demo")
        problems += app_problems(app, writers=1, readers=2)
        if report["status"] != "success":
            problems.append(f"run failed at {report['failed_step']}: {report['error']}")
        if (report.get("backup") or {}).get("path"):
            problems += snapshot_problems(app.sequences(), ids(Path(report["backup"]["path"])), "pre-restore backup")
        else:
            problems.append("no pre-restore backup")
        if (report.get("restored_from") or {}).get("path") not in (str(chosen.path), None):
            problems.append(f"restored {report['restored_from']['path']}, not the chosen backup")
        problems += mode_problems(db, mode)
        outcomes.append(problems)
    assert_all_runs_held(outcomes)


# --------------------------------------------------------------------------- the checks can fail


def _old_header_read(monkeypatch) -> None:
    """Put the bug of 42caf14's parent back: the live file's header read with ``open()`` inside the
    migration's transaction (``_byte_copy_unchanged``; its close dropped this process's POSIX locks on the
    file, SQLite's included). Here it happens at the migration's first reading of its schema, just after
    ``BEGIN IMMEDIATE``, where the old read was (then beside the first foreign-key check). With a writer running (``RUNNING``), it then waits (a poll
    with a deadline) until the writer committed once more: inside the migration's transaction, which only
    the dropped locks allow, so every run meets the damage and none depends on timing."""
    real = migrate_mod.take_snapshot
    done: set[int] = set()

    def take_snapshot(conn, *args, **kw):
        if conn.dialect.name == "sqlite" and id(conn) not in done:
            done.add(id(conn))
            live = conn.exec_driver_sql("PRAGMA database_list").fetchall()[0][2]
            app = RUNNING[-1] if RUNNING else None
            before = len(app.committed()) if app is not None and app.logs else None
            with open(live, "rb") as f:
                f.read(100)
            deadline = time.monotonic() + 3
            while before is not None and len(app.committed()) <= before and time.monotonic() < deadline:
                time.sleep(0.002)
        return real(conn, *args, **kw)

    monkeypatch.setattr(migrate_mod, "take_snapshot", take_snapshot)


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_the_checks_catch_the_old_bug(tmp_path, monkeypatch, mode):
    """With the old header read put back, the runs of scenario 1 (delete: a writer) and 2 (wal: readers)
    find the damage it did: a corrupt file, lost rows, or a run that died at COMMIT with a disk I/O error
    (the three outcomes seen when the bug was live); a lost migration. (Up to 6 runs; when the bug was
    live it broke every run, and here the first one.)"""
    _old_header_read(monkeypatch)
    found: list[str] = []
    for i in range(6):
        folder = tmp_path / f"run{i}"
        found = (maintain_beside(folder, mode, writers=1) if mode == "delete"
                 else maintain_beside(folder, mode, writers=0, readers=2))
        if found:
            break
    assert found, "the old bug went unnoticed in 6 runs"
    damage = ("integrity_check", "rows lost", "run failed") if mode == "delete" \
        else ("the migration is not in the file",)
    assert any(w in p for p in found for w in damage), found
