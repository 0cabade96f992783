"""migrate() and verify_target() on a real PostgreSQL server, without the backup step.

The seed demo is loaded once per session (``examples/pg_demo.py``) into two template databases;
each test works on its own copies (``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import MIGRATIONS, ROOT, pg_demo
from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.dburl import open_engine
from maintenance_pipeline.core.errors import ConnectionFailedError, MaintenanceError, MigrationError
from maintenance_pipeline.core.lock import maintenance_lock
from maintenance_pipeline.core.migrate import migrate
from maintenance_pipeline.core.pg_checks import catalog_fingerprint
from maintenance_pipeline.core.reference import reference_snapshot
from maintenance_pipeline.core.snapshot import take_snapshot
from maintenance_pipeline.core.verify import verify_target

# ------------------------------------------------------------------------------ helpers

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


def db_state(url: str, schema: str = "public") -> dict:
    """Everything a failed run must leave as it was: the catalog fingerprint (names, indexes, constraints
    and all), the snapshot fingerprint, and every table's rows (count and an md5 over their text)."""
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
            return {"catalog": catalog_fingerprint(conn, schema), "snapshot": take_snapshot(conn, schema=schema)
                    .fingerprint, "rows": rows}
    finally:
        engine.dispose()


def scalar(url: str, sql: str):
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def copy_migrations(tmp_path: Path, extra: dict[str, str]) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in extra.items():
        (folder / "versions" / name).write_text(text)
    return folder


def revision(rev: str, down: str, body: str, imports: str = "") -> str:
    return (f'"""revision {rev}\n\nRevision ID: {rev}\nRevises: {down}\n"""\nimport sqlalchemy as sa\n'
            f"from alembic import op\n{imports}\nrevision = {rev!r}\ndown_revision = {down!r}\n"
            f"branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n{body}\n\n\ndef downgrade():\n    pass\n")


# ------------------------------------------------------------------------------ the seed


def test_seed_scenario_through_migrate_and_verify(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev)
    ref = reference(target)
    result = migrate(target, ref)
    assert result.plan.stamp == "0001" and [r for r, _ in result.plan.pending] == ["0002"]
    assert result.revision_after == "0002" and result.drift_after == []
    assert [a["source"] for a in result.applied] == ["alembic", "align"]
    assert "completed_at" in result.applied[1]["description"]
    assert scalar(prod, "SELECT version_num FROM alembic_version") == "0002"

    verified = verify_target(target, ref, backup_path=None, backup_verified=True, backup_detail="test")
    assert all(c.passed for c in verified.checks), verified.checks
    names = [c.name for c in verified.checks]
    assert names == ["schema_matches_reference", "integrity", "foreign_keys", "backup_verified"]
    assert verified.tables_after["goals"] == {"columns": 22, "rows": 39}
    assert "scheduled_sessions" not in verified.tables_after and len(verified.tables_after) == 13
    integrity = verified.checks[1]
    assert "skipped" in integrity.detail and "amcheck" in integrity.detail  # not installed: says so

    again = migrate(target, ref)  # nothing left to do
    assert again.applied == [] and again.plan.pending == []


def test_dry_run_rolls_back_and_reports_the_sql(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    before = db_state(prod)
    result = migrate(goals_target(prod, dev), reference(goals_target(prod, dev)), dry_run=True)
    sql = "\n".join(result.sql)
    assert "CREATE TABLE program_day_templates" in sql and "ADD COLUMN completed_at" in sql
    assert result.drift_after == []
    assert db_state(prod) == before


BROKEN = revision("0003", "0002", """    op.add_column("goals", sa.Column("halfway", sa.Integer(), nullable=True))
    op.execute("UPDATE goals SET halfway = 1, name = name || ' (changed)'")
    op.execute("DELETE FROM practice_session_goals")
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO half_done (id) VALUES (1)")
    raise RuntimeError("boom in the middle of 0003")""")


def test_a_revision_failing_halfway_leaves_schema_and_rows_identical(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, migrations=copy_migrations(tmp_path, {"0003_broken.py": BROKEN}))
    before = db_state(prod)
    assert before["rows"]["practice_session_goals"][0] > 0
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target))
    msg = str(err.value)
    assert "Alembic revision 0003 failed" in msg and "boom in the middle of 0003" in msg and "rolled back" in msg
    assert err.value.revision == "0003" and "\n" not in msg and "pg-super-secret" not in msg
    # 0002 ran and the stamp was written before 0003 failed: all of it is undone, in one transaction
    assert db_state(prod) == before
    assert scalar(prod, "SELECT to_regclass('alembic_version') IS NULL")
    # and the lock was released
    with maintenance_lock(prod, holder="check"):
        pass


ENDS_TRANSACTION = {
    "commit": ('    op.add_column("goals", sa.Column("early", sa.Integer()))\n    op.execute("COMMIT")',
               "'COMMIT' would end the migration's single transaction"),
    "autocommit_block": ('    op.add_column("goals", sa.Column("early", sa.Integer()))\n'
                         '    with op.get_context().autocommit_block():\n'
                         '        op.execute("CREATE INDEX CONCURRENTLY ix_goals_early ON goals (early)")',
                         "uses autocommit_block()"),
}


@pytest.mark.parametrize("how", sorted(ENDS_TRANSACTION))
def test_a_revision_cannot_end_the_single_transaction(pg, tmp_path, how):
    prod, dev = demo_databases(pg, tmp_path / "data")
    body, expect = ENDS_TRANSACTION[how]
    target = goals_target(prod, dev, migrations=copy_migrations(tmp_path, {"0003_ends.py": revision("0003", "0002",
                                                                                                    body)}))
    before = db_state(prod)
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target))
    assert "Alembic revision 0003 failed" in str(err.value) and expect in str(err.value), str(err.value)
    assert db_state(prod) == before


# ------------------------------------------------------------------------------ locks and timeouts

BLOCKING = revision("0003", "0002", """    op.create_table("run_log", sa.Column("pid", sa.Integer(), nullable=False))
    op.execute(f"INSERT INTO run_log (pid) VALUES ({os.getpid()})")
    Path(os.environ["MP_STARTED"]).write_text(str(os.getpid()))
    deadline = time.time() + 240  # a safety net only: the test releases it once the other run has ended
    while not Path(os.environ["MP_RELEASE"]).exists() and time.time() < deadline:
        time.sleep(0.05)""", imports="import os\nimport time\nfrom pathlib import Path\n")

MIGRATE_SCRIPT = """
import json, sys
from pathlib import Path
from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.errors import MaintenanceError
from maintenance_pipeline.core.migrate import migrate
from maintenance_pipeline.core.reference import reference_snapshot
a = json.loads(sys.argv[1])
t = Target(name="goals", url=a["url"], reference_url=a["ref"], migrations=Path(a["migrations"]),
           baseline_revision="0001")
ref = reference_snapshot(url=a["ref"], target_dialect="postgresql", ignore_tables=t.ignore_tables)
try:
    r = migrate(t, ref)
    print(json.dumps({"ok": True, "after": r.revision_after}))
except MaintenanceError as e:
    print(json.dumps({"ok": False, "kind": type(e).__name__, "error": str(e)}))
"""


def _wait_until(predicate, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_two_processes_migrating_one_target_only_one_migrates(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    migrations = copy_migrations(tmp_path, {"0003_blocking.py": BLOCKING})
    started, release = tmp_path / "started", tmp_path / "release"
    env = {**os.environ, "MP_STARTED": str(started), "MP_RELEASE": str(release)}
    args = json.dumps({"url": prod, "ref": dev, "migrations": str(migrations)})
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_SCRIPT, args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT) for _ in range(2)]
    try:
        # one of them is inside revision 0003 holding the lock; the other fails fast meanwhile
        _wait_until(lambda: started.exists() and any(p.poll() is not None for p in procs))
        release.write_text("go")
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        release.write_text("go")
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = [json.loads(out.strip().splitlines()[-1]) for out, err in outs]
    assert sorted(r["ok"] for r in results) == [False, True], outs
    winner = next(r for r in results if r["ok"])
    loser = next(r for r in results if not r["ok"])
    assert winner["after"] == "0003"
    assert loser["kind"] == "LockHeldError" and "another run holds the maintenance lock" in loser["error"]
    assert "maintenance_pipeline: migrate goals" in loser["error"]  # names the holder
    assert "pg-super-secret" not in loser["error"]
    assert scalar(prod, "SELECT count(*) FROM run_log") == 1  # migrated once
    assert scalar(prod, "SELECT version_num FROM alembic_version") == "0003"


def test_lock_timeout_is_set_local_and_fails_the_run_cleanly(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, lock_timeout="300ms")
    before = db_state(prod)
    holder = sa.create_engine(prod)
    try:
        with holder.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE goals IN ACCESS SHARE MODE")  # a long reader of goals
            t0 = time.monotonic()
            with pytest.raises(MigrationError) as err:
                migrate(target, reference(target))
            assert time.monotonic() - t0 < 30
            conn.rollback()
    finally:
        holder.dispose()
    msg = str(err.value)
    assert "lock timeout" in msg and "lock_timeout" in msg and "rolled back" in msg, msg
    assert db_state(prod) == before
    # the setting was local to the migration transaction: the server default is untouched
    assert scalar(prod, "SHOW lock_timeout") == "0"


def test_statement_timeout_applies_to_revisions(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    slow = revision("0003", "0002", '    op.execute("SELECT pg_sleep(5)")')
    target = goals_target(prod, dev, statement_timeout="200ms",
                          migrations=copy_migrations(tmp_path, {"0003_slow.py": slow}))
    before = db_state(prod)
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target))
    assert "statement timeout" in str(err.value) and "statement_timeout" in str(err.value)
    assert "revision 0003" in str(err.value)
    assert db_state(prod) == before


def test_a_bad_timeout_value_is_a_clear_error(pg, tmp_path):
    prod, dev = demo_databases(pg, tmp_path / "data")
    target = goals_target(prod, dev, lock_timeout="ten seconds")
    before = db_state(prod)
    with pytest.raises(MigrationError, match="lock_timeout 'ten seconds' is not a PostgreSQL duration"):
        migrate(target, reference(target))
    assert db_state(prod) == before


# ------------------------------------------------------------------------------ alignment


REF_SCHEMA = """
CREATE TABLE owners (id serial PRIMARY KEY, email varchar(120) NOT NULL, CONSTRAINT owners_email_key UNIQUE (email));
CREATE TABLE pets (
    id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    owner_id integer REFERENCES owners(id) ON DELETE CASCADE,
    name varchar(80) NOT NULL,
    age integer DEFAULT 0,
    weight numeric(6,2),
    tag text
);
CREATE INDEX pets_name_ix ON pets (name);
CREATE TABLE visits (pet_id integer NOT NULL, day date NOT NULL, note text, PRIMARY KEY (pet_id, day));
CREATE TABLE new_things (id bigserial PRIMARY KEY, label text NOT NULL DEFAULT 'x',
                         pet_id integer REFERENCES pets(id));
"""

LIVE_SCHEMA = """
CREATE TABLE owners (id serial PRIMARY KEY, email varchar(120) NOT NULL, nick text UNIQUE);
CREATE TABLE pets (
    id serial PRIMARY KEY,
    owner_id integer,
    name varchar(50),
    age text DEFAULT '0',
    weight real,
    tag text,
    legacy text
);
CREATE INDEX pets_name_ix ON pets (name, tag);
CREATE TABLE visits (id serial PRIMARY KEY, pet_id integer NOT NULL, day date NOT NULL, note text,
                     CONSTRAINT visits_pet_fk FOREIGN KEY (pet_id) REFERENCES pets(id));
CREATE TABLE old_stuff (id int);
INSERT INTO owners (email, nick) VALUES ('a@x', 'a'), ('b@x', 'b');
INSERT INTO pets (owner_id, name, age, weight, tag, legacy) VALUES (1, 'rex', '3', 12.5, 't1', 'l'),
    (2, 'tom', '7', 4.25, NULL, NULL), (1, 'fifi', NULL, NULL, 't3', 'x');
INSERT INTO visits (pet_id, day, note) VALUES (1, '2024-01-01', 'ok'), (2, '2024-01-02', NULL);
INSERT INTO old_stuff VALUES (1), (2);
"""


def _two_databases(pg, ref_sql: str, live_sql: str) -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    ref_name, live_name = f"aref_{suffix}", f"alive_{suffix}"
    pg.create_database(ref_name)
    pg.create_database(live_name)
    pg.psql(ref_sql, ref_name)
    pg.psql(live_sql, live_name)
    return live_name, pg.url(live_name), pg.url(ref_name)


def test_full_alignment_with_alter_column_keys_and_primary_key(pg):
    live_name, live, ref_url = _two_databases(pg, REF_SCHEMA, LIVE_SCHEMA)
    target = Target(name="pets", url=live, reference_url=ref_url, align="full")
    ref = reference(target)
    result = migrate(target, ref, align="full")
    assert result.drift_after == [], [c.describe() for c in result.drift_after]
    kinds = {c.kind for c in result.aligned}
    assert {"alter_column", "add_unique", "drop_unique", "add_foreign_key", "drop_foreign_key", "alter_primary_key",
            "add_table", "drop_table", "drop_column", "add_index", "drop_index"} <= kinds
    sql = "\n".join(result.sql)
    assert "USING age::INTEGER" in sql.replace('"', "")  # text -> integer needs a cast
    # rows kept with converted values; the serial/identity columns still generate ids
    engine = open_engine(live)
    try:
        with engine.begin() as conn:
            rows = conn.exec_driver_sql("SELECT name, age, weight FROM pets ORDER BY id").all()
            assert [(r[0], r[1], float(r[2]) if r[2] is not None else None) for r in rows] == [
                ("rex", 3, 12.5), ("tom", 7, 4.25), ("fifi", None, None)]
            conn.exec_driver_sql("INSERT INTO new_things (label) VALUES ('auto id')")
            assert conn.exec_driver_sql("SELECT id FROM new_things").scalar() == 1
            pk = conn.exec_driver_sql("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                      "WHERE conrelid = 'visits'::regclass AND contype = 'p'").one()
            assert pk == ("visits_pkey", "PRIMARY KEY (pet_id, day)")
    finally:
        engine.dispose()
    verified = verify_target(target, ref, backup_path=None, backup_verified=True)
    assert all(c.passed for c in verified.checks), verified.checks


def test_additive_applies_only_additive_changes_and_refuses_the_rest(pg):
    live_name, live, ref_url = _two_databases(pg, REF_SCHEMA, LIVE_SCHEMA)
    target = Target(name="pets", url=live, reference_url=ref_url)
    result = migrate(target, reference(target))
    assert {c.kind for c in result.aligned} <= {"add_table", "add_column", "add_index", "add_unique",
                                                "add_foreign_key"}
    assert any(c.kind == "drop_table" and c.table == "old_stuff" for c in result.refused)
    # the wanted index's name is taken by a live index that additive may not drop: refused, not a failure
    assert any(c.kind == "add_index" and c.name == "pets_name_ix" for c in result.refused)
    assert any(c.kind == "add_table" and c.table == "new_things" for c in result.aligned)
    assert scalar(live, "SELECT count(*) FROM old_stuff") == 2


def test_a_failing_alignment_rolls_everything_back(pg):
    live_name, live, ref_url = _two_databases(pg, REF_SCHEMA, LIVE_SCHEMA)
    pg.psql("INSERT INTO pets (name, age) VALUES ('bad', 'not a number')", live_name)
    target = Target(name="pets", url=live, reference_url=ref_url, align="full")
    before = db_state(live)
    with pytest.raises(MigrationError) as err:
        migrate(target, reference(target), align="full")
    msg = str(err.value)
    assert "alignment failed at alter_column pets.age" in msg and "invalid input syntax" in msg, msg
    assert db_state(live) == before


def test_target_schema_other_than_public(pg, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    live_name, ref_name = f"slive_{suffix}", f"sref_{suffix}"
    live, ref_url = pg.create_database(live_name), pg.create_database(ref_name)
    pg.psql("CREATE SCHEMA app; CREATE TABLE app.items (id serial PRIMARY KEY, label varchar(20));"
            "INSERT INTO app.items (label) VALUES ('a'), ('b');"
            "CREATE TABLE public.items (something_else int); INSERT INTO public.items VALUES (42)", live_name)
    pg.psql("CREATE TABLE items (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, label varchar(40), "
            "price numeric(8,2) DEFAULT 0); CREATE TABLE notes (id serial PRIMARY KEY, body text);"
            "CREATE INDEX items_label_ix ON items (label)", ref_name)
    baseline = revision("0001", None, "    pass")
    notes = revision("0002", "0001", '    op.create_table("notes", sa.Column("id", sa.Integer(), primary_key=True),\n'
                                     '                    sa.Column("body", sa.Text()))\n'
                                     '    op.execute("INSERT INTO notes (body) SELECT label FROM items")')
    folder = tmp_path / "mig"
    (folder / "versions").mkdir(parents=True)
    (folder / "script.py.mako").write_text((MIGRATIONS / "script.py.mako").read_text())
    (folder / "versions" / "0001.py").write_text(baseline)
    (folder / "versions" / "0002.py").write_text(notes)
    target = Target(name="app", url=live, reference_url=ref_url, schema="app", migrations=folder,
                    baseline_revision="0001", align="full")
    public_before = db_state(live, "public")
    ref = reference(target)
    result = migrate(target, ref, align="full")
    assert result.revision_after == "0002" and result.drift_after == []
    assert scalar(live, "SELECT version_num FROM app.alembic_version") == "0002"
    assert scalar(live, "SELECT count(*) FROM app.notes") == 2  # unqualified SQL ran in the target's schema
    assert scalar(live, "SELECT count(*) FROM app.items WHERE price = 0") == 2
    assert db_state(live, "public") == public_before  # public was not touched
    verified = verify_target(target, ref, backup_path=None, backup_verified=True)
    assert all(c.passed for c in verified.checks), verified.checks
    assert verified.tables_after == {"items": {"columns": 3, "rows": 2}, "notes": {"columns": 2, "rows": 2}}


# ------------------------------------------------------------------------------ verify checks


def test_foreign_keys_not_valid_and_orphans(pg):
    suffix = uuid.uuid4().hex[:8]
    name = f"fk_{suffix}"
    url = pg.create_database(name)
    pg.psql("CREATE TABLE p (id int PRIMARY KEY, a int, b int, UNIQUE (a, b));"
            "CREATE TABLE c (id int PRIMARY KEY, pid int, a int, b int);"
            "INSERT INTO p VALUES (1, 1, 1); INSERT INTO c VALUES (1, 1, 1, 1), (2, 99, NULL, NULL), (3, NULL, 5, 5),"
            " (4, NULL, 1, NULL);"
            "ALTER TABLE c ADD CONSTRAINT c_pid_fk FOREIGN KEY (pid) REFERENCES p(id) NOT VALID;"
            "ALTER TABLE c ADD CONSTRAINT c_ab_fk FOREIGN KEY (a, b) REFERENCES p(a, b) MATCH FULL NOT VALID", name)
    target = Target(name="fk", url=url, reference_url=url)
    ref = reference(target)
    verified = verify_target(target, ref, backup_path=None, backup_verified=True, mode="verify")
    fk = next(c for c in verified.checks if c.name == "foreign_keys")
    # pid 99 is missing; (5, 5) is missing; (1, NULL) is a partly NULL key under MATCH FULL
    assert not fk.passed and "3 orphan row(s): c -> p: 3" in fk.detail, fk.detail
    assert "NOT VALID" in fk.detail and "c.c_pid_fk" in fk.detail and "c.c_ab_fk" in fk.detail
    # after a maintain run without a backup to compare with, every violation counts as introduced
    verified = verify_target(target, ref, backup_path=None, backup_verified=True, mode="maintain")
    fk = next(c for c in verified.checks if c.name == "foreign_keys")
    assert not fk.passed and "introduced 3" in fk.detail


def test_integrity_uses_amcheck_when_installed_and_allowed(pg):
    suffix = uuid.uuid4().hex[:8]
    name = f"am_{suffix}"
    url = pg.create_database(name)
    role = f"plain_{suffix}"
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE INDEX t_v ON t (v);"
            "INSERT INTO t SELECT g, g::text FROM generate_series(1, 500) g", name)
    target = Target(name="am", url=url, reference_url=url)
    ref = reference(target)

    def integrity(t: Target):
        return next(c for c in verify_target(t, ref, backup_path=None, backup_verified=True, mode="verify").checks
                    if c.name == "integrity")

    check = integrity(target)
    assert check.passed and check.detail.startswith("skipped: the amcheck extension is not installed")
    pg.psql("CREATE EXTENSION amcheck", name)
    check = integrity(target)
    assert check.passed and "bt_index_check" in check.detail and "2 B-tree index(es)" in check.detail, check.detail
    assert "verify_heapam" in check.detail
    # a role without EXECUTE on amcheck's functions: a skip that says why and how to fix it
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'plain-pw'")
    pg.psql(f"GRANT SELECT ON t TO {role}", name)
    plain = Target(name="am", url=pg.url(name, user=role, password="plain-pw"), reference_url=url)
    check = integrity(plain)
    assert check.passed and check.detail.startswith("skipped: amcheck") and "may not execute" in check.detail
    assert "GRANT EXECUTE" in check.detail


# ------------------------------------------------------------------------------ connection errors


@pytest.mark.parametrize("problem", ["password", "port", "database"])
def test_connection_errors_are_one_clear_line_without_the_password(pg, tmp_path, problem):
    from pgserver import free_port

    from maintenance_pipeline.core.drift import ReferenceCache, probe_target

    secret = "Wr0ng-s3cret-Pa55"
    good = pg.url("postgres")
    bad, expect = {
        "password": (pg.url("postgres", password=secret), "password authentication failed"),
        "port": (f"postgresql+psycopg://postgres:{secret}@127.0.0.1:{free_port()}/postgres", "refused"),
        "database": (pg.url(f"missing_{uuid.uuid4().hex[:6]}"), "does not exist"),
    }[problem]
    password = secret if problem != "database" else "pg-super-secret"
    good_ref = reference_snapshot(url=good, target_dialect="postgresql")
    calls = {
        "diff (reference)": lambda: reference_snapshot(url=bad, target_dialect="postgresql"),
        "migrate": lambda: migrate(Target(name="x", url=bad, reference_url=good), good_ref),
        "verify": lambda: verify_target(Target(name="x", url=bad, reference_url=good), good_ref,
                                        backup_path=None, backup_verified=False),
    }
    for what, call in calls.items():
        with pytest.raises(ConnectionFailedError) as err:
            call()
        msg = str(err.value)
        assert expect in msg and "\n" not in msg and password not in msg, (what, msg)
        assert "check host, port, database name and credentials" in msg, (what, msg)
    probe, _ = probe_target(Target(name="x", url=bad, reference_url=good), None, ReferenceCache())
    assert probe.status == "unreadable" and expect in probe.error and password not in probe.error
    assert issubclass(ConnectionFailedError, MaintenanceError)  # the pipeline reports it on one line
