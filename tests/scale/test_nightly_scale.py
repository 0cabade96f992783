"""The nightly at scale (``make test-scale``; CI runs it after ``make test``): 20 SQLite and 2 PostgreSQL
targets, the instance on PostgreSQL with the production instance settings, a real daemon and webserver, the
nightly schedule firing twice in a row. The work is ``benchmarks/nightly_scale.py`` (its figures are in
BENCHMARKS.md); this test asserts what must hold."""

from __future__ import annotations

import sys

import pytest
import yaml

from conftest import FIGURES, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import nightly_scale  # noqa: E402

pytestmark = pytest.mark.timeout(1800)


def test_the_nightly_over_22_databases(pg, tmp_path):
    from pgserver import SUPERPASS

    result = nightly_scale.run_nightly(tmp_path, pg, password=SUPERPASS, sqlite_targets=20, pg_targets=2, ticks=2)
    FIGURES.append(nightly_scale.describe(result))
    assert len(result["ticks"]) == 2 and len(result["runs"]) == 44  # one run per target per tick
    assert sorted(r.tags["database"] for r in result["runs"]) == sorted(
        [f"db{i:02d}" for i in range(1, 21)] * 2 + ["pg1", "pg2"] * 2)
    assert result["failed"] == []
    assert result["overlaps"] == []  # the per-database run limit kept each database's two runs apart
    limit = yaml.safe_load(nightly_scale.PRODUCTION_INSTANCE.read_text())["concurrency"]["runs"]["max_concurrent_runs"]
    assert 2 <= result["peak_in_progress"] <= limit  # runs did run side by side, never more than allowed
    catalog = {"/".join(a["assetKey"]["path"]): a for a in result["catalog"]}
    assert sorted(catalog) == sorted([f"databases/db{i:02d}" for i in range(1, 21)] + ["databases/pg1",
                                                                                       "databases/pg2"])
    assert all(len(a["assetChecksOrError"]["checks"]) == 7 for a in catalog.values())
    assert result["checks_not_passed"] == []
