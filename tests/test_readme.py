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
