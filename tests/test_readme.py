"""The README's core-API example runs as written (in a scratch copy of the project layout)."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT, build_demo, demo_target, write_config


def test_readme_core_example_runs(tmp_path):
    build_demo.build(tmp_path / "examples" / "data")
    write_config(tmp_path, {"goals": demo_target(url="sqlite:///examples/data/goals.db",
                                                 reference={"url": "sqlite:///examples/data/goals_dev.db"})})
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"## The core without Dagster.*?```python\n(.*?)```", readme, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "add_column goals (completed_at" not in proc.stdout  # describe() names table.column
    assert "add_column goals.completed_at" in proc.stdout and "destructive" in proc.stdout
    assert "schema_matches_reference" in proc.stdout
    assert "dagster" not in proc.stderr.lower()


def test_core_imports_neither_dagster_nor_the_targets_file(tmp_path):
    code = ("import sys, maintenance_pipeline.core, maintenance_pipeline.core.run.pipeline\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr  # no maintenance.yaml in tmp_path: not read at import
    assert proc.stdout.strip() == "[]"


def test_readme_five_minutes_block_runs_as_written(tmp_path):
    """The "your own database in five minutes" commands, in a shell, with HOME in a scratch folder holding
    two small SQLite files as app.db / app_dev.db; the installed console script first on PATH."""
    import os
    import sqlite3
    from pathlib import Path

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Your own database in five minutes.*?```sh\n(.*?)```", readme, re.S).group(1)
    home = tmp_path / "home"
    (home / "maint").mkdir(parents=True)
    for name, sql in (("app.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t (a) VALUES ('x');"),
                      ("app_dev.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER);")):
        con = sqlite3.connect(home / "maint" / name)
        con.executescript(sql)
        con.close()
    script = block  # as written, as a person pastes it (check exits 1 while something differs)
    env = {**os.environ, "HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]  # the last command, status, succeeded
    assert "error" not in proc.stderr.lower(), proc.stderr[-2000:]
    assert "app: 1 change (0 destructive): 1 add_column" in proc.stdout
    assert "ALTER TABLE t ADD COLUMN b INTEGER" in proc.stdout
    assert "maintain_database app: success" in proc.stdout
    status = proc.stdout.strip().splitlines()[-1].split()
    assert status[:4] == ["app", "SQLite", "-", "in"]
    con = sqlite3.connect(home / "maint" / "app.db")
    assert [r[1] for r in con.execute("PRAGMA table_info(t)")] == ["id", "a", "b"]
