"""What a killed run leaves in a backup folder is removed by the next backup, and said in its result;
never while another backup or migration of the target holds the folder (``core/leftovers.py``)."""

from __future__ import annotations

from maintenance_pipeline.core.backup import backup_database, list_backups
from maintenance_pipeline.core.shared.leftovers import FolderHold


def _left_by_a_killed_run(folder):
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / ".goals_pre-migration_20260101_000000.4242.deadbeef.tmp",  # killed mid-copy
             folder / ".goals_pre-migration_20260101_000000.4242.deadbeef.tmp-journal",
             folder / ".goals_pre-migration_20260101_000000.begin.4343.cafe0000.tmp",  # killed holding a copy at BEGIN
             folder / ".goals_nightly_20260101_000000.json.4444.00ff00ff.tmp",  # killed writing a manifest
             folder / "goals_pre-migration_20260101_000001.db"]  # killed between the final name and the manifest
    for f in files:
        f.write_bytes(b"x" * 1000)
    staging = folder / ".goals_nightly_20260101_000002.abc123.tmp"  # a PostgreSQL staging folder
    staging.mkdir()
    (staging / "dump").write_bytes(b"y")
    return files + [staging]


def test_the_next_backup_removes_what_a_killed_run_left_and_says_so(demo_dir):
    url = f"sqlite:///{demo_dir / 'data' / 'goals.db'}"
    kept = backup_database(url, demo_dir / "backups", "goals", label="nightly")
    left = _left_by_a_killed_run(demo_dir / "backups" / "goals")
    mine = demo_dir / "backups" / "goals" / "goals_by_hand.db"  # not a name of ours: never touched
    mine.write_bytes(b"z")
    result = backup_database(url, demo_dir / "backups", "goals", label="nightly")
    assert sorted(result.cleaned) == sorted(str(p) for p in left)
    assert not any(p.exists() for p in left)
    assert mine.exists() and kept.path.exists() and result.path.exists()
    assert [m["path"] for m in list_backups(demo_dir / "backups", "goals")] == [str(result.path), str(kept.path)]
    assert result.to_dict()["cleaned"] == result.cleaned


def test_nothing_is_removed_while_another_run_holds_the_folder(demo_dir):
    url = f"sqlite:///{demo_dir / 'data' / 'goals.db'}"
    folder = demo_dir / "backups" / "goals"
    left = _left_by_a_killed_run(folder)
    other = FolderHold(folder)  # e.g. a migration holding its copy at BEGIN there
    other.acquire(clean=False)
    try:
        result = backup_database(url, demo_dir / "backups", "goals", label="nightly")
    finally:
        other.release()
    assert result.cleaned == [] and all(p.exists() for p in left)
    assert sorted(backup_database(url, demo_dir / "backups", "goals", label="nightly").cleaned) == \
        sorted(str(p) for p in left)
