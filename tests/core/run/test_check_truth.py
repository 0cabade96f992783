"""What ``check`` tells the owner is what a run would do (issue "What the owner sees is true and useful", items 7 to
10): a run ``align: additive`` refuses as a whole is said to be refused, with why and what next, its SQL marked as
not run; ``--align full`` previews the full plan; what each change would trip over in the data is counted read-only
("would fail: 120 rows of customers have phone NULL", with the query that finds them) and the run then fails on
exactly that; drift is worded as what each side has, the fix beside it; ``ignore:`` keeps a DBA's index out of
check, diff, verify, maintain and the sensor; a two-slash URL and a missing reference say what they are. Real
SQLite files, the real command line in-process, real runs (``run_job``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from targets import sha256, write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConfigError
from maintenance_pipeline.core.run import alerts, drift
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.core.schema.model import Change

LIVE = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT, email TEXT);
CREATE INDEX ix_customers_full_name ON customers (full_name);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total INTEGER);
"""
REFERENCE = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT NOT NULL, email TEXT, tier TEXT);
CREATE INDEX ix_customers_email ON customers (email);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total INTEGER);
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
"""
DBA_INDEX = "the database has index customers.ix_customers_full_name ((full_name)), which the reference lacks " \
            "(fix: drop_index, destructive)"


def _db(path: Path, sql: str, rows: list[tuple[str, list[tuple]]] = ()) -> None:
    con = sqlite3.connect(path)
    con.executescript(sql)
    for insert, values in rows:
        con.executemany(insert, values)
    con.commit()
    con.close()


def _customers(null_phones: int = 120, total: int = 300) -> list[tuple[str, list[tuple]]]:
    return [("INSERT INTO customers (full_name, phone, email) VALUES (?, ?, ?)",
             [(f"n{i}", None if i < null_phones else f"p{i}", f"e{i}") for i in range(total)])]


def _target(tmp_path: Path, live: str = LIVE, reference: str = REFERENCE, rows=None, **settings) -> Path:
    _db(tmp_path / "app.db", live, _customers() if rows is None else rows)
    _db(tmp_path / "app_dev.db", reference)
    target = {"url": "sqlite:///app.db", "reference": {"url": "sqlite:///app_dev.db"}, **settings}
    return write_config(tmp_path, {"app": target})


def _cli(capsys, *args) -> tuple[int, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def _column_count(db: Path, table: str, where: str) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
    finally:
        con.close()


# ------------------------------------------------------------------------------ item 7: a refused run says so


def test_check_sql_under_additive_says_the_run_is_refused_and_why(tmp_path, capsys):
    path = _target(tmp_path, align="additive")
    before = sha256(tmp_path / "app.db")
    code, text = _cli(capsys, "--config", str(path), "check", "--sql")
    assert code == 1
    lines = text.splitlines()
    refused = next(x for x in lines if x.startswith("  REFUSED: "))
    assert "a maintain run would be refused as a whole: align: additive refuses 2 destructive change(s) " \
           "(alter_column customers.phone (NULL -> NOT NULL); drop_index customers.ix_customers_full_name" in refused
    assert "nothing would be applied, not even the 3 other change(s)" in refused
    assert "check app --align full --sql" in refused and "set align: full" in refused
    assert "ignore: [index customers.ix_customers_full_name]" in refused  # the DBA's index: keep it on purpose
    # the three additive statements are shown as what they are: not run
    head = lines.index("  -- SQL of the other changes: NOT run, the run is refused as a whole (see REFUSED above):")
    assert head > lines.index(refused) and any("CREATE TABLE notes" in x for x in lines[head:])
    # destructive lines are marked; additive ones are not
    assert f"  {DBA_INDEX}" in lines
    assert "  column customers.phone differs, database -> reference: NULL -> NOT NULL (fix: alter_column, " \
           "destructive)" in lines
    assert "  the reference has table notes (2 columns), which the database lacks (fix: add_table)" in lines
    code, text = _cli(capsys, "--config", str(path), "check", "--format", "json")
    data = json.loads(text)[0]
    assert data["would_be_refused"] is True and data["align"] == "additive"
    assert [(c["kind"], c["why"]) for c in data["refused"]] == [
        ("alter_column", "destructive: align: additive applies only additive changes"),
        ("drop_index", "destructive: align: additive applies only additive changes")]
    assert [c["kind"] for c in data["changes"]] == ["add_table", "add_column", "alter_column", "add_index",
                                                    "drop_index"]  # the kinds stay the JSON's contract
    code, text = _cli(capsys, "--config", str(path), "check", "--format", "github")
    assert "::error title=maintain run would be refused (app)::a maintain run would be refused as a whole" in text
    code, text = _cli(capsys, "--config", str(path), "check", "--format", "markdown", "--sql")
    assert "**A maintain run would be refused as a whole:** align: additive refuses 2 destructive" in text
    assert "SQL of the other changes (NOT run: the run is refused)" in text
    assert sha256(tmp_path / "app.db") == before  # read-only
    # and what check said is what the run does: refused as a whole, nothing applied
    report = run_job(load_config(path), "app", "maintain_database")
    assert report["status"] == "failed" and "refuses 2 destructive change(s)" in report["error"]
    assert "notes" not in {r[0] for r in sqlite3.connect(tmp_path / "app.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_check_align_full_previews_the_full_plan(tmp_path, capsys):
    path = _target(tmp_path, rows=_customers(null_phones=0), align="additive")
    code, text = _cli(capsys, "--config", str(path), "check", "--align", "full", "--sql")
    assert code == 1 and "REFUSED" not in text and "  -- SQL alignment would run:" in text
    sql = text.split("  -- SQL alignment would run:", 1)[1]
    assert "DROP INDEX ix_customers_full_name" in sql and "CREATE TABLE notes" in sql
    assert "phone TEXT NOT NULL" in sql  # the NOT NULL's rebuild: the destructive part of the plan too
    # without --align, the target's own mode is judged
    code, text = _cli(capsys, "--config", str(path), "check")
    assert "REFUSED: a maintain run would be refused as a whole: align: additive" in text
    code, text = _cli(capsys, "--config", str(path), "check", "--align", "none")
    assert "REFUSED" not in text and "  FAILS: align: none applies no change: a maintain run would fail" in text


# ------------------------------------------------------------------------------ item 8: what the data would trip over


def test_check_counts_what_each_change_would_trip_over_and_the_run_fails_on_it(tmp_path, capsys):
    path = _target(tmp_path, align="full")
    db = tmp_path / "app.db"
    before = sha256(db)
    code, text = _cli(capsys, "--config", str(path), "check")
    assert code == 1
    line = next(x for x in text.splitlines() if x.startswith("  would fail: "))
    assert line == ("  would fail: 120 rows of customers have phone NULL (alter_column customers.phone (NULL -> NOT "
                    "NULL)); find them: SELECT * FROM customers WHERE phone IS NULL")
    query = line.split("find them: ", 1)[1]
    con = sqlite3.connect(db)
    assert len(con.execute(query).fetchall()) == 120  # the query finds exactly them
    con.close()
    assert sha256(db) == before  # counted read-only
    code, text = _cli(capsys, "--config", str(path), "check", "--no-count")
    assert "would fail" not in text  # the whole-table reads are the owner's choice
    code, text = _cli(capsys, "--config", str(path), "check", "--format", "json")
    assert json.loads(text)[0]["would_fail"] == [{
        "change": "alter_column customers.phone (NULL -> NOT NULL)", "rows": 120, "would_fail": True,
        "text": "120 rows of customers have phone NULL", "query": "SELECT * FROM customers WHERE phone IS NULL"}]
    # the run fails on exactly that, and changes nothing
    report = run_job(load_config(path), "app", "maintain_database")
    assert report["status"] == "failed" and "NOT NULL constraint failed" in report["error"]
    assert _column_count(db, "customers", "phone IS NULL") == 120


def test_duplicates_orphans_checks_and_a_not_null_column_are_counted(tmp_path, capsys):
    live = """
    CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, code TEXT);
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total INTEGER);
    """
    reference = """
    CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, code TEXT, region TEXT NOT NULL);
    CREATE UNIQUE INDEX ux_customers_email ON customers (email);
    CREATE UNIQUE INDEX ux_customers_code ON customers (lower(code));
    CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers (id),
                         total INTEGER CONSTRAINT ck_total CHECK (total > 0));
    """
    rows = [("INSERT INTO customers (id, email, code) VALUES (?, ?, ?)",
             [(i, f"e{i % 4}" if i < 8 else f"u{i}", None) for i in range(1, 21)]),
            ("INSERT INTO orders (customer_id, total) VALUES (?, ?)",
             [(1, 5), (2, 0), (99, 7), (None, -1), (98, 3)])]
    path = _target(tmp_path, live, reference, rows=rows, align="full")
    before = sha256(tmp_path / "app.db")
    code, text = _cli(capsys, "--config", str(path), "check")
    said = [x.strip() for x in text.splitlines() if x.startswith(("  would fail: ", "  not counted: "))]
    assert said == [
        "would fail: customers has 20 rows and the new column region is NOT NULL without a default (add_column "
        "customers.region (TEXT NOT NULL)); find them: SELECT count(*) FROM customers",
        "not counted: duplicates of the unique index ux_customers_code (on an expression or with a WHERE) (add_index "
        "customers.ux_customers_code (UNIQUE (lower(code))))",
        "would fail: 6 rows of customers share their (email) with another row (a unique index needs them unique) "
        "(add_index customers.ux_customers_email (UNIQUE (email))); find them: SELECT email, count(*) FROM "
        "customers WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1",
        "would fail: 2 rows of orders fail CHECK (total > 0) (add_check orders.ck_total (total > 0)); find them: "
        "SELECT * FROM orders WHERE NOT (total > 0)",
        "would fail: 2 rows of orders point at no row of customers (customer_id -> customers(id)) (add_foreign_key "
        "orders ((customer_id) -> customers(id))); find them: SELECT c.* FROM orders c WHERE c.customer_id IS NOT "
        "NULL AND NOT EXISTS (SELECT 1 FROM customers p WHERE p.id = c.customer_id)",
    ], text
    con = sqlite3.connect(tmp_path / "app.db")
    for line in said:
        if "find them: " in line:
            assert con.execute(line.split("find them: ", 1)[1]).fetchall()  # every query runs and finds them
    con.close()
    assert sha256(tmp_path / "app.db") == before


def test_nothing_in_the_way_says_nothing(tmp_path, capsys):
    path = _target(tmp_path, rows=_customers(null_phones=0), align="full")
    code, text = _cli(capsys, "--config", str(path), "check")
    assert code == 1 and "would fail" not in text and "not counted" not in text


# ------------------------------------------------------------------------------ item 9: drift worded as drift; ignore:


def test_drift_is_worded_as_what_each_side_has_then_the_fix():
    assert Change("drop_index", "customers", "ix_customers_full_name", True, "(full_name)").drift_text() == \
        DBA_INDEX
    assert Change("add_column", "goals", "completed_at", False, "DATETIME NULL").drift_text() == \
        "the reference has column goals.completed_at (DATETIME NULL), which the database lacks (fix: add_column)"
    assert Change("drop_object", "", "view v_report", True, "SELECT 1").drift_text() == \
        "the database has view v_report (SELECT 1), which the reference lacks (fix: drop_object, destructive)"
    # a report's JSON renders the same words
    assert Change.from_dict(Change("drop_index", "customers", "ix_customers_full_name", True,
                                   "(full_name)").to_dict()).drift_text() == DBA_INDEX


def test_the_sensor_and_its_alert_word_drift_as_drift(tmp_path):
    path = _target(tmp_path, reference=LIVE.replace("CREATE INDEX ix_customers_full_name ON customers (full_name);",
                                                    ""))
    config = load_config(path)
    probe, _ = drift.probe_target(config.targets["app"], None, drift.ReferenceCache(), (config.root,))
    assert probe.status == "drift" and probe.changes == [DBA_INDEX]
    text = alerts.Alert(kind="drift", target="app", changes=probe.changes).text(slack=False)
    assert DBA_INDEX in text and "\u2022 drop_index" not in text


def test_ignore_keeps_a_dba_index_out_of_check_diff_verify_maintain_and_the_sensor(tmp_path, capsys):
    reference = LIVE.replace("CREATE INDEX ix_customers_full_name ON customers (full_name);",
                             "CREATE INDEX ix_customers_email ON customers (email);")
    path = _target(tmp_path, reference=reference, align="full",
                   ignore=["index customers.ix_customers_full_name"])
    code, text = _cli(capsys, "--config", str(path), "check")
    assert code == 1 and "ix_customers_full_name" not in text and "ix_customers_email" in text
    code, text = _cli(capsys, "--config", str(path), "diff", "app")
    assert code == 1 and "ix_customers_full_name" not in text
    config = load_config(path)
    assert config.targets["app"].ignore == ("index customers.ix_customers_full_name",)
    report = run_job(config, "app", "maintain_database")
    assert report["status"] == "success", report.get("error")
    con = sqlite3.connect(tmp_path / "app.db")
    indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    con.close()
    assert {"ix_customers_full_name", "ix_customers_email"} <= indexes  # the DBA's index kept, the reference's made
    report = run_job(config, "app", "verify_database")
    schema = next(c for c in report["checks"] if c["name"] == "schema_matches_reference")
    assert report["status"] == "success" and schema["passed"], schema
    code, text = _cli(capsys, "--config", str(path), "check")
    assert code == 0 and text.strip() == "app: in sync"
    probe, _ = drift.probe_target(config.targets["app"], None, drift.ReferenceCache(), (config.root,))
    assert probe.status == "ok" and probe.changes == []


def test_ignore_works_on_both_sides_and_for_objects(tmp_path, capsys):
    live = LIVE + "CREATE VIEW v_dba AS SELECT id FROM customers;"
    reference = LIVE + "CREATE INDEX ix_only_in_reference ON orders (total);"
    path = _target(tmp_path, live=live, reference=reference,
                   ignore=["view v_dba", "index orders.IX_ONLY_IN_REFERENCE", "table notes_never_there"])
    code, text = _cli(capsys, "--config", str(path), "check")
    assert code == 0 and text.strip() == "app: in sync"  # SQLite compares names without case, as it does
    assert "notes_never_there" in load_config(path).targets["app"].ignore_tables  # table x: ignore_tables
    code, text = _cli(capsys, "--config", str(path), "diff", "app")
    assert code == 0


@pytest.mark.parametrize("ignore, words", [
    ("index customers.ix", "targets.app.ignore must be a list of named objects"),
    (["ix_customers_full_name"], "targets.app.ignore[0] 'ix_customers_full_name' does not say what it names; write "
                                 "'<kind> <name>' with kind one of index, constraint, table"),
    (["index ix_customers_full_name"], "targets.app.ignore[0] 'index ix_customers_full_name': name the index with "
                                       "its table, 'index <table>.<name>'"),
    ([{"index": "x"}], "targets.app.ignore[0] must be text such as 'index customers.ix_customers_full_name'"),
])
def test_a_bad_ignore_entry_fails_the_load_in_one_line(tmp_path, ignore, words):
    path = _target(tmp_path, ignore=ignore)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert words in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------ item 10: what a URL or a file is


def test_a_two_slash_url_is_said_to_be_no_file(tmp_path, capsys):
    path = _target(tmp_path)
    text = path.read_text().replace("sqlite:///app.db", "sqlite://app.db")
    path.write_text(text)
    code, out = _cli(capsys, "--config", str(path), "check")
    assert code == 2 and "add_table" not in out
    assert "app: error: sqlite://app.db names no file: after two slashes, app.db is read as a host, which SQLite " \
           "ignores (an in-memory database, no file); write sqlite:///app.db" in out
    report = run_job(load_config(path), "app", "maintain_database")  # a run says the same
    assert report["status"] == "failed" and "sqlite://app.db names no file" in report["error"]


def test_a_missing_reference_file_is_the_reference_s_problem(tmp_path, capsys):
    path = _target(tmp_path)
    (tmp_path / "app_dev.db").unlink()
    code, out = _cli(capsys, "--config", str(path), "check")
    assert code == 2 and f"the reference database {tmp_path / 'app_dev.db'} does not exist" in out
    assert "point reference.url at the database the target should match" in out
    assert "backup" not in out
    assert not (tmp_path / "app_dev.db").exists()  # nothing was created


def test_nullability_shows_both_sides(tmp_path, capsys):
    path = _target(tmp_path, rows=_customers(null_phones=0), align="full")
    code, text = _cli(capsys, "--config", str(path), "diff", "app")
    assert "column customers.phone differs, database -> reference: NULL -> NOT NULL" in text
    dev, live = (f"sqlite:///{tmp_path / n}" for n in ("app_dev.db", "app.db"))
    code, text = _cli(capsys, "diff", dev, live)
    assert "column customers.phone differs, database -> reference: NOT NULL -> NULL" in text
