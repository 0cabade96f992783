"""Command line (``maintenance-pipeline``, or ``python -m maintenance_pipeline``): run a job through Dagster on
this project's instance and print its outcome in a few lines; list a target's backups, pin or unpin one.

    maintenance-pipeline [--config PATH] run maintain_database goals [--dry-run] [--align full] [--verbose]
    maintenance-pipeline check [TARGET ...] [--format text|markdown|json|github] [--sql]
    maintenance-pipeline diff TARGET | diff URL_A URL_B [--format ...]
    maintenance-pipeline status | history TARGET
    maintenance-pipeline backups list goals
    maintenance-pipeline backups pin|unpin backups/goals/goals_nightly_20261124_020000.db

Exit codes: 0 success, 1 the run failed, 2 a usage or configuration error (an unknown target: one line naming
the known ones).

The run is a real Dagster run in ``$DAGSTER_HOME`` (the Makefile points it at
``.dagster_home``), so it shows in ``make ui`` afterwards. ``backups`` reads the targets file
only (``$MAINTENANCE_CONFIG``, default ``maintenance.yaml``); a pinned backup is never removed
by retention.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


EXIT_CODES = """exit codes: 0 success; 1 the run (or a check) failed; 2 a usage or configuration error"""


def _parser() -> argparse.ArgumentParser:
    from .core.run.jobs import JOBS

    parser = argparse.ArgumentParser(prog="maintenance-pipeline", epilog=EXIT_CODES,
                                     description="Back up, diff, migrate, verify and report on the targets of a "
                                                 "targets file, as real Dagster runs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--config", metavar="PATH",
                        help="the targets file (default: $MAINTENANCE_CONFIG, else maintenance.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run a job on one target (a real Dagster run, shown in the UI after)",
                         epilog=EXIT_CODES)
    run.add_argument("job", choices=list(JOBS),
                     help="maintain_database: backup, diff, migrate, verify, report; verify_database: backup, "
                          "diff, verify, report; restore_database: restore a backup (by default, undo the newest "
                          "run that changed the database); restore_drill: restore the newest verified backup into a "
                          "scratch place, check it and rehearse the pending migration there (RPO, RTO)")
    run.add_argument("target", help="a target name of the targets file")
    run.add_argument("--dry-run", action="store_true",
                     help="maintain_database: do the whole migration on a copy, report the SQL and what each "
                          "statement costs, change nothing; restore_database: say what would be put back and what it "
                          "would undo, change nothing")
    run.add_argument("--align", choices=["none", "additive", "full"],
                     help="maintain_database: override the target's align setting for this run")
    run.add_argument("--backup", default="", metavar="PATH",
                     help="restore_database: the backup to restore (default: the pre-migration backup of the newest "
                          "run that changed the database)")
    run.add_argument("--verbose", action="store_true", help="also print Dagster's event log")
    run.add_argument("--json", action="store_true", help="print one JSON object (status, run_id, error, report)")
    fmt = {"choices": ["text", "markdown", "json", "github"], "default": "text",
           "help": "text (default), markdown (a pull-request comment), json, or github (workflow annotations)"}
    check = sub.add_parser("check", help="read-only: drift, pending revisions and user checks of targets "
                                         "(no backup, never writes)", epilog=EXIT_CODES)
    check.add_argument("targets", nargs="*", metavar="TARGET", help="target names (default: all)")
    check.add_argument("--format", **fmt)
    check.add_argument("--sql", action="store_true",
                       help="also print the SQL alignment would run (a dry run: a scratch copy or a rolled-back "
                            "transaction)")
    check.add_argument("--align", choices=["none", "additive", "full"],
                       help="judge (and with --sql, rehearse) the plan of this align mode instead of the target's "
                            "(e.g. full: the whole plan, destructive changes included)")
    check.add_argument("--no-count", action="store_true",
                       help="do not count what the changes would trip over in the data (NULLs before NOT NULL, "
                            "duplicates, orphans, rows a new CHECK rejects: each reads whole tables)")
    dif = sub.add_parser("diff", help="read-only: what would make one database equal to another (or a target "
                                      "equal to its reference)", epilog=EXIT_CODES)
    dif.add_argument("a", metavar="URL_OR_TARGET", help="a database URL, or a target name (then B is its reference)")
    dif.add_argument("b", metavar="URL", nargs="?", help="the database to compare with (the reference)")
    dif.add_argument("--format", **fmt)
    sub.add_parser("status", help="one line per target: engine, Alembic revision, in sync or not, last run, age "
                                  "of the newest verified backup", epilog=EXIT_CODES)
    hist = sub.add_parser("history", help="a target's past runs, from its reports", epilog=EXIT_CODES)
    hist.add_argument("target", help="a target name of the targets file")
    hist.add_argument("--limit", type=int, default=20, help="how many runs, newest first (default 20)")
    backups = sub.add_parser("backups", help="list a target's backups; pin or unpin one", epilog=EXIT_CODES)
    what = backups.add_subparsers(dest="action", required=True, metavar="ACTION")
    what.add_parser("list", help="a target's backups, newest first").add_argument(
        "target", help="a target name of the targets file")
    for action, text in (("pin", "keep it: retention never removes a pinned backup"),
                         ("unpin", "leave it to retention again")):
        what.add_parser(action, help=text).add_argument("backup", help="the backup file (or its .json manifest)")
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("maintenance_pipeline")
    except Exception:  # noqa: BLE001 - running from a checkout that is not installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config:
        os.environ["MAINTENANCE_CONFIG"] = str(Path(args.config).resolve())
    if args.command == "backups":
        return _backups(args)
    if args.command in ("check", "diff", "status", "history"):
        return _read_only(args)
    return _run(args)


def _read_only(args) -> int:
    """check / diff / status / history: read-only, for people and CI."""
    from .core.config import load_config
    from .core.errors import MaintenanceError
    from .core.run import commands

    try:
        if args.command == "diff" and args.b:
            changes = commands.diff_urls(args.a, args.b)
            _out(commands.render_diff(changes, args.format, "diff"))
            return 1 if changes else 0
        config = load_config()
        if args.command == "diff":
            result = commands.check_target(config, args.a)
            if result.error:
                raise MaintenanceError(result.error)
            _out(commands.render_diff(result.changes, args.format, args.a))
            return 1 if result.changes else 0
        if args.command == "check":
            names = args.targets or sorted(config.targets)
            for n in names:
                config.target(n)  # an unknown name is a usage error before anything is read
            results = [commands.check_target(config, n, sql=args.sql, align=args.align, count=not args.no_count)
                       for n in names]
            _out(commands.render_check(results, args.format))
            if any(r.error for r in results):
                return 2
            return 0 if all(r.in_sync for r in results) else 1
        if args.command == "status":
            rows = commands.status_lines(config)
            for r in rows:
                r["sync"] = "error" if r["error"] else ("in sync" if r["in_sync"] else
                                                        f"{r['differences']} difference(s)")
            _out(commands.render_table(rows, ["target", "engine", "revision", "sync", "last_run", "drill",
                                              "backup_age"]))
            if any(r["error"] for r in rows):
                return 2
            return 0 if all(r["in_sync"] for r in rows) else 1
        rows = commands.history_rows(config, args.target, args.limit)
        if not rows:
            _out(f"no runs of {args.target} in {config.reports_dir / args.target}")
            return 0
        for r in rows:
            r["status"] = r["status"] + (f" at {r['failed_step']}" if r.get("failed_step") else "")
            r["started_at"] = str(r["started_at"])[:19]
        _out(commands.render_table(rows, ["started_at", "job", "trigger", "status", "applied", "backup", "report"]))
        return 0
    except MaintenanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _out(text: str) -> None:
    """Print ``text``; a reader that stopped early (``check | head``) is not an error: what is left goes nowhere
    (stdout pointed at /dev/null, so the flush at exit cannot fail either) and the exit code stays the command's."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


class _Usage(Exception):
    """A usage error of ``run``: said as ``error: <text>``, exit code 2."""


def _run(args) -> int:
    """``run JOB TARGET``: check the arguments, launch the run in the Dagster instance, print its outcome."""
    from .core.errors import MaintenanceError

    try:
        config, defs = _load_for_run(args)
        run_config = _run_config(args)
        job = defs.resolve_job_def(args.job)
        _check_dagster_home()
    except (MaintenanceError, _Usage) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = _launch(job, args.target, config, run_config)
    _print_outcome(args, config, result)
    return 0 if result.success else 1


def _load_for_run(args):
    """The targets file (``args.target`` one of its targets) and the Dagster definitions built from it."""
    from .core.config import load_config

    config = load_config()
    if args.target not in config.targets:
        known = ", ".join(sorted(config.targets)) or "none"
        raise _Usage(f"unknown target {args.target!r}; {config.path} defines: {known}")
    from .orchestration.definitions import build_definitions

    return config, build_definitions(config)  # the targets file just loaded (and validated), not a cached module


def _run_config(args) -> dict:
    """The run config of ``args.job`` from the options (``--align`` and ``--dry-run`` only where the job takes them);
    without ``--verbose`` the console logger is quiet."""
    from .core.run.jobs import JOBS, job_named

    ops: dict = {}
    spec = job_named(args.job)
    if args.align and not spec.takes_align:
        aligning = " and ".join(j.name for j in JOBS.values() if j.takes_align)
        raise _Usage(f"--align applies to {aligning} only ({args.job} changes no schema); drop it or run {aligning}")
    if args.dry_run and not spec.takes_dry_run:
        raise _Usage(f"--dry-run applies to {' and '.join(j.name for j in JOBS.values() if j.takes_dry_run)} "
                     f"({args.job} changes nothing); drop it")
    if "migrate" in spec.steps and (args.dry_run or args.align):
        ops["migrate"] = {"config": {"dry_run": args.dry_run, **({"align": args.align} if args.align else {})}}
    if "restore" in spec.steps and (args.backup or args.dry_run):
        ops["restore"] = {"config": {**({"backup": args.backup} if args.backup else {}),
                                     **({"dry_run": True} if args.dry_run else {})}}
    run_config: dict = {"ops": ops} if ops else {}
    if not args.verbose:  # the event log stays in Dagster (the UI shows it); the terminal gets the outcome
        run_config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
        logging.getLogger("dagster").setLevel(logging.CRITICAL)
    return run_config


def _check_dagster_home() -> None:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise _Usage("DAGSTER_HOME is not set: a run is recorded in a Dagster instance; export DAGSTER_HOME=<a "
                     "folder> (the one the UI uses; make demo uses .dagster_home of this checkout)")
    if not os.path.isdir(home):
        raise _Usage(f"DAGSTER_HOME {home} is not a directory; create it (mkdir -p {home}) or point DAGSTER_HOME "
                     "at the Dagster instance the UI uses")


def _launch(job, target: str, config, run_config: dict):
    """Run ``job`` on ``target`` in this process, recorded in the instance of ``$DAGSTER_HOME``; its result."""
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from .orchestration import command_line
    from .orchestration.liveness import process_tags

    with dg.DagsterInstance.get() as instance:
        _fail_dead_runs(instance, config)
        run_id = make_new_run_id()
        # a run of the code location as the UI lists it (its origin and repository label: the job's Runs tab, the
        # Overview's timeline, the run-failure alert), tagged with this process (pid, host, start time) so that the
        # next look fails the run if the process is killed
        return command_line.execute(job, target, instance, run_id=run_id, run_config=run_config,
                                    tags=process_tags(run_id))


def _print_outcome(args, config, result) -> None:
    """The run's outcome from its report: one JSON object (``--json``), or a few lines."""
    found = sorted((config.reports_dir / args.target).glob(f"*_{args.job}_{result.run_id[:8]}.md"))
    report_path = str(found[-1]) if found else None
    report = {}
    if found and found[-1].with_suffix(".json").is_file():
        report = json.loads(found[-1].with_suffix(".json").read_text())
    status = "success" if result.success else "failed"
    error = _error_line(report, result)
    if args.json:
        print(json.dumps({"status": status, "run_id": result.run_id, "error": error,
                          "failed_step": report.get("failed_step"), "dry_run": bool(report.get("dry_run")),
                          "report": report_path}))
        return
    at = f" at {report['failed_step']}" if report.get("failed_step") else ""
    dry = " (dry run: nothing was changed)" if report.get("dry_run") else ""
    print(f"{args.job} {args.target}: {status}{at}{dry} (run {result.run_id[:8]})")
    for line in _restore_lines(report):
        print(line)
    if error:
        print(f"error: {error}")
    print(f"report: {report_path or 'none written'}")


def _restore_lines(report: dict) -> list[str]:
    """What a restore put back (or, a dry run, would put back and undo), named: which run's backup, and when."""
    done, preview = report.get("restored_from") or {}, report.get("restore_preview") or {}
    if done.get("path"):
        return [f"restored: {done['path']} ({done.get('chosen') or 'the backup named'})"]
    if preview.get("would_restore"):
        undo = preview.get("would_undo") or []
        lossy = sum(1 for c in undo if c.get("destructive"))
        rows = preview.get("rows_now_then") or {}
        differ = [n for n, v in rows.items() if isinstance(v, list) and v[0] != v[1]]
        return [f"dry run: would restore {preview['would_restore']} ({preview.get('chosen')}); it would make "
                f"{len(undo)} schema change(s) ({lossy} destructive) and put back {len(differ)} table(s) whose rows "
                "differ now (the report lists them; the safety copy keeps what the database holds now)"]
    return []


def _fail_dead_runs(instance, config) -> None:
    """Before a run is launched: fail every run of this host whose process is gone (killed or crashed: it would stay
    STARTED and hold its database's place in the run queue), one line each on stderr (the daemon's run-failure sensor
    alerts it, as any failed run)."""
    from .orchestration.liveness import fail_dead_runs

    try:
        dead = fail_dead_runs(instance, config.reports_dir)
    except Exception as e:  # noqa: BLE001 - looking for dead runs never stops this run; the run says what is wrong
        text = " ".join(str(e).split())[:160]
        print(f"warning: could not look for runs whose process is gone ({type(e).__name__}: {text}); the run goes "
              "on", file=sys.stderr)
        return
    for run in dead:
        print(f"note: {run.line()}", file=sys.stderr)


def _error_line(report: dict, result) -> str | None:
    """The run's error in one line short enough for ``error: ``: the report's (its whole text is in the report);
    without a report, the failed step's own line (a report that could not be written says what the run did)."""
    from .core.run.failures import MAX_LINE, one_line

    if report.get("error"):
        whole = str(report.get("error_detail") or report["error"]).split("\n\n", 1)[0]
        return one_line(whole, limit=MAX_LINE - len("error: "))
    if result.success:
        return None
    for event in result.all_events:
        data = event.step_failure_data if event.is_step_failure else None
        said = (data.user_failure_data.description if data and data.user_failure_data else None) or \
            (data.error.message if data and data.error else None)
        if said and said.strip():
            return one_line(said.strip().splitlines()[0], rest=" (the rest is in the run's log)",
                            limit=MAX_LINE - len("error: "))
    return "the run failed before its report was written; see the run in the Dagster UI"


def _backups(args) -> int:
    from .core import backup
    from .core.config import load_config
    from .core.errors import MaintenanceError

    try:
        if args.action in ("pin", "unpin"):
            m = backup.set_pinned(args.backup, args.action == "pin")
            print(f"{'pinned' if m['pinned'] else 'unpinned'}: {m['path']}")
            return 0
        config = load_config()
        config.target(args.target)  # an unknown target is an error, not an empty list
        rows = backup.list_backups(config.backups.dir, args.target)
    except MaintenanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"no backups of {args.target} in {config.backups.dir / args.target}")
        return 0
    print(f"{'created (UTC)':<20} {'label':<14} {'pinned':<6} {'verified':<8} {'bytes':>12}  path")
    for m in rows:  # newest first, by sequence number: a clock that ran ahead cannot reorder them
        print(f"{str(m['created_at'])[:19]:<20} {m.get('label', ''):<14} {'yes' if m.get('pinned') else 'no':<6} "
              f"{'yes' if m.get('verified') else 'no':<8} {m.get('bytes') or 0:>12}  {m['path']}")
    for line in backup.problems(config.backups.dir / args.target):
        print(f"warning: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
