"""After a change, verify reads the live database's data (row counts, ``integrity_check``,
``foreign_key_check``, the targets file's checks) from a consistent copy when the live file is in
rollback-journal mode: a read transaction there holds SQLite's SHARED lock, and no application writer can
COMMIT until it ends. The copy is taken under that lock at ``cp`` speed; then the live file is free. In WAL
mode readers never block writers: verify reads the live file, no copy is made.

What ran where is seen from outside the product: Python's audit hook reports every ``sqlite3.connect``
(the file and the connection made), and a trace callback on each connection records its statements. The
steps are the pipeline's own (``start``, ``step_backup`` ... ``step_verify``, ``finish``); only what
``step_verify`` runs is recorded.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from targets import build_demo, write_config
from live_app import LiveApp, set_journal_mode
from live_file_watch import _db_path
from maintenance_pipeline.core import backup as backup_mod
from maintenance_pipeline.core.shared.leftovers import leftovers
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.engines import engine_for
from maintenance_pipeline.core.run import pipeline

# the statements of verify that read every row of the database (what a copy is for)
HEAVY = {"integrity_check": re.compile(r"PRAGMA\s+integrity_check", re.I),
         "foreign_key_check": re.compile(r"PRAGMA\s+foreign_key_check", re.I),
         "row count": re.compile(r"SELECT\s+count\(\*\)\s+FROM\s+\"?goals\"?\s*$", re.I),
         "user check": re.compile(r"NOT EXISTS \(SELECT 1 FROM goals p", re.I)}


class Statements:
    """Every statement run by a SQLite connection this process opens while ``active``, with the file the
    connection opened (its real path): ``seen`` is a list of (path, sql); ``on(path, sql)`` is called for
    each statement, on the connection's thread, before the statement runs. ``sqlite3.connect`` is wrapped for
    the block (the audit hook's ``sqlite3.connect/handle`` event comes before the connection can take a trace
    callback), and each connection it makes gets a trace callback: the connections are SQLite's own."""

    def __init__(self, on=None):
        self.seen: list[tuple[str, str]] = []
        self.on = on
        self.active = True

    def connect(self, real):
        def connect(database, *args, **kw):
            conn = real(database, *args, **kw)
            path = _db_path(database)
            if path is not None:
                conn.set_trace_callback(lambda sql: self._statement(path, sql))
            return conn

        return connect

    def _statement(self, path: str, sql: str) -> None:
        if not self.active:
            return
        self.seen.append((path, sql))
        if self.on is not None:
            self.on(path, sql)

    def heavy(self, path: str | None = None) -> dict[str, list[str]]:
        """{kind: [paths]} of the heavy statements seen (on ``path`` only, when given)."""
        out: dict[str, list[str]] = {}
        for p, sql in self.seen:
            for kind, rx in HEAVY.items():
                if rx.search(sql) and (path is None or p == path):
                    out.setdefault(kind, []).append(p)
        return out


@contextmanager
def recording(on=None):
    """Record the statements of the connections the block opens."""
    s = Statements(on)
    real = sqlite3.connect
    sqlite3.connect = s.connect(real)
    try:
        yield s
    finally:
        sqlite3.connect = real
        s.active = False


def _demo(folder: Path, mode: str):
    build_demo.build(folder / "data")
    db = folder / "data" / "goals.db"
    set_journal_mode(db, mode)
    return load_config(write_config(folder)), db


def _migrated(config):
    """A maintain run up to its verify step (the pipeline's own steps)."""
    state = pipeline.start(config, "goals", "maintain_database")
    pipeline.step_backup(state)
    pipeline.step_diff(state)
    pipeline.step_migrate(state)
    assert state.migration.applied
    return state


def _check(state, name: str):
    return next(c for c in state.verification.checks if c.name == name)


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_after_a_migration_in_rollback_journal_mode_verify_reads_a_copy(tmp_path):
    config, db = _demo(tmp_path, "delete")
    state = _migrated(config)
    live = os.path.realpath(db)
    folder = Path(state.backup.path).parent
    with recording() as seen:
        pipeline.step_verify(state)
    report = pipeline.finish(state)
    assert report["status"] == "success", report["error"]

    # nothing that reads every row ran on the live file; all of it ran on one copy in the backup folder
    assert seen.heavy(live) == {}, seen.heavy(live)
    heavy = seen.heavy()
    assert set(heavy) == set(HEAVY), heavy
    copies = {p for paths in heavy.values() for p in paths if Path(p).parent == Path(os.path.realpath(folder))
              and Path(p).name.startswith(".") and p.endswith(".tmp")}
    assert len(copies) == 1 and set(heavy["integrity_check"]) <= copies | {os.path.realpath(state.backup.path)}, heavy
    assert copies <= set(heavy["integrity_check"]) and copies <= set(heavy["user check"])
    # what the live file saw during verify: the copy's read transaction (and the file check before it)
    on_live = [sql for p, sql in seen.seen if p == live]
    assert on_live and all(re.match(r"(BEGIN|ROLLBACK|SELECT count\(\*\) FROM sqlite_master|PRAGMA schema_version)",
                                    sql) for sql in on_live), on_live

    # the copy is gone; the report says what was read, and the counts are the migrated database's
    assert not any(Path(c).exists() for c in copies) and _hidden(folder) == []
    assert "consistent copy" in _check(state, "integrity").detail and "after" in _check(state, "integrity").detail
    assert _check(state, "integrity").passed and _check(state, "foreign_keys").passed
    assert "program_day_templates" in state.verification.tables_after
    assert state.verification.measures["integrity_seconds"] >= 0


def test_in_wal_mode_verify_reads_the_live_file_and_copies_nothing(tmp_path):
    config, db = _demo(tmp_path, "wal")
    state = _migrated(config)
    live = os.path.realpath(db)
    folder = Path(state.backup.path).parent
    with recording() as seen:
        pipeline.step_verify(state)
    assert pipeline.finish(state)["status"] == "success"
    heavy = seen.heavy(live)
    assert set(heavy) == set(HEAVY), heavy  # readers do not block writers in WAL mode: the live file is read
    assert not any(p.endswith(".tmp") for p, _ in seen.seen), sorted({p for p, _ in seen.seen})
    assert _hidden(folder) == []
    assert "copy" not in _check(state, "integrity").detail


def test_a_restore_is_verified_on_a_copy_too(tmp_path):
    config, db = _demo(tmp_path, "delete")
    assert pipeline.run_job(config, "goals", "maintain_database")["status"] == "success"
    state = pipeline.start(config, "goals", "restore_database")
    pipeline.step_backup(state)
    pipeline.step_restore(state)
    with recording() as seen:
        pipeline.step_verify(state)
    assert pipeline.finish(state)["status"] == "success"
    assert seen.heavy(os.path.realpath(db)) == {}
    assert "consistent copy" in _check(state, "integrity").detail and "restore" in _check(state, "integrity").detail


def test_the_copy_is_held_while_in_use_and_a_killed_runs_copy_is_cleaned(tmp_path):
    config, db = _demo(tmp_path, "delete")
    url = config.target("goals").url
    first = backup_mod.backup_database(url, config.backups.dir, "goals", label="first")
    folder = Path(first.path).parent
    engine = engine_for(url)
    with engine.reading_copy(url, folder) as source:
        assert source.copied
        copy = engine.file(source.url)
        assert copy.exists() and copy.parent == folder
        assert copy in leftovers(folder)  # what the next backup removes once no run holds the folder
        beside = backup_mod.backup_database(url, config.backups.dir, "goals", label="beside")
        assert copy.exists() and beside.cleaned == []  # this run holds the folder: not a leftover
    assert not copy.exists() and _hidden(folder) == []

    # a run killed while its copy exists: the next backup removes the copy and says so
    code = ("import os, sys; from pathlib import Path; from maintenance_pipeline.core.engines import engine_for\n"
            "url, folder = sys.argv[1], Path(sys.argv[2]); engine = engine_for(url)\n"
            "with engine.reading_copy(url, folder) as s:\n"
            "    print(engine.file(s.url), flush=True); os.kill(os.getpid(), 9)\n")
    p = subprocess.run([sys.executable, "-c", code, url, str(folder)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -9, p.stderr
    left = Path(p.stdout.strip())
    assert left.exists() and left.parent == folder
    after = backup_mod.backup_database(url, config.backups.dir, "goals", label="after")
    assert str(left) in after.cleaned and not left.exists()


def test_without_a_place_for_the_copy_the_live_file_is_read_and_the_check_says_so(tmp_path):
    config, db = _demo(tmp_path, "delete")
    url = config.target("goals").url
    engine = engine_for(url)
    not_a_folder = tmp_path / "not_a_folder"
    not_a_folder.write_text("a file where the backup folder should be")
    with engine.reading_copy(url, not_a_folder) as source:
        assert source.url == url and not source.copied and "cannot write a copy" in source.note, source

    from maintenance_pipeline.core.run.commands import reference_for
    from maintenance_pipeline.core.verify.checks import verify_target

    t = config.target("goals")
    with recording() as seen:  # no backup (the core's API allows it): no folder to copy into
        result = verify_target(t, reference_for(config, t), backup_path=None, backup_verified=False, mode="maintain")
    integrity = next(c for c in result.checks if c.name == "integrity")
    assert integrity.passed and "read on the live database" in integrity.detail \
        and "no backup folder" in integrity.detail, integrity.detail
    assert "integrity_check" in seen.heavy(os.path.realpath(db))


def test_the_application_commits_while_verify_reads_every_row(tmp_path):
    """A real writer process on the rollback-journal file: at the start of each of verify's reads of every
    row (integrity_check, foreign_key_check, the row counts, the user check), this test waits for the writer
    to commit 3 more rows. Reading the live file, verify would hold its SHARED lock there (its read
    transaction is open from its first statement), no COMMIT could get through, and the wait would run out."""
    config, db = _demo(tmp_path, "delete")
    state = _migrated(config)
    with LiveApp(db, tmp_path / "app", writers=1) as app:
        app.wait_for_commits(3)
        committed: dict[str, int | str] = {}

        def on(path: str, sql: str) -> None:
            for kind, rx in HEAVY.items():
                if rx.search(sql) and kind not in committed:
                    before = len(app.committed())
                    try:
                        app.wait_for_commits(before + 3, timeout=15)
                    except AssertionError as e:
                        committed[kind] = str(e)
                    else:
                        committed[kind] = len(app.committed()) - before

        with recording(on) as seen:
            pipeline.step_verify(state)
        app.stop()
    assert pipeline.finish(state)["status"] == "success"
    assert set(committed) == set(HEAVY), (committed, seen.seen)
    assert all(isinstance(n, int) and n >= 3 for n in committed.values()), committed
    assert app.non_busy_errors() == [], app.errors()


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_a_verify_run_still_reads_integrity_off_its_backup(tmp_path, mode):
    # verify_database changed nothing: its integrity and foreign keys come from the run's backup, as before
    config, db = _demo(tmp_path, mode)
    assert pipeline.run_job(config, "goals", "maintain_database")["status"] == "success"
    with recording() as seen:
        report = pipeline.run_job(config, "goals", "verify_database")
    assert report["status"] == "success", report["error"]
    assert "integrity_check" not in seen.heavy(os.path.realpath(db))
    assert not any(".verify." in Path(p).name for p, _ in seen.seen)
