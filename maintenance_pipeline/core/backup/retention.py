"""Retention: which old backups of a target are removed (SQLite files and PostgreSQL dumps alike)."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from .files import fsync_dir, remove_quietly
from ..errors import BackupError
from .manifest import manifests, parse_time, utc


def apply_retention(
    backups_dir: str | os.PathLike,
    target: str,
    *,
    keep_last: int,
    keep_days: float,
    now: datetime | None = None,
) -> list[Path]:
    """Remove old backups of ``target``; return the removed backup files.

    Kept: the newest ``keep_last``, everything younger than ``keep_days`` days, every pinned
    backup, and always the newest verified one. Files without a manifest are never touched;
    a manifest whose backup file is gone is removed.
    """
    if keep_last < 0 or keep_days < 0:
        raise ValueError("keep_last and keep_days must be >= 0")
    now = utc(now)
    folder = Path(backups_dir) / target
    entries = manifests(folder)
    present = [m for m in entries if Path(m["path"]).exists()]
    keep: set[str] = {m["manifest_path"] for m in present[:keep_last]}
    last_good = next((m for m in present if m.get("verified") and m.get("sha256")), None)
    if last_good is not None:
        keep.add(last_good["manifest_path"])
    cutoff = now - timedelta(days=keep_days)
    removed: list[Path] = []
    for m in entries:
        path = Path(m["path"])
        if not path.exists():
            remove_quietly(Path(m["manifest_path"]))  # orphan manifest: ours, holds nothing
            continue
        if m["manifest_path"] in keep or m.get("pinned") or parse_time(m["created_at"]) > cutoff:
            continue
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as e:
            raise BackupError(
                f"cannot remove old backup {path} ({e.strerror or e}); make {folder} writable by this user"
            ) from None
        remove_quietly(Path(m["manifest_path"]))
        removed.append(path)
    if removed:
        try:
            fsync_dir(folder)
        except OSError:
            pass
    return removed
