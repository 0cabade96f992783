"""What each statement of a migration did is measured around it, and only it: the locks it took (not those a read
between two statements took) and the tables it rewrote, a table the migration had already locked included; a table
created by the migration is not a rewrite. Judged against the server's own ``pg_class.relfilenode``."""

from __future__ import annotations

import shutil
from pathlib import Path

from targets import MIGRATIONS, revision, write_config

from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job

SCHEMA = "CREATE TABLE a (id int PRIMARY KEY, v int NOT NULL); CREATE TABLE b (id int PRIMARY KEY); "
ROWS = "INSERT INTO a SELECT g, g FROM generate_series(1, 50) g; INSERT INTO b SELECT g FROM generate_series(1, 9) g"
REVISION = revision("0001", None, """    op.add_column("a", sa.Column("note", sa.Text()))
    op.execute("SELECT count(*) FROM b")
    op.execute("ALTER TABLE a ALTER COLUMN v TYPE bigint")
    op.create_table("c", sa.Column("id", sa.Integer(), primary_key=True))""")
FINAL = "CREATE TABLE a (id int PRIMARY KEY, v bigint NOT NULL, note text); CREATE TABLE b (id int PRIMARY KEY); " \
        "CREATE TABLE c (id serial PRIMARY KEY)"


def _migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__", "versions"))
    (folder / "versions").mkdir()
    (folder / "versions" / "0001_effects.py").write_text(REVISION)
    return folder


def _relfilenode(pg, database: str, table: str) -> int:
    return int(pg.psql(f"SELECT relfilenode FROM pg_class WHERE oid = 'public.{table}'::regclass", database))


def test_each_statement_is_given_its_own_locks_and_rewrites(pg, tmp_path):
    tag = tmp_path.name[-12:].lower()
    live, ref = pg.create_database(f"effects_{tag}"), pg.create_database(f"effects_ref_{tag}")
    live_db, ref_db = live.rsplit("/", 1)[1], ref.rsplit("/", 1)[1]
    pg.psql(SCHEMA + ROWS, live_db)
    pg.psql(FINAL, ref_db)
    a_before, b_before = _relfilenode(pg, live_db, "a"), _relfilenode(pg, live_db, "b")
    path = write_config(tmp_path, {"app": {"url": live, "reference": {"url": ref}, "baseline_revision": "base",
                                           "migrations": str(_migrations(tmp_path))}})

    report = run_job(load_config(path), "app", "maintain_database")

    assert report["status"] == "success", report["error"]
    assert _relfilenode(pg, live_db, "a") != a_before and _relfilenode(pg, live_db, "b") == b_before  # the judge
    by_sql = {s["sql"]: s for s in report["measured"]["statements"]}
    added = next(s for sql, s in by_sql.items() if "ADD COLUMN note" in sql)
    retyped = next(s for sql, s in by_sql.items() if "TYPE bigint" in sql)
    created = next(s for sql, s in by_sql.items() if sql.startswith("CREATE TABLE c"))
    assert added["rewrites"] == [] and any(lock.startswith("ACCESS EXCLUSIVE") and lock.endswith(" on a")
                                           for lock in added["locks"]), added
    # a held already (by the ADD COLUMN): its rewrite is still seen, and the read of b between is nobody's lock
    assert retyped["rewrites"] == ["a"], retyped
    assert not any(lock.endswith(" on b") for s in by_sql.values() for lock in s["locks"]), by_sql
    assert created["rewrites"] == [] and any(lock.endswith(" on c") for lock in created["locks"]), created


ADD_BY_FUNCTION = revision("0001", None, """    op.execute("SELECT add_note()")""")


def test_the_begin_snapshot_is_reused_only_while_the_transaction_has_written_nothing(pg, tmp_path, monkeypatch):
    """Under REPEATABLE READ the schema read at BEGIN is read again after the revisions only when the transaction
    may have changed it: a revision that changes it through a function called by a SELECT (a read, as far as the
    statements go) is seen, and the alignment is planned on the schema as it is, not as it was at BEGIN."""
    from maintenance_pipeline.core.engines.postgresql import PostgresEngine

    taken = []
    original = PostgresEngine.snapshot
    monkeypatch.setattr(PostgresEngine, "snapshot", lambda self, *a, **k: taken.append(1) or original(self, *a, **k))
    tag = tmp_path.name[-12:].lower()
    runs = {}
    for case, body in (("nothing", None), ("function", ADD_BY_FUNCTION)):
        live, ref = pg.create_database(f"reuse_{case}_{tag}"), pg.create_database(f"reuse_ref_{case}_{tag}")
        pg.psql(SCHEMA + "CREATE FUNCTION add_note() RETURNS void LANGUAGE sql AS "
                "'ALTER TABLE a ADD COLUMN note text'", live.rsplit("/", 1)[1])
        pg.psql(SCHEMA.replace("v int NOT NULL", "v int NOT NULL, note text") + "CREATE FUNCTION add_note() RETURNS "
                "void LANGUAGE sql AS 'ALTER TABLE a ADD COLUMN note text'", ref.rsplit("/", 1)[1])
        settings = {"url": live, "reference": {"url": ref}}
        (tmp_path / case).mkdir()
        if body is not None:
            folder = _migrations(tmp_path / case)
            (folder / "versions" / "0001_effects.py").write_text(body)
            settings.update(migrations=str(folder), baseline_revision="base")
        taken.clear()
        report = run_job(load_config(write_config(tmp_path / case, {"app": settings})), "app", "maintain_database")
        assert report["status"] == "success", report["error"]
        runs[case] = (len(taken), report)
    # nothing written between BEGIN and the plan: the BEGIN snapshot served it (backup, reference, diff, BEGIN,
    # after alignment, verify); the function's ALTER gave the transaction an id: read again, and nothing left to do
    assert runs["nothing"][0] == 6, runs["nothing"][0]
    assert runs["function"][0] == 7 and runs["function"][1]["drift_after"] == [], runs["function"]


def test_the_schema_token_holds_only_while_a_repeatable_read_transaction_has_written_nothing(pg):
    """The token the executor compares before reusing a snapshot: equal across reads in one REPEATABLE READ
    transaction that wrote nothing, even when another session changes the schema meanwhile (not in the snapshot);
    gone once the transaction changed anything, by a function called from a SELECT too; never under READ
    COMMITTED, whose every statement may see another schema."""
    import uuid

    from maintenance_pipeline.core.engines import engine_of, open_engine

    url = pg.create_database(f"token_{uuid.uuid4().hex[:10]}")
    pg.psql(SCHEMA + "CREATE FUNCTION add_note() RETURNS void LANGUAGE sql AS 'ALTER TABLE a ADD COLUMN note text'",
            url.rsplit("/", 1)[1])
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                token = engine_of(conn).schema_token(conn)
                pg.psql("ALTER TABLE b ADD COLUMN other text", url.rsplit("/", 1)[1])  # another session, committed
                assert token is not None and engine_of(conn).schema_token(conn) == token
                conn.exec_driver_sql("SELECT add_note()")
                assert engine_of(conn).schema_token(conn) is None
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="READ COMMITTED")
            with conn.begin():
                assert engine_of(conn).schema_token(conn) is None
    finally:
        engine.dispose()
