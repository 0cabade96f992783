"""Read-only commands for people and CI (no backup, never a write): ``check`` (drift, pending revisions, user
checks), ``diff`` (two databases, or a target against its reference), ``status`` (one line per target) and
``history`` (past runs, from the reports). Each returns plain data; ``render`` writes it as text, Markdown (a
pull-request comment), JSON or GitHub annotations. Exit codes: 0 in sync / passed, 1 drift or a failed check,
2 an error (``MaintenanceError``: the configuration, a connection)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..backup.manifest import list_backups
from ..config import MaintenanceConfig, Target
from ..dburl import mask_url
from ..engines import engine_for, open_engine
from ..errors import MaintenanceError
from ..migrate.executor import migrate
from ..migrate.revisions import plan_revisions
from ..schema.diff import diff, summarize
from ..schema.model import Change
from ..schema.reference import reference_snapshot
from ..schema.snapshot import snapshot_url, take_snapshot
from ..verify.user_checks import run_user_check

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

    @property
    def in_sync(self) -> bool:
        return self.error is None and not self.changes and not self.pending and all(c["passed"] for c in self.checks)

    def to_dict(self) -> dict:
        return {"target": self.target, "database": self.database, "in_sync": self.in_sync,
                "changes": [c.to_dict() for c in self.changes], "pending_revisions": self.pending,
                "checks": self.checks, "sql": self.sql, "measured": self.measured, "error": self.error}


def reference_for(config: MaintenanceConfig, t: Target):
    return reference_snapshot(url=t.reference_url, metadata=t.reference_metadata,
                              target_dialect=engine_for(t.url).name, ignore_tables=t.ignore_tables,
                              search_paths=(config.root,), schema=t.reference_schema, target_url=t.url)


def check_target(config: MaintenanceConfig, name: str, *, sql: bool = False) -> TargetCheck:
    """Drift, pending revisions and user checks of one target, read-only."""
    t = config.target(name)
    out = TargetCheck(name, mask_url(t.url))
    try:
        ref = reference_for(config, t)
        engine = open_engine(t.url)
        try:
            with engine.connect() as conn:
                live = take_snapshot(conn, ignore_tables=t.ignore_tables, schema=t.schema)
                if t.migrations is not None:
                    out.pending = [r for r, _ in plan_revisions(conn, t).pending]
                out.checks = [run_user_check(conn, c).to_dict() for c in t.checks]
        finally:
            engine.dispose()
        out.changes = diff(live, ref, ignore_tables=t.ignore_tables, renames=t.renames)
        if sql and (out.changes or out.pending):
            try:  # the whole migration, on a scratch copy or in a rolled-back transaction: what it would run
                result = migrate(t, ref, align=t.align, dry_run=True)
                out.sql, out.measured, out.on_copy = list(result.sql), result.measured, result.on_copy
            except MaintenanceError as e:  # the plan cannot be rehearsed: say so, with what ran until it failed
                out.sql = list(getattr(getattr(e, "result", None), "sql", []) or [])
                out.error = f"--sql: the rehearsal of the migration failed after {len(out.sql)} statement(s) (rolled " \
                            f"back): {e}"
    except MaintenanceError as e:
        out.error = str(e)
    return out


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
        row = {"target": name, "engine": engine_for(t.url).label, "revision": None, "in_sync": None,
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
    r = next((r for r in reports if r.get("job") == "restore_drill"), None)
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
                     "status": "dry-run" if r.get("dry_run") is True and r.get("status") == "success"
                     else r.get("status"), "failed_step": r.get("failed_step"),
                     "applied": len(r.get("applied") or []), "backup": backup.get("label"),
                     "report": r.get("_path")})
    return rows


# ------------------------------------------------------------------------------ rendering


def render_check(results: list[TargetCheck], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([r.to_dict() for r in results], indent=2)
    if fmt == "github":
        lines = []
        for r in results:
            if r.error:
                lines.append(f"::error title=maintenance-pipeline ({r.target})::{_gh(r.error)}")
            for c in r.changes:
                lines.append(f"::error title=schema drift ({r.target})::{_gh(c.describe())}")
            for rev in r.pending:
                lines.append(f"::warning title=pending revision ({r.target})::Alembic revision {rev} is not applied")
            for c in r.checks:
                if not c["passed"]:
                    lines.append(f"::error title=check failed ({r.target})::{_gh(c['name'] + ': ' + c['detail'])}")
            if r.in_sync:
                lines.append(f"::notice title=in sync ({r.target})::{r.target} matches its reference")
        return "\n".join(lines)
    if fmt == "markdown":
        out = ["## Schema check", ""]
        for r in results:
            mark = "✅" if r.in_sync else "❌"
            out.append(f"### {mark} `{r.target}`" + (" — in sync" if r.in_sync else ""))
            out.append("")
            if r.error:
                out += [f"**Error:** {r.error}", ""]
            if r.changes:
                out += [f"{summarize(r.changes)}:", "", "| Kind | Object | Destructive | Detail |", "|---|---|---|---|"]
                out += [f"| {c.kind} | `{c.noun}` | {'⚠️ yes' if c.destructive else 'no'} | "
                        f"{c.detail.replace('|', chr(92) + '|')} |" for c in r.changes]
                out.append("")
            if r.pending:
                out += [f"Pending Alembic revisions: {', '.join(f'`{x}`' for x in r.pending)}", ""]
            failed = [c for c in r.checks if not c["passed"]]
            if failed:
                out += ["Failed checks:", ""] + [f"- **{c['name']}**: {c['detail']}" for c in failed] + [""]
            if r.sql:
                out += ["<details><summary>SQL alignment would run</summary>", "", "```sql",
                        *[s.rstrip().rstrip(";") + ";" for s in r.sql], "```", "", "</details>", ""]
        return "\n".join(out)
    lines = []
    for r in results:
        if r.error:
            lines.append(f"{r.target}: error: {r.error}")
            if not (r.changes or r.sql):
                continue
        parts = []
        if r.changes:
            parts.append(summarize(r.changes))
        if r.pending:
            parts.append(f"{len(r.pending)} pending revision(s) ({', '.join(r.pending)})")
        failed = [c for c in r.checks if not c["passed"]]
        if failed:
            parts.append(f"{len(failed)} failed check(s) ({', '.join(c['name'] for c in failed)})")
        if parts:
            lines.append(f"{r.target}: {'in sync' if r.in_sync else '; '.join(parts)}")
        elif not r.error:
            lines.append(f"{r.target}: in sync")
        lines += [f"  {c.describe()}" for c in r.changes]
        lines += [f"  check {c['name']}: {c['detail']}" for c in failed]
        if r.sql:
            head = "  -- SQL alignment ran until it failed (rolled back):" if r.error else "  -- SQL alignment would run:"
            lines += [head] + _sql_with_costs(r)
    return "\n".join(lines)


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
                          f"lock held {m['lock_held']:.3f} s" if m.get("lock_held") is not None else "no lock held"])
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
