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
from .diff import diff
from .errors import MaintenanceError
from .model import Change, Snapshot
from .pipeline import run_job
from .snapshot import take_snapshot
from .verify import VerifyResult, verify_target


def snapshot_url(url: str, *, ignore_tables=("alembic_version", "sqlite_sequence")) -> Snapshot:
    """Snapshot the schema of the database at ``url`` (a missing SQLite file is an error, never created)."""
    from .dburl import open_engine

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return take_snapshot(conn, ignore_tables=ignore_tables)
    finally:
        engine.dispose()


__all__ = [
    "BackupResult", "Change", "MaintenanceConfig", "MaintenanceError", "Snapshot", "Target", "VerifyResult",
    "apply_retention", "backup_database", "diff", "list_backups", "load_config", "restore_database", "run_job",
    "snapshot_url", "take_snapshot", "verify_target",
]
