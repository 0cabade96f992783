"""The nightly at scale (``make test-scale``; CI runs it after ``make test``): 20 SQLite and 2 PostgreSQL
targets, the instance on PostgreSQL with the production instance settings, a real daemon and webserver, the
nightly schedule's tick and a second run of every database launched while the nightly's runs are queued, then the
restore drill's schedule (one drill per database, queued behind its verifications).
The work is ``benchmarks/nightly_scale.py`` (its figures are in BENCHMARKS.md); this test asserts what must
hold."""

from __future__ import annotations

import sys

import pytest
import yaml

from figures import FIGURES

from targets import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import nightly_scale  # noqa: E402

pytestmark = pytest.mark.timeout(1800)


def test_the_nightly_over_22_databases(pg, tmp_path):
    from pgserver import SUPERPASS

    result = nightly_scale.run_nightly(tmp_path, pg, password=SUPERPASS, sqlite_targets=20, pg_targets=2)
    cost = nightly_scale.verify_cost_per_gib(tmp_path)  # what a night costs per GiB, beside the per-target cost
    FIGURES.append(nightly_scale.describe(result) + "\n" + nightly_scale.describe_cost(result, cost))
    assert cost["status"] == "success", cost["error"]
    names = [f"db{i:02d}" for i in range(1, 21)] + ["pg1", "pg2"]
    nightly = [r for r in result["runs"] if r.tags["trigger"] == "schedule"]
    assert len(result["ticks"]) == 1 and sorted(r.tags["database"] for r in nightly) == names  # one per target
    assert sorted(r.tags["database"] for r in result["runs"]) == sorted(names * 2)  # and the second run of each
    assert result["failed"] == []
    # the restore drill: one per target from its schedule, each restoring and checking a backup, RPO and RTO measured
    assert sorted(r.tags["database"] for r in result["drill_runs"]) == names
    assert len(result["rto_seconds"]) == len(result["rpo_hours"]) == len(names)
    # the per-database run limit had work to do (two runs of a database queued at once) and kept them apart
    assert result["queued_together"] >= 1
    assert result["overlaps"] == []
    limit = yaml.safe_load(nightly_scale.PRODUCTION_INSTANCE.read_text())["concurrency"]["runs"]["max_concurrent_runs"]
    assert result["peak_in_progress"] <= limit
    catalog = {"/".join(a["assetKey"]["path"]): a for a in result["catalog"]}
    assert sorted(catalog) == sorted(f"databases/{n}" for n in names)
    assert all(len(a["assetChecksOrError"]["checks"]) == 7 for a in catalog.values())
    assert result["checks_not_passed"] == []
