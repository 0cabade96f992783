"""Command line: run a job through Dagster on this project's instance and print the report path.

    python -m maintenance_pipeline run maintain_database goals [--dry-run] [--align full]

The run is a real Dagster run in ``$DAGSTER_HOME`` (the Makefile points it at
``.dagster_home``), so it shows in ``make ui`` afterwards.
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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
