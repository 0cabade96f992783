"""SQLite backups: a consistent, verified copy of a database file (``backup.backup_database``).

Consistency strategy
--------------------
* rollback-journal database: a read transaction on the source holds a SHARED lock, so no
  writer can commit, or even spill a page into the file, while it is held. The file's
  bytes are copied with the kernel's fastest path (``copy_file_range``, then
  ``sendfile``, then a plain loop) under that lock: a copy bytewise equal to the source
  at ``cp`` speed (method ``sqlite-locked-copy``). Writers wait (busy timeout) for the
  duration of the copy, about one second per GiB.
* WAL database: the main file alone is not a snapshot (committed pages may still be in
  the -wal file). Under one read transaction, which never blocks a writer, the main file's
  bytes are copied, then the WAL's committed frames (as they were at BEGIN, salts and
  checksums validated) are written over them, the copy cut to the last commit's size: a
  consistent committed state at ``cp`` speed (``walcopy.py``, method ``sqlite-wal-copy``).
  Without a -wal file, or when anything in it is unexpected, SQLite's online backup API
  copies it in ONE step (``pages=-1``; a stepped backup restarts on every commit by another
  connection and may never finish), inside one read transaction too (method
  ``sqlite-backup-api``). Either copy is then switched to ``journal_mode=DELETE`` so that it
  is one self-contained file that opens read-only without creating -wal/-shm files beside
  it; ``restore_database`` keeps the live database's own journal mode.

The source is never opened by a connection that could create it: the file is checked
with ``dburl.check_sqlite_file`` first and opened through ``file:…?mode=ro`` URIs.

The live-file rule (``live_file.py``): closing any descriptor of a file releases every POSIX lock
the *process* holds on it, SQLite's included. The locked copy's descriptor is pinned: opened
before its connection and closed after it. Do not call ``backup_database`` while the same process
holds another connection to the source.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

from ...shared.files import (
    CHUNK,
    DEFAULT_BUSY_TIMEOUT,
    FILE_MODE,
    TrickleSync,
    backup_stem,
    check_free_space,
    ensure_folder,
    fsync_dir,
    link_unique,
    os_backup_error,
    remove_quietly,
    sha256_file,
)
from . import live_file, walcopy
from ...dburl import mask_url, translate_error
from .files import check_sqlite_file, sqlite_path, sqlite_uri
from ...errors import BackupError, DatabaseLockedError, MaintenanceError
from ...shared.leftovers import FolderHold
from ...shared.manifest import BackupResult, manifest_head, manifest_tail, write_manifest
from ...shared.reading import describe_tables

MMAP_SIZE = 1 << 40  # SQLite caps this at its compile-time SQLITE_MAX_MMAP_SIZE
SQLITE_SIDECARS = ("-journal", "-wal", "-shm")
_SQLITE_READONLY_ROLLBACK = getattr(sqlite3, "SQLITE_READONLY_ROLLBACK", 776)


def backup_sqlite(
    url: str, backups_dir: Path, target: str, *, label: str, pinned: bool, now: datetime, verify: bool,
    busy_timeout: float, copier=None,
) -> BackupResult:
    """``copier(tmp, tmp_fd, timings) -> (method, journal mode)``: how the bytes are copied when the caller
    already holds the database (the restore's safety copy, under its write lock); default ``_sqlite_copy``."""
    t_start = time.perf_counter()
    source = mask_url(url)
    src = sqlite_path(url)
    if src is None:
        raise BackupError(f"{source} is an in-memory SQLite database; there is no file to back up")
    if copier is None:
        check_sqlite_file(src)  # MissingDatabaseError / NotADatabaseError, before anything is created

    folder = backups_dir / target
    ensure_folder(folder)
    hold = FolderHold(folder)
    try:
        cleaned = hold.acquire()  # what a killed run left here is removed first (leftovers.py)
        return _backup_sqlite(src, url, folder, target, label=label, pinned=pinned, now=now, verify=verify,
                              busy_timeout=busy_timeout, cleaned=cleaned, t_start=t_start, copier=copier)
    finally:
        hold.release()


def _backup_sqlite(src: Path, url: str, folder: Path, target: str, *, label: str, pinned: bool, now: datetime,
                   verify: bool, busy_timeout: float, cleaned: list[str], t_start: float,
                   copier=None) -> BackupResult:
    source = mask_url(url)
    check_free_space(folder, _sqlite_size(src))

    stem = backup_stem(target, label, now)
    tmp = folder / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    timings: dict[str, float] = {}
    final: Path | None = None
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except OSError as e:
            raise os_backup_error(e, folder) from None
        try:
            os.fchmod(fd, FILE_MODE)
            t = time.perf_counter()
            with TrickleSync(fds=(fd,)):  # the copy reaches the disk as it is written, not in one burst
                if copier is not None:
                    method, journal_mode = copier(tmp, fd, timings)
                else:
                    method, journal_mode = _sqlite_copy(src, url, tmp, fd, busy_timeout, timings)
            os.fsync(fd)
            timings["copy"] = time.perf_counter() - t
        except OSError as e:
            raise os_backup_error(e, folder) from None
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
                    f"the backup of {Path(source).name} failed its integrity check ({integrity}); the source is "
                    "probably damaged: restore an earlier backup (the copy was deleted)"
                )
            verified = True
            detail = f"integrity_check ok, sha256 {sha[:12]}…, {size} bytes"

        t = time.perf_counter()
        fingerprint, tables = describe_file(tmp)
        timings["snapshot"] = time.perf_counter() - t

        t = time.perf_counter()
        try:
            final = link_unique(tmp, folder, stem, ".db")
            fsync_dir(folder)
        except OSError as e:
            raise os_backup_error(e, folder) from None
        manifest_path = final.with_suffix(".json")
        manifest = {
            **manifest_head(final, target=target, label=label, pinned=pinned, now=now, source=source,
                            dialect="sqlite", method=method),
            "journal_mode": journal_mode,
            "bytes": size,
            "sha256": sha,
            "verified": verified,
            "verify_detail": detail,
            **manifest_tail(fingerprint, tables, t_start),
        }
        write_manifest(manifest_path, manifest)
        timings["manifest"] = time.perf_counter() - t
    except BaseException:
        remove_quietly(tmp, *(Path(f"{tmp}{s}") for s in SQLITE_SIDECARS))
        if final is not None:
            remove_quietly(final, final.with_suffix(".json"))
        raise
    remove_quietly(tmp)
    return BackupResult.from_manifest(manifest, final, manifest_path, t_start=t_start, timings=timings,
                                      cleaned=cleaned)


# --------------------------------------------------------------------------- copying


def consistent_copy(src: Path, url: str, dest: Path, busy_timeout: float = 30.0) -> str:
    """A consistent copy of ``src`` at ``dest`` made as a backup is (a byte copy under the read lock, so an
    unchanged database's copy has the backup's own header; WAL: the WAL copy, else the online backup API); returns
    the method."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        method, _ = _sqlite_copy(src, url, dest, fd, busy_timeout, {})
    finally:
        os.close(fd)
    return method


@contextlib.contextmanager
def reading_copy(url: str, folder: Path | None, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
    """``Engine.reading_copy`` for SQLite: where verify reads every row of the live file after a change.

    Rollback journal: a reader holds the SHARED lock for as long as its transaction lasts, and no writer can
    COMMIT meanwhile; so the file is copied as a backup is (a byte copy under one read transaction, through a
    pinned descriptor: ``copy_pinned``) into a hidden temp file in ``folder``, held (``FolderHold``: no other
    backup takes it for a leftover; a killed run's copy is one, removed by the next backup) and deleted on
    leaving. Writers wait for the copy only. WAL: readers never block writers, the live file is read as is.
    Without room for the copy (or a folder to put it in), the live file is read and the note says why.

    Call it with no connection of this process to the file open (the live-file rule, ``live_file.py``)."""
    from ..base import ReadFrom

    src = sqlite_path(url)
    if src is None:
        yield ReadFrom(url)
        return
    check_sqlite_file(src)
    hold: FolderHold | None = None
    copy: Path | None = None
    note = ""
    try:
        with live_file.pinned(src) as src_fd:
            if os.pread(src_fd, 2, 18) == b"\x02\x02":
                pass  # WAL
            elif folder is None:
                note = "there is no backup folder to copy it into"
            else:
                hold = FolderHold(folder)
                hold.acquire(clean=False)
                copy, note = _copy_for_reading(src_fd, src, url, Path(folder), busy_timeout)
        yield ReadFrom(f"sqlite:///{copy}", copied=True) if copy is not None else ReadFrom(url, note=note)
    finally:
        if copy is not None:
            remove_quietly(copy, *(Path(f"{copy}{s}") for s in SQLITE_SIDECARS))
        if hold is not None:
            hold.release()


def _copy_for_reading(src_fd: int, src: Path, url: str, folder: Path, busy_timeout: float) -> tuple[Path | None, str]:
    """(the copy, "") or (None, why the live file is read instead: no room, no write access, a failed copy)."""
    size = os.fstat(src_fd).st_size
    try:
        check_free_space(folder, size)
    except BackupError:
        return None, f"not enough free space in {folder} for a copy of {size >> 20} MiB"
    copy = folder / f".{src.stem}.verify.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        try:
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except OSError as e:
            return None, f"cannot write a copy into {folder} ({e.strerror or e})"
        try:
            copy_pinned(src_fd, src, url, copy, fd, busy_timeout=busy_timeout, timings={})
        finally:
            os.close(fd)
    except (OSError, BackupError) as e:  # the disk, not the database: a lock held too long still raises
        remove_quietly(copy, *(Path(f"{copy}{s}") for s in SQLITE_SIDECARS))
        return None, f"the copy into {folder} failed ({e.strerror if isinstance(e, OSError) else e})"
    except BaseException:
        remove_quietly(copy, *(Path(f"{copy}{s}") for s in SQLITE_SIDECARS))
        raise
    return copy, ""


def _sqlite_copy(
    src: Path, url: str, tmp: Path, tmp_fd: int, busy_timeout: float, timings: dict[str, float]
) -> tuple[str, str]:
    """Copy ``src`` into the open temp file; return (method, journal mode of the source).

    ``timings`` gets ``lock_wait`` (until the read lock was granted) and, for the locked copy,
    ``locked`` (how long writers were held off).
    """
    # the descriptors (the file's, and its -wal's if it has one) are opened before the connection and closed
    # after it (live_file.py): closing a descriptor drops this process's POSIX locks on the file, SQLite's included
    with live_file.pinned(src) as src_fd, walcopy.pinned_wal(src) as wal_fd:
        return copy_pinned(src_fd, src, url, tmp, tmp_fd, busy_timeout=busy_timeout, timings=timings, wal_fd=wal_fd)


def copy_pinned(src_fd: int, src: Path, url: str, tmp: Path, tmp_fd: int, *, busy_timeout: float,
                timings: dict[str, float], exclusive: bool = False, wal_fd: int | None = None) -> tuple[str, str]:
    """``_sqlite_copy`` through ``src_fd``, a descriptor of ``src`` pinned by the caller (opened before its
    first connection to the file, closed after its last): a read transaction, then the byte copy under it
    (rollback journal); WAL: with ``wal_fd`` (the -wal's descriptor, pinned the same way) the main file's bytes
    and the WAL's committed frames under it (``walcopy.py``, method ``sqlite-wal-copy``), else (or when
    anything there is unexpected) the online backup API.

    ``exclusive``: a connection of this process holds the file's write transaction, nothing of it written to
    the file yet (a restore's safety copy, after the restore's first step). In rollback-journal mode that
    transaction holds an EXCLUSIVE lock (the backup API takes one at its first step): no reader gets in, no
    other writer either, and the file holds exactly the last commit, so its bytes are copied without a read
    transaction of our own. In WAL mode readers still get in: a read transaction and the backup API, as always.
    """
    if exclusive and os.pread(src_fd, 2, 18) != b"\x02\x02":
        t = time.perf_counter()
        size = os.fstat(src_fd).st_size
        copy_bytes(src_fd, tmp_fd, size)
        if os.fstat(tmp_fd).st_size != size:
            raise BackupError(f"copy of {src} is incomplete; check the backup folder's disk and rerun")
        timings["lock_wait"], timings["locked"] = 0.0, time.perf_counter() - t
        return "sqlite-locked-copy", "delete"
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
            copy_bytes(src_fd, tmp_fd, size)
            if os.fstat(tmp_fd).st_size != size:
                raise BackupError(f"copy of {src} is incomplete; check the backup folder's disk and rerun")
            conn.execute("ROLLBACK")
            timings["locked"] = time.perf_counter() - locked_at
            return "sqlite-locked-copy", "delete"
        if wal_fd is not None and walcopy.copy(src, src_fd, wal_fd, tmp_fd, copy_bytes):
            conn.execute("ROLLBACK")
            walcopy.leave_wal_mode(tmp, url)
            return "sqlite-wal-copy", "wal"
        conn.execute("ROLLBACK")
        _backup_api(conn, tmp, url, busy_timeout)
        return "sqlite-backup-api", "wal"
    finally:
        conn.close()


def _connect_source(src: Path, mode: str) -> sqlite3.Connection:
    # timeout=0: no SQLite busy handler; _begin_read and the backup progress callback do the waiting
    return sqlite3.connect(sqlite_uri(src, mode), uri=True, timeout=0, isolation_level=None, check_same_thread=False)


def _sqlite_size(src: Path) -> int:
    size = src.stat().st_size
    wal = Path(f"{src}-wal")
    try:
        size += wal.stat().st_size
    except OSError:
        pass
    return size


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
    dest = sqlite3.connect(sqlite_uri(tmp, "rw"), uri=True, isolation_level=None, check_same_thread=False)
    try:
        dest.execute("PRAGMA synchronous=OFF")  # the caller fsyncs the finished file
        src_conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")  # measured: ~10-20% faster reads of a big source
        try:
            src_conn.backup(dest, pages=-1, progress=busy_deadline(busy_timeout, url))
        except sqlite3.Error as e:
            raise _sqlite_backup_error(e, url, tmp.parent) from None
        # The copied header says WAL; make the copy one self-contained rollback-journal file.
        mode = dest.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        if str(mode).lower() != "delete":
            raise BackupError(f"could not switch the backup copy of {mask_url(url)} out of WAL mode ({mode})")
    finally:
        dest.close()


def _sqlite_backup_error(e: sqlite3.Error, url: str, folder: Path) -> MaintenanceError:
    msg = " ".join(str(e).split())
    if "disk is full" in msg.lower() or "disk i/o" in msg.lower():
        return os_backup_error(OSError(errno.ENOSPC, msg), folder)
    if "readonly" in msg.lower() and "source" not in msg.lower():
        return os_backup_error(OSError(errno.EROFS, msg), folder)
    return translate_error(e, url)


def busy_deadline(seconds: float, url: str):
    """A backup progress callback that gives up once the destination/source stayed busy too long."""
    start = time.monotonic()

    def progress(status: int, remaining: int, total: int) -> None:
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) and time.monotonic() - start > seconds:
            raise DatabaseLockedError(
                f"database {mask_url(url)} stayed locked by another connection for {seconds:g}s; wait for the "
                "other writer to finish or stop it, then rerun"
            )

    return progress


def copy_bytes(src_fd: int, dst_fd: int, size: int) -> None:
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
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while pos < size:
        n = os.preadv(src_fd, [view[: min(CHUNK, size - pos)]], pos)
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
        conn = sqlite3.connect(sqlite_uri(path, "ro"), uri=True, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
            conn.execute("PRAGMA cache_size=-65536")
            rows = [str(r[0]) for r in conn.execute(f"PRAGMA integrity_check({int(max_errors)})")]
        finally:
            conn.close()
    except sqlite3.Error as e:
        return False, " ".join(str(e).split()) or type(e).__name__
    if rows == ["ok"]:
        return True, "ok"
    more = f"{len(rows)}+" if len(rows) >= max_errors else str(len(rows))
    return False, f"{more} problem(s), the first: {' '.join(rows[0].split())[:60]}"


def describe_file(path: Path) -> tuple[str | None, dict[str, dict]]:
    """Schema fingerprint (over all tables) and {table: {"columns", "rows"}} of a SQLite file."""
    import sqlalchemy as sa

    uri = sqlite_uri(path, "ro")
    engine = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        poolclass=sa.pool.NullPool,
    )
    try:
        with engine.connect() as conn:
            return describe_tables(conn)
    except sa.exc.DBAPIError as e:
        raise BackupError(f"cannot read the schema of the backup copy {path.name}: {e.orig}; rerun the backup")
    finally:
        engine.dispose()
