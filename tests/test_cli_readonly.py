"""Read-only commands for people and CI, on the demo before and after a maintain run: ``check`` (exit codes, four
formats, ``--sql``), ``diff`` (a target, two URLs), ``status`` and ``history``; none of them writes the database
or takes a backup."""

from __future__ import annotations

import json

from targets import sha256, write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job


def _cli(capsys, *args) -> tuple[int, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_check_diff_status_history_before_and_after_maintain(demo_dir, capsys):
    path = str(write_config(demo_dir))
    db = demo_dir / "data" / "goals.db"
    before = sha256(db)

    code, text = _cli(capsys, "--config", path, "check")
    assert code == 1 and text.startswith("goals: 7 changes (1 destructive)") and "1 pending revision(s) (0002)" in text
    code, text = _cli(capsys, "--config", path, "check", "goals", "--format", "json")
    data = json.loads(text)
    assert code == 1 and data[0]["in_sync"] is False and len(data[0]["changes"]) == 7
    assert data[0]["pending_revisions"] == ["0002"] and all(c["passed"] for c in data[0]["checks"])
    code, text = _cli(capsys, "--config", path, "check", "--format", "github")
    lines = text.strip().splitlines()
    assert code == 1 and sum(x.startswith("::error title=schema drift (goals)::") for x in lines) == 7
    assert "::warning title=pending revision (goals)::Alembic revision 0002 is not applied" in lines
    code, text = _cli(capsys, "--config", path, "check", "--format", "markdown", "--sql")
    assert code == 1 and "### ❌ `goals`" in text
    assert "| the reference has table program_day_templates (3 columns), which the database lacks | `add_table` | no |" \
        in text
    assert "```sql" in text and "CREATE TABLE program_day_templates" in text
    code, text = _cli(capsys, "--config", path, "diff", "goals")
    assert code == 1 and "the reference has column goals.completed_at (DATETIME NULL), which the database lacks (fix: " \
        "add_column)" in text
    dev = f"sqlite:///{demo_dir / 'data' / 'goals_dev.db'}"
    code, text = _cli(capsys, "diff", dev, dev)
    assert code == 0 and text.strip() == "diff: in sync"
    code, text = _cli(capsys, "--config", path, "status")
    row = text.splitlines()[1].split()
    assert code == 1 and row[:7] == ["goals", "SQLite", "behind", "by", "1", "7", "difference(s)"]
    code, text = _cli(capsys, "--config", path, "history", "goals")
    assert code == 0 and text.strip() == f"no runs of goals in {demo_dir / 'reports' / 'goals'}"
    code, text = _cli(capsys, "--config", path, "check", "nope")
    assert code == 2 and "nope" in text
    # read-only: the file is bytewise what it was, and no backup was taken
    assert sha256(db) == before and not (demo_dir / "backups").exists()

    assert run_job(load_config(path), "goals", "maintain_database")["status"] == "success"
    code, text = _cli(capsys, "--config", path, "check")
    assert code == 0 and text.strip() == "goals: in sync"
    code, text = _cli(capsys, "--config", path, "check", "--format", "github")
    assert code == 0 and text.strip() == "::notice title=in sync (goals)::goals matches its reference"
    code, text = _cli(capsys, "--config", path, "diff", "goals")
    assert code == 0
    code, text = _cli(capsys, "--config", path, "status")
    row = text.splitlines()[1].split()
    assert row[:5] == ["goals", "SQLite", "head", "in", "sync"] and "maintain_database" in row and row[-1] == "h"
    code, text = _cli(capsys, "--config", path, "history", "goals")
    lines = text.strip().splitlines()
    assert len(lines) == 2 and lines[1].split()[1:6] == ["maintain_database", "manual", "success", "2",
                                                         "pre-migration"]
    # a dry run is told apart from a run that changed the database
    assert run_job(load_config(path), "goals", "maintain_database", dry_run=True)["status"] == "success"
    code, text = _cli(capsys, "--config", path, "history", "goals")
    statuses = sorted(line.split()[3] for line in text.strip().splitlines()[1:])
    assert code == 0 and statuses == ["dry-run", "success"]
