"""Retention: which old backups of a target are removed (SQLite files and PostgreSQL dumps alike)."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from ..shared.files import fsync_dir, remove_quietly
from ..errors import BackupError
from ..shared.manifest import manifests, parse_time, utc


def apply_retention(
    backups_dir: str | os.PathLike,
    target: str,
    *,
    keep_last: int,
    keep_days: float,
    now: datetime | None = None,
    keep: tuple[str | os.PathLike, ...] = (),
) -> list[Path]:
    """Remove old backups of ``target``; return the removed backup files.

    Kept: the newest ``keep_last`` (newest by the manifests' sequence numbers, which a clock cannot reorder),
    everything younger than ``keep_days`` days (a backup dated in the future is as old as the backups made after
    it say, by sequence; with none, it cannot be proven old and is kept; ``manifest.problems`` reports it),
    every pinned backup, always the newest verified one, and
    ``keep`` (the run's own backup: a run never removes it). Files without a valid manifest are never touched;
    a manifest whose backup file is gone is removed.
    """
    if keep_last < 0 or keep_days < 0:
        raise ValueError("keep_last and keep_days must be >= 0")
    now = utc(now)
    folder = Path(backups_dir) / target
    entries = manifests(folder, now=now)
    present = [m for m in entries if Path(m["path"]).exists()]
    keep_paths = {Path(p).resolve() for p in keep}
    keep_set: set[str] = {m["manifest_path"] for m in present[:keep_last]}
    keep_set |= {m["manifest_path"] for m in present if Path(m["path"]).resolve() in keep_paths}
    last_good = next((m for m in present if m.get("verified") and m.get("sha256")), None)
    if last_good is not None:
        keep_set.add(last_good["manifest_path"])
    cutoff = now - timedelta(days=keep_days)
    removed: list[Path] = []
    bound = None  # the earliest plausible date of a backup made after this one (by sequence)
    for m in entries:  # newest first
        path = Path(m["path"])
        created = parse_time(m["created_at"])
        if m["future"]:  # its date is wrong; it was made before every later backup, so no later than ``bound``
            created = bound or created
        else:
            bound = created if bound is None else min(bound, created)
        if not path.exists():
            remove_quietly(Path(m["manifest_path"]))  # orphan manifest: ours, holds nothing
            continue
        if m["manifest_path"] in keep_set or m.get("pinned") or created > cutoff:
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
