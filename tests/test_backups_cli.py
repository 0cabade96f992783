"""Pinned backups: a maintain run that changed nothing leaves its backup to retention; the owner lists a
target's backups and pins or unpins one from the command line (``python -m maintenance_pipeline backups``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from targets import write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core import backup
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import BackupError
from maintenance_pipeline.core.run.pipeline import run_job


def manifest(report: dict) -> dict:
    return json.loads(Path(report["backup"]["path"]).with_suffix(".json").read_text())


def test_only_a_maintain_run_that_changes_something_keeps_its_backup_pinned(demo_config):
    dry = run_job(demo_config, "goals", "maintain_database", dry_run=True)
    changed = run_job(demo_config, "goals", "maintain_database")
    nothing = run_job(demo_config, "goals", "maintain_database")
    assert [r["status"] for r in (dry, changed, nothing)] == ["success"] * 3
    assert changed["applied"] and not nothing["applied"]
    assert manifest(changed)["pinned"] and changed["backup"]["pinned"]
    for report in (dry, nothing):  # the database was not changed: nothing to go back to
        assert manifest(report)["pinned"] is False and report["backup"]["pinned"] is False
        assert manifest(report)["label"] == "pre-migration"

    # retention now removes the unpinned ones first and never the pinned one
    config = load_config(write_config(demo_config.path.parent, backups={"dir": "backups", "keep_last": 1,
                                                                       "keep_days": 0}))
    run_job(config, "goals", "verify_database")
    left = {m["path"] for m in backup.list_backups(config.backups.dir, "goals")}
    assert changed["backup"]["path"] in left
    assert dry["backup"]["path"] not in left and nothing["backup"]["path"] not in left


def test_list_pin_and_unpin_from_the_command_line(demo_config, monkeypatch, capsys):
    monkeypatch.setenv("MAINTENANCE_CONFIG", str(demo_config.path))
    assert cli.main(["backups", "list", "goals"]) == 0
    assert "no backups of goals" in capsys.readouterr().out

    nightly = run_job(demo_config, "goals", "verify_database", trigger="schedule")["backup"]["path"]
    assert cli.main(["backups", "list", "goals"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["created", "(UTC)"] and len(out) == 2
    assert out[1].split()[1:4] == ["nightly", "no", "yes"] and out[1].endswith(nightly)

    assert cli.main(["backups", "pin", nightly]) == 0
    assert capsys.readouterr().out.strip() == f"pinned: {nightly}"
    assert json.loads(Path(nightly).with_suffix(".json").read_text())["pinned"] is True
    cli.main(["backups", "list", "goals"])
    assert capsys.readouterr().out.splitlines()[1].split()[2] == "yes"
    assert cli.main(["backups", "unpin", str(Path(nightly).with_suffix(".json"))]) == 0  # the manifest works too
    assert json.loads(Path(nightly).with_suffix(".json").read_text())["pinned"] is False
    # the backup itself is untouched: its recorded checksum still holds
    m = backup.read_manifest(nightly)
    assert backup.sha256_file(Path(nightly)) == m["sha256"]


def test_bad_input_is_one_clear_line(demo_config, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MAINTENANCE_CONFIG", str(demo_config.path))
    assert cli.main(["backups", "list", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'nope'" in err and "goals" in err and len(err.strip().splitlines()) == 1

    stray = tmp_path / "stray.db"
    stray.write_bytes(b"not ours")
    assert cli.main(["backups", "pin", str(stray)]) == 2
    assert "has no manifest" in capsys.readouterr().err
    assert not stray.with_suffix(".json").exists()

    path = run_job(demo_config, "goals", "verify_database")["backup"]["path"]
    Path(path).unlink()
    with pytest.raises(BackupError, match="does not exist"):
        backup.set_pinned(path, True)
