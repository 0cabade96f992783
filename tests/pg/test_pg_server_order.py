"""Plans the server used to reject, on a real server: each case aligns (the judge, ``pg_dump --schema-only``, agrees
with the reference afterwards, every row kept) or is refused before the first statement with a reason that is true
(the database exactly as it was). Never the server's own error halfway through a run.

* identifiers that are keywords (``user``, ``order``, ``select``) quoted in every statement generated;
* dependency order from the catalog (``pg_depend``), after migra's fixtures: a view read by a view that is kept, a
  table a kept view reads replaced by a view (and back), a column a kept view and a policy read retyped, a SQL
  function reading views the plan makes, a primary key dropped from a column that loses its NOT NULL, a column moved
  between two enum types, a sequence a column owns wanted as a sequence of its own; what lives outside the compared
  schema and depends on what the plan drops or retypes refuses it, naming the dependent;
* ``check --sql`` whose rehearsal fails says so (an error, exit 2), with the statements up to the failing one;
* a type change that re-renders equal values (``numeric(8,0)`` -> ``numeric(8,2)``, ``timestamp`` ->
  ``timestamptz`` in the session's time zone) aligns on a table with rows; one that would change a value (``10.50``
  -> ``11``) is refused before the first statement, and the rows check compares a value the cast changes as changed.
"""

from __future__ import annotations

import json
import uuid

import pytest

pytest.register_assert_rewrite("schema_judges")

from targets import write_config  # noqa: E402
from maintenance_pipeline.core.config import Target, load_config  # noqa: E402
from maintenance_pipeline.core.errors import UnalignableChangeError  # noqa: E402
from maintenance_pipeline.core.migrate.executor import migrate  # noqa: E402
from maintenance_pipeline.core.run.pipeline import run_job  # noqa: E402
from pg_migrate_helpers import db_state, reference, scalar  # noqa: E402
from schema_judges import pg_judge  # noqa: E402

BASE = "CREATE TABLE basetable (id serial PRIMARY KEY, name text); INSERT INTO basetable (name) VALUES ('a'), ('b');"

# (id, current, reference): each aligns with align: full
ALIGNED = [
    ("reserved-words",
     'CREATE TABLE "user" (id int PRIMARY KEY, pw text); CREATE TABLE "order" (id int, "select" int);'
     "INSERT INTO \"user\" VALUES (1, 'x'); INSERT INTO \"order\" VALUES (1, 2);",
     'CREATE TABLE "user" (id int PRIMARY KEY, pw text); CREATE TABLE "order" (id int, "select" int);'
     'CREATE INDEX pw_idx ON "user" (pw); CREATE INDEX "group" ON "order" ("select");'
     'CREATE VIEW "select" AS SELECT "select" FROM "order"; CREATE SEQUENCE "table";'
     "COMMENT ON COLUMN \"order\".\"select\" IS 'the pick';"
     'ALTER TABLE "user" ENABLE ROW LEVEL SECURITY; CREATE POLICY "all" ON "user" USING (id > 0);'
     'CREATE FUNCTION "check"() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;'
     'CREATE TRIGGER "trigger" BEFORE INSERT ON "order" FOR EACH ROW EXECUTE FUNCTION "check"();'),
    ("view-read-by-a-kept-view-changes",
     BASE + "CREATE VIEW ddd_changed AS SELECT name FROM basetable; "
            "CREATE VIEW ddd_unchanged AS SELECT name FROM ddd_changed;",
     BASE + "CREATE VIEW ddd_changed AS SELECT name, 'x' AS x FROM basetable; "
            "CREATE VIEW ddd_unchanged AS SELECT name FROM ddd_changed;"),
    ("table-a-kept-view-reads-becomes-a-view",
     "CREATE TABLE data (id uuid, name text); CREATE VIEW q AS SELECT * FROM data;"
     "INSERT INTO data VALUES (gen_random_uuid(), 'x');",
     "CREATE TABLE t_data (id uuid, name text); CREATE VIEW data AS SELECT * FROM t_data; "
     "CREATE VIEW q AS SELECT * FROM data;"),
    ("view-a-kept-view-reads-becomes-a-table",
     "CREATE TABLE t_data (id uuid, name text); CREATE VIEW data AS SELECT * FROM t_data; "
     "CREATE VIEW q AS SELECT * FROM data; INSERT INTO t_data VALUES (gen_random_uuid(), 'x');",
     "CREATE TABLE data (id uuid, name text); CREATE VIEW q AS SELECT * FROM data;"),
    ("column-a-kept-view-and-policy-read-retyped",
     "CREATE TABLE t (id int PRIMARY KEY, a int); CREATE VIEW v AS SELECT a FROM t WHERE a > 1;"
     "CREATE VIEW vv AS SELECT a FROM v; ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON t USING (a > 0);"
     "INSERT INTO t VALUES (1, 5), (2, NULL);",
     "CREATE TABLE t (id int PRIMARY KEY, a bigint); CREATE VIEW v AS SELECT a FROM t WHERE a > 1;"
     "CREATE VIEW vv AS SELECT a FROM v; ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON t USING (a > 0);"),
    ("sql-function-reading-views-the-plan-makes",
     BASE + "CREATE VIEW ddd_changed AS SELECT name, 'x' AS x FROM basetable;",
     BASE + "CREATE VIEW aaa_view1 AS SELECT name FROM basetable; CREATE VIEW bbb_view2 AS SELECT name FROM aaa_view1;"
            "CREATE FUNCTION depends_on_bbb_view2(t text) RETURNS TABLE(x text) AS $$ SELECT * FROM bbb_view2 $$ "
            "LANGUAGE sql;"),
    ("primary-key-dropped-and-added-with-nullability",
     "CREATE TABLE t1 (a int); CREATE TABLE b (bb int PRIMARY KEY);"
     "CREATE TABLE t2 (a int PRIMARY KEY, bb int REFERENCES b (bb)); INSERT INTO t1 VALUES (1); INSERT INTO t2 VALUES (2);",
     "CREATE TABLE b (bb int PRIMARY KEY); CREATE TABLE t2 (a int, bb int REFERENCES b (bb));"
     "CREATE TABLE t1 (a int PRIMARY KEY);"),
    ("column-moved-between-two-enum-types",
     "CREATE SCHEMA other; CREATE TYPE other.otherenum1 AS ENUM ('a', 'b', 'c');"
     "CREATE TYPE other.otherenum2 AS ENUM ('a', 'b', 'c');"
     "CREATE TABLE orders (id serial PRIMARY KEY, othercolumn other.otherenum1 DEFAULT 'b');"
     "INSERT INTO orders (othercolumn) VALUES ('a'), ('c'), (NULL);",
     "CREATE SCHEMA other; CREATE TYPE other.otherenum1 AS ENUM ('a', 'b', 'c');"
     "CREATE TYPE other.otherenum2 AS ENUM ('a', 'b', 'c');"
     "CREATE TABLE orders (id serial PRIMARY KEY, othercolumn other.otherenum2 DEFAULT 'b');"),
    ("owned-sequence-wanted-as-its-own",
     "CREATE TABLE test (id serial PRIMARY KEY); INSERT INTO test DEFAULT VALUES;",
     "CREATE SEQUENCE test_id_seq AS integer;"
     "CREATE TABLE test (id integer NOT NULL DEFAULT nextval('test_id_seq'::regclass) PRIMARY KEY);"),
]


def _db(pg, sql: str) -> tuple[str, str]:
    name = f"o_{uuid.uuid4().hex[:10]}"
    url = pg.create_database(name)
    pg.psql(sql, name)
    return name, url


def _target(cur_url: str, ref_url: str) -> Target:
    return Target(name="t", url=cur_url, reference_url=ref_url, align="full")


@pytest.mark.parametrize("current, reference_sql", [c[1:] for c in ALIGNED], ids=[c[0] for c in ALIGNED])
def test_the_plan_is_in_an_order_the_server_accepts(pg, current, reference_sql):
    cur_name, cur_url = _db(pg, current)
    ref_name, ref_url = _db(pg, reference_sql)
    judged_ref = pg_judge(pg, ref_name)
    assert pg_judge(pg, cur_name) != judged_ref  # the difference is real
    target = _target(cur_url, ref_url)
    before = db_state(cur_url, snapshot=False)
    result = migrate(target, reference(target), align="full")
    assert result.drift_after == [], [c.describe() for c in result.drift_after]
    assert pg_judge(pg, cur_name) == judged_ref
    after = db_state(cur_url, snapshot=False)
    for table, (count, _md5) in before["rows"].items():  # every row of every kept table kept
        if table in after["rows"]:
            assert after["rows"][table][0] == count, table


def test_a_kept_view_is_made_again_as_it_was_and_an_enum_column_keeps_its_labels(pg):
    cur_name, cur_url = _db(pg, ALIGNED[4][1])
    _ref_name, ref_url = _db(pg, ALIGNED[4][2])
    result = migrate(_target(cur_url, ref_url), reference(_target(cur_url, ref_url)), align="full")
    made_again = {c.name: c.detail for c in result.aligned if c.kind == "drop_object"}
    assert made_again == {"view v": "to make it again: it depends on column t.a",
                          "policy p on t": "to make it again: it depends on column t.a",
                          "view vv": "to make it again: it depends on view v"}, made_again
    sql = result.sql
    assert sql.index(next(s for s in sql if s.startswith("DROP VIEW vv"))) < \
        sql.index(next(s for s in sql if s.startswith("DROP VIEW v") and not s.startswith("DROP VIEW vv")))
    assert scalar(cur_url, "SELECT count(*) FROM vv") == 1

    cur_name, cur_url = _db(pg, ALIGNED[7][1])
    _ref_name, ref_url = _db(pg, ALIGNED[7][2])
    migrate(_target(cur_url, ref_url), reference(_target(cur_url, ref_url)), align="full")
    assert pg.psql("SELECT string_agg(coalesce(othercolumn::text, '-'), ',' ORDER BY id) FROM orders",
                   cur_name) == "a,c,-"


# (id, current, reference, what the refusal must say)
REFUSED = [
    ("view-in-another-schema-reads-a-retyped-column",
     "CREATE TABLE t (id int PRIMARY KEY, a int); CREATE SCHEMA reports; CREATE VIEW reports.v AS SELECT a FROM public.t;"
     "INSERT INTO t VALUES (1, 2);",
     "CREATE TABLE t (id int PRIMARY KEY, a bigint);",
     r"alter_column t\.a: objects outside the plan depend on it \(view reports\.v, in a schema this target does not "
     r"compare\); nothing is dropped with CASCADE"),
    ("foreign-key-in-another-schema-to-a-dropped-table",
     "CREATE TABLE old (id int PRIMARY KEY); CREATE TABLE keep (id int); CREATE SCHEMA x;"
     "CREATE TABLE x.c (pid int REFERENCES public.old (id)); INSERT INTO old VALUES (1); INSERT INTO x.c VALUES (1);",
     "CREATE TABLE keep (id int);",
     r"drop_table old: objects outside the plan depend on it \(constraint c_pid_fkey on table x\.c, in a schema"),
    ("new-sequence-named-as-a-kept-index",
     "CREATE TABLE t (id int PRIMARY KEY, a int); CREATE INDEX counter ON t (a);",
     "CREATE TABLE t (id int PRIMARY KEY, a int); CREATE INDEX counter ON t (a); CREATE SEQUENCE counter2;"
     "ALTER INDEX counter RENAME TO counter_ix; ALTER SEQUENCE counter2 RENAME TO counter;",
     r"add_object sequence counter: its name is taken by the index counter in the database"),
]


@pytest.mark.parametrize("current, reference_sql, why", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_what_the_server_would_reject_is_refused_before_the_first_statement(pg, current, reference_sql, why):
    _cur_name, cur_url = _db(pg, current)
    _ref_name, ref_url = _db(pg, reference_sql)
    target = _target(cur_url, ref_url)
    before = db_state(cur_url)
    with pytest.raises(UnalignableChangeError, match=why) as err:
        migrate(target, reference(target), align="full")
    assert err.value.result.sql == []  # not one statement ran
    assert db_state(cur_url) == before


def test_check_sql_whose_rehearsal_fails_says_so(pg, tmp_path, capsys):
    from maintenance_pipeline import cli

    _cur_name, cur_url = _db(pg, "CREATE TABLE t (id int PRIMARY KEY, a int); INSERT INTO t VALUES (1, NULL);")
    _ref_name, ref_url = _db(pg, "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL, b text);")
    path = write_config(tmp_path, {"app": {"url": cur_url, "reference": {"url": ref_url}, "align": "full"}})
    assert cli.main(["--config", str(path), "check", "app", "--sql", "--format", "json"]) == 2
    (out,) = json.loads(capsys.readouterr().out)
    assert out["error"] and "rehearsal of the migration failed" in out["error"], out
    assert "contains null values" in out["error"] and "alter_column t.a" in out["error"], out["error"]
    assert any("ADD COLUMN b" in s for s in out["sql"]) and "SET NOT NULL" in out["sql"][-1], out["sql"]
    assert cli.main(["--config", str(path), "check", "app", "--sql"]) == 2
    text = capsys.readouterr().out
    assert "app: error: --sql: the rehearsal" in text and "SQL alignment ran until it failed" in text, text


def _maintain(pg, tmp_path, current: str, reference_sql: str, timezone: str | None = None) -> tuple[dict, str, str]:
    cur_name, cur_url = _db(pg, current)
    _ref_name, ref_url = _db(pg, reference_sql)
    if timezone:
        pg.psql(f"ALTER DATABASE {cur_name} SET timezone = '{timezone}'")
    path = write_config(tmp_path, {"app": {"url": cur_url, "reference": {"url": ref_url}, "align": "full"}})
    return run_job(load_config(path), "app", "maintain_database"), cur_name, cur_url


def test_a_type_change_that_re_renders_equal_values_aligns_with_rows(pg, tmp_path):
    report, cur_name, _url = _maintain(
        pg, tmp_path,
        "CREATE TABLE m (id numeric(8,0) PRIMARY KEY, price numeric(8,0), at timestamp, note text);"
        "INSERT INTO m VALUES (1, 10, '2024-03-31 01:30:00', 'x'), (2, NULL, NULL, 'y'), (3, 7, '2024-07-01 12:00', NULL);",
        "CREATE TABLE m (id numeric(8,2) PRIMARY KEY, price numeric(8,2), at timestamptz, note text);",
        timezone="Europe/Paris")
    assert report["status"] == "success", report["error"]
    rows = next(c for c in report["checks"] if c["name"] == "rows_preserved")
    assert rows["passed"] and "all 3 rows" in rows["detail"], rows
    assert pg.psql("SELECT string_agg(concat_ws('|', id, price, at AT TIME ZONE 'Europe/Paris'), ';' ORDER BY id) "
                   "FROM m", cur_name) == "1.00|10.00|2024-03-31 01:30:00;2.00;3.00|7.00|2024-07-01 12:00:00"


def test_a_column_moved_between_enum_types_keeps_its_rows_by_the_rows_check(pg, tmp_path):
    # the backup's server has no cast between the two enums: the rows check compares the labels
    report, cur_name, _url = _maintain(pg, tmp_path, ALIGNED[7][1], ALIGNED[7][2])
    assert report["status"] == "success", report["error"]
    rows = next(c for c in report["checks"] if c["name"] == "rows_preserved")
    assert rows["passed"] and "all 3 rows" in rows["detail"], rows


def test_a_type_change_that_would_change_a_value_is_refused_before_the_first_statement(pg, tmp_path):
    before_sql = "CREATE TABLE m (id int PRIMARY KEY, price numeric(8,2)); INSERT INTO m VALUES (1, 10.50), (2, 3.00);"
    report, cur_name, cur_url = _maintain(pg, tmp_path, before_sql,
                                          "CREATE TABLE m (id int PRIMARY KEY, price numeric(8,0));")
    assert report["status"] == "failed"
    assert "alter_column m.price: a value would not survive the type change from NUMERIC(8, 2) to NUMERIC(8, 0)" \
        in report["error"], report["error"]  # 10.50 would become 11 (3.00 is 3: the same number)
    assert "fix the revision" not in report["error"]
    assert pg.psql("SELECT string_agg(price::text, ',' ORDER BY id) FROM m", cur_name) == "10.50,3.00"
    _n, ref_url = _db(pg, "CREATE TABLE m (id int PRIMARY KEY, price numeric(8,0));")
    with pytest.raises(UnalignableChangeError, match="would not survive the type change") as err:
        migrate(_target(cur_url, ref_url), reference(_target(cur_url, ref_url)), align="full")
    assert err.value.result.sql == []
    # the rows check compares by meaning too: a value the cast changes is a changed row, one it re-renders is not
    from maintenance_pipeline.core.engines.postgresql.rows import row_queries
    q = row_queries("m", ["id", "price"], ["id"], {"price": ("NUMERIC(8, 2)", "NUMERIC(8, 0)")})
    assert pg.psql(f"SELECT string_agg(x::text, ';') FROM ({q}) AS x", cur_name) == \
        f"(1,{_md5(pg, cur_name, '(1,10.50)')});(2,{_md5(pg, cur_name, '(2,3)')})"


def _md5(pg, db: str, text: str) -> str:
    return pg.psql(f"SELECT md5('{text}')", db)
