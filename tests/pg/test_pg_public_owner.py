"""PostgreSQL 15+ with schema ``public`` owned by the application role (``ALTER SCHEMA public OWNER TO app``):
pg_dump then records the schema without creating it, and every path that restores a dump (the maintain run's
rows check, the backup's restore check, verify's foreign-key counts of the backup, the restore job) must still
work, as that role, against the real server of the ``pg`` fixture."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from targets import write_config
from pg_migrate_helpers import scalar

from maintenance_pipeline.core.backup import backup_database
from maintenance_pipeline.core.config import Target, load_config
from maintenance_pipeline.core.engines import engine_for, open_engine
from maintenance_pipeline.core.engines.postgresql.rows import scratch_restore
from maintenance_pipeline.core.errors import BackupError
from maintenance_pipeline.core.run.pipeline import run_job

PASSWORD = "Pub1ic-Owner-pw"


def scratch_databases(pg, db: str) -> list[str]:
    out = pg.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{db}\\_mp\\_scratch\\_%'")
    return [x for x in out.splitlines() if x]


@pytest.fixture
def app_owned(pg, tmp_path):
    """A database owned by a plain role (CREATEDB, not a superuser) that also owns schema ``public`` and the
    tables in it; the live rows include an orphan under a NOT VALID key; the reference adds a column.
    Yields (app URL, reference URL, database name, role); everything is dropped afterwards."""
    suffix = uuid.uuid4().hex[:6]
    role, name, ref_name = f"app_{suffix}", f"pubown_{suffix}", f"pubownref_{suffix}"
    pg.psql(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
    pg.psql(f"CREATE DATABASE {name} OWNER {role}")
    pg.psql(f"ALTER SCHEMA public OWNER TO {role}", name)
    tables = "CREATE TABLE p (id int PRIMARY KEY, label text); CREATE TABLE c (id int PRIMARY KEY, pid int, note text);"
    fk = "ALTER TABLE c ADD CONSTRAINT c_pid_fk FOREIGN KEY (pid) REFERENCES p(id) NOT VALID;"
    app_url = pg.url(name, user=role, password=PASSWORD)
    _as(app_url, tables + "INSERT INTO p VALUES (1, 'one'), (2, 'two'); "
                          "INSERT INTO c VALUES (1, 1, 'a'), (2, 7, 'orphan'), (3, 2, 'b');" + fk)
    ref = pg.create_database(ref_name)
    # the reference adds a column to p and drops c.note: c's rows are written (a planned drop), so the rows check
    # compares them with the scratch restore of the backup
    pg.psql(tables + fk + "ALTER TABLE p ADD COLUMN added text; ALTER TABLE c DROP COLUMN note", ref_name)
    assert pg.psql("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'", name) == role
    try:
        yield app_url, ref, name, role
    finally:
        for db in (name, ref_name, *scratch_databases(pg, name)):
            pg.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        pg.psql(f"DROP ROLE IF EXISTS {role}")


def _as(url: str, sql: str) -> None:
    engine = open_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_maintain_and_restore_with_public_owned_by_the_application_role(pg, tmp_path, app_owned):
    url, ref, name, role = app_owned
    config = load_config(write_config(tmp_path, {"app": {"url": url, "reference": {"url": ref}, "align": "full"}},
                                      backups={"dir": "backups", "keep_last": 5, "keep_days": 0,
                                               "restore_check": True}))
    report = run_job(config, "app", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert "restore check ok" in report["backup"]["verify_detail"]  # the backup's scratch restore
    assert any("added" in a["description"] for a in report["applied"])
    rows = check(report, "rows_preserved")  # the migration's scratch restore, compared before COMMIT
    assert rows["passed"] and "present with the same values" in rows["detail"], rows
    fk = check(report, "foreign_keys")  # verify's scratch restore: the orphan was there before the run
    assert fk["passed"] and "existed before this run: c -> p: 1" in fk["detail"], fk
    assert scalar(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'p'") == 3
    assert scratch_databases(pg, name) == []
    assert PASSWORD not in json.dumps(report)

    # the engine's verify primitive on its own: the backup restored, its orphans counted there
    target = Target(name="app", url=url, reference_url=ref)
    counted = engine_for(url).backup_fk_violations(Path(report["backup"]["path"]), target)
    assert sum(counted.values()) == 1, counted

    # the restore job brings the pre-migration database back, as the same role
    restored = run_job(config, "app", "restore_database", restore_backup=report["backup"]["path"])
    assert restored["status"] == "success", restored["error"]
    assert scalar(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'p'") == 2
    assert scalar(url, "SELECT string_agg(note, ',' ORDER BY id) FROM c") == "a,orphan,b"
    assert pg.psql("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'", name) == role
    assert scratch_databases(pg, name) == []


def test_a_target_on_schema_public_owned_by_the_application_role(pg, tmp_path, app_owned):
    """``schema: public`` dumps with ``--schema=public``: that dump creates the schema itself."""
    url, ref, name, _role = app_owned
    config = load_config(write_config(tmp_path, {"app": {"url": url, "reference": {"url": ref}, "schema": "public",
                                                          "align": "full"}},
                                      backups={"dir": "backups", "keep_last": 5, "keep_days": 0,
                                               "restore_check": True}))
    report = run_job(config, "app", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert check(report, "rows_preserved")["passed"]
    restored = run_job(config, "app", "restore_database", restore_backup=report["backup"]["path"])
    assert restored["status"] == "success", restored["error"]
    assert scalar(url, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'p'") == 2
    assert scratch_databases(pg, name) == []


def test_a_failed_scratch_restore_is_one_line_with_the_reason(pg, tmp_path, app_owned):
    """What the role may not restore (an extension only a superuser creates) fails the scratch restore with
    pg_restore's own reason, on one line, without the password."""
    url, _ref, name, _role = app_owned
    pg.psql("CREATE EXTENSION amcheck", name)
    backup = backup_database(url, tmp_path, "app")
    with pytest.raises(BackupError) as err:
        with scratch_restore(backup.path, url):
            pass
    msg = str(err.value)
    assert "\n" not in msg and PASSWORD not in msg
    assert 'permission denied to create extension "amcheck" (Must be superuser' in msg
    assert "it failed at CREATE EXTENSION IF NOT EXISTS amcheck;" in msg
    assert scratch_databases(pg, name) == []
