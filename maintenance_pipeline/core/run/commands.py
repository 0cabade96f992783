"""Read-only commands for people and CI (no backup, never a write): ``check`` (drift, pending revisions, user
checks), ``diff`` (two databases, or a target against its reference), ``status`` (one line per target) and
``history`` (past runs, from the reports). Each returns plain data; ``render`` writes it as text, Markdown (a
pull-request comment), JSON or GitHub annotations. Exit codes: 0 in sync / passed, 1 drift or a failed check,
2 an error (``MaintenanceError``: the configuration, a connection)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..shared.manifest import list_backups
from ..config import MaintenanceConfig, Target
from ..dburl import mask_url
from ..engines import engine_of, open_engine
from ..errors import MaintenanceError
from ..migrate.align import blocked_by_kept_names, cannot_align, split_by_align
from ..migrate.executor import migrate
from ..migrate.revisions import plan_revisions
from ..schema.diff import diff, summarize
from ..schema.model import Change
from ..schema.reference import reference_snapshot
from ..schema.snapshot import snapshot_url, take_snapshot
from ..verify.foresee import Obstacle, foresee
from ..verify.user_checks import run_user_check
from .jobs import DRILL
from .markdown import _cell, _code, fenced, sql_text

FORMATS = ("text", "markdown", "json", "github")


@dataclass
class TargetCheck:
    """What ``check`` found on one target."""

    target: str
    database: str
    changes: list[Change] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # Alembic revisions not applied yet
    checks: list[dict] = field(default_factory=list)  # the targets file's checks: name, passed, detail
    sql: list[str] = field(default_factory=list)  # what alignment would run (--sql)
    measured: dict | None = None  # --sql: each statement's lock, rewrite, rows and lock time in the rehearsal
    on_copy: bool = False  # --sql: the rehearsal ran on a copy (else in a rolled-back transaction on the database)
    error: str | None = None
    align: str | None = None  # the align mode a maintain run would use (None: no target, a diff of two URLs)
    # (change, why) each change that makes a maintain run refuse itself as a whole (nothing applied)
    refused: list[tuple[Change, str]] = field(default_factory=list)
    obstacles: list[Obstacle] = field(default_factory=list)  # what the planned changes would trip over in the data
    left_different: list[Change] = field(default_factory=list)  # --sql: what the rehearsal left different
    rehearsed: bool = False  # --sql: the migration was rehearsed (its refusals come after the pending revisions)

    @property
    def in_sync(self) -> bool:
        return self.error is None and not self.changes and not self.pending and all(c["passed"] for c in self.checks)

    def to_dict(self) -> dict:
        return {"target": self.target, "database": self.database, "in_sync": self.in_sync,
                "changes": [{**c.to_dict(), "text": c.drift_text()} for c in self.changes],
                "pending_revisions": self.pending, "checks": self.checks, "sql": self.sql, "measured": self.measured,
                "error": self.error, "align": self.align, "would_be_refused": bool(self.refused),
                "refused": [{**c.to_dict(), "why": why} for c, why in self.refused],
                "would_fail": [o.to_dict() for o in self.obstacles]}


def reference_for(config: MaintenanceConfig, t: Target):
    return reference_snapshot(url=t.reference_url, metadata=t.reference_metadata,
                              target_dialect=t.engine.name, ignore_tables=t.ignore_tables,
                              search_paths=(config.root,), schema=t.reference_schema, target_url=t.url)


def check_target(config: MaintenanceConfig, name: str, *, sql: bool = False, align: str | None = None,
                 count: bool = False) -> TargetCheck:
    """Drift, pending revisions and user checks of one target, read-only; whether a maintain run under ``align``
    (default: the target's) would be refused, and why; ``count``: what each change would trip over in the data
    (``verify.foresee``: whole-table reads); ``sql``: the whole migration rehearsed, its SQL."""
    t = config.target(name)
    mode = align or t.align
    out = TargetCheck(name, mask_url(t.url), align=mode)
    try:
        ref = reference_for(config, t)
        engine = open_engine(t.url)
        try:
            with engine.connect() as conn:
                schema = engine_of(conn).target_schema(t)
                live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=t.schema)
                if t.migrations is not None:
                    out.pending = [r for r, _ in plan_revisions(conn, t).pending]
                out.checks = [run_user_check(conn, c).to_dict() for c in t.checks]
                out.changes = diff(live, ref, ignore_tables=t.ignore_tables, renames=t.renames, ignore=t.ignore)
                if count and out.changes:
                    out.obstacles = foresee(conn, out.changes, live, schema)
        finally:
            engine.dispose()
        out.refused = refusals(t.engine, out.changes, ref, live, mode)
        if sql and (out.changes or out.pending):
            try:  # the whole migration, on a scratch copy or in a rolled-back transaction: what it would run
                result = migrate(t, ref, align=mode, dry_run=True)
                out.sql, out.measured, out.on_copy = list(result.sql), result.measured, result.on_copy
                out.rehearsed = True
                if out.pending:  # the rehearsal planned after the revisions: its refusals are the truth
                    said = {c.describe(): why for c, why in out.refused}
                    out.refused = [(c, said.get(c.describe()) or _why(c, mode)) for c in result.refused]
                if not out.refused:
                    out.left_different = list(result.drift_after)
            except MaintenanceError as e:  # the plan cannot be rehearsed: say so, with what ran until it failed
                out.sql = list(getattr(getattr(e, "result", None), "sql", []) or [])
                out.error = f"--sql: the rehearsal of the migration failed after {len(out.sql)} statement(s) (rolled " \
                            f"back): {e}"
    except MaintenanceError as e:
        out.error = str(e)
    return out


def refusals(engine, changes: list[Change], reference, live, align: str) -> list[tuple[Change, str]]:
    """(change, why) of each change that makes a maintain run under ``align`` refuse itself as a whole, as
    ``migrate.align`` decides it (before the revisions: ``--sql`` rehearses them)."""
    to_apply, refused = split_by_align(changes, align)
    out = [(c, _why(c, align)) for c in refused]
    to_apply, blocked = blocked_by_kept_names(live, to_apply)
    out += [(c, "its name is held by an index or key the plan keeps") for c in blocked]
    out += cannot_align(engine, to_apply, reference, live)
    return out


def _why(change: Change, align: str) -> str:
    if change.destructive and align != "full":
        return f"destructive: align: {align} applies only additive changes"
    return "it cannot be aligned automatically: write a revision for it"


def _ignorable(change: Change) -> str | None:
    """The ``ignore:`` entry that would keep what the database has and the reference lacks, or None."""
    if change.kind == "drop_index" and change.name:
        return f"index {change.table}.{change.name}"
    if change.kind in ("drop_unique", "drop_foreign_key", "drop_check") and change.name:
        return f"constraint {change.table}.{change.name}"
    if change.kind == "drop_object" and change.name:
        return change.name
    return None


def refusal_line(r: TargetCheck) -> str | None:
    """One line: a maintain run would be refused as a whole, why, and what to do next; None if it would not."""
    said = _refusal(r)
    return f"{said[0]}: {said[1]}" if said else None


def _refusal(r: TargetCheck) -> tuple[str, str] | None:
    """(headline, why and what next) of ``refusal_line``."""
    if not r.refused:
        return None
    destructive = [c for c, why in r.refused if why.startswith("destructive")]
    other = [(c, why) for c, why in r.refused if not why.startswith("destructive")]
    applicable = len(r.changes) - len(r.refused)
    parts = []
    if destructive:
        parts.append(f"align: {r.align} refuses {len(destructive)} destructive change(s) ("
                     + "; ".join(c.describe() for c in destructive[:4])
                     + (f"; +{len(destructive) - 4} more" if len(destructive) > 4 else "") + ")")
    if other:
        parts.append(f"{len(other)} change(s) cannot be aligned (" + "; ".join(f"{c.describe()}: {why}"
                                                                                for c, why in other[:2])
                     + (f"; +{len(other) - 2} more" if len(other) > 2 else "") + ")")
    keep = [x for x in (_ignorable(c) for c in destructive) if x]
    nxt = []
    if destructive:
        nxt.append(f"review them; `maintenance-pipeline check {r.target} --align full --sql` shows the full plan; "
                   f"then set align: full for {r.target}")
    nxt.append(f"{'or ' if destructive else ''}write a revision for {'it' if len(r.refused) == 1 else 'them'}, or "
               "change the reference")
    if keep:
        nxt.append(f"or, for what the database keeps on purpose, ignore: [{', '.join(keep[:3])}]")
    head = "a maintain run would be refused as a whole"
    if r.pending and not r.rehearsed:  # judged before the revisions, which may take care of these differences
        head += (f" unless the {len(r.pending)} pending revision(s) remove these differences (`maintenance-pipeline "
                 f"check {r.target} --sql` rehearses them)")
    return head, (f"{'; '.join(parts)}; nothing would be applied"
                  + (f", not even the {applicable} other change(s)" if applicable > 0 else "")
                  + f". Next: {', '.join(nxt)}")


def diff_urls(url_a: str, url_b: str) -> list[Change]:
    """What would make the database at ``url_a`` equal to the one at ``url_b`` (both read-only)."""
    return diff(snapshot_url(url_a), snapshot_url(url_b))


# ------------------------------------------------------------------------------ status and history


def _reports(config: MaintenanceConfig, name: str) -> list[dict]:
    """The target's run reports (JSON), newest first."""
    folder = config.reports_dir / name
    out = []
    for path in sorted(folder.glob("*.json"), reverse=True) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            data["_path"] = str(path.with_suffix(".md"))
            out.append(data)
    return out


def _age(created: str | None, now: datetime) -> str:
    try:
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        return "?"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    hours = (now - when).total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def status_lines(config: MaintenanceConfig, *, now: datetime | None = None) -> list[dict]:
    now = now or datetime.now(timezone.utc)
    rows = []
    for name, t in sorted(config.targets.items()):
        row = {"target": name, "engine": t.engine.label, "revision": None, "in_sync": None,
               "last_run": None, "backup_age": None, "error": None}
        checked = check_target(config, name)
        row["error"] = checked.error
        row["in_sync"] = None if checked.error else checked.in_sync
        row["differences"] = len(checked.changes)
        row["revision"] = ("head" if not checked.pending else f"behind by {len(checked.pending)}") \
            if t.migrations is not None and not checked.error else None
        reports = _reports(config, name)
        if reports:
            r = reports[0]
            row["last_run"] = f"{r.get('job')} {r.get('status')} at {str(r.get('started_at'))[:16]}"
        verified = [m for m in list_backups(config.backups.dir, name) if m.get("verified")]
        row["backup_age"] = _age(verified[0].get("created_at"), now) if verified else None
        row.update(last_drill(reports))
        rows.append(row)
    return rows


def last_drill(reports: list[dict]) -> dict:
    """The newest restore drill among a target's reports (newest first): ``drill`` (one cell: its outcome, date, RPO
    and RTO), ``drill_at``, ``drill_rpo_hours``, ``drill_rto_seconds``; None each when no drill ran yet."""
    r = next((r for r in reports if r.get("job") == DRILL.name), None)
    if r is None:
        return {"drill": None, "drill_at": None, "drill_rpo_hours": None, "drill_rto_seconds": None}
    d = r.get("drill") if isinstance(r.get("drill"), dict) else {}
    rpo, rto = d.get("rpo_hours"), d.get("rto_seconds")
    failed = [n for n, v in (d.get("verdicts") or {}).items() if isinstance(v, dict) and not v.get("passed")]
    outcome = "ok" if r.get("status") == "success" else f"FAILED ({', '.join(failed) or r.get('failed_step') or '?'})"
    when = str(r.get("started_at") or "?")[:16].replace("T", " ")
    cell = (f"{outcome} {when} RPO {f'{rpo:.1f} h' if isinstance(rpo, (int, float)) else '?'} "
            f"RTO {f'{rto:.2f} s' if isinstance(rto, (int, float)) else '?'}")
    return {"drill": cell, "drill_at": r.get("started_at"), "drill_rpo_hours": rpo, "drill_rto_seconds": rto}


def history_rows(config: MaintenanceConfig, name: str, limit: int = 20) -> list[dict]:
    config.target(name)
    rows = []
    for r in _reports(config, name)[:limit]:
        backup = r.get("backup") or (r.get("drill") or {}).get("backup") or {}  # a drill: the backup it restored
        rows.append({"started_at": r.get("started_at"), "job": r.get("job"), "trigger": r.get("trigger"),
                     "status": ("dry-run" if r.get("status") == "success" else f"dry-run {r.get('status')}")
                     if r.get("dry_run") is True else r.get("status"), "failed_step": r.get("failed_step"),
                     "applied": len(r.get("applied") or []), "backup": backup.get("label"),
                     "report": r.get("_path")})
    return rows


# ------------------------------------------------------------------------------ rendering


def render_check(results: list[TargetCheck], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    if fmt == "github":
        return "\n".join(line for r in results for line in _github(r))
    if fmt == "markdown":
        return "\n".join(["## Schema check", ""] + [line for r in results for line in _markdown(r)])
    return "\n".join(line for r in results for line in _text(r))


def _failed(r: TargetCheck) -> list[dict]:
    return [c for c in r.checks if not c["passed"]]


def _left_line(r: TargetCheck) -> str | None:
    """A maintain run would fail, the schema still different after it: rehearsed (``--sql``), or ``align: none``."""
    if r.align == "none" and r.changes and not r.rehearsed:
        unless = f"unless the {len(r.pending)} pending revision(s) remove these differences, " if r.pending else ""
        return (f"align: none applies no change: {unless}a maintain run would fail, the schema still different from "
                "the reference; add a revision for them, use align: additive or full, or update the reference")
    if not r.left_different:
        return None
    return (f"the rehearsed run would fail: after the revisions and align: {r.align} the schema would still differ in "
            f"{len(r.left_different)} place(s) ({'; '.join(c.describe() for c in r.left_different[:3])}); add a "
            "revision for them, use align: additive or full, or update the reference")


def _text(r: TargetCheck) -> list[str]:
    lines = []
    if r.error:
        lines.append(f"{r.target}: error: {r.error}")
        if not (r.changes or r.sql):
            return lines
    parts = []
    if r.changes:
        parts.append(summarize(r.changes))
    if r.pending:
        parts.append(f"{len(r.pending)} pending revision(s) ({', '.join(r.pending)})")
    failed = _failed(r)
    if failed:
        parts.append(f"{len(failed)} failed check(s) ({', '.join(c['name'] for c in failed)})")
    if parts:
        lines.append(f"{r.target}: {'in sync' if r.in_sync else '; '.join(parts)}")
    elif not r.error:
        lines.append(f"{r.target}: in sync")
    lines += [f"  {c.drift_text()}" for c in r.changes]
    lines += [f"  check {c['name']}: {c['detail']}" for c in failed]
    lines += [f"  {o.line()}" for o in r.obstacles]
    if r.obstacles and r.pending:
        lines.append("  (counted on the database as it is, before the pending revisions)")
    refused = refusal_line(r)
    lines += [f"  {word}: {text}" for word, _, text in _verdicts(r)]
    if r.sql:
        if r.error:
            head = "  -- SQL alignment ran until it failed (rolled back):"
        elif refused:
            head = "  -- SQL of the other changes: NOT run, the run is refused as a whole (see REFUSED above):"
        else:
            head = "  -- SQL alignment would run:"
        lines += [head] + _sql_with_costs(r)
    return lines


def _verdicts(r: TargetCheck) -> list[tuple[str, str, str]]:
    """(word, title, text) of what a maintain run would do as a whole: be refused, or fail."""
    out = []
    refused, left = refusal_line(r), _left_line(r)
    if refused:
        out.append(("REFUSED", "would be refused", refused))
    if left:
        out.append(("FAILS", "would fail", left))
    return out


def _github(r: TargetCheck) -> list[str]:
    lines = []
    if r.error:
        lines.append(f"::error title=maintenance-pipeline ({r.target})::{_gh(r.error)}")
    for c in r.changes:
        lines.append(f"::error title=schema drift ({r.target})::{_gh(c.drift_text())}")
    for rev in r.pending:
        lines.append(f"::warning title=pending revision ({r.target})::Alembic revision {rev} is not applied")
    for c in _failed(r):
        lines.append(f"::error title=check failed ({r.target})::{_gh(c['name'] + ': ' + c['detail'])}")
    for o in r.obstacles:
        kind = "error title=data would fail a change" if o.fails else "warning title=not counted"
        lines.append(f"::{kind} ({r.target})::{_gh(o.line())}")
    lines += [f"::error title=maintain run {title} ({r.target})::{_gh(text)}" for _, title, text in _verdicts(r)]
    if r.in_sync:
        lines.append(f"::notice title=in sync ({r.target})::{r.target} matches its reference")
    return lines


def _markdown(r: TargetCheck) -> list[str]:
    mark = "✅" if r.in_sync else "❌"
    out = [f"### {mark} {_code(r.target)}" + (" — in sync" if r.in_sync else ""), ""]
    if r.error:
        out += [f"**Error:** {_cell(r.error)}", ""]
    if r.changes:
        out += [f"{_cell(summarize(r.changes))}:", "", "| What differs | Fix | Destructive |", "|---|---|---|"]
        out += [f"| {_cell(c.drift_text().rsplit(' (fix: ', 1)[0])} | {_code(c.kind, cell=True)} | "
                f"{'⚠️ yes' if c.destructive else 'no'} |" for c in r.changes]
        out.append("")
    if r.pending:
        out += [f"Pending Alembic revisions: {', '.join(_code(x) for x in r.pending)}", ""]
    failed = _failed(r)
    if failed:
        out += ["Failed checks:", ""] + [f"- **{_cell(c['name'])}**: {_cell(c['detail'])}" for c in failed] + [""]
    if r.obstacles:
        out += ["What the changes would trip over in the data:", ""]
        for o in r.obstacles:
            head = f"would fail: {o.text}" if o.rows is not None else f"not counted: {o.text}"
            out.append(f"- {_cell(head)} ({_code(o.change)})" + (f"; find them: {_code(o.query)}" if o.query else ""))
        out.append("")
    refused, left = refusal_line(r), _left_line(r)
    if refused:
        head, why = _refusal(r)
        out += [f"**{_cell(head[0].upper() + head[1:])}:** {_cell(why)}", ""]
    if left:
        out += [f"**A maintain run would fail:** {_cell(left.split(': ', 1)[-1])}", ""]
    if r.sql:
        summary = "SQL of the other changes (NOT run: the run is refused)" if refused else "SQL alignment would run"
        out += [f"<details><summary>{summary}</summary>", "",
                *fenced(sql_text(r.sql), "sql"), "", "</details>", ""]
    return out


def _sql_with_costs(r: TargetCheck) -> list[str]:
    """Each statement, and what it cost in the rehearsal: the lock it took, whether it rewrote a table, the rows it
    touched, how long its lock was held (the transaction's locks last until it ends)."""
    measured = (r.measured or {}).get("statements") or []
    if len(measured) != len(r.sql):
        return [f"  {s.rstrip().rstrip(';')};" for s in r.sql]
    where = "a rehearsal on a copy" if r.on_copy else "a rolled-back transaction on the database"
    out = [f"  -- each with what it cost in {where}: the lock it took; rewrite; rows; seconds the lock was held"]
    for s, m in zip(r.sql, measured):
        cost = "; ".join([", ".join(m.get("locks") or []) or "no new lock",
                          f"rewrites {', '.join(m['rewrites'])}" if m.get("rewrites") else "no rewrite",
                          f"{m['rows']} rows" if m.get("rows") is not None else "rows —",
                          f"lock held {m['lock_held']:.3f} s" if m.get("lock_held") is not None else "no lock held"]
                         + ([str(m["applied"])] if m.get("applied") else []))  # e.g. one of N columns added at once
        out.append(f"  {s.rstrip().rstrip(';')};  -- {cost}")
    return out


def render_diff(changes: list[Change], fmt: str, title: str) -> str:
    fake = TargetCheck(title, title, changes=changes)
    return render_check([fake], fmt)


def _gh(text: str) -> str:
    """A GitHub workflow command's message: one line, % and newlines escaped."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def render_table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c) if r.get(c) is not None else "-")) for r in rows)) for c in columns}
    out = ["  ".join(c.ljust(widths[c]) for c in columns)]
    out += ["  ".join(str(r.get(c) if r.get(c) is not None else "-").ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(x.rstrip() for x in out)
