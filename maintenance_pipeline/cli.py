"""Command line: run a job through Dagster on this project's instance and print the report path;
list a target's backups, pin or unpin one.

    python -m maintenance_pipeline run maintain_database goals [--dry-run] [--align full]
    python -m maintenance_pipeline backups list goals
    python -m maintenance_pipeline backups pin|unpin backups/goals/goals_nightly_20261124_020000.db

The run is a real Dagster run in ``$DAGSTER_HOME`` (the Makefile points it at
``.dagster_home``), so it shows in ``make ui`` afterwards. ``backups`` reads the targets file
only (``$MAINTENANCE_CONFIG``, default ``maintenance.yaml``); a pinned backup is never removed
by retention.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maintenance_pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a job on one target")
    run.add_argument("job", choices=["maintain_database", "verify_database", "restore_database"])
    run.add_argument("target")
    run.add_argument("--dry-run", action="store_true")
    run.add_argument("--align", choices=["none", "additive", "full"])
    run.add_argument("--backup", default="", help="restore_database: the backup to restore")
    backups = sub.add_parser("backups", help="list a target's backups; pin or unpin one")
    what = backups.add_subparsers(dest="action", required=True)
    what.add_parser("list", help="a target's backups, newest first").add_argument("target")
    for action, text in (("pin", "keep it: retention never removes a pinned backup"),
                         ("unpin", "leave it to retention again")):
        what.add_parser(action, help=text).add_argument("backup", help="the backup file (or its .json manifest)")
    args = parser.parse_args(argv)
    if args.command == "backups":
        return _backups(args)

    import dagster as dg

    from .core.config import load_config
    from .core.errors import MaintenanceError

    try:
        from . import defs
    except MaintenanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ops: dict = {}
    if args.job == "maintain_database" and (args.dry_run or args.align):
        ops["migrate"] = {"config": {"dry_run": args.dry_run, **({"align": args.align} if args.align else {})}}
    if args.job == "restore_database" and args.backup:
        ops["restore"] = {"config": {"backup": args.backup}}
    job = defs.resolve_job_def(args.job)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(partition_key=args.target, instance=instance, raise_on_error=False,
                                        run_config={"ops": ops} if ops else None)
    status = "success" if result.success else "failed"
    config = load_config()
    found = sorted((config.reports_dir / args.target).glob(f"*_{args.job}_{result.run_id[:8]}.md"))
    report = str(found[-1]) if found else None
    print(json.dumps({"status": status, "run_id": result.run_id, "report": report}))
    print(report or "no report written")
    return 0 if result.success else 1


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
    for m in rows:
        print(f"{str(m['created_at'])[:19]:<20} {m.get('label', ''):<14} {'yes' if m.get('pinned') else 'no':<6} "
              f"{'yes' if m.get('verified') else 'no':<8} {m.get('bytes') or 0:>12}  {m['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
