"""Run reports: a Markdown page that reads like a hand-written migration report, plus JSON.

Every key of the report dict may be missing or None (a run can fail at any step), so
every section renders from whatever is there and never raises. The final text is masked:
``scheme://user:password@`` becomes ``scheme://user:***@``. What comes from the database, the targets file or a
check is escaped (``markdown._cell``, ``_code``, ``fenced``): a name shows as itself and adds no heading, link,
image or HTML; the SQL is shown byte for byte in a fenced block. A failed run's whole error (``error_detail``) is
in its own section, in a code block.

A report does not grow with the data a revision writes (``write_report``): it lists at most
``markdown.MAX_SQL_STATEMENTS`` statements, each line at most ``markdown.MAX_SQL_LINE`` characters (the bound
parameters of an ``executemany`` over 75,000 rows are one line: a sample of them is shown), and its JSON keeps the
costs of at most ``MAX_MEASURED`` statements; when anything was cut, the whole SQL, as it ran, is written beside the
report (``<report>.sql``), named in the JSON (``sql_file``, ``report_paths.sql``) and in the Markdown.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urlsplit

from ..schema.model import Change
from .jobs import JOBS, Job
from .markdown import (MAX_SQL_LINE, _cell, _code, _dict, _dicts, _dt, _duration, _plural, _secs,  # noqa: F401
                       _table, _yes, bounded_sql, fenced, human_bytes, sql_text)

# up to the last @ of the token; a password already masked (``***``, or ``\*\*\*`` escaped in Markdown) is left
_SECRET_RE = re.compile(r"(://[^:/@\s`]*):(?!(?:\\?\*){3}\\?@)[^\s`]*@")
_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_UNCHANGED_STEPS = {"backup", "diff"}  # steps that never touch the target


def mask_secrets(text: str) -> str:
    return _SECRET_RE.sub(r"\1:***@", text)


def _masked(value):
    """A JSON-ready copy of ``value`` with every string masked (non-JSON types become str)."""
    if isinstance(value, dict):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_masked(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return mask_secrets(str(value))


def _status(report: dict) -> str:
    status = str(report.get("status") or "").lower()
    if status == "failed" or (not status and (report.get("error") or report.get("failed_step"))):
        return "failed"
    return "dry_run" if report.get("dry_run") is True and status in ("success", "") else status or "unknown"


_BADGES = {"success": "✅ SUCCESS", "failed": "❌ FAILED", "dry_run": "🔍 DRY RUN"}


# ---------------------------------------------------------------- paths and writing
def _safe(name, fallback: str) -> str:
    return _UNSAFE_NAME_RE.sub("_", str(name or "")).strip("._") or fallback


def report_paths(reports_dir: Path, target: str, job: str, run_id: str, started_at: datetime) -> tuple[Path, Path]:
    when = (_dt(started_at) or datetime.now(timezone.utc)).strftime("%Y%m%d_%H%M%S")
    stem = f"{when}_{_safe(job, 'job')}_{_safe(str(run_id or '')[:8], 'norun')}"
    folder = Path(reports_dir) / _safe(target, "unknown")
    return folder / f"{stem}.md", folder / f"{stem}.json"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # reports hold no secrets; let the team read them
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


MAX_MEASURED = 200  # statements whose cost a report's JSON keeps (its Markdown shows ``MAX_STATEMENTS``)


def _bound(report: dict, sql_path: Path) -> None:
    """Bound what grows with the data, in place, before the report is written: the SQL lists (``sql``, a plan's
    ``sql``) to ``markdown.bounded_sql``'s sample, the whole SQL written to ``sql_path`` (masked) when anything was
    cut, and named (``sql_file``, ``sql_statements``: how many statements ran); the measured statements to
    ``MAX_MEASURED`` (``statements_total``: how many there were). A new list and dict replace the old ones: the
    migration's own result is not changed."""
    holders = [h for h in [report, *_dicts(report.get("planned"))] if isinstance(h.get("sql"), list) and h["sql"]]
    whole = max((h["sql"] for h in holders), key=len, default=[])  # ``sql``: every statement; a plan's: the same
    if whole:
        _, omitted, cut = bounded_sql(whole)
        if omitted or cut:
            _atomic_write(sql_path, mask_secrets(sql_text(whole)))
            for h in holders:
                h["sql"] = bounded_sql(h["sql"])[0]
            report["sql_file"], report["sql_statements"] = str(sql_path), len(whole)
            report["report_paths"]["sql"] = str(sql_path)
    measured = report.get("measured")
    if isinstance(measured, dict) and isinstance(measured.get("statements"), list) \
            and len(measured["statements"]) > MAX_MEASURED:
        report["measured"] = {**measured, "statements": measured["statements"][:MAX_MEASURED],
                              "statements_total": len(measured["statements"])}


def write_report(report: dict, reports_dir: Path) -> tuple[Path, Path]:
    md_path, json_path = report_paths(
        reports_dir, report.get("target"), report.get("job"), report.get("run_id"), report.get("started_at")
    )
    md_path.parent.mkdir(parents=True, exist_ok=True)
    report["report_paths"] = {"markdown": str(md_path), "json": str(json_path)}
    _bound(report, md_path.with_suffix(".sql"))
    _atomic_write(md_path, render_markdown(report))
    _atomic_write(json_path, json.dumps(_masked(report), indent=2, sort_keys=False, default=str) + "\n")
    return md_path, json_path


# ---------------------------------------------------------------- text
def _applied_counts(report: dict, key: str) -> tuple[int, int]:
    items = [i for i in _dicts(report.get(key)) if i.get("source") != "sql"]  # the SQL entry is no change
    alembic = sum(1 for i in items if i.get("source") == "alembic")
    return alembic, len(items) - alembic


def _counted(alembic: int, aligned: int) -> str:
    """``2 Alembic revisions and 1 alignment change``: only what there is (a target without ``migrations:`` has no
    Alembic revision to speak of)."""
    parts = ([_plural(alembic, "Alembic revision")] if alembic else []) + \
        ([_plural(aligned, "alignment change")] if aligned else [])
    return " and ".join(parts) or "no change"


def _summary(report: dict) -> str:
    status, target = _status(report), _cell(report.get("target"), "")
    backup = _dict(report.get("backup")).get("path")
    backup_txt = f" (backup: {_code(backup)})" if backup else ""
    if status == "failed":
        step = str(report.get("failed_step") or "")
        error = _cell(" ".join(str(report.get("error") or "no error message was recorded").split()).rstrip("."))
        more = " (the whole error is below)" if report.get("error_detail") else ""
        out = f"Failed at step {_cell(step)}: {error}.{more}" if step else f"The run failed: {error}.{more}"
        if report.get("dry_run") is True:  # a dry run changes nothing, whichever step it failed at
            said = "Dry run: " if "nothing was changed" in error else "Dry run, nothing was changed: "
            return f"{said}{out[0].lower()}{out[1:]}" + (
                f" Backup taken before the run: {_code(backup)}." if backup else "")
        if step in _UNCHANGED_STEPS or step == "migrate":
            out += f" The database was left as it was before the run{backup_txt}."
        elif _dicts(report.get("applied")):
            out += (f" Changes applied before the failure are still in place; to undo them run "
                    f"`restore_database`{backup_txt}.")
        elif backup:
            out += f" Backup taken before the run: {_code(backup)}."
        return out
    parts: list[str] = []
    restore = _restores(report)
    if restore:  # a restore applies no change: it puts a backup back (or, a dry run, says which it would)
        would, put = _dict(report.get("restore_preview")).get("would_restore"), _dict(report.get("restored_from"))
        if status == "dry_run":
            parts.append("Dry run, nothing was changed" + (f": would put back {_code(would)}" if would else ""))
        else:
            parts.append(f"Restored {_code(put['path'])}" + (f" ({_cell(put['chosen'])})" if put.get("chosen") else "")
                         if put.get("path") else "Nothing was restored")
    elif status == "dry_run":
        a, b = _applied_counts(report, "planned")
        parts.append(f"Dry run, nothing was changed: planned {_counted(a, b)}" if a or b
                     else "Dry run, nothing was changed: nothing to apply")
    else:
        a, b = _applied_counts(report, "applied")
        parts.append(f"Applied {_counted(a, b)}" if a or b else "No changes were applied")
    before, after = report.get("drift_before"), report.get("drift_after")
    if restore:  # information: the backup's schema is put back (a dry run compares nothing)
        if isinstance(after, list) and status != "dry_run":
            parts.append("schema equals the reference" if not after
                         else f"{_plural(len(after), 'difference')} from the reference (for information)")
    elif isinstance(after, list) and status != "dry_run":
        parts.append("schema now equals the reference" if not after
                     else f"{_plural(len(after), 'difference')} from the reference "
                          f"{'remains' if len(after) == 1 else 'remain'}")
    elif isinstance(before, list):
        parts.append("schema equals the reference" if not before
                     else f"{_plural(len(before), 'difference')} from the reference found")
    checks = _dicts(report.get("checks"))
    if checks:
        failed = [str(c.get("name")) for c in checks if _check_status(c) == "failed"]
        skipped = [str(c.get("name")) for c in checks if _check_status(c) == "skipped"]
        ran = len(checks) - len(skipped)
        text = ("no check ran" if not ran else f"all {ran} checks passed" if not failed else
                f"{len(failed)} of {ran} checks failed ({', '.join(failed)})")
        parts.append(text + (f", {len(skipped)} skipped ({', '.join(skipped)})" if skipped else ""))
    tables = _dict(report.get("tables_after")) or _dict(report.get("tables_before"))
    mine = _dict(tables.get(target)).get("rows") if target else None
    kept = "kept" if status == "success" else "in the database"
    if isinstance(mine, int):
        parts.append(f"{mine} {target} {kept}")
    elif tables:
        total = sum(r for t in tables.values() if isinstance(r := _dict(t).get("rows"), int))
        parts.append(f"{total} rows in {_plural(len(tables), 'table')} {kept}")
    text = "; ".join(parts) + "."
    if report.get("replanned"):
        text += f" Note: {_cell(report['replanned'])}."
    if refused := _dicts(report.get("refused")):
        verb = "would be refused" if status == "dry_run" else "refused"
        align = _cell(report.get("align") or "additive")
        text += f" {_plural(len(refused), 'destructive change')} {verb} under align={align} (see Refused)."
    return text


_ICONS = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}


def _file_state(report: dict) -> str:
    """What a rolled-back run left in a database file: bytewise what the backup holds, or written by others."""
    a = _dict(report.get("after_rollback"))
    if not a.get("sha256"):
        return ""
    now = f"sha256 {_code(str(a['sha256'])[:16] + '…')}"
    if a.get("unchanged"):
        return f" The database file is bytewise what it was before the run ({now}, the same as its backup's)."
    if a.get("bytewise_copy"):
        theirs = _code(str(a.get("backup_sha256"))[:16] + "…")
        return (f" The database file ({now}) differs from its backup's ({theirs}): "
                "another session wrote since the backup; none of it is this run's.")
    return f" The database file's {now} (its backup is a page copy: compare rows, not bytes)."


def _check_status(c: dict) -> str:
    """passed / failed / skipped (older reports have only ``passed``)."""
    if c.get("status") in _ICONS:
        return str(c["status"])
    return "passed" if c.get("passed") is True else "failed"


def _change_rows(items: list[dict]) -> list[list[str]]:
    """Kind (the fix), object, destructive, detail; then what differs, in words (``Change.drift_text``)."""
    return [[_cell(c.get("kind")), _code(f"{c.get('table')}.{c['name']}" if c.get("name") else c.get("table"),
                                         cell=True),
             "⚠️ yes" if c.get("destructive") else "no", _cell(c.get("detail")),
             _cell(Change.from_dict(c).drift_text().split(" (fix: ")[0])] for c in items]


def _sql_lines(report: dict, statements: list) -> list[str]:
    """The SQL in a fenced block, bounded (``markdown.bounded_sql``): what was left out or cut said under it, with
    the file that holds it whole (``sql_file``: ``write_report`` wrote it)."""
    shown, omitted, cut = bounded_sql(statements)
    sql = sql_text(shown)
    if not sql:
        return []
    total = report.get("sql_statements")
    if isinstance(total, int) and not isinstance(total, bool) and total > len(statements):
        omitted += total - len(statements)  # the JSON holds a sample already
    where = f"the whole SQL is in {_code(report['sql_file'])}" if report.get("sql_file") else ""
    said = [f"+{omitted} more statements"] if omitted else []
    if cut or (where and not omitted):
        said.append(f"lines longer than {MAX_SQL_LINE} characters cut")
    note = ["", f"({', '.join(said)}{': ' + where if where else ''})"] if said else []
    return fenced(sql, "sql") + note


def _show_planned(report: dict, status: str) -> bool:
    """Dry runs, and failed runs that planned changes but applied none, show the plan and its SQL."""
    return status == "dry_run" or (
        status == "failed" and not _dicts(report.get("applied")) and bool(_dicts(report.get("planned"))))


def _not_checked(report: dict) -> str:
    step = report.get("failed_step")
    return f"Not checked (the run failed at {step})." if step else "Not checked (the step did not run)."


def _planned(report: dict) -> bool:
    """Whether the changes section shows the plan (``_show_planned``)."""
    return _show_planned(report, _status(report))


def _has_error(report: dict) -> bool:
    return _status(report) == "failed" and bool(report.get("error_detail") or report.get("error"))


def _error(report: dict) -> list[str]:
    return ["The whole error, as the failed step raised it (secrets masked):", "",
            *fenced(str(report.get("error_detail") or report.get("error")), "text")]


def _drift(report: dict) -> list[str]:
    restore = _restores(report)
    items = report.get("drift_after" if restore else "drift_before")  # a restore compares after it, in verify
    if restore and report.get("dry_run") is True:
        return ["Not compared: a dry run restores nothing (what it would undo is above)."]
    if not isinstance(items, list):
        return [_not_checked(report)]
    if restore:  # information: the restore puts back what the backup held
        if not items:
            return ["The restored database matches the reference."]
        return [f"For information (a restore puts back what the backup held, whatever the reference says): "
                f"{_plural(len(items), 'difference')} from the reference.", ""] + \
            _table(["Fix", "Object", "Destructive", "Detail", "What differs"], _change_rows(_dicts(items)))
    if not items:
        return ["None: the database already matched the reference."]
    rows = _dicts(items)
    if any(c.get("fixed_by") for c in rows):  # which the revisions fixed, which alignment fixed
        return _table(["Fix", "Object", "Destructive", "Detail", "What differs", "Fixed by"],
                      [r + [_cell(c.get("fixed_by"), "—")] for r, c in zip(_change_rows(rows), rows)])
    return _table(["Fix", "Object", "Destructive", "Detail", "What differs"], _change_rows(rows))


def _restored(report: dict) -> list[str]:
    r = _dict(report.get("restored_from"))
    chosen = [f"Put back {_cell(r.get('chosen'))}.", ""] if r.get("chosen") else []
    if r.get("target_was") == "missing":
        chosen += ["The database file was missing: it was made again from the backup (there was nothing to "
                   "keep a safety copy of).", ""]
    elif r.get("target_was") == "not a database":
        chosen += [f"The file was not a database (damaged): it was replaced whole; its bytes are kept as they were "
                   f"in {_code(r.get('kept_aside'))} (not a backup: no manifest, retention leaves it).", ""]
    return chosen + _table(["Backup restored", "SHA-256", "Created", "Label"],
                           [[_code(r.get("path"), cell=True),
                             _code(str(r.get("sha256") or "")[:12], cell=True) if r.get("sha256") else "—",
                             _cell(r.get("created_at")), _cell(r.get("label"))]])


_ROLLED_BACK = "**Rolled back:** the migration stopped before its COMMIT; nothing it did was committed."


def _changes(report: dict) -> list[str]:
    """The plan and its SQL (``_show_planned``), else what was applied."""
    return _planned_changes(report) if _planned(report) else _applied_changes(report)


def _planned_changes(report: dict) -> list[str]:
    planned = _dicts(report.get("planned"))
    rolled = ([_ROLLED_BACK + _file_state(report), "", "What it tried:", ""] if report.get("rolled_back") else [])
    if not planned:
        return rolled + ["Nothing to do."]
    out = rolled + _table(["#", "Source", "Description"],
                          [[str(i), _cell(p.get("source")), _cell(p.get("description"))]
                           for i, p in enumerate([p for p in planned if p.get("source") != "sql"], 1)])
    sql = _sql_lines(report, [s for p in planned
                              for s in ([p["sql"]] if isinstance(p.get("sql"), str) else p.get("sql") or [])
                              if s])
    return out + (["", *sql] if sql else [])


def _applied_changes(report: dict) -> list[str]:
    applied = _dicts(report.get("applied"))
    revs = _dict(report.get("revisions"))
    note = []
    if revs.get("stamp"):
        note = [f"The database predated Alembic: stamped at baseline revision {_code(revs['stamp'])} first.", ""]
    if revs.get("after") and (revs.get("before") or revs.get("stamp")) != revs.get("after"):
        note += [f"Alembic revision: {_code(revs.get('before') or revs.get('stamp'))} → "
                 f"{_code(revs['after'])}.", ""]
    if report.get("rolled_back"):
        note += [_ROLLED_BACK + _file_state(report), ""]
    if not applied:
        return note + ["None."]
    total = sum(a["seconds"] for a in applied if _secs(a.get("seconds")) != "—")
    sql = _sql_lines(report, report.get("sql") if isinstance(report.get("sql"), list) else [])
    return note + _table(["#", "Source", "Description", "Seconds"],
                         [[str(i), _cell(a.get("source")), _cell(a.get("description")), _secs(a.get("seconds"))]
                          for i, a in enumerate(applied, 1)]) + ["", f"**Total:** {_secs(total)} s"] + \
        (["", "The SQL executed, in order:", "", *sql] if sql else [])


def _has_cost(report: dict) -> bool:
    return bool(_dict(report.get("measured")).get("statements")) or len(_dicts(report.get("attempts"))) > 1


def _refused(report: dict) -> list[str]:
    items = _dicts(report.get("refused"))
    return _table(["Fix", "Object", "Destructive", "Detail", "What differs"], _change_rows(items)) + [
        "", "These are not applied because `align` is "
        f"{_code(report.get('align') or 'additive')}. To apply them, review the data they hold, then run again "
        "with `align: full` (`ops: {migrate: {config: {align: full}}}`)."]


def _verification(report: dict) -> list[str]:
    checks = _dicts(report.get("checks"))
    out = [f"- {_ICONS.get(_check_status(c), '❌')} **{_cell(c.get('name'))}**"
           + (f" — {_cell(c.get('detail'))}" if c.get("detail") else "") for c in checks] or [_not_checked(report)]
    drops = _dicts(report.get("planned_drops"))
    if drops:
        out += ["", "**Data held by dropped objects** (a copy stays in the backup):"]
        for d in drops:
            column = f"{d.get('table')}.{d.get('column')}"
            obj = f"column {_code(column)}" if d.get("column") else f"table {_code(d.get('table'))}"
            held = [f"{d['rows']} rows" if d.get("rows") is not None else "",
                    f"{d['values']} values" if d.get("values") is not None else ""]
            out.append(f"- {obj}: {', '.join(h for h in held if h) or 'size unknown'}")
    return out


def _before_after(report: dict) -> list[str]:
    before, after = _dict(report.get("tables_before")), _dict(report.get("tables_after"))
    if not before and not after:
        return ["No table statistics were recorded."]
    rows = []
    for name in [*before, *(n for n in after if n not in before)]:
        b, a = _dict(before.get(name)), _dict(after.get(name))
        note = ""
        if after and name not in before and before:
            note = "✅ NEW"
        elif before and after and name not in after:
            note = "🗑 DROPPED"
        elif isinstance(b.get("columns"), int) and isinstance(a.get("columns"), int) \
                and b["columns"] != a["columns"]:  # unknown on one side is no update
            note = "✅ UPDATED"
        rows.append([_code(name, cell=True), f"{_cell(b.get('columns'))} → {_cell(a.get('columns'))}",
                     f"{_cell(b.get('rows'))} → {_cell(a.get('rows'))}", note])
    lead = []
    if _restores(report) and before:
        safety = _dict(report.get("backup")).get("path")
        lead = [f"Before: the database just before the restore, as its safety copy {_code(safety)} holds it (its "
                "manifest); after: the restored database.", ""]
    return lead + _table(["Table", "Columns", "Rows", "Note"], rows)


def _timeline(report: dict) -> list[str]:
    steps = _dicts(report.get("timeline"))
    if not steps:
        return ["No steps were recorded."]
    rows = []
    for s in steps:
        when = _dt(s.get("started_at"))
        mark = " ❌" if s.get("step") and s.get("step") == report.get("failed_step") else ""
        rows.append([_cell(s.get("step")) + mark, when.strftime("%H:%M:%S") if when else "—",
                     _secs(s.get("seconds"))])
    out = _table(["Step", "Started (UTC)", "Seconds"], rows)
    start, end = _dt(report.get("started_at")), _dt(report.get("finished_at"))
    return out + (["", f"**Total time:** {_duration((end - start).total_seconds())}"] if start and end else [])


def _backups(report: dict) -> list[str]:
    b = _dict(report.get("backup"))
    out = (_table(["Path", "SHA-256", "Size", "Verified", "Pinned", "Label", "Method"],
                  [[_code(b.get("path"), cell=True),
                    _code(str(b["sha256"])[:12], cell=True) if b.get("sha256") else "—",
                    human_bytes(b.get("bytes")), _yes(b.get("verified")), _yes(b.get("pinned")),
                    _cell(b.get("label")), _cell(b.get("method"))]])
           if b else ["No backup was taken."])
    if b and b.get("pinned") and b.get("path"):
        out += ["", "Restore this pinned backup with:", "",
                *fenced(f"maintenance-pipeline run restore_database {report.get('target')} --backup {b['path']}")]
    cleaned = b.get("cleaned") if b else None
    if cleaned:
        out += ["", "**Left by an interrupted run and removed before this backup** (temp files, copies "
                    "without a manifest):"]
        out += [f"- {_code(p)}" for p in cleaned]
    if isinstance(dropped := report.get("migration_cleaned"), list) and dropped:  # PostgreSQL: scratch databases
        out += ["", "**Left by a killed run, dropped:** " + ", ".join(map(_code, dropped))]
    if report.get("backup_problems"):  # manifests left alone (invalid, or dated in the future)
        out += ["", "**Left alone in the backup folder:**"] + [f"- {_cell(p)}" for p in report["backup_problems"]]
    removed = report.get("retention_removed")
    if isinstance(removed, list):
        out += ["", "**Retention removed:**" + ("" if removed else " nothing.")]
        out += [f"- {_code(p)}" for p in removed]
    return out


def _always(report: dict) -> bool:
    return True


# a run's sections, in order: (title, or the function that names it; whether the report has it; its body). A drill's
# report has its own (``_drill_sections``).
_SECTIONS: list[tuple[str | Callable[[dict], str], Callable[[dict], bool], Callable[[dict], list[str]]]] = [
    ("Summary", _always, lambda r: [_summary(r)]),
    ("Error", _has_error, _error),
    ("Restored", lambda r: bool(r.get("restored_from")), _restored),
    ("Dry run: what the restore would do", lambda r: bool(_dict(r.get("restore_preview"))),
     lambda r: _restore_preview(r)),
    (lambda r: "Compared with the reference" if _restores(r) else "Drift found", _always, _drift),
    (lambda r: "Planned (not applied)" if _planned(r) else "Changes applied", _always, _changes),
    ("What it cost the application", _has_cost, lambda r: _cost(r, _planned(r))),
    ("Refused", lambda r: bool(_dicts(r.get("refused"))), _refused),
    ("Verification", _always, _verification),
    ("Before vs after", _always, _before_after),
    ("Timeline", _always, _timeline),
    ("Backups", _always, _backups),
]


def _sections(report: dict) -> list[tuple[str, Callable[[], list[str]]]]:
    """The report's sections, each a title and the function that renders its body (``render_markdown`` calls it: a
    body that raises is said in its place)."""
    if _job(report).about_backups:  # a drill restores into a scratch place: its own layout
        return _drill_sections(report, _status(report))
    return [(title(report) if callable(title) else title, partial(body, report))
            for title, applies, body in _SECTIONS if applies(report)]


def _restore_preview(report: dict) -> list[str]:
    """A restore's dry run: which backup it would put back, the changes since it (which it would undo) and each
    table's rows now against the backup's."""
    p = _dict(report.get("restore_preview"))
    out = [f"Would put back {_code(p.get('would_restore'))}: {_cell(p.get('chosen'))}. Nothing was changed.", ""]
    undo = _dicts(p.get("would_undo"))
    out += (["Putting it back would make these changes to the schema (undoing what changed since that backup; "
             "\"destructive\" loses what the database holds now):", "",
             *_table(["Change", "Object", "Destructive", "Detail", "The database now vs the backup"],
                     _change_rows(undo))] if undo
            else ["The schema is the backup's: it would change no part of the schema."])
    rows = _dict(p.get("rows_now_then"))
    differ = [n for n, v in rows.items() if isinstance(v, list) and v[0] != v[1]]
    if differ:
        out += ["", f"Rows: {len(differ)} table(s) hold another number of rows now than in the backup "
                    f"({', '.join(map(_code, differ[:10]))}); rows written since the backup are lost by the restore "
                    "(the safety copy keeps them)."]
    if rows:
        out += ["", *_table(["Table", "Rows now", "Rows in the backup"],
                            [[_code(n, cell=True), _cell(v[0] if isinstance(v, list) else None, "—"),
                              _cell(v[1] if isinstance(v, list) else None, "—")] for n, v in rows.items()])]
    return out


def _drill_sections(report: dict, status: str) -> list[tuple[str, Callable[[], list[str]]]]:
    """A restore drill's report (``core/run/drill.py``): what was restored where, the figures (RPO, RTO, size), each
    check on the restored copy, the rehearsal of the pending migration, the timeline."""
    d = _dict(report.get("drill"))
    sections = [("Summary", lambda: [_drill_summary(report, status)])]
    if status == "failed" and (report.get("error_detail") or report.get("error")):
        sections.append(("Error", partial(_error, report)))
    if d:
        sections += [("Drill", lambda: _drill_figures(d)), ("Checks on the restored copy", lambda: _drill_checks(d))]
        if _dict(d.get("rehearsal")):
            sections.append(("Rehearsal of the pending migration", lambda: _drill_rehearsal(d)))
    if report.get("backup_problems"):
        sections.append(("Left alone in the backup folder",
                         lambda: [f"- {_cell(p)}" for p in report["backup_problems"]]))
    return sections + [("Timeline", partial(_timeline, report))]


def _drill_summary(report: dict, status: str) -> str:
    d = _dict(report.get("drill"))
    b = _dict(d.get("backup"))
    name = _code(b.get("name")) if b.get("name") else "no backup"
    figures = (f"RPO {_hours(d.get('rpo_hours'))}, RTO {_secs(d.get('rto_seconds'))} s, "
               f"size {human_bytes(d.get('backup_bytes'))}")
    if status == "failed":
        line = " ".join(str(report.get("error") or "no error message was recorded").split()).rstrip(".")
        error = _cell(line.removeprefix(f"restore drill of {report.get('target')}: "))
        done = f" ({figures})" if d.get("rto_seconds") is not None else ""
        return f"The restore drill of {name} failed{done}: {error}. The target was not touched."
    passed = [c for c in _dicts(d.get("checks")) if c.get("name") != "pending_migration_rehearsal"
              and _check_status(c) == "passed"]
    r = _dict(d.get("rehearsal"))
    pending = ", ".join(map(str, r.get("pending") or []))
    rehearsed = (f"revision(s) {_cell(pending)} and the alignment apply cleanly" if pending else
                 "the alignment applies cleanly" if _dicts(r.get("applied")) else "nothing pending")
    return (f"Backup {name} ({_cell(b.get('label'))}) restored into a scratch place and checked: "
            f"{_plural(len(passed), 'check')} passed; {figures}. Tomorrow's migration rehearsed on the restored copy: "
            f"{rehearsed}. The target was not touched.")


def _hours(value) -> str:
    return f"{value:.2f} h" if isinstance(value, (int, float)) and not isinstance(value, bool) else "unknown"


def _drill_figures(d: dict) -> list[str]:
    b = _dict(d.get("backup"))
    rows = [["Backup", _code(b.get("path"), cell=True)],
            ["Label / sequence", f"{_cell(b.get('label'))} / {_cell(b.get('seq'))}"],
            ["Created", _cell(b.get("created_at"))],
            ["SHA-256", _code(str(b["sha256"])[:16] + "…", cell=True) if b.get("sha256") else "—"],
            ["Size", human_bytes(d.get("backup_bytes"))],
            ["Restored into (removed after)", _code(d.get("scratch"), cell=True) if d.get("scratch") else "—"],
            ["RPO (the backup's age at the drill)", _hours(d.get("rpo_hours"))
             + (f" ({_cell(d.get('rpo_note'))})" if d.get("rpo_note") else "")],
            ["RTO (restore + checks)", f"{_secs(d.get('rto_seconds'))} s (restore {_secs(d.get('restore_seconds'))} s, "
                                       f"checks {_secs(d.get('verify_seconds'))} s)"
             if d.get("rto_seconds") is not None else "— (not restored)"],
            ["Rehearsal", f"{_secs(d.get('rehearsal_seconds'))} s" if d.get("rehearsal_seconds") is not None
             else "— (not run)"]]
    return _table(["", ""], rows)


def _drill_checks(d: dict) -> list[str]:
    verdicts = _dict(d.get("verdicts"))
    out = [f"- {_ICONS.get(_check_status(v), '❌')} **{_cell(n)}** — {_cell(v.get('detail'))}"
           for n, v in verdicts.items() if isinstance(v, dict)]
    if d.get("error"):
        return out
    out += ["", "Each check:", ""]
    out += [f"- {_ICONS.get(_check_status(c), '❌')} {_cell(c.get('name'))}"
            + (f" — {_cell(c.get('detail'))}" if c.get("detail") else "") for c in _dicts(d.get("checks"))
            if c.get("name") != "pending_migration_rehearsal"]
    return out


def _drill_rehearsal(d: dict) -> list[str]:
    r = _dict(d.get("rehearsal"))
    applied = _dicts(r.get("applied"))
    out = [f"Pending Alembic revisions: {_cell(', '.join(map(str, r.get('pending') or [])), 'none')}."]
    if r.get("error"):
        tried = r.get("tried") or []
        out += ["", f"**Failed** (rolled back on the restored copy): {_cell(r['error'])}"]
        out += (["", "What it applied before failing:", ""] + [f"- {_cell(t)}" for t in tried]) if tried else []
        return out
    if applied:
        out += ["", *_table(["#", "Source", "Description", "Seconds"],
                            [[str(i), _cell(a.get("source")), _cell(a.get("description")), _secs(a.get("seconds"))]
                             for i, a in enumerate(applied, 1)])]
        statements = _plural(int(r.get("statements") or 0), "statement")
        out += ["", f"Revision after: {_code(r.get('revision_after'))}; {statements}."]
    return out


MAX_STATEMENTS = 50  # rows of the cost table; the JSON keeps them all


def _cost(report: dict, planned: bool) -> list[str]:
    """Each statement's lock, rewrite, rows and time, and the longest lock: measured as it ran (a dry run: in the
    rehearsal on a copy, what the real run will hold; a real run: on the live database)."""
    measured = _dict(report.get("measured"))
    where = ("measured in the rehearsal on a copy (what the real run will hold the application off for)" if planned
             else "measured on the live database")
    out = []
    longest = _dict(measured.get("longest_lock"))
    if longest:
        out.append(f"**Longest lock:** {_cell(longest.get('lock'))} for {_secs(longest.get('seconds'))} s, from "
                   f"{_code(longest.get('statement'))} to the end of the transaction ({where}).")
    attempts = _dicts(report.get("attempts"))
    waited = [a for a in attempts if a.get("waited_for_lock")]
    prepared = [a for a in attempts if a.get("prepared")]
    if len(attempts) > 1:
        who = sorted({b for a in waited for b in a.get("blockers") or []})
        out += ["", f"**Attempts:** {len(attempts)}; {len(waited)} rolled back after waiting their lock_timeout"
                + (f" (blocked by: {_cell('; '.join(who))})" if who else "")
                + (f"; {len(prepared)} started over to prepare outside the transaction "
                   f"({_cell(prepared[0].get('prepared'))})" if prepared else "") + "."]
    rows = []
    for i, e in enumerate(_dicts(measured.get("statements"))[:MAX_STATEMENTS], 1):
        rows.append([str(i), _code(e.get("sql"), cell=True), _cell("; ".join(e.get("locks") or []), "—"),
                     _cell(", ".join(e.get("rewrites") or []), "no"), _cell(e.get("rows"), "—"),
                     _secs(e.get("seconds")), _secs(e.get("lock_held"))])
    if rows:
        kept = len(_dicts(measured.get("statements")))  # the JSON keeps ``MAX_MEASURED`` (``statements_total``)
        total = measured.get("statements_total")
        total = total if isinstance(total, int) and not isinstance(total, bool) and total > kept else kept
        more = total - len(rows)
        out += ["", *_table(["#", "Statement", "Lock it took", "Rewrites", "Rows", "Seconds", "Lock held (s)"], rows)]
        if more > 0:
            out += ["", f"(+{more} more statements in the JSON report)" if total == kept else
                    f"(+{more} more statements; the JSON report lists the first {kept})"]
    return out


_URL_SAFE = ":/?#[]@!$&'*+,;=%-._~"  # what a URL keeps as it is; anything else (spaces, parentheses, <>) encoded


def _link(text: str, url) -> str | None:
    """A Markdown link to ``url`` (the run's page: an http(s) URL of the targets file), its destination
    percent-encoded so nothing in it ends the link; None for anything else."""
    try:
        if urlsplit(str(url)).scheme not in ("http", "https"):
            return None
    except ValueError:
        return None
    return f"[{text}]({quote(str(url), safe=_URL_SAFE)})"


def render_markdown(report: dict) -> str:
    report = report if isinstance(report, dict) else {}
    status = _status(report)
    badge = _BADGES.get(status, status.upper())
    if status == "failed" and report.get("failed_step"):
        badge += f" at step {_code(report['failed_step'])}"
    if status == "failed" and report.get("dry_run") is True:
        badge += " (dry run: nothing was changed)"
    start, end = _dt(report.get("started_at")), _dt(report.get("finished_at"))
    time = start.strftime("%H:%M:%S") if start else "—"
    if start and end:
        time += f" – {end.strftime('%H:%M:%S')} UTC ({_duration((end - start).total_seconds())})"
    elif start:
        time += " UTC"
    run_id = report.get("run_id")
    run = _code(run_id)
    if report.get("ui_url"):
        run = _link(_cell(run_id), report["ui_url"]) or run
    reference = report.get("reference")
    lines = [f"# Database maintenance report — {_cell(report.get('target'), 'unknown target')}", "",
             f"**Job:** {_code(report.get('job'))}  ",
             f"**Date:** {start.strftime('%Y-%m-%d') if start else '—'}  ", f"**Time:** {time}  ",
             f"**Status:** **{badge}**  ",
             f"**Database:** {_code(report.get('database'))}  "]
    if reference:
        lines.append(f"**Reference:** {_code(reference)} (align: {_code(report.get('align'))})  ")
    lines.append(f"**Run:** {run}" + (f" (trigger: {_cell(report.get('trigger'))})" if report.get("trigger") else "")
                 + "  ")
    revs = _dict(report.get("revisions"))
    # a dry run's or a rolled-back run's "after" is the revision it would have reached: the database is at "before"
    after = revs.get("after") if report.get("dry_run") is not True and not report.get("rolled_back") else None
    head = after or revs.get("before") or revs.get("stamp")
    pending = [] if after else [str(r) for r in revs.get("pending") or []]
    unstamped = f" · not under Alembic yet (baseline {_code(revs['baseline'])})" if revs.get("baseline") else ""
    lines.append(f"**Product:** maintenance_pipeline {_cell(report.get('version'), 'unknown')}"
                 + (f" · Alembic revision {_code(head)}" if head else unstamped)
                 + (f" ({len(pending)} pending: {_cell(', '.join(pending))})" if pending else ""))
    for title, build in _sections(report):
        try:
            body = build()
        except Exception as e:  # never lose the whole report because one section is odd
            body = [f"_This section could not be rendered: {type(e).__name__}: {_cell(e)}_"]
        lines += ["", "---", "", f"## {title}", "", *body]
    paths = _dict(report.get("report_paths"))
    finished = f" · finished {end.isoformat(timespec='seconds')}" if end else ""
    lines += ["", "---", "", f"**Result:** {badge}{finished}" + ("  " if paths else "")]
    if paths:
        lines.append(f"**Files:** {_code(paths.get('markdown'))}, {_code(paths.get('json'))}"
                     + (f", {_code(paths['sql'])} (the whole SQL)" if paths.get("sql") else ""))
    return mask_secrets("\n".join(lines) + "\n")


def summary_line(report: dict) -> str:
    report = report if isinstance(report, dict) else {}
    status = _status(report)
    head = f"{report.get('job') or 'job'} on {report.get('target') or '?'} (run {str(report.get('run_id') or '?')[:8]})"
    if status == "failed":
        step = report.get("failed_step")
        dry = " (dry run)" if report.get("dry_run") is True else ""
        tail = f"FAILED{' at ' + str(step) if step else ''}{dry}: {report.get('error') or 'no error message'}"
    else:
        try:
            tail = _summary(report)
        except Exception:  # a log line must never break the caller
            tail = "see the report"
        tail = tail if status == "dry_run" else f"{status.upper()}: {tail}"
    return mask_secrets(" ".join(f"{head}: {tail}".split()))


def _job(report: dict) -> Job:
    """The job of the run a report is of (``jobs.py``); a report of a job this version does not know reads as one that
    changes nothing."""
    return JOBS.get(str(report.get("job"))) or _UNKNOWN_JOB


def _restores(report: dict) -> bool:
    return _job(report).restores


_UNKNOWN_JOB = Job("unknown", ("report",), "")
