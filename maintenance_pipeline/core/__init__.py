"""The public core API: usable from scripts and benchmarks without Dagster.

    from maintenance_pipeline.core import snapshot_url, diff, backup_database, verify_target

    live = snapshot_url("sqlite:///examples/data/goals.db")
    ref = snapshot_url("sqlite:///examples/data/goals_dev.db")
    for change in diff(live, ref):
        print(change.describe(), "destructive" if change.destructive else "additive")
"""

from __future__ import annotations

from .backup import BackupResult, apply_retention, backup_database, list_backups, restore_database
from .config import MaintenanceConfig, Target, load_config
from .schema.diff import diff
from .errors import MaintenanceError
from .schema.model import Change, Snapshot
from .schema.reference import reference_snapshot
from .run.pipeline import run_job
from .schema.snapshot import snapshot_url, take_snapshot
from .verify.checks import VerifyResult, verify_target


__all__ = [
    "BackupResult", "Change", "MaintenanceConfig", "MaintenanceError", "Snapshot", "Target", "VerifyResult",
    "apply_retention", "backup_database", "diff", "list_backups", "load_config", restore_database.__name__, "run_job",
    "reference_snapshot", "snapshot_url", "take_snapshot", "verify_target",
]
