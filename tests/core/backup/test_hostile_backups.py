"""A backup folder is an input: a manifest naming a file outside its folder (hand-edited, or copied from another
host), a backup file that is a link, and a clock that ran ahead never make a run delete or restore the wrong
thing. The live database is bytewise what it was; the run's report says what it left alone."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from backup_cases import NOW, make_db, url_of

from targets import demo_target, sha256, write_config
from maintenance_pipeline.core import backup as bk
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import InvalidManifestError
from maintenance_pipeline.core.run.pipeline import run_job

OLD = "2020-01-01T00:00:00+00:00"


def _hostile_manifest(folder: Path, stem: str, file: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    mpath = folder / f"{stem}.json"
    mpath.write_text(json.dumps({"format": "maintenance_pipeline.backup", "version": 1, "file": file,
                                 "target": "goals", "label": "nightly", "pinned": False, "created_at": OLD,
                                 "verified": False, "sha256": None}))
    return mpath


def _config(demo_dir, **backups):
    return load_config(write_config(demo_dir, backups={"dir": "backups", "keep_last": 1, "keep_days": 0, **backups}))


def test_retention_never_follows_a_manifest_out_of_its_folder(demo_dir):
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)
    folder = demo_dir / "backups" / "goals"
    outside = _hostile_manifest(folder, "goals_nightly_20200101_000000", "../../data/goals.db")
    other_stem = _hostile_manifest(folder, "goals_nightly_20200101_000001", "someone_elses.db")
    (folder / "someone_elses.db").write_bytes(b"someone else's file")
    linked = _hostile_manifest(folder, "goals_nightly_20200101_000003", "goals_nightly_20200101_000003.db")
    os.symlink(db, folder / "goals_nightly_20200101_000003.db")

    for _ in range(2):  # the second run's retention has an older backup of its own to remove
        report = run_job(_config(demo_dir), "goals", "verify_database")
        assert report["backup"]["verified"], report["error"]

    assert sha256(db) == before and db.stat().st_size > 0
    assert (folder / "someone_elses.db").read_bytes() == b"someone else's file"
    assert all(p.exists() for p in (outside, other_stem, linked))
    said = " ".join(report["backup_problems"])
    assert "'../../data/goals.db' is not a name in the manifest's own folder" in said
    assert "is not goals_nightly_20200101_000001.<ext>" in said
    assert "goals_nightly_20200101_000003.db is a symbolic link" in said
    assert len(report["retention_removed"]) == 1  # the first run's own backup, by keep_last = 1
    md = Path(report["report_paths"]["markdown"]).read_text()
    assert "Left alone in the backup folder" in md


def test_a_restore_refuses_a_manifest_that_points_outside_its_folder(demo_dir):
    db = demo_dir / "data" / "goals.db"
    mpath = _hostile_manifest(demo_dir / "backups" / "goals", "goals_manual_20200101_000000", "../../data/goals.db")
    before = sha256(db)
    with pytest.raises(InvalidManifestError, match="left alone"):
        bk.read_manifest(mpath)
    report = run_job(_config(demo_dir), "goals", "restore_database", restore_backup=str(mpath))
    assert report["status"] == "failed" and "is invalid" in report["error"]
    assert sha256(db) == before


def test_a_clock_that_ran_ahead_neither_removes_the_runs_backup_nor_picks_the_restore(demo_dir):
    db = demo_dir / "data" / "goals.db"
    ahead = datetime(2027, 6, 1, tzinfo=timezone.utc)
    future = [bk.backup_database(url_of(db), demo_dir / "backups", "goals", label="nightly",
                                 now=ahead + timedelta(hours=i)).path for i in range(3)]
    config = load_config(write_config(demo_dir, backups={"dir": "backups", "keep_last": 3, "keep_days": 0}))

    report = run_job(config, "goals", "verify_database")  # fails on the demo's drift, after its backup
    assert report["failed_step"] == "verify" and report["backup"]["verified"], report["error"]
    own = Path(report["backup"]["path"])
    assert own.exists() and str(own) not in report["retention_removed"]
    assert str(future[0]) in report["retention_removed"]  # the oldest by sequence, whatever its date says
    newest = bk.list_backups(demo_dir / "backups", "goals")[0]
    assert newest["path"] == str(own) and not newest["future"]
    assert sum("later than this host's clock" in p for p in report["backup_problems"]) == 2

    # a default restore undoes the newest run that changed the database: by sequence, never by a date from 2027
    for p in future[1:]:  # (the first went to retention above)
        bk.annotate(p, label="pre-migration", changed_database=True)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    path, manifest = bk.backup_to_restore("goals", demo_dir / "backups", demo_dir)
    assert str(path) == report["backup"]["path"] and path not in future


def test_sequence_orders_backups_whatever_their_dates(tmp_path):
    src = make_db(tmp_path / "app.db", rows=5)
    made = [bk.backup_database(url_of(src), tmp_path / "b", "app", now=NOW + timedelta(days=d)).path
            for d in (400, 0, -400)]
    listed = [Path(m["path"]) for m in bk.list_backups(tmp_path / "b", "app")]
    assert listed == made[::-1]
    assert [m["seq"] for m in bk.list_backups(tmp_path / "b", "app")] == [3, 2, 1]
