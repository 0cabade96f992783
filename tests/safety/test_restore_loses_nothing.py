"""A restore under load: every commit of the application is in the restored database or in the restore's safety
copy, never in neither (rollback journal and WAL). The safety copy is taken under the restore's own write lock,
so no commit falls between the two (before, 14 of 397 and 15 of 423 commits made every few milliseconds were
in neither: committed between the safety backup step and the restore step)."""

from __future__ import annotations

from pathlib import Path

import pytest

from live_app import LiveApp, ids, integrity
from .test_live_app import AFTER, BEFORE, app_problems, fresh_demo, run
from maintenance_pipeline.core import backup as backup_mod


@pytest.mark.parametrize("mode", ["delete", "wal"])
def test_no_commit_is_in_neither_the_restored_database_nor_the_safety_copy(tmp_path, mode):
    config, db, _ = fresh_demo(tmp_path, mode)
    t = config.target("goals")
    with LiveApp(db, tmp_path / "app", writers=2, short=True, interval=0.005) as app:
        app.wait_for_commits(BEFORE)
        chosen = backup_mod.backup_database(t.url, config.backups.dir, "goals", label="chosen")
        app.wait_for_commits(len(app.committed()) + BEFORE)
        at_start = len(app.committed())
        report = run(config, "restore_database", restore_backup=str(chosen.path))
        during = len(app.committed()) - at_start
        app.wait_for_commits(len(app.committed()) + AFTER)
        app.stop()
    assert report["status"] == "success", report["error"]
    assert integrity(db) == "ok"
    safety = Path(report["backup"]["path"])
    assert report["backup"]["label"] == "pre-restore" and integrity(safety) == "ok"
    committed = app.committed()
    lost = committed - ids(db) - ids(safety)
    assert not lost, f"{len(lost)} of {len(committed)} commits are in neither the database nor the safety copy"
    assert during > 0, "the application committed nothing while the restore ran (the test proves nothing)"
    assert not app_problems(app, writers=2, readers=0)
