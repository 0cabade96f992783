"""The demo as the tests use it: its folders, its targets file (``write_config``, ``demo_target``), extra
Alembic revisions (``copy_migrations``, ``revision``), a file's hash, and the demo's own scripts
(``build_demo``, ``pg_demo`` from ``examples/``).

Plain functions and constants, imported by name like every module of ``tests/helpers``
(``from targets import write_config``); the fixtures built on them are in ``tests/conftest.py``.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MIGRATIONS = EXAMPLES / "migrations"

# The scripts of examples/ (not a package) import each other by name, as they do when run, so their folder goes
# on sys.path. pytest puts it there (``pythonpath`` in pyproject.toml); this is for the processes outside pytest
# that load these helpers (benchmarks/crash_trials.py runs the crash harness).
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import build_demo  # noqa: E402, F401 - for `from targets import build_demo`
import pg_demo  # noqa: E402, F401 - for `from targets import pg_demo`


def copy_migrations(folder: Path, extra: dict[str, str]) -> Path:
    """The demo's migrations folder copied into ``folder``, plus ``extra`` revision files (name -> text)."""
    target = folder / "migrations"
    shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in extra.items():
        (target / "versions" / name).write_text(text)
    return target


def revision(rev: str, down: str, body: str, imports: str = "") -> str:
    """The text of an Alembic revision file whose ``upgrade()`` is ``body`` (indented)."""
    return (f'"""revision {rev}\n\nRevision ID: {rev}\nRevises: {down}\n"""\nimport sqlalchemy as sa\n'
            f"from alembic import op\n{imports}\nrevision = {rev!r}\ndown_revision = {down!r}\n"
            f"branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n{body}\n\n\ndef downgrade():\n    pass\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


ORPHAN_CHECK = {"name": "no orphaned goals", "expect": 0,
                "sql": "SELECT count(*) FROM goals g WHERE g.parent_id IS NOT NULL "
                       "AND NOT EXISTS (SELECT 1 FROM goals p WHERE p.id = g.parent_id)"}


def demo_target(**overrides) -> dict:
    """The demo's target settings (paths relative to the targets file's folder)."""
    target = {"url": "sqlite:///data/goals.db", "reference": {"url": "sqlite:///data/goals_dev.db"},
              "migrations": str(MIGRATIONS), "baseline_revision": "0001", "checks": [ORPHAN_CHECK]}
    target.update(overrides)
    return {k: v for k, v in target.items() if v is not None}


def write_config(folder: Path, targets: dict | None = None, **top) -> Path:
    """A targets file in ``folder`` (default: the demo target ``goals``); returns its path."""
    data = {"backups": {"dir": "backups", "keep_last": 5, "keep_days": 0}, "reports": {"dir": "reports"},
            "alerts": {"log_file": "alerts.jsonl"}, "targets": targets or {"goals": demo_target()}}
    data.update(top)
    path = folder / "maintenance.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
