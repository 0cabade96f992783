"""Backups: a consistent, verified copy of a database, its manifest, retention and restore.

Layout (SPEC §3, op "backup")::

    <backups_dir>/<target>/<target>_<label>_<YYYYmmdd_HHMMSS>.db     the copy, mode 0600
    <backups_dir>/<target>/<target>_<label>_<YYYYmmdd_HHMMSS>.json   its manifest, mode 0600

A backup file only ever appears under its final name complete and fsynced: it is written
to a hidden temp file in the same folder, fsynced, verified and then hard-linked to its
name (which never overwrites anything), and the folder is fsynced. The manifest is
written the same way right after. A file without a manifest is never ours: listing and
retention ignore it.

SQLite consistency strategy
---------------------------
* rollback-journal database: a read transaction on the source holds a SHARED lock, so no
  writer can commit, or even spill a page into the file, while it is held. The file's
  bytes are copied with the kernel's fastest path (``copy_file_range``, then
  ``sendfile``, then a plain loop) under that lock: a copy bytewise equal to the source
  at ``cp`` speed (method ``sqlite-locked-copy``). Writers wait (busy timeout) for the
  duration of the copy, about one second per GiB.
* WAL database: the main file alone is not a snapshot (committed pages may still be in
  the -wal file), so SQLite's online backup API copies it in ONE step (``pages=-1``; a
  stepped backup restarts on every commit by another connection and may never finish).
  The step runs inside one read transaction, so it is a consistent snapshot and writers
  are never blocked (method ``sqlite-backup-api``). The copy is then switched to
  ``journal_mode=DELETE`` so that it is one self-contained file that opens read-only
  without creating -wal/-shm files beside it; ``restore_database`` keeps the live
  database's own journal mode.

The source is never opened by a connection that could create it: the file is checked
with ``dburl.check_sqlite_file`` first and opened through ``file:…?mode=ro`` URIs.

Caveat (POSIX locks): closing any file descriptor of a file releases every POSIX lock the
*process* holds on it, SQLite's included. The locked copy closes its own descriptor only
after its transaction has ended, but do not call ``backup_database`` while the same
process holds an open transaction on the source through another connection.

The dialect dispatch (``_BACKENDS`` / ``_RESTORERS``) is the seam for other dialects: PostgreSQL
lives in ``pg_backup.py`` (``pg_dump`` into ``.dump`` files or folders, verified with
``pg_restore --list``, restored with ``pg_restore --clean --if-exists`` in one transaction).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

from .dburl import check_sqlite_file, dialect_of, mask_url, sqlite_path, translate_error
from .errors import (
    BackupError,
    DatabaseLockedError,
    MaintenanceError,
    NotADatabaseError,
    RestoreError,
)

MANIFEST_FORMAT = "maintenance_pipeline.backup"
MANIFEST_VERSION = 1
FILE_MODE = 0o600
DIR_MODE = 0o700
DEFAULT_BUSY_TIMEOUT = 10.0  # seconds to wait for a writer holding the source (or restore target)
_CHUNK = 1 << 20
_MMAP_SIZE = 1 << 40  # SQLite caps this at its compile-time SQLITE_MAX_MMAP_SIZE
_SEQ = re.compile(r"_(\d+)$")
_SQLITE_SIDECARS = ("-journal", "-wal", "-shm")


# --------------------------------------------------------------------------- result


@dataclass
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
    method: str  # "sqlite-locked-copy" | "sqlite-backup-api"
    seconds: float
    source: str  # masked URL
    dialect: str = "sqlite"
    journal_mode: str | None = None  # of the source at backup time ("delete" | "wal")
    tables: dict[str, dict] = field(default_factory=dict)  # name -> {"columns": n, "rows": r}
    timings: dict[str, float] = field(default_factory=dict)  # copy / verify / snapshot / manifest
    pg: dict | None = None  # PostgreSQL: format, jobs, compress, schema, server/pg_dump versions

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
        }
        if self.pg is not None:
            out["pg"] = dict(self.pg)
        return out


# --------------------------------------------------------------------------- backup


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
    pg_format: str = "directory",
    pg_jobs: int = 2,
    pg_compress: int = 0,
    restore_check: bool = False,
    schema: str | None = None,
) -> BackupResult:
    """Copy the database at ``url`` into ``backups_dir/<target>/``, verify it, write its manifest.

    Raises MissingDatabaseError / NotADatabaseError (nothing created), DatabaseLockedError
    (a writer held the source longer than ``busy_timeout``), BackupError (folder not writable,
    disk full, copy failed verification; no partial file is left behind).
    ``pg_format`` / ``pg_jobs`` / ``pg_compress`` / ``restore_check`` / ``schema`` apply to PostgreSQL
    (``backups.*`` and the target's ``schema`` in the targets file); SQLite ignores them.
    """
    _check_name(target, "target")
    _check_name(label, "label")
    dialect = dialect_of(url)
    impl = _BACKENDS.get(dialect)
    if impl is None:
        raise BackupError(
            f"backups of {dialect} databases are not supported yet ({mask_url(url)}); "
            "only SQLite and PostgreSQL targets can be backed up by this version"
        )
    extra = {} if dialect == "sqlite" else {
        "pg_format": pg_format, "pg_jobs": pg_jobs, "pg_compress": pg_compress, "restore_check": restore_check,
        "schema": schema,
    }
    return impl(
        url, Path(backups_dir), target, label=label, pinned=pinned, now=_utc(now), verify=verify,
        busy_timeout=busy_timeout, **extra,
    )


def _backup_sqlite(
    url: str, backups_dir: Path, target: str, *, label: str, pinned: bool, now: datetime, verify: bool,
    busy_timeout: float,
) -> BackupResult:
    t_start = time.perf_counter()
    source = mask_url(url)
    src = sqlite_path(url)
    if src is None:
        raise BackupError(f"{source} is an in-memory SQLite database; there is no file to back up")
    check_sqlite_file(src)  # MissingDatabaseError / NotADatabaseError, before anything is created

    folder = backups_dir / target
    _ensure_folder(folder)
    _check_free_space(folder, _sqlite_size(src))

    stem = f"{target}_{label}_{now.strftime('%Y%m%d_%H%M%S')}"
    tmp = folder / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    timings: dict[str, float] = {}
    final: Path | None = None
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except OSError as e:
            raise _os_backup_error(e, folder) from None
        try:
            os.fchmod(fd, FILE_MODE)
            t = time.perf_counter()
            method, journal_mode = _sqlite_copy(src, url, tmp, fd, busy_timeout, timings)
            os.fsync(fd)
            timings["copy"] = time.perf_counter() - t
        except OSError as e:
            raise _os_backup_error(e, folder) from None
        finally:
            os.close(fd)
        size = tmp.stat().st_size

        sha = None
        verified = False
        detail = "not verified (verify=False)"
        if verify:
            t = time.perf_counter()
            ok, integrity, sha = _verify_sqlite_file(tmp)
            timings["verify"] = time.perf_counter() - t
            if not ok:
                raise BackupError(
                    f"the backup of {source} failed verification (integrity_check: {integrity}); the copy "
                    "was deleted; the source itself is probably damaged: run PRAGMA integrity_check on it "
                    "and restore it from an earlier backup"
                )
            verified = True
            detail = f"integrity_check ok, sha256 {sha[:12]}…, {size} bytes"

        t = time.perf_counter()
        fingerprint, tables = _describe_sqlite_file(tmp)
        timings["snapshot"] = time.perf_counter() - t

        t = time.perf_counter()
        try:
            final = _link_unique(tmp, folder, stem, ".db")
            _fsync_dir(folder)
        except OSError as e:
            raise _os_backup_error(e, folder) from None
        manifest_path = final.with_suffix(".json")
        seconds = round(time.perf_counter() - t_start, 3)
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "file": final.name,
            "target": target,
            "label": label,
            "pinned": bool(pinned),
            "created_at": now.isoformat(),
            "source": source,
            "dialect": "sqlite",
            "method": method,
            "journal_mode": journal_mode,
            "bytes": size,
            "sha256": sha,
            "verified": verified,
            "verify_detail": detail,
            "fingerprint": fingerprint,
            "row_counts": {n: v["rows"] for n, v in tables.items()},
            "tables": tables,
            "seconds": seconds,
        }
        try:
            _write_json_atomic(manifest_path, manifest)
        except OSError as e:
            raise _os_backup_error(e, folder) from None
        timings["manifest"] = time.perf_counter() - t
    except BaseException:
        _remove_quietly(tmp, *(Path(f"{tmp}{s}") for s in _SQLITE_SIDECARS))
        if final is not None:
            _remove_quietly(final, final.with_suffix(".json"))
        raise
    _remove_quietly(tmp)

    return BackupResult(
        path=final,
        manifest_path=manifest_path,
        target=target,
        label=label,
        pinned=bool(pinned),
        created_at=manifest["created_at"],
        bytes=size,
        sha256=sha,
        verified=verified,
        verify_detail=detail,
        fingerprint=fingerprint,
        row_counts=dict(manifest["row_counts"]),
        method=method,
        seconds=round(time.perf_counter() - t_start, 3),
        source=source,
        dialect="sqlite",
        journal_mode=journal_mode,
        tables=tables,
        timings={k: round(v, 4) for k, v in timings.items()},
    )


def _backup_postgresql(url: str, backups_dir: Path, target: str, **kw) -> BackupResult:
    from .pg_backup import backup_postgresql  # imported late: pg_backup imports this module

    return backup_postgresql(url, backups_dir, target, **kw)


_BACKENDS = {"sqlite": _backup_sqlite, "postgresql": _backup_postgresql}


def _sqlite_copy(
    src: Path, url: str, tmp: Path, tmp_fd: int, busy_timeout: float, timings: dict[str, float]
) -> tuple[str, str]:
    """Copy ``src`` into the open temp file; return (method, journal mode of the source).

    ``timings`` gets ``lock_wait`` (until the read lock was granted) and, for the locked copy,
    ``locked`` (how long writers were held off).
    """
    src_fd = os.open(src, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        conn = _connect_source(src, "ro")
        try:
            t = time.perf_counter()
            try:
                _begin_read(conn, busy_timeout, url)  # SHARED lock (rollback journal) / snapshot (WAL)
            except _HotJournal:
                # A writer crashed mid-transaction: a read-only connection may not roll its journal
                # back. A read-write one (mode=rw never creates a file) does, as any next user would.
                conn.close()
                conn = _connect_source(src, "rw")
                _begin_read(conn, busy_timeout, url)
            locked_at = time.perf_counter()
            timings["lock_wait"] = locked_at - t
            # Read under the lock: in rollback mode nobody can switch the file to WAL while we hold it.
            wal = os.pread(src_fd, 2, 18) == b"\x02\x02"
            if not wal:
                size = os.fstat(src_fd).st_size
                _copy_bytes(src_fd, tmp_fd, size)
                if os.fstat(tmp_fd).st_size != size:
                    raise BackupError(f"copy of {src} is incomplete; check the backup folder's disk and rerun")
                conn.execute("ROLLBACK")
                timings["locked"] = time.perf_counter() - locked_at
                return "sqlite-locked-copy", "delete"
            conn.execute("ROLLBACK")
            _backup_api(conn, tmp, url, busy_timeout)
            return "sqlite-backup-api", "wal"
        finally:
            conn.close()
    finally:
        # Only now: closing a descriptor drops this process's POSIX locks on the file.
        os.close(src_fd)


def _begin_read(conn: sqlite3.Connection, busy_timeout: float, url: str) -> None:
    """Open a read transaction, retrying every millisecond or so until ``busy_timeout``.

    SQLite's own busy handler backs off to 100 ms sleeps; against a writer that commits in a
    tight loop in rollback-journal mode (PENDING/EXCLUSIVE held for almost all of its time,
    free for microseconds between commits) such a reader is starved for many seconds. Short,
    frequent attempts catch a gap between two commits within a fraction of a second.
    """
    deadline = time.monotonic() + busy_timeout
    delay = 0.0002
    while True:
        try:
            conn.execute("BEGIN")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return
        except sqlite3.OperationalError as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if getattr(e, "sqlite_errorcode", None) == _SQLITE_READONLY_ROLLBACK:
                raise _HotJournal() from None
            if not _is_busy(e) or time.monotonic() >= deadline:
                raise translate_error(e, url) from None
        except sqlite3.Error as e:
            raise translate_error(e, url) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.001)


_SQLITE_READONLY_ROLLBACK = getattr(sqlite3, "SQLITE_READONLY_ROLLBACK", 776)


class _HotJournal(Exception):
    """The source has a hot journal that a read-only connection cannot roll back."""


def _is_busy(e: sqlite3.Error) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    msg = str(e).lower()
    return "locked" in msg or "busy" in msg


def _backup_api(src_conn: sqlite3.Connection, tmp: Path, url: str, busy_timeout: float) -> None:
    """One-step online backup of ``src_conn`` into the (empty) temp file, left in DELETE mode."""
    dest = sqlite3.connect(_uri(tmp, "rw"), uri=True, isolation_level=None, check_same_thread=False)
    try:
        dest.execute("PRAGMA synchronous=OFF")  # the caller fsyncs the finished file
        src_conn.execute(f"PRAGMA mmap_size={_MMAP_SIZE}")  # measured: ~10-20% faster reads of a big source
        try:
            src_conn.backup(dest, pages=-1, progress=_deadline(busy_timeout, url))
        except sqlite3.Error as e:
            raise _sqlite_backup_error(e, url, tmp.parent) from None
        # The copied header says WAL; make the copy one self-contained rollback-journal file.
        mode = dest.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        if str(mode).lower() != "delete":
            raise BackupError(f"could not switch the backup copy of {mask_url(url)} out of WAL mode ({mode})")
    finally:
        dest.close()


def _deadline(seconds: float, url: str):
    """A backup progress callback that gives up once the destination/source stayed busy too long."""
    start = time.monotonic()

    def progress(status: int, remaining: int, total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() - start > seconds:
            raise DatabaseLockedError(
                f"database {mask_url(url)} stayed locked by another connection for {seconds:g}s; wait for the "
                "other writer to finish or stop it, then rerun"
            )

    return progress


def _copy_bytes(src_fd: int, dst_fd: int, size: int) -> None:
    """Copy ``size`` bytes from offset 0 with copy_file_range, sendfile or a plain loop."""
    pos = 0
    if hasattr(os, "copy_file_range"):
        try:
            while pos < size:
                n = os.copy_file_range(src_fd, dst_fd, min(size - pos, 1 << 30), pos, pos)
                if n == 0:
                    break
                pos += n
            if pos >= size:
                return
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.EPERM):
                raise
    if hasattr(os, "sendfile"):
        try:
            os.lseek(dst_fd, pos, os.SEEK_SET)
            while pos < size:
                n = os.sendfile(dst_fd, src_fd, pos, min(size - pos, 1 << 30))
                if n == 0:
                    break
                pos += n
            if pos >= size:
                return
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while pos < size:
        n = os.preadv(src_fd, [view[: min(_CHUNK, size - pos)]], pos)
        if n == 0:
            break
        done = 0
        while done < n:
            done += os.pwrite(dst_fd, view[done:n], pos + done)
        pos += n


# --------------------------------------------------------------------------- verification


def _verify_sqlite_file(path: Path) -> tuple[bool, str, str]:
    """(ok, integrity detail, sha256). The hash runs in a thread beside ``integrity_check``."""
    digest: dict[str, object] = {}

    def hash_it() -> None:
        try:
            digest["sha"] = sha256_file(path)
        except BaseException as e:  # re-raised below
            digest["error"] = e

    th = threading.Thread(target=hash_it, name="backup-sha256", daemon=True)
    th.start()
    try:
        ok, detail = integrity_check(path)
    finally:
        th.join()
    if "error" in digest:
        raise digest["error"]  # type: ignore[misc]
    return ok, detail, str(digest["sha"])


def integrity_check(path: str | os.PathLike, max_errors: int = 20) -> tuple[bool, str]:
    """``PRAGMA integrity_check`` on a file opened read-only: (ok, one-line detail)."""
    path = Path(path)
    try:
        conn = sqlite3.connect(_uri(path, "ro"), uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA mmap_size={_MMAP_SIZE}")
            conn.execute("PRAGMA cache_size=-65536")
            rows = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(max_errors)})")]
        finally:
            conn.close()
    except sqlite3.Error as e:
        return False, " ".join(str(e).split()) or type(e).__name__
    if rows == ["ok"]:
        return True, "ok"
    return False, " ".join("; ".join(rows).split())[:500]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK * 4)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _describe_sqlite_file(path: Path) -> tuple[str | None, dict[str, dict]]:
    """Schema fingerprint (over all tables) and {table: {"columns", "rows"}} of a SQLite file."""
    import sqlalchemy as sa

    from .snapshot import table_counts, take_snapshot

    uri = _uri(path, "ro")
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.connect() as conn:
            snap = take_snapshot(conn)
            counts = table_counts(conn, sorted(snap.tables))
    except sa.exc.DBAPIError as e:
        raise BackupError(f"cannot read the schema of the backup copy {path.name}: {e.orig}; rerun the backup")
    finally:
        engine.dispose()
    tables = {n: {"columns": int(v["columns"]), "rows": int(v["rows"])} for n, v in sorted(counts.items())}
    return snap.fingerprint, tables


# --------------------------------------------------------------------------- manifests and listing


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a backup; ``path`` is the backup file or its ``.json`` manifest.

    The result has ``path`` (the backup file) and ``manifest_path`` added.
    """
    p = Path(path)
    mpath = p if p.suffix == ".json" else p.with_suffix(".json")
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
    data["path"] = str(mpath.parent / data.get("file", mpath.with_suffix(".db").name))
    data["manifest_path"] = str(mpath)
    return data


def list_backups(backups_dir: str | os.PathLike, target: str) -> list[dict]:
    """Manifests of ``target``'s backups whose file exists, newest first (each with ``path``)."""
    return [m for m in _manifests(Path(backups_dir) / target) if Path(m["path"]).exists()]


def newest_verified(backups_dir: str | os.PathLike, target: str) -> dict | None:
    for m in list_backups(backups_dir, target):
        if m.get("verified") and m.get("sha256"):
            return m
    return None


def _manifests(folder: Path) -> list[dict]:
    if not folder.is_dir():
        return []
    out = []
    for mpath in folder.glob("*.json"):
        try:
            m = read_manifest(mpath)
        except BackupError:
            continue  # not ours
        m["_created"] = _parse_time(m.get("created_at"))
        if m["_created"] is None:
            continue
        out.append(m)
    out.sort(key=_sort_key, reverse=True)
    for m in out:
        m.pop("_created", None)
    return out


def _sort_key(m: dict):
    stem = Path(m["path"]).stem
    seq = _SEQ.search(stem)
    # names end in _HHMMSS (6 digits) or _HHMMSS_<n>; only a short suffix is a collision counter
    n = int(seq.group(1)) if seq and len(seq.group(1)) < 6 else 1
    return (m["_created"], n, stem)


# --------------------------------------------------------------------------- retention


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
    now = _utc(now)
    folder = Path(backups_dir) / target
    entries = _manifests(folder)
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
            _remove_quietly(Path(m["manifest_path"]))  # orphan manifest: ours, holds nothing
            continue
        if m["manifest_path"] in keep or m.get("pinned") or _parse_time(m["created_at"]) > cutoff:
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
        _remove_quietly(Path(m["manifest_path"]))
        removed.append(path)
    if removed:
        try:
            _fsync_dir(folder)
        except OSError:
            pass
    return removed


# --------------------------------------------------------------------------- restore


def restore_database(
    backup_path: str | os.PathLike, url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    schema: str | None = None,
) -> dict:
    """Write a backup made by ``backup_database`` into the live database at ``url``.

    The backup's sha256 is checked against its manifest and it must pass ``integrity_check``
    before the target is touched (RestoreError otherwise, target unchanged). Returns
    {"fingerprint", "row_counts", "tables", "matches_manifest", "method", "backup", "sha256",
    "seconds"} of the restored target.
    """
    dialect = dialect_of(url)
    impl = _RESTORERS.get(dialect)
    if impl is None:
        raise RestoreError(
            f"restoring {dialect} databases is not supported yet ({mask_url(url)}); only SQLite and PostgreSQL "
            "targets can be restored by this version"
        )
    if dialect == "sqlite":
        return impl(Path(backup_path), url, busy_timeout)
    return impl(Path(backup_path), url, busy_timeout, schema=schema)  # PostgreSQL: pg_backup.restore_postgresql


def _restore_sqlite(backup: Path, url: str, busy_timeout: float) -> dict:
    t_start = time.perf_counter()
    where = mask_url(url)
    target = sqlite_path(url)
    if target is None:
        raise RestoreError(f"{where} is an in-memory SQLite database; there is no file to restore into")
    if not target.exists():
        check_sqlite_file(target)  # raises MissingDatabaseError; nothing is created
    backup = backup.resolve()
    if not backup.is_file():
        raise RestoreError(f"backup file {backup} does not exist; pick one from the target's backup folder")
    try:
        manifest = read_manifest(backup)
    except BackupError as e:
        raise RestoreError(f"{e}; the target {where} was not touched") from None
    expected = manifest.get("sha256")
    if not expected:
        raise RestoreError(
            f"backup {backup.name} was never verified (no sha256 in its manifest); the target {where} was not "
            "touched; pick a verified backup"
        )
    actual = sha256_file(backup)
    if actual != expected:
        raise RestoreError(
            f"backup {backup.name} does not match its manifest (sha256 {actual[:12]}… expected "
            f"{str(expected)[:12]}…): it was altered or damaged; the target {where} was not touched; pick "
            "another backup"
        )
    ok, detail = integrity_check(backup)
    if not ok:
        raise RestoreError(
            f"backup {backup.name} fails integrity_check ({detail}); the target {where} was not touched; pick "
            "another backup"
        )

    try:
        check_sqlite_file(target)
        live_is_db = True
    except NotADatabaseError:
        if target.is_dir():
            raise
        live_is_db = False  # garbage where the database was: replace the file itself

    if live_is_db:
        method = "sqlite-backup-api"
        src = sqlite3.connect(_uri(backup, "ro"), uri=True, isolation_level=None, check_same_thread=False)
        try:
            dest = sqlite3.connect(
                _uri(target, "rw"), uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                src.backup(dest, pages=-1, progress=_deadline(busy_timeout, url))
            except sqlite3.Error as e:
                err = translate_error(e, url)
                if isinstance(err, DatabaseLockedError):
                    raise err from None
                raise RestoreError(
                    f"restoring {backup.name} into {where} failed: {' '.join(str(e).split())}; the target is "
                    "unchanged (the restore runs in one transaction)"
                ) from None
            finally:
                dest.close()
        finally:
            src.close()
    else:
        method = "file-replace"
        _replace_file(backup, target)

    fingerprint, tables = _describe_live(url)
    row_counts = {n: v["rows"] for n, v in tables.items()}
    return {
        "fingerprint": fingerprint,
        "row_counts": row_counts,
        "tables": tables,
        "matches_manifest": fingerprint == manifest.get("fingerprint") and row_counts == manifest.get("row_counts"),
        "method": method,
        "backup": str(backup),
        "sha256": actual,
        "seconds": round(time.perf_counter() - t_start, 3),
    }


def _restore_postgresql(backup: Path, url: str, busy_timeout: float, *, schema: str | None = None) -> dict:
    from .pg_backup import restore_postgresql

    return restore_postgresql(backup, url, busy_timeout, schema=schema)


_RESTORERS = {"sqlite": _restore_sqlite, "postgresql": _restore_postgresql}


def _replace_file(backup: Path, target: Path) -> None:
    """Atomically put a copy of ``backup`` where a non-database file sits at ``target``."""
    mode = target.stat().st_mode & 0o777
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.restore"
    try:
        with open(backup, "rb") as fsrc:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                _copy_bytes(fsrc.fileno(), fd, os.fstat(fsrc.fileno()).st_size)
                os.fsync(fd)
            finally:
                os.close(fd)
        # a journal or WAL left beside a garbage file would be replayed into the restored one
        _remove_quietly(*(Path(f"{target}{s}") for s in _SQLITE_SIDECARS))
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as e:
        _remove_quietly(tmp)
        raise RestoreError(f"cannot write {target}: {e.strerror or e}; make its folder writable and rerun") from None


def _describe_live(url: str) -> tuple[str | None, dict[str, dict]]:
    from .dburl import open_engine
    from .snapshot import table_counts, take_snapshot

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            snap = take_snapshot(conn)
            counts = table_counts(conn, sorted(snap.tables))
    finally:
        engine.dispose()
    tables = {n: {"columns": int(v["columns"]), "rows": int(v["rows"])} for n, v in sorted(counts.items())}
    return snap.fingerprint, tables


# --------------------------------------------------------------------------- helpers


def _uri(path: Path, mode: str) -> str:
    return f"file:{quote(str(path), safe='/')}?mode={mode}"


def _connect_source(src: Path, mode: str) -> sqlite3.Connection:
    # timeout=0: no SQLite busy handler; _begin_read and the backup progress callback do the waiting
    return sqlite3.connect(_uri(src, mode), uri=True, timeout=0, isolation_level=None, check_same_thread=False)


def _sqlite_size(src: Path) -> int:
    size = src.stat().st_size
    wal = Path(f"{src}-wal")
    try:
        size += wal.stat().st_size
    except OSError:
        pass
    return size


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def _parse_time(value) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except (TypeError, ValueError):
        return None


def _check_name(value: str, what: str) -> None:
    if (
        not isinstance(value, str)
        or not value.strip()
        or value in (".", "..")
        or value.startswith(".")
        or any(c in value for c in "/\\\0")
    ):
        raise BackupError(f"bad backup {what} {value!r}: use letters, digits, '_', '-' or '.' (no slashes)")


def _ensure_folder(folder: Path) -> None:
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
    except OSError as e:
        raise _os_backup_error(e, folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackupError(
            f"backup folder {folder} is not writable; make it writable by this user or set backups.dir in the "
            "targets file to a writable folder"
        )


def _check_free_space(folder: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed + (16 << 20):
        raise BackupError(
            f"not enough disk space in backup folder {folder}: the backup needs about {_mib(needed)} MiB, "
            f"{_mib(free)} MiB free; free space there or set backups.dir to a folder on a bigger disk"
        )


def _mib(n: int) -> int:
    return (n + (1 << 20) - 1) >> 20


def _os_backup_error(e: OSError, folder: Path) -> MaintenanceError:
    reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return BackupError(
            f"disk full while writing a backup into {folder} ({reason}); no partial backup was left; free space "
            "there or set backups.dir in the targets file to a folder on a bigger disk"
        )
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
        return BackupError(
            f"backup folder {folder} is not writable ({reason}); make it writable by this user or set "
            "backups.dir in the targets file to a writable folder"
        )
    return BackupError(f"cannot write a backup into {folder} ({reason}); check that folder and its disk, then rerun")


def _sqlite_backup_error(e: sqlite3.Error, url: str, folder: Path) -> MaintenanceError:
    msg = " ".join(str(e).split())
    if "disk is full" in msg.lower() or "disk i/o" in msg.lower():
        return _os_backup_error(OSError(errno.ENOSPC, msg), folder)
    if "readonly" in msg.lower() and "source" not in msg.lower():
        return _os_backup_error(OSError(errno.EROFS, msg), folder)
    return translate_error(e, url)


def _link_unique(tmp: Path, folder: Path, stem: str, ext: str) -> Path:
    """Give ``tmp`` the first free name ``stem[_n]ext`` (never overwriting), and return it."""
    for n in range(1, 10_000):
        name = f"{stem}{ext}" if n == 1 else f"{stem}_{n}{ext}"
        final = folder / name
        if final.with_suffix(".json").exists() or final.exists():
            continue
        try:
            os.link(tmp, final)
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV):
                raise
            if final.exists():  # a file system without hard links: check, then rename
                continue
            os.rename(tmp, final)
            return final
        os.unlink(tmp)
        return final
    raise BackupError(f"too many backups named {stem}* in {folder}; clean that folder up")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    blob = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(*paths: Path) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        except OSError:
            pass


__all__ = [
    "BackupResult",
    "backup_database",
    "read_manifest",
    "list_backups",
    "newest_verified",
    "apply_retention",
    "restore_database",
    "integrity_check",
    "sha256_file",
]
