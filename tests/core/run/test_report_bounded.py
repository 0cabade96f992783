"""Reports do not grow with the data: a revision that writes 75,342 rows through one statement with bound parameters
(``executemany``) or through thousands of statements leaves a Markdown report a person can read (every line short,
a bounded sample of the SQL) and a JSON report of bounded size; the whole SQL, as it ran, is kept in a ``.sql`` file
beside them, linked from both. Real SQLite files (the demo), real runs (``run_job``), no mocks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from targets import copy_migrations, demo_target, revision, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.markdown import MAX_SQL_LINE, MAX_SQL_STATEMENTS, bounded_sql
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.core.run.report import MAX_MEASURED, render_markdown, write_report

ROWS = 75_342
ONE_STATEMENT = f"""\
    op.get_bind().execute(sa.text("UPDATE bulk_notes SET note = :n WHERE id = :i"),
                          [{{"n": f"N{{i}}", "i": i}} for i in range({ROWS})])"""
MANY_STATEMENTS = """\
    for i in range(3000):
        op.execute(f"UPDATE bulk_notes SET note = 'x{i}' WHERE id = {i}")"""


def _config(demo_dir: Path, body: str):
    """The demo with a table of 75,342 rows (in the reference too, empty) and a revision 0003 that writes them,
    declaring it (``changes_rows``)."""
    for name, rows in (("goals.db", ROWS), ("goals_dev.db", 0)):
        conn = sqlite3.connect(demo_dir / "data" / name)
        with conn:
            conn.execute("CREATE TABLE bulk_notes (id INTEGER PRIMARY KEY, note TEXT)")
            conn.executemany("INSERT INTO bulk_notes VALUES (?, ?)", ((i, f"n{i}") for i in range(rows)))
        conn.close()
    text = revision("0003", "0002", body).replace("revision = '0003'",
                                                  "revision = '0003'\nchanges_rows = ('bulk_notes',)")
    migrations = copy_migrations(demo_dir, {"0003_bulk.py": text})
    return load_config(write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))}))


def _longest(path: Path) -> int:
    return max(len(line) for line in path.read_text().splitlines())


@pytest.mark.parametrize("dry_run", [False, True])
def test_one_statement_that_writes_75342_rows_leaves_a_readable_report(demo_dir, dry_run):
    report = run_job(_config(demo_dir, ONE_STATEMENT), "goals", "maintain_database", dry_run=dry_run)
    assert report["status"] == "success", report["error"]
    md, js, sql = (Path(report["report_paths"][k]) for k in ("markdown", "json", "sql"))
    # was: a 1.4 MB Markdown report whose SQL block held one line of every row's parameters
    assert md.stat().st_size < 60_000 and _longest(md) <= MAX_SQL_LINE + 200, (md.stat().st_size, _longest(md))
    assert js.stat().st_size < 60_000 and _longest(js) <= MAX_SQL_LINE + 200, (js.stat().st_size, _longest(js))
    text = md.read_text()
    assert "UPDATE bulk_notes SET note = ? WHERE id = ?  -- params [('N0', 0), ('N1', 1)" in text  # a sample
    assert f"('N{ROWS - 1}', {ROWS - 1})" not in text
    assert "more characters" in text and f"the whole SQL is in `{sql}`" in text
    # the whole SQL as it ran, in a file beside the report, linked from its JSON
    data = json.loads(js.read_text())
    assert data["sql_file"] == str(sql) and data["report_paths"]["sql"] == str(sql) and sql.parent == md.parent
    whole = sql.read_text()
    assert f"('N{ROWS - 1}', {ROWS - 1})]" in whole and "ALTER TABLE goals ADD COLUMN completed_at" in whole
    assert data["sql_statements"] == len(data["sql"])  # a few statements, one of them cut
    rows = next(c for c in report["checks"] if c["name"] == "rows_preserved")
    assert f"bulk_notes: {ROWS} row(s) changed as revision 0003 declares" in rows["detail"]


def test_thousands_of_statements_list_a_bounded_sample(demo_dir):
    report = run_job(_config(demo_dir, MANY_STATEMENTS), "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    md, js, sql = (Path(report["report_paths"][k]) for k in ("markdown", "json", "sql"))
    data = json.loads(js.read_text())
    total = data["sql_statements"]
    assert total > 3000 and len(data["sql"]) == MAX_SQL_STATEMENTS
    assert len(data["measured"]["statements"]) == MAX_MEASURED and data["measured"]["statements_total"] > 3000
    assert js.stat().st_size < 200_000, js.stat().st_size  # was 1.3 MB for 3,000 statements
    text = md.read_text()
    assert len(text.splitlines()) < 600, len(text.splitlines())  # was over 3,000 lines
    assert f"(+{total - MAX_SQL_STATEMENTS} more statements: the whole SQL is in `{sql}`)" in text
    assert "UPDATE bulk_notes SET note = 'x2999' WHERE id = 2999;" in sql.read_text()
    assert "x2999" not in text


def test_a_small_report_keeps_every_statement_and_no_extra_file(demo_config):
    report = run_job(demo_config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert set(report["report_paths"]) == {"markdown", "json"} and "sql_file" not in report
    assert [p.suffix for p in sorted(Path(report["report_paths"]["json"]).parent.iterdir())] == [".json", ".md"]


def test_rendering_bounds_the_sql_of_any_report_dict():
    """An old or unwritten report dict with a huge statement renders bounded too (no file to link)."""
    huge = "INSERT INTO t VALUES (?)  -- params [" + ", ".join(f"({i},)" for i in range(100_000)) + "]"
    many = [f"UPDATE t SET a = {i}" for i in range(1000)]
    md = render_markdown({"status": "success", "target": "t", "job": "maintain_database", "sql": [huge, *many],
                          "applied": [{"source": "align", "description": "x", "seconds": 0.1}]})
    assert max(len(line) for line in md.splitlines()) <= MAX_SQL_LINE + 200
    said = f"(+{1001 - MAX_SQL_STATEMENTS} more statements, lines longer than {MAX_SQL_LINE} characters cut)"
    assert said in md and len(md) < 50_000


def test_bounded_sql_cuts_long_lines_and_many_statements():
    shown, omitted, cut = bounded_sql(["SELECT 1", "x" * 5000, *(f"s{i}" for i in range(300))])
    assert len(shown) == MAX_SQL_STATEMENTS and omitted == 302 - MAX_SQL_STATEMENTS and cut == 1
    assert shown[0] == "SELECT 1" and shown[1].startswith("x" * MAX_SQL_LINE + "…")
    assert "(4000 more characters)" in shown[1]
    assert bounded_sql(["a\nb"]) == (["a\nb"], 0, 0)


def test_write_report_spills_only_what_it_cut(tmp_path):
    report = {"status": "success", "target": "t", "job": "maintain_database", "run_id": "abc",
              "started_at": "2026-01-04T16:46:59+00:00", "sql": ["x" * 3000]}
    md_path, json_path = write_report(report, tmp_path)
    sql_path = md_path.with_suffix(".sql")
    assert sql_path.read_text() == "x" * 3000 + ";\n"
    assert json.loads(json_path.read_text())["sql"][0].startswith("x" * MAX_SQL_LINE + "…")


def test_a_dagster_dry_run_records_a_bounded_sample_of_its_sql(demo_dir):
    """The migrate op's ``sql`` metadata of a dry run and the report attached to the run (Dagster's event log keeps
    both): a sample, not every row's parameters (was 1.4 MB in one event)."""
    import dagster as dg

    from maintenance_pipeline.orchestration.definitions import build_definitions

    defs = build_definitions(_config(demo_dir, ONE_STATEMENT))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("maintain_database").execute_in_process(
            partition_key="goals", raise_on_error=False, instance=instance,
            run_config={"ops": {"migrate": {"config": {"dry_run": True}}}})
    assert result.success
    metadata = [e.event_specific_data.metadata for e in result.all_events if e.is_successful_output]
    texts = [str(getattr(v, "value", v)) for m in metadata for v in m.values()]
    assert any("UPDATE bulk_notes SET note = ? WHERE id = ?  -- params [('N0', 0)" in t for t in texts)
    assert max(len(t) for t in texts) < 60_000 and not any(f"('N{ROWS - 1}', {ROWS - 1})" in t for t in texts)


def test_a_rows_detail_names_a_bounded_sample():
    """The keys of lost rows (a key may be a long text) and the tables of each list are a sample."""
    from maintenance_pipeline.core.shared.verdicts import SAMPLE_KEY_CHARS, SAMPLE_NAMES, _first, describe_loss

    text = describe_loss({"table": "notes", "rows": 75_342, "keys": ["'" + "k" * 5000 + "'", "'b'", "'c'", "'d'"]})
    assert text.startswith("notes: 75342 row(s) missing or changed (keys: 'kkk") and "'d'" not in text
    assert len(text) < 3 * SAMPLE_KEY_CHARS + 80, len(text)
    names = [f"t{i}: 1 row(s) changed as revision 0003 declares" for i in range(500)]
    assert _first(names).endswith(f"t{SAMPLE_NAMES - 1}: 1 row(s) changed as revision 0003 declares "
                                  f"(+{500 - SAMPLE_NAMES} more)")
