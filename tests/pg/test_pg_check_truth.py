"""``check`` on PostgreSQL counts what each planned change would trip over, read-only, in the target's schema (the
server's own CHECK text, ``CHECK ((total > 0))``; quoted names; an EXCLUDE is said not counted), and a maintain run
then fails on exactly that, with nothing committed; ``ignore:`` keeps a DBA's index, and a trigger named as
PostgreSQL names it, out of the comparison."""

from __future__ import annotations

import json

from targets import write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job

LIVE = """
CREATE SCHEMA app;
CREATE TABLE app."Customers" (id int PRIMARY KEY, email text, phone text);
CREATE INDEX ix_dba ON app."Customers" (phone);
CREATE TABLE app.orders (id int PRIMARY KEY, customer_id int, total int);
CREATE EXTENSION IF NOT EXISTS btree_gist;
INSERT INTO app."Customers" SELECT i, 'e' || (i % 5), CASE WHEN i <= 3 THEN NULL ELSE 'p' || i END
  FROM generate_series(1, 10) i;
INSERT INTO app.orders VALUES (1, 1, 5), (2, 77, 3), (3, 2, -4);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER trg_dba BEFORE INSERT ON app.orders FOR EACH ROW EXECUTE FUNCTION app.touch();
"""
REFERENCE = """
CREATE TABLE "Customers" (id int PRIMARY KEY, email text, phone text NOT NULL);
CREATE UNIQUE INDEX ux_email ON "Customers" (email);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES "Customers" (id),
                     total int CONSTRAINT ck_total CHECK (total > 0));
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
"""


def _setup(pg, tmp_path, **settings):
    live, ref = pg.create_database("check_truth_live"), pg.create_database("check_truth_ref")
    pg.psql(LIVE, "check_truth_live")
    pg.psql(REFERENCE, "check_truth_ref")
    target = {"url": live, "schema": "app", "reference": {"url": ref}, "align": "full", **settings}
    return write_config(tmp_path, {"app": target})


def _state(pg) -> str:
    return pg.psql("SELECT count(*) FILTER (WHERE phone IS NULL), (SELECT count(*) FROM pg_constraint c JOIN "
                   "pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'app') FROM app.\"Customers\"",
                   "check_truth_live")


def test_pg_check_counts_read_only_and_the_run_fails_on_it(pg, tmp_path, capsys):
    path = _setup(pg, tmp_path, ignore=["index Customers.ix_dba", "trigger trg_dba on orders"])
    before = _state(pg)
    code = cli.main(["--config", str(path), "check", "--format", "json"])
    data = json.loads(capsys.readouterr().out)[0]
    assert code == 1 and data["error"] is None, data["error"]
    said = {o["text"]: o["query"] for o in data["would_fail"]}
    assert said == {
        '3 rows of Customers have phone NULL': 'SELECT * FROM app."Customers" WHERE phone IS NULL',
        "10 rows of Customers share their (email) with another row (a unique index needs them unique)":
            'SELECT email, count(*) FROM app."Customers" WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1',
        "1 row of orders fails CHECK ((total > 0))": "SELECT * FROM app.orders WHERE NOT ((total > 0))",
        "1 row of orders points at no row of Customers (customer_id -> Customers(id))":
            'SELECT c.* FROM app.orders c WHERE c.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM '
            'app."Customers" p WHERE p.id = c.customer_id)',
    }, data["would_fail"]
    assert not any("ix_dba" in c["text"] or "trg_dba" in c["text"] for c in data["changes"])  # ignored
    for query in said.values():
        assert pg.psql(query, "check_truth_live")  # each finds its rows
    assert _state(pg) == before  # read-only
    report = run_job(load_config(path), "app", "maintain_database")
    assert report["status"] == "failed" and _state(pg) == before  # it fails on them, nothing committed
