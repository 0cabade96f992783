"""Backup retention on real SQLite files: which backups ``apply_retention`` prunes and which it keeps
(pinned, the newest verified one, the newest N, the young ones, files it did not write).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from backup_cases import NOW, make_db, url_of

from maintenance_pipeline.core import backup as bk


def test_retention_keeps_pinned_newest_verified_newest_n_and_young(tmp_path):
    src = make_db(tmp_path / "app.db", rows=5)
    backups = tmp_path / "backups"

    def make(days_ago: int, **kw) -> Path:
        return bk.backup_database(url_of(src), backups, "app", now=NOW - timedelta(days=days_ago), **kw).path

    pinned_old = make(100, pinned=True, label="pre_migration")
    old_verified = make(60)
    last_good = make(50)  # the newest verified one: everything newer is unverified
    old_unverified = make(40, verify=False)
    third_newest = make(35, verify=False)
    young = make(20, verify=False)
    newest = make(1, verify=False)
    folder = backups / "app"
    stray_db = folder / "copied_by_hand.db"
    stray_db.write_bytes(src.read_bytes())
    notes = folder / "notes.txt"
    notes.write_text("keep me")

    assert bk.newest_verified(backups, "app")["path"] == str(last_good)
    removed = bk.apply_retention(backups, "app", keep_last=3, keep_days=30, now=NOW)

    assert sorted(removed) == sorted([old_verified, old_unverified])
    for p in (old_verified, old_unverified):
        assert not p.exists() and not p.with_suffix(".json").exists()
    for p in (pinned_old, last_good, third_newest, young, newest):
        assert p.exists() and p.with_suffix(".json").exists()
    assert stray_db.exists() and notes.read_text() == "keep me"
    assert [m["path"] for m in bk.list_backups(backups, "app")] == [
        str(p) for p in (newest, young, third_newest, last_good, pinned_old)
    ]
    # a second pass with nothing left to prune is a no-op
    assert bk.apply_retention(backups, "app", keep_last=3, keep_days=30, now=NOW) == []


def test_retention_keep_nothing_still_keeps_last_good(tmp_path):
    src = make_db(tmp_path / "app.db", rows=5)
    backups = tmp_path / "backups"
    older = bk.backup_database(url_of(src), backups, "app", now=NOW - timedelta(days=9)).path
    good = bk.backup_database(url_of(src), backups, "app", now=NOW - timedelta(days=8)).path
    assert bk.apply_retention(backups, "app", keep_last=0, keep_days=0, now=NOW) == [older]
    assert good.exists()
    assert bk.list_backups(tmp_path / "elsewhere", "app") == []
    assert bk.newest_verified(tmp_path / "elsewhere", "app") is None
