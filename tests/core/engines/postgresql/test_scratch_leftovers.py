"""Scratch databases (``<db>_mp_scratch_<hex>``, a full copy of the backup) that a killed run leaves behind are
dropped by the next maintain run, under the maintenance lock, and its report says so; any other database (another
database's scratch, a user's look-alike without our mark, one a session is connected to, one a live run is about
to use) is left alone. Against the real server of the ``pg`` fixture, with a real run SIGKILLed in a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

from targets import ROOT, write_config
from pgserver import SUPERPASS, SUPERUSER
from pg_migrate_helpers import BLOCKING, copy_migrations, demo_databases

from maintenance_pipeline.core.backup import backup_database
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.engines.postgresql.rows import Scratch, scratch_mark, scratch_name
from maintenance_pipeline.core.run.pipeline import run_job

RUN_JOB = """
import sys
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
run_job(load_config(sys.argv[1]), "goals", "maintain_database")
"""


# what pg_restore makes, counted: tables, indexes, constraints, triggers of schema public
SHAPE = ("SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = 'public') || '/' || "
         "(SELECT count(*) FROM pg_indexes WHERE schemaname = 'public') || '/' || "
         "(SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
         " WHERE n.nspname = 'public') || '/' || (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)")


def databases_like(pg, infix: str) -> list[str]:
    out = pg.psql(f"SELECT datname FROM pg_database WHERE strpos(datname, '{infix}') > 0 ORDER BY 1")
    return [x for x in out.splitlines() if x]


def wait_for(what: str, ready, deadline_s: float = 120):
    deadline = time.monotonic() + deadline_s
    while True:
        value = ready()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def sessions_on(pg, *names: str) -> int:
    listed = ", ".join(f"'{n}'" for n in names)
    return int(pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname IN ({listed})"))


def drop_all(pg, names) -> None:
    for name in names:
        pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def goals_config(folder: Path, prod: str, dev: str, migrations) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_config(folder, {"goals": {"url": prod, "reference": {"url": dev}, "migrations": str(migrations),
                                             "baseline_revision": "0001",
                                             "ignore_tables": ["alembic_version", "run_log"]}})


def test_a_killed_runs_scratch_database_is_dropped_by_the_next_run(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    db = prod.rsplit("/", 1)[1]
    infix = f"{db}_mp_scratch_"
    blocking = goals_config(tmp_path / "killed", prod, dev, copy_migrations(tmp_path / "killed", {
        "0003_blocking.py": BLOCKING}))
    started, release = tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "MP_STARTED": str(started), "MP_RELEASE": str(release)}
    child = subprocess.Popen([sys.executable, "-c", RUN_JOB, str(blocking)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            # the run is inside its migration (revision 0003 waits for a release that never comes), its scratch
            # database restored: every table, index, constraint and trigger there (pg_restore's last steps; the
            # migration's own changes are not committed, so the live database shows what the backup holds), and
            # pg_restore gone (its parallel workers connect and disconnect: sessions alone tell nothing before)
            wait_for("the migration's revision", started.exists)
            scratch = wait_for("the scratch database", lambda: databases_like(pg, infix))[0]
            wait_for("the scratch restore", lambda: pg.psql(SHAPE, scratch) == pg.psql(SHAPE, db))
            wait_for("pg_restore to end", lambda: sessions_on(pg, scratch) == 0)
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        # the server ends the killed run's sessions (its lock, its transaction, its scratch's session) on its own
        wait_for("the killed run's sessions to end", lambda: sessions_on(pg, db, scratch) == 0)
        assert databases_like(pg, infix) == [scratch]  # what a killed run leaves: nobody drops it ...
        assert scratch_mark(db) in pg.psql(f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                           f"WHERE datname = '{scratch}'")

        # ... until the next maintain run of this database, under its maintenance lock
        config = load_config(goals_config(tmp_path / "next", prod, dev, ROOT / "examples" / "migrations"))
        report = run_job(config, "goals", "maintain_database")
        assert report["status"] == "success", report["error"]
        assert report["migration_cleaned"] == [scratch]
        assert databases_like(pg, infix) == []  # the stale one and this run's own
        assert "rows_preserved" in {c["name"] for c in report["checks"]}
        md = Path(report["report_paths"]["markdown"]).read_text()
        assert f"**Left by a killed run, dropped:** `{scratch}`" in md
        saved = json.loads(Path(report["report_paths"]["json"]).read_text())
        assert saved["migration_cleaned"] == [scratch]
    finally:
        drop_all(pg, databases_like(pg, infix))


def test_only_this_databases_unused_marked_scratch_databases_are_dropped(pg, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    db, other, ref = f"lo_{suffix}", f"lo_other_{suffix}", f"loref_{suffix}"
    url = pg.create_database(db)
    pg.create_database(ref)
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b')", db)
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text, w text)", ref)
    config = load_config(write_config(tmp_path, {"lo": {"url": url, "reference": {"url": pg.url(ref)}}}))

    def make(name: str, mark: str | None) -> str:
        pg.psql(f'CREATE DATABASE "{name}"')
        if mark is not None:
            pg.psql(f"COMMENT ON DATABASE \"{name}\" IS '{mark.replace(chr(39), chr(39) * 2)}'")
        return name

    stale = make(scratch_name(db), scratch_mark(db))  # what a killed run leaves
    kept = {
        make(scratch_name(other), scratch_mark(other)),  # another database's scratch
        make(f"{db}_mp_scratch_notes", None),  # a user's database with a look-alike name
        make(scratch_name(db), None),  # our exact pattern, but not marked as ours
        make(scratch_name(db), scratch_mark(f"{db}_and_a_longer_name")),  # another database's mark
    }
    in_use = make(scratch_name(db), scratch_mark(db))
    made = [stale, *kept, in_use]
    live = None
    session = psycopg.connect(host="127.0.0.1", port=pg.port, user=SUPERUSER, password=SUPERPASS,
                              dbname=in_use)
    try:
        # a live run's scratch between its restore and its use: restored, nobody connected to it, its lock held
        live = Scratch(backup_database(url, tmp_path / "own", "lo").path, url)
        live.restore()
        made.append(live.name)
        assert sessions_on(pg, live.name) == 0

        dry = run_job(config, "lo", "maintain_database", dry_run=True)  # a dry run drops nothing
        assert dry["status"] == "success", dry["error"]
        assert dry["migration_cleaned"] == [] and stale in databases_like(pg, "_mp_scratch_")

        report = run_job(config, "lo", "maintain_database")
        assert report["status"] == "success", report["error"]
        assert report["migration_cleaned"] == [stale]
        left = set(databases_like(pg, "_mp_scratch_"))
        assert stale not in left and kept | {in_use, live.name} <= left
        assert pg.psql("SELECT count(*) FROM t", live.name) == "2"  # the live run's copy is intact
    finally:
        session.close()
        if live is not None:
            live.drop()
        drop_all(pg, [*made, db, ref])
    assert not set(made) & set(databases_like(pg, "_mp_scratch_"))
