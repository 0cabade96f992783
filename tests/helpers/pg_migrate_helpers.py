"""Helpers shared by the migrate/verify test modules on PostgreSQL (``test_pg_migrate``, ``test_pg_align``,
``test_pg_verify``, ``test_pg_pipeline``): per-test copies of the seed
demo made from two template databases, the demo target and its reference snapshot, a database's full state
(catalog, snapshot, rows) to compare before and after a failed run, and two scratch Alembic revisions
(``copy_migrations`` and ``revision`` come from ``targets``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from targets import MIGRATIONS, ROOT, copy_migrations, pg_demo, revision  # noqa: F401 - re-exported
from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.engines.postgresql.catalog import catalog_fingerprint
from maintenance_pipeline.core.schema.reference import reference_snapshot
from maintenance_pipeline.core.schema.snapshot import take_snapshot

_TEMPLATES = ("tpl_goals", "tpl_goals_dev")


def demo_databases(pg, data_dir: Path) -> tuple[str, str]:
    """Fresh copies of the PostgreSQL seed demo: (production URL, development URL)."""
    if pg.psql(f"SELECT count(*) FROM pg_database WHERE datname IN {_TEMPLATES}") != "2":
        pg_demo.load(pg.url(), prod=_TEMPLATES[0], dev=_TEMPLATES[1], data_dir=data_dir)
    suffix = uuid.uuid4().hex[:8]
    urls = []
    for template in _TEMPLATES:
        name = f"{template[4:]}_{suffix}"
        pg.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        urls.append(pg.url(name))
    return urls[0], urls[1]


def goals_target(prod: str, dev: str, **kw) -> Target:
    settings = {"name": "goals", "url": prod, "reference_url": dev, "migrations": MIGRATIONS,
                "baseline_revision": "0001"}
    settings.update(kw)
    return Target(**settings)


def reference(target: Target):
    return reference_snapshot(url=target.reference_url, target_dialect="postgresql",
                              ignore_tables=target.ignore_tables)


def db_state(url: str, schema: str = "public", *, snapshot: bool = True) -> dict:
    """Everything a failed run must leave as it was: the catalog fingerprint (names, indexes, constraints
    and all), the snapshot fingerprint (``snapshot=False``: left out, the catalog covers it and it costs a
    reflection), and every table's rows (count and an md5 over their text)."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            tables = [r[0] for r in conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :s ORDER BY 1"), {"s": schema})]
            rows = {}
            for t in tables:
                q = f'"{schema}"."{t}"'
                rows[t] = tuple(conn.exec_driver_sql(
                    f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) "
                    f"FROM {q} AS x").one())
            return {"catalog": catalog_fingerprint(conn, schema), "rows": rows,
                    "snapshot": take_snapshot(conn, schema=schema).fingerprint if snapshot else None}
    finally:
        engine.dispose()


def scalar(url: str, sql: str):
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


# a revision that fails halfway, after changing schema and rows
BROKEN = revision("0003", "0002", """    op.add_column("goals", sa.Column("halfway", sa.Integer(), nullable=True))
    op.execute("UPDATE goals SET halfway = 1, name = name || ' (changed)'")
    op.execute("DELETE FROM practice_session_goals")
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO half_done (id) VALUES (1)")
    raise RuntimeError("boom in the middle of 0003")""")

# a revision that holds the migration open until the test releases it (MP_STARTED / MP_RELEASE files)
BLOCKING = revision("0003", "0002", """    op.create_table("run_log", sa.Column("pid", sa.Integer(), nullable=False))
    op.execute(f"INSERT INTO run_log (pid) VALUES ({os.getpid()})")
    Path(os.environ["MP_STARTED"]).write_text(str(os.getpid()))
    deadline = time.time() + 240  # a safety net only: the test releases it once the other run has ended
    while not Path(os.environ["MP_RELEASE"]).exists() and time.time() < deadline:
        time.sleep(0.05)""", imports="import os\nimport time\nfrom pathlib import Path\n")


def race_two(tmp_path: Path, script: str, arg: str, timeout: float = 180) -> list[dict]:
    """Run ``python -c script arg`` twice at once against a target whose pending revision is BLOCKING;
    release the blocked one once the other has finished; the JSON each printed last, and their output."""
    started, release = tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "MP_STARTED": str(started), "MP_RELEASE": str(release)}
    procs = [subprocess.Popen([sys.executable, "-c", script, arg], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) for _ in range(2)]
    try:
        # one of them is inside revision 0003 holding the lock; the other ends meanwhile
        deadline = time.monotonic() + 240
        while not (started.exists() and any(p.poll() is not None for p in procs)):
            assert time.monotonic() < deadline, "the two runs never overlapped"
            time.sleep(0.05)
        release.write_text("go")
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        release.write_text("go")
        for p in procs:
            if p.poll() is None:
                p.kill()
    try:
        return [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    except (IndexError, json.JSONDecodeError):
        raise AssertionError(f"a run printed no result: {outs}") from None

