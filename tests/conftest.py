"""Shared fixtures: the seed scenario built fresh into tmp_path, with its own targets file."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from maintenance_pipeline.core.config import load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MIGRATIONS = EXAMPLES / "migrations"

HELPERS = ROOT / "tests" / "helpers"

# The scripts of examples/ (not a package) import each other by name, as they do when run: their folder
# goes on sys.path and they are imported as plain modules. So do the tests' shared helpers (tests/helpers:
# some run as scripts in their own processes too, and import each other the same way).
for folder in (EXAMPLES, HELPERS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import build_demo  # noqa: E402
import pg_demo  # noqa: E402, F401 - for `from conftest import pg_demo`


# figures a test wants shown at the end of every run of the suite (pytest captures what tests print):
# append lines; ``pytest_terminal_summary`` prints them after the results
FIGURES: list[str] = []


def pytest_collection_modifyitems(config, items):
    """Markers by folder (``make test-fast`` leaves out postgres, e2e, safety and scale; ``make test`` scale)."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts[0] == "pg" or "pg" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
        if parts[0] == "e2e":
            item.add_marker(pytest.mark.e2e)
        if parts[0] == "safety":
            item.add_marker(pytest.mark.safety)
        if parts[0] == "scale":
            item.add_marker(pytest.mark.scale)


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("figures")
        for text in FIGURES:
            terminalreporter.write_line(text)


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


@pytest.fixture
def demo_dir(tmp_path) -> Path:
    build_demo.build(tmp_path / "data")
    return tmp_path


@pytest.fixture
def demo_config(demo_dir):
    return load_config(write_config(demo_dir))


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh DAGSTER_HOME (telemetry off) for the test: what the command line's real runs use."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def pg():
    """A real PostgreSQL server for the session; skipped locally when PostgreSQL is missing, never under CI."""
    from pgserver import INSTALL_HINT, PgServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL binaries not found under CI=true; {INSTALL_HINT}")
        pytest.skip(f"PostgreSQL binaries not found; {INSTALL_HINT}")
    server = PgServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()
