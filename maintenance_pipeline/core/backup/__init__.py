"""Backups: a consistent, verified copy of a database, its manifest, retention and restore.

Layout::

    <backups_dir>/<target>/<target>_<label>_<YYYYmmdd_HHMMSS>.db     the copy, mode 0600
    <backups_dir>/<target>/<target>_<label>_<YYYYmmdd_HHMMSS>.json   its manifest, mode 0600

A backup file only ever appears under its final name complete and fsynced: it is written
to a hidden temp file in the same folder, fsynced, verified and then hard-linked to its
name (which never overwrites anything), and the folder is fsynced. The manifest is
written the same way right after. A file without a manifest is never ours: listing and
retention ignore it.

This module is the public API; the engine does the work (``Engine.backup`` / ``Engine.restore``):

* ``engines/sqlite/backup.py`` / ``restore.py``: SQLite (locked copy or online backup API, see there);
* ``engines/postgresql/backup.py`` / ``restore.py``: PostgreSQL (``pg_dump`` into ``.dump`` files or folders,
  verified with ``pg_restore --list``, restored with ``pg_restore --clean --if-exists`` in one
  transaction);
* ``manifest.py`` (manifests, ``BackupResult``, listing), ``retention.py``, ``backup_files.py``
  (the folder on disk).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..shared.files import DEFAULT_BUSY_TIMEOUT, sha256_file
from ..engines import all_engines, engine_for
from ..errors import BackupError, RestoreError
from ..shared.manifest import (BackupResult, annotate, list_backups, newest_verified, problems, read_manifest, set_pinned,
                       utc)
from .retention import apply_retention


def backup_database(
    url: str,
    backups_dir: str | os.PathLike,
    target: str,
    *,
    label: str = "nightly",
    pinned: bool = False,
    now: datetime | None = None,
    verify: bool = True,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    schema: str | None = None,
    options: object = None,
    **engine_options,
) -> BackupResult:
    """Copy the database at ``url`` into ``backups_dir/<target>/``, verify it, write its manifest.

    Raises MissingDatabaseError / NotADatabaseError (nothing created), DatabaseLockedError
    (a writer held the source longer than ``busy_timeout``), BackupError (folder not writable,
    disk full, copy failed verification; no partial file is left behind).
    ``schema``: the target's schema, for an engine that has them. ``engine_options``: an engine's own backup
    options, as in the targets file's ``backups:`` (``postgresql={"format": "custom"}``, or the old spellings
    ``pg_format="custom"``, ``restore_check=True``), read by the engine of ``url``; another engine's are ignored.
    ``options``: the engine's options as already read (``BackupSettings.options_for``), instead.
    """
    _check_name(target, "target")
    _check_name(label, "label")
    engine = engine_for(url)
    known = {k for e in all_engines() for k in (e.name, *e.legacy_backup_keys)}
    unknown = sorted(set(engine_options) - known)
    if unknown:
        raise TypeError(f"backup_database() got an unexpected keyword argument {unknown[0]!r}")
    settings = options if options is not None else engine_backup_options(engine, engine_options, _option_error)
    return engine.backup(url, Path(backups_dir), target, label=label, pinned=pinned, now=utc(now), verify=verify,
                         busy_timeout=busy_timeout, settings=settings, schema=schema)


def engine_backup_options(engine, given: dict, fail, where: str = "backups"):
    """``engine``'s own backup options (``Engine.backup_options``: a value the core hands back to the engine without
    looking into it) from ``given``, the targets file's ``backups:`` mapping (or ``backup_database``'s keywords):
    the engine's section ``<where>.<engine name>``, or the old spellings it declares directly in ``given``
    (``Engine.legacy_backup_keys``), mapped to that section, a message naming the key as written. Both at once:
    one error naming the new key. ``fail(key, problem)`` raises."""
    section = f"{where}.{engine.name}"
    old = {k: new for k, new in engine.legacy_backup_keys.items() if k in given}
    if not old:
        return engine.backup_options(given.get(engine.name), section, fail)
    if engine.name in given:
        k = next(iter(old))
        fail(f"{where}.{k}", f"is the old spelling of {section}.{old[k]}, and {section} is given too; "
             f"write it in {section} as {old[k]}")
    as_written = {f"{section}.{new}": f"{where}.{k}" for k, new in old.items()}
    return engine.backup_options({new: given[k] for k, new in old.items()}, section,
                                 lambda key, problem: fail(as_written.get(key, key), problem))


def _option_error(key: str, problem: str):
    raise BackupError(f"{key} {problem}")


def restore_database(
    backup_path: str | os.PathLike, url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    schema: str | None = None, safety: SafetyCopy | None = None, recorded_sha256: str | None = None,
    recreate: bool = False,
) -> dict:
    """Write a backup made by ``backup_database`` into the live database at ``url``.

    Before the target is touched: the backup's manifest must be valid, its sha256 must match the manifest
    (and ``recorded_sha256``, what the event log recorded when the backup was made, when there is one: a
    manifest edited to match tampered content is refused too), and the engine checks the content itself
    (SQLite: ``integrity_check``, the schema fingerprint and every table's row count against the manifest;
    PostgreSQL: ``pg_restore --list``, the row counts inside the restore's transaction). RestoreError
    otherwise, target unchanged.

    ``safety``: the safety copy of the live database to take first, as part of the restore (SQLite: under the
    restore's own write lock, so no commit falls between the copy and the restore; PostgreSQL: a dump just
    before it). Returns {"fingerprint", "row_counts", "tables", "matches_manifest", "method", "backup",
    "sha256", "seconds", "safety" (the safety copy's ``BackupResult`` or None)} of the restored target.

    ``recreate``: a database file that is gone is made again from the backup (a restore run of a target of the
    targets file); without it a missing file is an error and nothing is created.
    """
    path = Path(backup_path)
    if recorded_sha256:
        from ..dburl import mask_url
        from ..shared.manifest import manifest_for_restore

        manifest = manifest_for_restore(path, mask_url(url))
        if manifest.get("sha256") != recorded_sha256:
            raise RestoreError(
                f"the manifest of backup {path.name} says sha256 {str(manifest.get('sha256'))[:12]}…, but this "
                f"pipeline recorded {recorded_sha256[:12]}… when it made that backup: the manifest was edited; the "
                f"target {mask_url(url)} was not touched; pick another backup")
    return engine_for(url).restore(path, url, busy_timeout=busy_timeout, schema=schema, safety=safety,
                                   recreate=recreate)


@dataclass(frozen=True)
class SafetyCopy:
    """The safety backup a restore takes of the live database before it changes anything (a verified backup with
    its manifest, as ``backup_database`` makes)."""

    backups_dir: Path
    target: str
    label: str = "pre-restore"
    pinned: bool = True
    settings: object = None  # the engine's backup options (``BackupSettings.options_for``; None: its defaults)

    def take(self, url: str, *, busy_timeout: float, schema: str | None, copier=None) -> BackupResult:
        """``backup_database`` of ``url``, as the engine takes a safety copy (``Engine.safety_copy_options``);
        ``copier`` (the engine's): how the copy's bytes are made (inside a lock the restore already holds)."""
        engine = engine_for(url)
        return engine.backup(url, Path(self.backups_dir), self.target, label=self.label, pinned=self.pinned,
                             now=utc(None), verify=True, busy_timeout=busy_timeout,
                             settings=engine.safety_copy_options(self.settings), schema=schema, copier=copier)


def backup_to_restore(target: str, backups_dir: str | os.PathLike, root: Path, backup_path: str = "") -> tuple[Path, dict]:
    """The backup a restore uses and its manifest: ``backup_path`` (relative to ``root``, the targets file's folder),
    or what an operator means by "undo": the pre-migration backup of the newest run that changed the database
    (newest by sequence; a run that changed nothing leaves its backup unpinned and unmarked)."""
    if backup_path:
        path = Path(backup_path).expanduser()
        if not path.is_absolute():
            path = (root / path).resolve()
        if not path.exists():
            raise RestoreError(f"backup {path} does not exist; list the backups of {target} with "
                               f"`maintenance-pipeline backups list {target}`")
        return path, read_manifest(path)
    candidates = [m for m in list_backups(backups_dir, target) if m.get("verified") and undoes_a_change(m)]
    if not candidates:
        raise RestoreError(f"nothing to undo: no backup of {target!r} in {Path(backups_dir) / target} was taken before "
                           "a run that changed the database; name the backup to restore with --backup (see "
                           f"`maintenance-pipeline backups list {target}`)")
    return Path(candidates[0]["path"]), candidates[0]


def undoes_a_change(m: dict) -> bool:
    """A pre-migration backup of a run that changed the database (``changed_database``; before runs recorded it, a
    pre-migration backup still pinned: a run that changed nothing unpins its own)."""
    if m.get("label") != "pre-migration":
        return False
    return bool(m["changed_database"]) if "changed_database" in m else bool(m.get("pinned"))


def describe_choice(m: dict) -> str:
    """"the pre-migration backup of run 1a2b3c4d (maintain_database, 2026-12-06 21:00 UTC)": which run, and when."""
    when = str(m.get("created_at") or "")[:16].replace("T", " ")
    run = f"run {str(m['run_id'])[:8]} ({m.get('job') or 'a run'}, {when} UTC)" if m.get("run_id") else f"{when} UTC"
    return f"the {m.get('label') or ''} backup of {run}".replace("the  backup", "the backup")


def _check_name(value: str, what: str) -> None:
    if (
        not isinstance(value, str)
        or not value.strip()
        or value in (".", "..")
        or value.startswith(".")
        or any(c in value for c in "/\\\0")
    ):
        raise BackupError(f"bad backup {what} {value!r}: use letters, digits, '_', '-' or '.' (no slashes)")


__all__ = [
    "BackupResult",
    "backup_database",
    "read_manifest",
    "list_backups",
    "newest_verified",
    "set_pinned",
    "apply_retention",
    "problems",
    "annotate",
    "undoes_a_change",
    "describe_choice",
    restore_database.__name__,
    "SafetyCopy",
    "backup_to_restore",
    "sha256_file",
]
