"""The smaller untruths of a report, each tried as a new user would meet it (real SQLite files, real runs):

* a dry run's refusal reads as the real run's (the same words, "would refuse", "dry run, nothing was changed"), and a
  failed dry run's header and summary say "dry run" and name the revision the database is at, not the one planned;
* a restore's "Before vs after" has the counts from before the restore (its safety copy's manifest), its summary
  says what it put back, and its dry run compares nothing with the reference and says so;
* no report (Markdown or JSON) says "(the rest is in the report)";
* ``rows_preserved`` of a verify run is skipped, with its reason, never a green "passed" that compared nothing;
* a target without ``migrations:`` is never told "Applied 0 Alembic revisions".
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from targets import demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.core.run.report import render_markdown, summary_line

FIX = "review them and rerun with align: full to apply them, or change the reference"


def _with_extra_table(demo_dir: Path):
    """The demo with a table the reference does not have: a destructive change additive alignment refuses."""
    conn = sqlite3.connect(demo_dir / "data" / "goals.db")
    with conn:
        conn.execute("CREATE TABLE extra_t (id INTEGER PRIMARY KEY)")
    conn.close()
    return load_config(write_config(demo_dir))


def _md(report: dict) -> str:
    return Path(report["report_paths"]["markdown"]).read_text()


def test_a_dry_runs_refusal_reads_as_the_real_runs(demo_dir):
    config = _with_extra_table(demo_dir)
    dry = run_job(config, "goals", "maintain_database", dry_run=True)
    real = run_job(config, "goals", "maintain_database")
    assert dry["status"] == real["status"] == "failed"
    assert real["error"] == f"align: additive refuses 1 destructive change(s): drop_table extra_t (1 columns); the " \
                            f"whole run was refused, nothing was committed; {FIX}"
    assert dry["error"] == f"align: additive would refuse 1 destructive change(s): drop_table extra_t (1 columns); " \
                           f"dry run, nothing was changed; {FIX}"
    md = _md(dry)
    assert "**Status:** **❌ FAILED at step `verify` (dry run: nothing was changed)**" in md
    assert "## Summary\n\nDry run: failed at step verify: align: additive would refuse" in md
    assert "## Planned (not applied)" in md and "## Refused" in md and "## Refused" in _md(real)
    # the header names the revision the database is at, the planned one as pending (was: "Alembic revision `0002`")
    assert "· Alembic revision `0001` (1 pending: 0002)" in md
    assert "FAILED at verify (dry run): align: additive would refuse" in summary_line(dry)


def test_a_restores_before_vs_after_has_the_counts_from_before_it(demo_config):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    report = run_job(demo_config, "goals", "restore_database")
    assert report["status"] == "success", report["error"]
    safety = report["backup"]
    assert safety["label"] == "pre-restore"
    before = report["tables_before"]
    assert before["goals"] == {"columns": 22, "rows": 39} and before["program_day_templates"]["rows"] == 4
    assert "alembic_version" not in before and "scheduled_sessions" not in before  # ignored; restored only
    md = _md(report)
    assert "| `goals` | 22 → 20 | 39 → 39 | ✅ UPDATED |" in md  # was "— → 20 | — → 39"
    assert "| `program_day_templates` | 3 → — | 4 → — | 🗑 DROPPED |" in md
    assert "| `scheduled_sessions` | — → 5 | — → 4 | ✅ NEW |" in md
    assert f"Before: the database just before the restore, as its safety copy `{safety['path']}` holds it" in md
    # a restore applies no change: it puts a backup back (was: "No changes were applied; 7 differences ... remain")
    assert f"## Summary\n\nRestored `{report['restored_from']['path']}` (the pre-migration backup of run " in md
    assert "No changes were applied" not in md and "7 differences from the reference (for information)" in md


def test_a_restores_dry_run_compares_nothing_and_says_so(demo_config):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    report = run_job(demo_config, "goals", "restore_database", dry_run=True)
    assert report["status"] == "success", report["error"]
    (check,) = report["checks"]
    assert check["status"] == "skipped" and check["passed"]  # skipped: it fails nothing (the catalog reads passed)
    md = _md(report)
    assert "The restored database matches the reference" not in md  # was said of a database nothing restored
    assert "## Compared with the reference\n\nNot compared: a dry run restores nothing" in md
    would = report["restore_preview"]["would_restore"]
    assert f"## Summary\n\nDry run, nothing was changed: would put back `{would}`; no check ran, 1 skipped" in md


def test_no_report_says_the_rest_is_in_the_report(demo_dir):
    """A verify run on the un-migrated demo, with a failing check of a long name too, fails with a line far longer
    than 300 characters."""
    long_check = {"name": "a check whose name goes on " + "and on " * 40, "sql": "SELECT 1", "expect": 0}
    config = load_config(write_config(demo_dir, {"goals": demo_target(checks=[long_check])}))
    report = run_job(config, "goals", "verify_database")
    assert report["status"] == "failed" and len(report["error_detail"]) > 300
    texts = [_md(report), Path(report["report_paths"]["json"]).read_text(), render_markdown(report),
             summary_line(report)]
    assert not [t for t in texts if "the rest is in the report" in t]
    assert len(report["error"]) <= 300 and long_check["name"].strip() in report["error_detail"]  # whole beside it


def test_rows_preserved_of_a_verify_run_is_skipped_with_its_reason(demo_config):
    assert run_job(demo_config, "goals", "maintain_database")["status"] == "success"
    report = run_job(demo_config, "goals", "verify_database")
    assert report["status"] == "success", report["error"]
    rows = next(c for c in report["checks"] if c["name"] == "rows_preserved")
    assert rows["status"] == "skipped"  # was "passed"
    assert rows["detail"].startswith("skipped: this run changed no row (verify_database only reads)")
    md = _md(report)
    assert "- ⏭️ **rows\\_preserved** — skipped: this run changed no row" in md or \
           "- ⏭️ **rows_preserved** — skipped: this run changed no row" in md
    assert "1 skipped (rows_preserved)" in md
    data = json.loads(Path(report["report_paths"]["json"]).read_text())
    assert next(c for c in data["checks"] if c["name"] == "rows_preserved")["status"] == "skipped"


def test_a_target_without_migrations_is_never_told_of_alembic_revisions(demo_dir):
    config = load_config(write_config(demo_dir, {"goals": demo_target(migrations=None, baseline_revision=None)}))
    dry = run_job(config, "goals", "maintain_database", dry_run=True, align="full")
    real = run_job(config, "goals", "maintain_database", align="full")
    assert dry["status"] == real["status"] == "success", (dry["error"], real["error"])
    for report, verb in ((dry, "planned"), (real, "Applied")):
        summary = _md(report).split("## Summary\n\n", 1)[1].split("\n", 1)[0]
        assert "Alembic" not in summary, summary
        n = len([a for a in report["planned" if verb == "planned" else "applied"] if a["source"] != "sql"])
        assert f"{verb} {n} alignment changes" in summary, summary
        assert "Alembic" not in summary_line(report)
