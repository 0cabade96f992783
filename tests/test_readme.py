"""The README's core-API example runs as written (in a scratch copy of the project layout)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from targets import ROOT, build_demo, demo_target, write_config


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
    # the instance the block writes: no telemetry, no first-visit newsletter dialog (the run above loaded it)
    settings = yaml.safe_load((home / "maint" / ".dagster_home" / "dagster.yaml").read_text())
    assert settings == {"telemetry": {"enabled": False}, "nux": {"enabled": False}}


def test_readme_says_what_additive_does_with_a_destructive_difference():
    readme = (ROOT / "README.md").read_text()
    five = re.search(r"## Your own database in five minutes(.*?)\n## ", readme, re.S).group(1)
    assert "refuses the **whole**\nrun: nothing is applied, not even the additive changes" in five
    assert "maintenance-pipeline check app --align full --sql" in five and "set `align: full`" in five
    assert "ignore: [index customers.ix_name]" in five


def test_readme_baseline_base_example_runs_every_revision(tmp_path):
    """The README's pre-Alembic example: a database made before the first revision, ``baseline_revision: base``;
    the run stamps it at base and runs every revision."""
    import sqlite3

    from targets import revision
    from maintenance_pipeline.core.config import load_config
    from maintenance_pipeline.core.run.pipeline import run_job

    readme = (ROOT / "README.md").read_text()
    example = re.search(r"\*\*An app with Alembic revisions\.\*\*.*?```yaml\n(.*?)```", readme, re.S).group(1)
    assert "baseline_revision: base" in example
    maint, versions = tmp_path / "maint", tmp_path / "myapp" / "migrations" / "versions"
    maint.mkdir()
    versions.mkdir(parents=True)
    (versions / "0001_add_b.py").write_text(revision("0001", None, '    op.add_column("t", sa.Column("b", sa.Integer()))'))
    (versions / "0002_add_c.py").write_text(revision("0002", "0001", '    op.add_column("t", sa.Column("c", sa.Text()))'))
    for name, sql in (("app.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT); INSERT INTO t (a) VALUES ('x');"),
                      ("app_dev.db", "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c TEXT);")):
        con = sqlite3.connect(maint / name)
        con.executescript(sql)
        con.close()
    (maint / "maintenance.yaml").write_text(example)
    config = load_config(maint / "maintenance.yaml")
    report = run_job(config, "app", "maintain_database")
    assert report["status"] == "success", report.get("error")
    con = sqlite3.connect(maint / "app.db")
    assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
    assert [r[1] for r in con.execute("PRAGMA table_info(t)")] == ["id", "a", "b", "c"]
    assert con.execute("SELECT a FROM t").fetchall() == [("x",)]
    con.close()
    # without it, the error says what to write
    con = sqlite3.connect(maint / "fresh.db")
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);")
    con.close()
    (maint / "maintenance.yaml").write_text(example.replace("app.db", "fresh.db").replace(
        "    baseline_revision: base", "    # baseline_revision: base"))
    report = run_job(load_config(maint / "maintenance.yaml"), "app", "maintain_database")
    assert report["status"] == "failed" and "(base: it predates the first revision, and every revision runs)" in \
        report["error"]
