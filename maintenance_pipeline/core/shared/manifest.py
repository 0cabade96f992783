"""Backup manifests: the ``.json`` beside each backup, what it records, reading and listing them.

A backup file (or dump folder) without a manifest is never ours: listing and retention ignore
it. ``BackupResult`` is what ``backup_database`` returns, built from the manifest it wrote.
The restore helpers at the end check a backup against its manifest before a target is touched.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .files import os_backup_error, write_json_atomic
from ..errors import BackupError, InvalidManifestError, RestoreError

MANIFEST_FORMAT = "maintenance_pipeline.backup"
MANIFEST_VERSION = 1
_SEQ = re.compile(r"_(\d+)$")


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest_path: Path
    target: str
    label: str
    pinned: bool
    created_at: str  # ISO-8601, UTC
    bytes: int
    sha256: str | None  # None when made with verify=False
    verified: bool
    verify_detail: str  # one line
    fingerprint: str | None
    row_counts: dict[str, int]
    method: str  # "sqlite-locked-copy" | "sqlite-wal-copy" | "sqlite-backup-api" | "pg_dump-…" | …
    seconds: float
    source: str  # masked URL
    dialect: str  # the engine that made it (its name, as the manifest records it)
    journal_mode: str | None = None  # of the source at backup time ("delete" | "wal")
    tables: dict[str, dict] = field(default_factory=dict)  # name -> {"columns": n, "rows": r}
    timings: dict[str, float] = field(default_factory=dict)  # copy / verify / snapshot / manifest
    # the engine's own part of the result, shown as it is beside the keys above (``to_dict``): key -> value
    details: dict = field(default_factory=dict)
    cleaned: list[str] = field(default_factory=list)  # leftovers of a killed run removed first (leftovers.py)

    @classmethod
    def from_manifest(cls, manifest: dict, path: Path, manifest_path: Path, *, t_start: float,
                      timings: dict[str, float], details: dict | None = None,
                      cleaned: list[str] | None = None) -> BackupResult:
        """The result of a backup whose ``manifest`` was just written; ``t_start``: its perf_counter start;
        ``details``: the engine's own keys of the result."""
        return cls(
            path=path,
            manifest_path=manifest_path,
            target=manifest["target"],
            label=manifest["label"],
            pinned=manifest["pinned"],
            created_at=manifest["created_at"],
            bytes=manifest["bytes"],
            sha256=manifest["sha256"],
            verified=manifest["verified"],
            verify_detail=manifest["verify_detail"],
            fingerprint=manifest["fingerprint"],
            row_counts=dict(manifest["row_counts"]),
            method=manifest["method"],
            seconds=round(time.perf_counter() - t_start, 3),
            source=manifest["source"],
            dialect=manifest["dialect"],
            journal_mode=manifest.get("journal_mode"),
            tables=manifest["tables"],
            timings={k: round(v, 4) for k, v in timings.items()},
            details=dict(details or {}),
            cleaned=list(cleaned or []),
        )

    def to_dict(self) -> dict:
        out = {
            "path": str(self.path),
            "manifest_path": str(self.manifest_path),
            "target": self.target,
            "label": self.label,
            "pinned": self.pinned,
            "created_at": self.created_at,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "verified": self.verified,
            "verify_detail": self.verify_detail,
            "fingerprint": self.fingerprint,
            "row_counts": dict(self.row_counts),
            "method": self.method,
            "seconds": self.seconds,
            "source": self.source,
            "dialect": self.dialect,
            "journal_mode": self.journal_mode,
            "tables": {k: dict(v) for k, v in self.tables.items()},
            "timings": dict(self.timings),
            "cleaned": list(self.cleaned),
        }
        for key, value in self.details.items():
            out.setdefault(key, dict(value) if isinstance(value, dict) else value)
        return out


# --------------------------------------------------------------------------- writing


def manifest_head(final: Path, *, target: str, label: str, pinned: bool, now: datetime, source: str,
                  dialect: str, method: str) -> dict:
    """The first keys of every manifest; the dialect's own keys follow. ``seq`` orders the folder's backups
    (one more than any manifest there has): a clock that runs ahead or back cannot reorder them."""
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "seq": next_seq(final.parent),
        "file": final.name,
        "target": target,
        "label": label,
        "pinned": bool(pinned),
        "created_at": now.isoformat(),
        "source": source,
        "dialect": dialect,
        "method": method,
    }


def manifest_tail(fingerprint: str | None, tables: dict[str, dict], t_start: float) -> dict:
    """The last keys of every manifest: what the backup holds, and how long it took so far."""
    return {
        "fingerprint": fingerprint,
        "row_counts": {n: v["rows"] for n, v in tables.items()},
        "tables": tables,
        "seconds": round(time.perf_counter() - t_start, 3),
    }


def write_manifest(path: Path, manifest: dict) -> None:
    """Write ``manifest`` atomically (mode 0600); BackupError naming the folder when that fails."""
    try:
        write_json_atomic(path, manifest)
    except OSError as e:
        raise os_backup_error(e, path.parent) from None


def set_pinned(path: str | os.PathLike, pinned: bool) -> dict:
    """Pin a backup (retention never removes it) or unpin it; ``path`` is the backup or its manifest.

    Only the manifest's ``pinned`` changes (rewritten atomically); returns the manifest as read back.
    """
    m = read_manifest(path)
    mpath, backup = Path(m.pop("manifest_path")), Path(m.pop("path"))
    if not backup.exists():
        raise BackupError(f"backup {backup} does not exist (only its manifest does); list the backups with "
                          "'python -m maintenance_pipeline backups list TARGET'")
    m["pinned"] = bool(pinned)
    write_manifest(mpath, m)
    return read_manifest(mpath)


def annotate(path: str | os.PathLike, **fields) -> dict:
    """Add ``fields`` to a backup's manifest (rewritten atomically; its sha256 covers the backup, not the manifest):
    which run made it (``run_id``, ``job``), and whether that run changed the database (``changed_database``)."""
    m = read_manifest(path)
    mpath = Path(m.pop("manifest_path"))
    m.pop("path")
    m.update(fields)
    write_manifest(mpath, m)
    return read_manifest(mpath)


# --------------------------------------------------------------------------- reading and listing


def utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def parse_time(value) -> datetime | None:
    try:
        return utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except (TypeError, ValueError):
        return None


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a backup; ``path`` is the backup file or its ``.json`` manifest.

    The result has ``path`` (the backup file) and ``manifest_path`` added. A manifest is an input (hand-edited,
    or in a folder copied from another host): the file it names must be its own stem in its own folder, and
    neither may be a link; anything else raises ``InvalidManifestError`` and the manifest is left alone.
    """
    p = Path(path)
    mpath = p if p.suffix == ".json" else p.with_suffix(".json")
    if mpath.is_symlink():
        raise InvalidManifestError(f"backup manifest {mpath} is a symbolic link; it was left alone (a manifest is "
                                   "never a link: remove it if it is not yours)")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(
            f"backup {p} has no manifest ({mpath.name} is missing); it was not made by this pipeline "
            "or its manifest was deleted"
        ) from None
    except (OSError, ValueError) as e:
        raise BackupError(f"cannot read backup manifest {mpath}: {e}; restore it or pick another backup") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise BackupError(f"{mpath} is not a backup manifest of this pipeline; pick another backup")
    name = data.get("file", mpath.with_suffix(".db").name)
    problem = _foreign_file(mpath, name)
    if problem:
        raise InvalidManifestError(f"backup manifest {mpath} is invalid: {problem}; it was left alone (retention and "
                                   "restore ignore it; remove it by hand if it is not yours)")
    data["path"] = str(mpath.parent / name)
    data["manifest_path"] = str(mpath)
    seq = data.get("seq", 0)
    data["seq"] = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else 0
    return data


def _foreign_file(mpath: Path, name) -> str | None:
    """Why the backup file a manifest names is not its own (its stem, in its folder, not a link), or None."""
    if not isinstance(name, str) or not name or name != Path(name).name or name in (".", "..") \
            or "/" in name or "\\" in name or "\0" in name:
        return f"its file {name!r} is not a name in the manifest's own folder"
    if Path(name).stem != mpath.stem or Path(name).suffix in ("", ".json"):
        return f"its file {name!r} is not {mpath.stem}.<ext>, the backup beside it"
    if (mpath.parent / name).is_symlink():
        return f"its file {name} is a symbolic link"
    return None


def list_backups(backups_dir: str | os.PathLike, target: str) -> list[dict]:
    """Manifests of ``target``'s backups whose file exists, newest first (each with ``path``)."""
    return [m for m in manifests(Path(backups_dir) / target) if Path(m["path"]).exists()]


def newest_verified(backups_dir: str | os.PathLike, target: str) -> dict | None:
    for m in list_backups(backups_dir, target):
        if m.get("verified") and m.get("sha256"):
            return m
    return None


FUTURE_SLACK = timedelta(minutes=5)  # clocks of two hosts may differ this much without a word


def manifests(folder: Path, *, now: datetime | None = None) -> list[dict]:
    """Every valid manifest of ours in ``folder`` (backup file present or not), newest first: by ``seq``, which a
    clock cannot reorder (manifests written before it existed count as older than any that has it, and among
    themselves by time). A ``created_at`` later than ``now`` is marked ``future`` (reported, never trusted)."""
    if not folder.is_dir():
        return []
    limit = utc(now) + FUTURE_SLACK
    out = []
    for mpath in folder.glob("*.json"):
        try:
            m = read_manifest(mpath)
        except BackupError:
            continue  # not ours, or invalid (``problems`` says which)
        m["_created"] = parse_time(m.get("created_at"))
        if m["_created"] is None:
            continue
        m["future"] = m["_created"] > limit
        out.append(m)
    out.sort(key=_sort_key, reverse=True)
    for m in out:
        m.pop("_created", None)
    return out


def problems(folder: Path, *, now: datetime | None = None) -> list[str]:
    """One line per manifest of ``folder`` that is ours but invalid, or dated in the future: what a run reports."""
    if not folder.is_dir():
        return []
    out = []
    for mpath in sorted(folder.glob("*.json")):
        try:
            read_manifest(mpath)
        except InvalidManifestError as e:
            out.append(str(e))
        except BackupError:
            continue
    limit = utc(now) + FUTURE_SLACK
    for m in manifests(folder, now=now):
        if m["future"]:
            out.append(f"backup {Path(m['path']).name} says it was made at {m['created_at']}, later than this "
                       f"host's clock ({limit - FUTURE_SLACK:%Y-%m-%d %H:%M} UTC): a clock ran ahead; it is ordered "
                       "by its sequence number, never by that time")
    return out


def next_seq(folder: Path) -> int:
    """One more than the highest ``seq`` of the folder's manifests."""
    return 1 + max((m.get("seq", 0) for m in manifests(folder)), default=0)


def _sort_key(m: dict):
    stem = Path(m["path"]).stem
    seq = _SEQ.search(stem)
    # names end in _HHMMSS (6 digits) or _HHMMSS_<n>; only a short suffix is a collision counter
    n = int(seq.group(1)) if seq and len(seq.group(1)) < 6 else 1
    return (m.get("seq", 0), m["_created"], n, stem)


# --------------------------------------------------------------------------- restoring


def manifest_for_restore(backup: Path, where: str) -> dict:
    """The backup's manifest, or RestoreError saying the target ``where`` was not touched."""
    try:
        return read_manifest(backup)
    except BackupError as e:
        raise RestoreError(f"{e}; the target {where} was not touched") from None


def expected_sha256(manifest: dict, backup: Path, where: str) -> str:
    """The sha256 the manifest promises; RestoreError for a backup that was never verified."""
    expected = manifest.get("sha256")
    if not expected:
        raise RestoreError(
            f"backup {backup.name} was never verified (no sha256 in its manifest); the target {where} was not "
            "touched; pick a verified backup"
        )
    return expected


def sha256_mismatch(backup: Path, actual: str, expected: str, where: str, which: str = "") -> RestoreError:
    return RestoreError(
        f"backup {backup.name} does not match its manifest (sha256 {actual[:12]}… expected "
        f"{str(expected)[:12]}…){which}: it was altered or damaged; the target {where} was not touched; pick "
        "another backup"
    )


@dataclass(frozen=True)
class RestoreResult:
    """A restore done: the backup put back, its manifest, and the restored database as the restore measured
    it (``restored``: fingerprint, row counts, whether that reading is of the backup's content alone)."""

    path: Path
    manifest: dict
    measured: dict

    def to_dict(self) -> dict:
        return {**self.manifest, "path": str(self.path), "measured": dict(self.measured)}


def restored(manifest: dict, fingerprint: str | None, tables: dict[str, dict], *, method: str, backup: Path,
             sha256: str, t_start: float, exact: bool = True) -> dict:
    """What ``restore_database`` returns: the restored target described, compared with the manifest.
    ``exact``: the description is of the restored content itself (measured before any other session could
    write, or checked inside the restore's own transaction), not of the application's writes since."""
    row_counts = {n: v["rows"] for n, v in tables.items()}
    return {
        "exact": exact,
        "fingerprint": fingerprint,
        "row_counts": row_counts,
        "tables": tables,
        "matches_manifest": fingerprint == manifest.get("fingerprint") and row_counts == manifest.get("row_counts"),
        "method": method,
        "backup": str(backup),
        "sha256": sha256,
        "seconds": round(time.perf_counter() - t_start, 3),
    }
