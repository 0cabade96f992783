"""Shared fixtures and hooks: the seed scenario built fresh into tmp_path, with its own targets file; the PostgreSQL
server of the session; markers by folder; the figures printed at the end of a run.

The plain helpers these build on live in ``tests/helpers`` (``targets``: ``write_config``, ``demo_target``, ...;
``figures``: ``FIGURES``), imported by name like the others there: ``pythonpath`` in pyproject.toml puts that folder
(and ``examples/``) on sys.path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from figures import FIGURES
from maintenance_pipeline.core.config import load_config
from targets import ROOT, build_demo, write_config

# the PostgreSQL tests: tests/pg, and tests/core/engines/postgresql (the tests of that engine's own modules)
POSTGRES_FOLDERS = (("pg",), ("core", "engines", "postgresql"))


def pytest_collection_modifyitems(config, items):
    """Markers by folder (``make test-fast`` leaves out postgres, e2e, safety and scale; ``make test`` scale)."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if any(parts[:len(f)] == f for f in POSTGRES_FOLDERS) or "pg" in getattr(item, "fixturenames", ()):
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
