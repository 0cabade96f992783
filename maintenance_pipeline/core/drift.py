"""Drift detection for the sensor: a cheap "did anything change" first, reflection only when it did.

Per target, per tick: a cheap version of the live schema is compared with the value in the
cursor; only when it moved (or the reference's own version moved) is the live schema
snapshotted and diffed. SQLite: ``PRAGMA schema_version`` (microseconds). PostgreSQL: ONE
catalog query (``engines.postgresql.catalog.catalog_fingerprint``: an md5 over the columns, indexes and
constraints of the target's schema), ``"pg:<md5>:<items>"``; a PostgreSQL reference is
versioned the same way, so a change to the development database is noticed too. The drift fingerprint is a hash of the sorted change list:
the same drift gives the same fingerprint (one run, one alert), different drift a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from .engines.postgresql import catalog as pg_checks
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
    schema_version: int | str | None = None  # SQLite: PRAGMA schema_version; PostgreSQL: "pg:<catalog md5>"


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


def _pg_version(url: str, schema: str | None = None, ignore_tables=()) -> str:
    """PostgreSQL: the catalog fingerprint of ``schema`` (one query on one connection)."""
    engine = open_engine(url, check=False)
    try:
        with engine.connect() as conn:
            return "pg:" + pg_checks.catalog_fingerprint(conn, schema, ignore_tables)
    except sa.exc.DBAPIError as e:
        raise translate_error(e, url) from None
    finally:
        engine.dispose()


def _is_postgres(url: str) -> bool:
    from .dburl import dialect_of

    return dialect_of(url) == "postgresql"


def live_version(target: Target) -> int | str | None:
    """The cheap version of a target's live schema, None for dialects without one."""
    if sqlite_path(target.url) is not None:
        return _sqlite_version(target.url)
    if _is_postgres(target.url):
        return _pg_version(target.url, target.schema, target.ignore_tables)
    return None


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
            if target.reference_url and sqlite_path(target.reference_url) is not None:
                self._versions[ref] = f"sv:{_sqlite_version(target.reference_url)}"
            elif target.reference_url and _is_postgres(target.reference_url):
                self._versions[ref] = _pg_version(target.reference_url, target.reference_schema)
            else:
                self._versions[ref] = f"static:{ref[0]}"
        return self._versions[ref]

    def get(self, target: Target, search_paths=()) -> tuple[str, Snapshot]:
        dialect = "sqlite" if sqlite_path(target.url) else "postgresql"
        key = (target.reference_url or target.reference_metadata, target.reference_schema, dialect,
               tuple(target.ignore_tables))
        version = self.version(target)
        hit = self._cache.get(key)
        if hit and hit[0] == version:
            return hit
        snap = reference_snapshot(url=target.reference_url, metadata=target.reference_metadata,
                                  target_dialect=dialect, ignore_tables=target.ignore_tables,
                                  search_paths=search_paths, schema=target.reference_schema)
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
        schema = target.schema if sqlite_path(target.url) is None else None
        engine = open_engine(target.url)
        try:
            with engine.connect() as conn:
                live = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
        finally:
            engine.dispose()
        changes = diff(live, ref, ignore_tables=target.ignore_tables)
        fp = drift_fingerprint(changes) if changes else ""
        described = [c.describe() for c in changes]
        probe = Probe(target.name, "drift" if changes else "ok", fp or None, described, reflected=True,
                      schema_version=version)
        entry = {"sv": version, "ref": ref_version, "fp": fp, "changes": described[:20],
                 "alerted": previous.get("alerted")}
        return probe, entry
    except MaintenanceError as e:
        error = str(e)
    except Exception as e:  # noqa: BLE001 - one bad target must never stop the others
        error = f"{type(e).__name__}: {e}"
    return Probe(target.name, "unreadable", error=error), {**previous, "error": error}
