"""Drift detection for the sensor: a cheap "did anything change" first, reflection only when it did.

Per target, per tick: a cheap version of the live schema (``Engine.cheap_version``: SQLite's ``PRAGMA
schema_version``, microseconds; PostgreSQL's catalog fingerprint, ONE catalog query) is compared with
the value in the cursor; only when it moved (or the reference's own version moved: a reference
database is versioned the same way, so a change to the development database is noticed too) is the
live schema snapshotted and diffed. The drift fingerprint is a hash of the sorted change list: the
same drift gives the same fingerprint (one run, one alert), different drift a new one.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pathlib import Path

import hashlib
import json
from dataclasses import dataclass, field


from ..config import Target
from ..engines import open_engine
from ..engines import engine_for
from ..schema.diff import diff
from ..errors import MaintenanceError
from ..schema.model import Snapshot
from ..schema.reference import reference_snapshot
from ..schema.snapshot import take_snapshot


@dataclass
class Probe:
    target: str
    status: str  # "ok" | "drift" | "unreadable"
    fingerprint: str | None = None  # of the drift (None when there is none)
    changes: list[str] = field(default_factory=list)
    error: str | None = None
    reflected: bool = False  # whether this tick had to snapshot the schema
    schema_version: int | str | None = None  # SQLite: PRAGMA schema_version; PostgreSQL: "pg:<catalog md5>"


def drift_fingerprint(changes) -> str:
    blob = json.dumps(sorted(json.dumps(c.to_dict(), sort_keys=True) for c in changes)).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def live_version(target: Target) -> int | str | None:
    """The cheap version of a target's live schema (``Engine.cheap_version``), None for engines without one."""
    engine = target.engine
    return engine.cheap_version(target.url, engine.target_schema(target), target.ignore_tables)


class ReferenceCache:
    """Reference snapshots kept between ticks, keyed by the reference's own cheap version.

    Targets that share a reference share its snapshot, and its version is read once per tick
    (call ``new_tick()`` at the start of each tick).
    """

    def __init__(self):
        self._cache: dict[tuple, tuple[str, Snapshot]] = {}
        self._versions: dict[tuple, str] = {}

    def new_tick(self) -> None:
        self._versions.clear()

    def version(self, target: Target) -> str:
        ref = (target.reference_url or target.reference_metadata or "", target.reference_schema)
        if ref not in self._versions:
            version = None
            if target.reference_url:
                version = engine_for(target.reference_url).cheap_version(target.reference_url,
                                                                         target.reference_schema, ())
            self._versions[ref] = f"v:{version}" if version is not None else f"static:{ref[0]}"
        return self._versions[ref]

    def get(self, target: Target, search_paths=()) -> tuple[str, Snapshot]:
        dialect = target.engine.name
        key = (target.reference_url or target.reference_metadata, target.reference_schema, dialect,
               tuple(target.ignore_tables))
        version = self.version(target)
        hit = self._cache.get(key)
        if hit and hit[0] == version:
            return hit
        snap = reference_snapshot(url=target.reference_url, metadata=target.reference_metadata,
                                  target_dialect=dialect, ignore_tables=target.ignore_tables,
                                  search_paths=search_paths, schema=target.reference_schema, target_url=target.url)
        self._cache[key] = (version, snap)
        return version, snap


def probe_target(target: Target, previous: dict | None, references: ReferenceCache,
                 search_paths=()) -> tuple[Probe, dict]:
    """One target's state this tick, and its new cursor entry. Never raises for a bad target."""
    previous = previous or {}
    try:
        version = live_version(target)
        ref_version, ref = references.get(target, search_paths)
        if (version is not None and previous.get("sv") == version and previous.get("ref") == ref_version
                and "fp" in previous and not previous.get("error")):
            probe = Probe(target.name, "drift" if previous["fp"] else "ok", previous["fp"] or None,
                          previous.get("changes", []), schema_version=version)
            return probe, previous
        schema = target.engine.target_schema(target)
        engine = open_engine(target.url)
        try:
            with engine.connect() as conn:
                live = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
        finally:
            engine.dispose()
        changes = diff(live, ref, ignore_tables=target.ignore_tables, renames=target.renames, ignore=target.ignore)
        fp = drift_fingerprint(changes) if changes else ""
        described = [c.drift_text() for c in changes]
        probe = Probe(target.name, "drift" if changes else "ok", fp or None, described, reflected=True,
                      schema_version=version)
        entry = {"sv": version, "ref": ref_version, "fp": fp, "changes": described[:20],
                 "alerted": previous.get("alerted"), "episode": previous.get("episode", 0)}
        return probe, entry
    except MaintenanceError as e:
        error = str(e)
    except Exception as e:  # noqa: BLE001 - one bad target must never stop the others
        error = f"{type(e).__name__}: {e}"
    return Probe(target.name, "unreadable", error=error), {**previous, "error": error}


FUTURE_SLACK_HOURS = 5 / 60  # as ``shared.manifest.FUTURE_SLACK``


class BackupFreshness:
    """Each target's newest verified backup by its manifests, its age, and whether it is older than
    ``backups.fresh_within_hours``, reading a target's folder again only when the folder changed (cheap over 100
    targets). The catalog's ``backup_age_hours`` comes from here; the stale-backup alert does not: it follows
    Dagster's own freshness state of ``backups/<target>`` (what the UI shows; ``orchestration/automation.py``)."""

    def __init__(self):
        self._seen: dict[str, tuple[float, str | None]] = {}  # folder -> (mtime, newest verified created_at)

    def newest(self, backups_dir, target: str) -> str | None:
        from ..shared.manifest import newest_verified

        folder = Path(backups_dir) / target
        try:
            mtime = folder.stat().st_mtime
        except OSError:
            return None
        hit = self._seen.get(str(folder))
        if hit and hit[0] == mtime:
            return hit[1]
        m = newest_verified(backups_dir, target)
        created = str(m["created_at"]) if m else None
        self._seen[str(folder)] = (mtime, created)
        return created

    def stale(self, config, target: str, now: datetime | None = None) -> tuple[bool, str | None, float | None]:
        """(stale, newest verified backup's created_at, its age in hours)."""
        now = now or datetime.now(timezone.utc)
        created = self.newest(config.backups.dir, target)
        if created is None:
            return True, None, None
        when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        age = (now - when).total_seconds() / 3600
        # dated in the future: a clock ran ahead; its age is unknown, so it proves nothing fresh
        return age > config.backups.fresh_within_hours or age < -FUTURE_SLACK_HOURS, created, age
