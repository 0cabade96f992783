"""The live-file rule, enforced: every job (and the backup alone, and the drift sensor's probe) runs with
each open/close of a database file recorded; none may happen while a SQLite connection of this process to
that file is open (closing any descriptor of a file drops the process's POSIX locks on it, SQLite's too)."""

from __future__ import annotations

import pytest

from targets import write_config
from live_app import set_journal_mode
from live_file_watch import watching
from maintenance_pipeline.core import backup
from maintenance_pipeline.core.run import drift
from maintenance_pipeline.core.engines.sqlite import rows as sqlite_rows
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job


def _config(demo_dir, journal_mode):
    set_journal_mode(demo_dir / "data" / "goals.db", journal_mode)
    return load_config(write_config(demo_dir))


def _assert_clean(watch):
    assert not watch.violations, "\n\n".join(watch.violations[:3])
    assert watch.opens_checked > 0  # the watch saw opens of files while connections were open: it was looking


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_no_job_touches_a_database_file_beside_its_own_connection(demo_dir, journal_mode):
    config = _config(demo_dir, journal_mode)
    with watching(demo_dir / "data" / "goals.db") as watch:
        reports = [run_job(config, "goals", "maintain_database", dry_run=True),
                   run_job(config, "goals", "maintain_database"),
                   run_job(config, "goals", "verify_database"),
                   run_job(config, "goals", "restore_database")]  # undoes the migration (its pre-migration backup)
        again = run_job(config, "goals", "maintain_database")  # and the migration again, on the restored file
        t = config.target("goals")
        backup.backup_database(t.url, config.backups.dir, "goals", label="alone")
        probe, _ = drift.probe_target(t, None, drift.ReferenceCache(), (config.root,))
    assert [r["status"] for r in reports] == ["success"] * 4, [r["error"] for r in reports]
    assert again["status"] == "success", again["error"]
    assert probe.status == "ok", probe.error
    _assert_clean(watch)


def test_the_watch_catches_the_bug_it_is_for(demo_dir, monkeypatch):
    """The first version read the live file's header with open() inside the migration's transaction."""
    config = _config(demo_dir, "delete")
    real = sqlite_rows.RowsGuard.settle

    def settle(self, *args, **kw):
        with open(self.live, "rb") as f:
            f.read(100)
        return real(self, *args, **kw)

    monkeypatch.setattr(sqlite_rows.RowsGuard, "settle", settle)
    with watching(demo_dir / "data" / "goals.db") as watch:
        run_job(config, "goals", "maintain_database")
    assert watch.violations and "goals.db while 1 SQLite connection(s)" in watch.violations[0]


def test_a_rolled_back_run_hashes_the_file_only_after_its_last_connection(demo_dir):
    # the report of a rolled-back run states the file's sha256: read once every connection to it is closed
    from targets import copy_migrations, demo_target, revision

    migrations = copy_migrations(demo_dir, {"0003_fails.py": revision(
        "0003", "0002", '    op.execute("UPDATE goals SET name = name")\n    raise RuntimeError("stop here")')})
    set_journal_mode(demo_dir / "data" / "goals.db", "wal")
    config = load_config(write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))}))
    with watching(demo_dir / "data" / "goals.db") as watch:
        report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["rolled_back"]
    assert report["after_rollback"]["sha256"]
    _assert_clean(watch)
