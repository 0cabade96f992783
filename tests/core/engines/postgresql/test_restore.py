"""PostgreSQL restores against a real throwaway server (the ``pg`` fixture): the round trip bringing data
and schema back, through the pipeline step, a schema target, a failed restore leaving the target unchanged,
and the row comparison against a scratch restore (which needs CREATEDB).
Backups are in ``test_backup.py``; shared helpers in ``pg_backup_helpers.py``."""

from __future__ import annotations

import os

import pytest
from targets import write_config

from maintenance_pipeline.core import backup as bk
from maintenance_pipeline.core.engines.postgresql import backup as pb
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import BackupError, RestoreError

from pg_backup_helpers import DEV, PROD, assert_one_line_without, copy_db, scratch_databases, snapshot


def row_digest(pg, db: str, table: str, order: str = "1") -> str:
    return pg.psql(f"SELECT md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t", db)


# --------------------------------------------------------------------------- restore


def test_restore_round_trip_brings_data_and_schema_back(pg, demo, tmp_path):
    url = copy_db(pg, "bk_roundtrip")
    db = "bk_roundtrip"
    res = bk.backup_database(url, tmp_path, "goals", label="nightly")
    before = {t: row_digest(pg, db, t) for t in ("goals", "program_days", "metric_values")}
    # what a bad maintenance run might leave: changed and deleted rows, a new column, a new table
    # with a foreign key to a restored table (a plain pg_restore --clean could not drop that parent)
    pg.psql("UPDATE goals SET name = 'CHANGED' WHERE parent_id IS NULL; DELETE FROM metric_values; "
            "ALTER TABLE program_days ADD COLUMN is_completed boolean DEFAULT false; "
            "CREATE TABLE program_day_templates (program_day_id text REFERENCES program_days(id), n int); "
            "INSERT INTO program_day_templates SELECT id, 1 FROM program_days; "
            "CREATE VIEW root_goals AS SELECT * FROM goals WHERE parent_id IS NULL", db)
    assert row_digest(pg, db, "goals") != before["goals"]

    out = bk.restore_database(res.path, url)
    assert out["matches_manifest"] is True and out["method"] == "pg_restore-single-transaction"
    assert out["row_counts"] == res.row_counts and out["fingerprint"] == res.fingerprint
    assert {t: row_digest(pg, db, t) for t in before} == before
    assert pg.psql("SELECT count(*) FROM pg_class WHERE relname IN ('program_day_templates', 'root_goals')", db) == "0"
    assert "is_completed" not in pg.psql("SELECT string_agg(column_name, ',') FROM information_schema.columns "
                                         "WHERE table_name = 'program_days'", db)


def test_restore_through_the_pipeline_step(pg, demo, tmp_path):
    from maintenance_pipeline.core.run import pipeline

    url = copy_db(pg, "bk_step")
    cfg = load_config(write_config(tmp_path, {"goals": {"url": url, "reference": {"url": pg.url(DEV)}}}))
    first = pipeline.step_backup(pipeline.start(cfg, "goals", "verify_database"))
    pg.psql("DELETE FROM metric_values", "bk_step")
    state = pipeline.start(cfg, "goals", "restore_database")
    state.restore_backup = first["path"]  # a verify run changed nothing: name the backup to put back
    pipeline.step_backup(state)  # checks the backup to restore (the restore takes the safety copy)
    restored = pipeline.step_restore(state)
    assert restored["path"] == first["path"]
    assert pg.psql("SELECT count(*) FROM metric_values", "bk_step") == str(first["row_counts"]["metric_values"])


def test_schema_target_backs_up_and_restores_only_its_schema(pg, demo, tmp_path):
    url = copy_db(pg, "bk_schema")
    db = "bk_schema"
    pg.psql('CREATE SCHEMA "App"; CREATE TABLE "App".items (id int PRIMARY KEY, name text); '
            'CREATE TABLE "App".notes (body text); INSERT INTO "App".items VALUES (1, \'a\'), (2, \'b\'), (3, \'c\'); '
            'INSERT INTO "App".notes VALUES (\'x\'), (\'x\')', db)
    res = bk.backup_database(url, tmp_path, "goals", schema="App", restore_check=True)
    m = bk.read_manifest(res.path)
    assert m["pg_schema"] == "App" and m["row_counts"] == {"items": 3, "notes": 2}
    assert {(e.schema, e.name) for e in pb.list_archive(res.path).of("TABLE")} == {("App", "items"), ("App", "notes")}

    pg.psql('DELETE FROM "App".items WHERE id > 1; CREATE TABLE "App".extra (item int REFERENCES "App".items(id)); '
            "DELETE FROM public.metric_values", db)
    out = bk.restore_database(res.path, url, schema="App")
    assert out["matches_manifest"] and out["row_counts"] == {"items": 3, "notes": 2}
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'App' AND tablename = 'extra'", db) == "0"
    assert pg.psql("SELECT count(*) FROM public.metric_values", db) == "0"  # other schemas are not touched

    # the public schema named explicitly works too (such a dump creates the schema itself)
    res = bk.backup_database(url, tmp_path, "goals", schema="public", restore_check=True)
    pg.psql("DELETE FROM goals WHERE parent_id IS NOT NULL", db)
    assert bk.restore_database(res.path, url, schema="public")["matches_manifest"]
    assert pg.psql("SELECT count(*) FROM goals", db) == "39"


def test_failed_restore_leaves_the_target_unchanged(pg, demo, tmp_path):
    url = copy_db(pg, "bk_fail")
    res = bk.backup_database(url, tmp_path, "goals")
    pg.psql("DELETE FROM metric_values; CREATE SCHEMA other; CREATE VIEW other.v AS SELECT * FROM public.goals",
            "bk_fail")
    with pytest.raises(RestoreError) as e:
        bk.restore_database(res.path, url)
    msg = assert_one_line_without(e.value, "pg-super-secret")
    assert "cannot drop table public.goals" in msg and "unchanged" in msg
    assert pg.psql("SELECT count(*) FROM metric_values", "bk_fail") == "0"  # the preamble's drops rolled back too

    # a dump that no longer matches its manifest is refused before anything is touched
    victim = sorted(p for p in res.path.iterdir() if p.name.endswith(".dat"))[0]
    os.chmod(victim, 0o600)
    victim.write_bytes(victim.read_bytes() + b"x")
    with pytest.raises(RestoreError, match="does not match its manifest"):
        bk.restore_database(res.path, url)


# --------------------------------------------------------------------------- rows compare


def test_compare_rows_finds_changed_value_deleted_row_and_lists_drops(pg, demo, tmp_path):
    url = copy_db(pg, "bk_rows")
    db = "bk_rows"
    pg.psql("CREATE TABLE tags (name text, n int); INSERT INTO tags VALUES ('a', 1), ('a', 1), ('b', NULL)", db)
    res = bk.backup_database(url, tmp_path, "goals")
    ignore = ("alembic_version",)
    with pb.scratch_restore(res.path, url) as scratch:
        assert scratch.split("/")[-1].startswith("bk_rows_mp_scratch_")
        bsnap = snapshot(scratch)
        ok, detail, drops = pb.compare_rows(url, scratch, bsnap, snapshot(url), ignore)
        assert ok and drops == [] and detail.startswith("all ") and "14 kept tables" in detail

        pg.psql("UPDATE goals SET description = 'changed' WHERE id = (SELECT min(id) FROM goals); "
                "DELETE FROM metric_values WHERE id = (SELECT min(id) FROM metric_values); "
                "DELETE FROM tags WHERE ctid = (SELECT min(ctid) FROM tags WHERE name = 'a'); "
                "ALTER TABLE programs DROP COLUMN description; DROP TABLE scheduled_sessions", db)
        ok, detail, drops = pb.compare_rows(url, scratch, bsnap, snapshot(url), ignore)
    assert not ok and "\n" not in detail
    assert "goals: 1 row(s) missing or changed" in detail
    assert "metric_values: 1 row(s) missing or changed" in detail
    assert "tags: 1 row(s) missing or changed" in detail  # no primary key: a lost duplicate counts
    assert {"table": "programs", "column": "description", "rows": 2,
            "values": int(pg.psql("SELECT count(description) FROM programs", PROD))} in drops
    assert {"table": "scheduled_sessions", "column": None, "rows": 4, "values": None} in drops
    assert "planned drops: " in detail
    assert scratch_databases(pg) == []


def test_scratch_restore_needs_createdb(pg, demo, tmp_path):
    res = bk.backup_database(demo, tmp_path, "goals")
    pw = "NoCreateDb-Pw-7731"
    pg.psql("DROP DATABASE IF EXISTS bk_nocreate WITH (FORCE)")
    pg.psql("DROP ROLE IF EXISTS nocreate")
    pg.psql(f"CREATE ROLE nocreate LOGIN PASSWORD '{pw}' NOCREATEDB")
    pg.psql("CREATE DATABASE bk_nocreate OWNER nocreate")
    with pytest.raises(BackupError) as e:
        with pb.scratch_restore(res.path, pg.url("bk_nocreate", user="nocreate", password=pw)):
            pass
    msg = assert_one_line_without(e.value, pw)
    assert "CREATEDB" in msg and "nocreate" in msg
