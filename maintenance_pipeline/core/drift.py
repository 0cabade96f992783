"""Drift detection for the sensor: a cheap "did anything change" first, reflection only when it did.

Per target, per tick: SQLite's ``PRAGMA schema_version`` (microseconds) is compared with the
value in the cursor; only when it moved (or the reference's own version moved) is the live
schema snapshotted and diffed. The drift fingerprint is a hash of the sorted change list:
the same drift gives the same fingerprint (one run, one alert), different drift a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .config import Target
from .dburl import check_sqlite_file, open_engine, sqlite_path, translate_error
from .diff import diff
from .errors import MaintenanceError
from .model import Snapshot
from .reference import reference_snapshot
from .snapshot import take_snapshot


@dataclass
class Probe:
    target: str
    status: str  # "ok" | "drift" | "unreadable"
    fingerprint: str | None = None  # of the drift (None when there is none)
    changes: list[str] = field(default_factory=list)
    error: str | None = None
    reflected: bool = False  # whether this tick had to snapshot the schema
    schema_version: int | None = None


def drift_fingerprint(changes) -> str:
    blob = json.dumps(sorted(json.dumps(c.to_dict(), sort_keys=True) for c in changes)).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _sqlite_version(url: str) -> int:
    path = sqlite_path(url)
    check_sqlite_file(path)
    try:
        # as_uri() percent-encodes the path: a raw "#" or "?" in it would end the URI's path early
        # (SQLite would then open, and create, a different file without mode=ro)
        conn = sqlite3.connect(f"{Path(os.path.abspath(path)).as_uri()}?mode=ro", uri=True, timeout=2)
        try:
            return conn.execute("PRAGMA schema_version").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise translate_error(e, url) from None


class ReferenceCache:
    """Reference snapshots kept between ticks, keyed by the reference's own cheap version.

    Targets that share a reference share its snapshot, and its version is read once per tick
    (call ``new_tick()`` at the start of each tick).
    """

    def __init__(self):
        self._cache: dict[tuple, tuple[str, Snapshot]] = {}
        self._versions: dict[str, str] = {}

    def new_tick(self) -> None:
        self._versions.clear()

    def version(self, target: Target) -> str:
        ref = target.reference_url or target.reference_metadata or ""
        if ref not in self._versions:
            if target.reference_url and sqlite_path(target.reference_url) is not None:
                self._versions[ref] = f"sv:{_sqlite_version(target.reference_url)}"
            else:
                self._versions[ref] = f"static:{ref}"
        return self._versions[ref]

    def get(self, target: Target, search_paths=()) -> tuple[str, Snapshot]:
        dialect = "sqlite" if sqlite_path(target.url) else "postgresql"
        key = (target.reference_url or target.reference_metadata, dialect, tuple(target.ignore_tables))
        version = self.version(target)
        hit = self._cache.get(key)
        if hit and hit[0] == version:
            return hit
        snap = reference_snapshot(url=target.reference_url, metadata=target.reference_metadata,
                                  target_dialect=dialect, ignore_tables=target.ignore_tables,
                                  search_paths=search_paths)
        self._cache[key] = (version, snap)
        return version, snap


def probe_target(target: Target, previous: dict | None, references: ReferenceCache,
                 search_paths=()) -> tuple[Probe, dict]:
    """One target's state this tick, and its new cursor entry. Never raises for a bad target."""
    previous = previous or {}
    try:
        live_version = _sqlite_version(target.url) if sqlite_path(target.url) else None
        ref_version, ref = references.get(target, search_paths)
        if (live_version is not None and previous.get("sv") == live_version and previous.get("ref") == ref_version
                and "fp" in previous and not previous.get("error")):
            probe = Probe(target.name, "drift" if previous["fp"] else "ok", previous["fp"] or None,
                          previous.get("changes", []), schema_version=live_version)
            return probe, previous
        engine = open_engine(target.url)
        try:
            with engine.connect() as conn:
                live = take_snapshot(conn, ignore_tables=target.ignore_tables)
        finally:
            engine.dispose()
        changes = diff(live, ref, ignore_tables=target.ignore_tables)
        fp = drift_fingerprint(changes) if changes else ""
        described = [c.describe() for c in changes]
        probe = Probe(target.name, "drift" if changes else "ok", fp or None, described, reflected=True,
                      schema_version=live_version)
        entry = {"sv": live_version, "ref": ref_version, "fp": fp, "changes": described[:20],
                 "alerted": previous.get("alerted")}
        return probe, entry
    except MaintenanceError as e:
        error = str(e)
    except Exception as e:  # noqa: BLE001 - one bad target must never stop the others
        error = f"{type(e).__name__}: {e}"
    return Probe(target.name, "unreadable", error=error), {**previous, "error": error}
