"""The restore drill on PostgreSQL, against the ``pg`` fixture's real server: the newest dump restored into a scratch
database beside the target, checked there (row counts and fingerprint against the manifest, the user check), the
pending migration rehearsed on it, RPO and RTO; the scratch database dropped after; the target unchanged. Without
CREATEDB the drill fails in one line saying so; a pending revision that fails on the data fails the rehearsal."""

from __future__ import annotations

import json
import uuid

import pytest

pytest.importorskip("maintenance_pipeline.core.engines.postgresql.backup")

from targets import ORPHAN_CHECK, ROOT, write_config  # noqa: E402
from pg_migrate_helpers import copy_migrations, db_state, demo_databases, revision  # noqa: E402

from maintenance_pipeline.core.config import load_config  # noqa: E402
from maintenance_pipeline.core.dburl import parse_url  # noqa: E402
from maintenance_pipeline.core.run.pipeline import run_job  # noqa: E402


def _target(prod: str, dev: str, **overrides) -> dict:
    target = {"url": prod, "reference": {"url": dev}, "migrations": str(ROOT / "examples" / "migrations"),
              "baseline_revision": "0001", "checks": [ORPHAN_CHECK]}
    target.update(overrides)
    return target


def _scratches(pg, url: str) -> str:
    name = parse_url(url).database
    return pg.psql(f"SELECT count(*) FROM pg_database WHERE datname LIKE '{name}\\_mp\\_scratch\\_%'")


def test_the_drill_restores_the_newest_dump_into_a_scratch_database_and_drops_it(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    config = load_config(write_config(tmp_path, {"goals": _target(prod, dev)}))
    made = run_job(config, "goals", "verify_database")  # the nightly's dump (the run fails on the demo's drift)
    assert made["backup"]["verified"], made["error"]
    before = db_state(prod)
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "success", report["error"]
    d = report["drill"]
    assert d["backup"]["path"] == made["backup"]["path"]
    assert isinstance(d["rpo_hours"], float) and 0 <= d["rpo_hours"] < 1
    assert d["rto_seconds"] > 0 and d["backup_bytes"] == made["backup"]["bytes"]
    assert "_mp_scratch_" in d["scratch"] and "pg-super-secret" not in json.dumps(report)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["row_counts"]["passed"] and "13 tables" in checks["row_counts"]["detail"]
    assert checks["schema_fingerprint"]["passed"], checks["schema_fingerprint"]
    assert checks["no orphaned goals"]["passed"]
    assert checks["integrity"]["status"] in ("passed", "skipped")  # amcheck where the scratch database has it
    rehearsal = d["verdicts"]["pending_migration_rehearsal"]
    assert rehearsal["passed"] and "0002" in rehearsal["detail"], rehearsal
    assert d["verdicts"]["restore_drill"]["passed"]
    assert db_state(prod) == before  # the target untouched
    assert _scratches(pg, prod) == "0"  # every scratch database dropped (the drill's and the rehearsal's)


def test_a_pending_revision_that_fails_on_the_data_fails_the_rehearsal_on_postgresql(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    migrations = copy_migrations(tmp_path, {"0003_unique_parent.py": revision(
        "0003", "0002", '    op.create_index("ux_goals_parent", "goals", ["parent_id"], unique=True)')})
    config = load_config(write_config(tmp_path, {"goals": _target(prod, dev, migrations=str(migrations))}))
    run_job(config, "goals", "verify_database")
    before = db_state(prod)
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "failed" and report["failed_step"] == "drill"
    rehearsal = report["drill"]["verdicts"]["pending_migration_rehearsal"]
    assert not rehearsal["passed"] and "Alembic revision 0003 failed" in rehearsal["detail"]
    assert "could not create unique index" in rehearsal["detail"]
    assert "_mp_scratch_" not in rehearsal["detail"]
    assert report["drill"]["verdicts"]["restore_drill"]["passed"]
    assert "0003" in report["error"] and "pending_migration_rehearsal" in report["error"]
    assert db_state(prod) == before
    assert _scratches(pg, prod) == "0"


def test_without_createdb_the_drill_fails_in_one_line_saying_so(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    config = load_config(write_config(tmp_path, {"goals": _target(prod, dev)}))
    made = run_job(config, "goals", "verify_database")
    assert made["backup"]["verified"], made["error"]
    role = f"nodrill_{uuid.uuid4().hex[:6]}"
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'role-Pa55' NOCREATEDB")
    url = pg.url(parse_url(prod).database, user=role, password="role-Pa55")
    config = load_config(write_config(tmp_path, {"goals": _target(url, dev)}))
    report = run_job(config, "goals", "restore_drill")
    assert report["status"] == "failed" and report["failed_step"] == "drill"
    error = report["error"]
    assert f"role '{role}' may not create databases" in error and "CREATEDB" in error
    assert "drill: {enabled: false}" in error and "\n" not in error
    assert "role-Pa55" not in json.dumps(report)
    assert _scratches(pg, prod) == "0"
