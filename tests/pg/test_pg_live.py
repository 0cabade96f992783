"""A real application process writing to the PostgreSQL demo (``app_process.py pgwriter``: psycopg,
BEGIN; INSERT INTO goals; COMMIT every 5 ms, logging each id after COMMIT returned) during
``maintain_database`` on the real server of the ``pg`` fixture: every committed row present, the migration
committed, the run successful. Read afterwards with plain SQL, not with the product's code."""

from __future__ import annotations


import pytest

pytest.importorskip("maintenance_pipeline.core.engines.postgresql.backup", reason="PostgreSQL backups (core/pg_backup.py) missing")

from targets import ORPHAN_CHECK, ROOT, write_config  # noqa: E402
from live_app import LiveApp  # noqa: E402
from pg_migrate_helpers import demo_databases  # noqa: E402

from maintenance_pipeline.core.config import load_config  # noqa: E402
from maintenance_pipeline.core.engines import open_engine  # noqa: E402
from maintenance_pipeline.core.run.pipeline import run_job  # noqa: E402

RUNS = 3


def _read(url: str) -> dict:
    """The goal ids, the Alembic revision and the migrated schema, by plain SQL on the catalog."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            q = conn.exec_driver_sql
            ids = {r[0] for r in q("SELECT id FROM goals")}
            version = q("SELECT version_num FROM alembic_version").scalars().all() \
                if q("SELECT to_regclass('public.alembic_version')").scalar() else None
            schema = {
                "revision": version,
                "program_day_templates": q("SELECT to_regclass('public.program_day_templates')").scalar()
                is not None,
                "goals.program_day_id": q("SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                                          "'public' AND table_name = 'goals' AND column_name = 'program_day_id'")
                .scalar() == 1,
            }
            return {"ids": ids, "schema": schema}
    finally:
        engine.dispose()


def test_application_writer_during_maintain_on_postgresql(pg, tmp_path):
    """Three runs, each on a fresh copy of the demo, with the writer committing before, during (its INSERTs
    queue behind the migration's locks) and after the run: the run succeeds; the migration is committed
    (``alembic_version`` 0002, ``program_day_templates``, ``goals.program_day_id``); ``goals`` holds exactly
    the demo's rows plus every row the application saw COMMIT return for; the application saw no error."""
    bad = {}
    for i in range(RUNS):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        prod, dev = demo_databases(pg, folder / "data")
        target = {"url": prod, "reference": {"url": dev}, "migrations": str(ROOT / "examples" / "migrations"),
                  "baseline_revision": "0001", "checks": [ORPHAN_CHECK]}
        config = load_config(write_config(folder, {"goals": target}))
        demo = _read(prod)["ids"]
        with LiveApp(prod, folder / "app", writers=0, pg_writers=1) as app:
            app.wait_for_commits(3)
            report = run_job(config, "goals", "maintain_database")
            app.wait_for_commits(len(app.committed()) + 3)
            app.stop()
        after = _read(prod)
        problems = []
        if report["status"] != "success":
            problems.append(f"run failed at {report['failed_step']}: {report['error']}")
        want = {"revision": ["0002"], "program_day_templates": True, "goals.program_day_id": True}
        if after["schema"] != want:
            problems.append(f"the migration is not committed: {after['schema']}")
        committed = app.committed()
        lost = committed - after["ids"]
        if lost:
            problems.append(f"{len(lost)} of {len(committed)} committed application rows lost, e.g. {sorted(lost)[:3]}")
        if demo - after["ids"]:
            problems.append(f"rows of the demo gone: {sorted(demo - after['ids'])[:3]}")
        unknown = after["ids"] - demo - committed
        if unknown:
            problems.append(f"rows neither of the demo nor committed by the application: {sorted(unknown)[:3]}")
        if app.error_count or app.commits < 6:
            problems.append(f"the application committed {app.commits} rows, errors: {app.errors()[:3]}")
        if problems:
            bad[i] = problems
    assert not bad, f"{len(bad)}/{RUNS} runs broke something:\n" + "\n".join(
        f"run {i}: " + "; ".join(p) for i, p in bad.items())
