"""SQLite restore: write a verified backup back into the live database (``backup.restore_database``).

Before the target is touched, the backup is checked against its manifest: its sha256, ``integrity_check``,
and what it holds (the schema fingerprint and every table's row count). A live database is overwritten with
SQLite's online backup API in one transaction (it keeps its own journal mode); a file that is not a database
at all is replaced atomically by a copy of the backup.

The safety copy (``safety``) is taken inside the restore's own write transaction: the backup API holds a write
transaction on the live file from its first step to the end (rollback journal: an EXCLUSIVE lock, so readers
wait too; WAL: the write lock, readers go on), so after a first step of a few pages (still in this
connection's cache, nothing written to the file) no other connection can commit. The progress callback of
that first step makes the safety copy then (rollback journal: the file's bytes through a descriptor pinned
before the first connection, which hold exactly the last commit; WAL: the online backup API from a read
transaction), verifies it and writes its manifest; only then does the restore go on. Every commit of the
application is therefore in the safety copy or lands after the restore, never in neither. The application's
writers wait (their busy timeout) while the copy is made and the restore runs.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa

from ...shared.files import fsync_dir, remove_quietly, sha256_file
from ...dburl import mask_url, translate_error
from .. import open_engine
from . import live_file
from .files import check_sqlite_file, sqlite_path, sqlite_uri
from ...errors import DatabaseLockedError, NotADatabaseError, RestoreError
from ...shared.manifest import expected_sha256, manifest_for_restore, restored, sha256_mismatch
from ...shared.reading import describe_tables
from .backup import SQLITE_SIDECARS, busy_deadline, copy_bytes, copy_pinned, describe_file, integrity_check

FIRST_STEP_PAGES = 256  # pages of the restore's first step: they stay in the cache (no spill to the file)
RESTORE_CACHE_KIB = 65536


def restore_sqlite(backup: Path, url: str, busy_timeout: float, *, safety=None, recreate: bool = False) -> dict:
    t_start = time.perf_counter()
    where = mask_url(url)
    target = sqlite_path(url)
    if target is None:
        raise RestoreError(f"{where} is an in-memory SQLite database; there is no file to restore into")
    missing = not target.exists() and not target.is_symlink()
    if missing and (not recreate or not target.parent.is_dir()):
        # MissingDatabaseError: only a restore run asks to make a lost file again (``recreate``); a bare call, or a
        # folder gone too (a wrong url, not a loss), creates nothing
        check_sqlite_file(target)
    backup = backup.absolute()
    if not backup.is_file():
        raise RestoreError(f"backup file {backup} does not exist; pick one from the target's backup folder")
    manifest = manifest_for_restore(backup, where)
    actual = check_backup(backup, manifest, where)

    live_is_db, aside = False, None
    if not missing:
        try:
            check_sqlite_file(target)
            live_is_db = True
        except NotADatabaseError:
            if target.is_dir():
                raise
            # garbage where the database was (a damaged file): replaced whole; its bytes are kept aside first, as
            # they are (no backup of a file that is not a database can be made)
            aside = _keep_aside(target, safety) if safety is not None else None

    copy = None
    if live_is_db:
        method = "sqlite-backup-api"
        with live_file.pinned(target) as fd:  # before the first connection to the live file, closed after the last
            fingerprint, tables, exact, copy = _restore_in_place(backup, target, url, where, busy_timeout, safety, fd)
    else:  # a lost file is made again; a damaged one replaced
        method = "file-create" if missing else "file-replace"
        _replace_file(backup, target)
        engine = open_engine(url)
        try:
            with engine.connect() as conn:
                fingerprint, tables = describe_tables(conn)
        finally:
            engine.dispose()
        exact = True  # no one could have written to a file that was not a database
    out = restored(manifest, fingerprint, tables, method=method, backup=backup, sha256=actual, t_start=t_start,
                   exact=exact)
    return {**out, "safety": copy, "kept_aside": str(aside) if aside else None,
            "target_was": "missing" if missing else ("a database" if live_is_db else "not a database")}


def check_backup(backup: Path, manifest: dict, where: str) -> str:
    """The backup is what its manifest says, or RestoreError (the target untouched): sha256, integrity, the
    schema fingerprint and every table's row count. Returns the sha256."""
    expected = expected_sha256(manifest, backup, where)
    actual = sha256_file(backup)
    if actual != expected:
        raise sha256_mismatch(backup, actual, expected, where)
    ok, detail = integrity_check(backup)
    if not ok:
        raise RestoreError(
            f"backup {backup.name} fails integrity_check ({detail}); the target {where} was not touched; pick "
            "another backup"
        )
    fingerprint, tables = describe_file(backup)
    counts = {n: v["rows"] for n, v in tables.items()}
    want = manifest.get("row_counts") or {}
    if counts != want or fingerprint != manifest.get("fingerprint"):
        differ = sorted(n for n in set(counts) | set(want) if counts.get(n) != want.get(n))
        what = ", ".join(f"{n} {want.get(n, '—')} → {counts.get(n, '—')}" for n in differ[:3]) or "its schema"
        raise RestoreError(
            f"backup {backup.name} does not hold what its manifest says (rows: manifest → backup: {what}); it was "
            f"altered after it was made; the target {where} was not touched; pick another backup"
        )
    return actual


def _restore_in_place(backup: Path, target: Path, url: str, where: str, busy_timeout: float, safety, fd: int):
    """The online backup API copies the backup into the live file in one transaction, the safety copy taken
    inside it (see the module's docstring); the restored file is then described on the same connection.
    (fingerprint, tables, exact, safety copy): ``exact`` when no other connection committed since the restore
    began (``PRAGMA data_version``, which the copy itself does not move), so the description is of the
    backup's content and not of the application's writes since."""
    src = sqlite3.connect(sqlite_uri(backup, "ro"), uri=True, isolation_level=None, check_same_thread=False)
    try:
        dest = sqlite3.connect(sqlite_uri(target, "rw"), uri=True, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            dest.execute(f"PRAGMA cache_size=-{RESTORE_CACHE_KIB}")
            version = dest.execute("PRAGMA data_version").fetchone()[0]
            pages = src.execute("PRAGMA page_count").fetchone()[0]
            taken: dict = {}

            def copier(tmp: Path, tmp_fd: int, timings: dict) -> tuple[str, str]:
                return copy_pinned(fd, target, url, tmp, tmp_fd, busy_timeout=busy_timeout, timings=timings,
                                   exclusive="copy" not in taken and pages > 1)

            def take_safety() -> None:
                taken["copy"] = safety.take(url, busy_timeout=busy_timeout, schema=None, copier=copier)

            if safety is not None and pages <= 1:
                take_safety()  # a backup of one page is restored in one step: no step to take the copy after
            deadline = busy_deadline(busy_timeout, url)

            def progress(status: int, remaining: int, total: int) -> None:
                deadline(status, remaining, total)
                if safety is not None and "copy" not in taken and status == sqlite3.SQLITE_OK:
                    take_safety()  # the restore's write transaction is open; nothing of it is in the file yet

            try:
                try:
                    src.backup(dest, pages=max(1, min(pages - 1, FIRST_STEP_PAGES)), progress=progress)
                except sqlite3.Error as e:
                    err = translate_error(e, url)
                    if isinstance(err, DatabaseLockedError):
                        raise err from None
                    raise RestoreError(
                        f"restoring {backup.name} into {where} failed: {' '.join(str(e).split())}; the target is "
                        "unchanged (the restore runs in one transaction)"
                    ) from None
            except Exception as e:
                e.safety = taken.get("copy")  # type: ignore[attr-defined] - taken, and the target unchanged
                raise
            engine = sa.create_engine("sqlite://", creator=lambda: dest, poolclass=sa.pool.StaticPool,
                                      pool_reset_on_return=None)
            dest.execute("BEGIN")  # one read snapshot for the description and the version
            try:
                with engine.connect() as conn:
                    fingerprint, tables = describe_tables(conn)
                    exact = dest.execute("PRAGMA data_version").fetchone()[0] == version
            finally:
                if dest.in_transaction:
                    dest.execute("ROLLBACK")
            return fingerprint, tables, exact, taken.get("copy")
        finally:
            dest.close()
    finally:
        src.close()


def _keep_aside(target: Path, safety) -> Path:
    """The bytes of a file that is not a database (a damaged one), copied as they are into the target's backup
    folder (``<target>_damaged_<time>.bin``, mode 0600; no manifest: retention never removes it) before the restore
    replaces it. Nothing of this process has the file open: it is not a database."""
    from datetime import datetime, timezone

    from ...shared.files import FILE_MODE, ensure_folder

    folder = Path(safety.backups_dir) / safety.target
    ensure_folder(folder)
    aside = folder / f"{safety.target}_damaged_{datetime.now(timezone.utc):%Y%m%d_%H%M%S}_{secrets.token_hex(2)}.bin"
    try:
        with open(target, "rb") as fsrc:
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
            try:
                copy_bytes(fsrc.fileno(), fd, os.fstat(fsrc.fileno()).st_size)
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as e:
        raise RestoreError(f"cannot keep the damaged {target.name} aside in {folder} ({e.strerror or e}); nothing was "
                           "restored; make that folder writable and rerun") from None
    return aside


def _replace_file(backup: Path, target: Path) -> None:
    """Atomically put a copy of ``backup`` at ``target``: over a file that is not a database, or where the file is
    missing (made with mode 0644 under the umask, as SQLite makes one)."""
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.restore"
    try:
        with open(backup, "rb") as fsrc:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                copy_bytes(fsrc.fileno(), fd, os.fstat(fsrc.fileno()).st_size)
                os.fsync(fd)
            finally:
                os.close(fd)
        # a journal or WAL left beside a garbage file would be replayed into the restored one
        remove_quietly(*(Path(f"{target}{s}") for s in SQLITE_SIDECARS))
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as e:
        remove_quietly(tmp)
        raise RestoreError(f"cannot write {target}: {e.strerror or e}; make its folder writable and rerun") from None


def equals_backup(url: str, backup: Path, manifest: dict) -> str | None:
    """See ``SQLiteEngine.equals_backup``."""
    from ...shared.reading import take_snapshot
    from .checks import rows_preserved

    live = sqlite_path(url)
    if live is None or not live.is_file() or not backup.is_file():
        return None
    wal = Path(f"{live}-wal")
    if manifest.get("sha256") and live.stat().st_size == manifest.get("bytes") and \
            (not wal.exists() or wal.stat().st_size == 0) and sha256_file(live) == manifest["sha256"]:
        return "bytewise"
    try:
        check_sqlite_file(live)
    except NotADatabaseError:  # a damaged file holds nothing the backup does
        return None
    fingerprint, tables = describe_file(live)
    if fingerprint != manifest.get("fingerprint") or {n: v["rows"] for n, v in tables.items()} != \
            (manifest.get("row_counts") or {}):
        return None
    snaps = []
    for path in (backup, live):
        engine = open_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                snaps.append(take_snapshot(conn))
        finally:
            engine.dispose()
    check, _ = rows_preserved(live, backup, snaps[0], snaps[1], ())
    return "by schema and every row" if check.passed else None

