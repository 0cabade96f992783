"""SQLite restore: write a verified backup back into the live database (``backup.restore_database``).

The backup's sha256 is checked against its manifest and it must pass ``integrity_check``
before the target is touched. A live database is overwritten with SQLite's online backup API
in one transaction (it keeps its own journal mode); a file that is not a database at all is
replaced atomically by a copy of the backup.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa

from ...backup.files import fsync_dir, remove_quietly, sha256_file
from ...dburl import mask_url, translate_error
from .. import open_engine
from .files import check_sqlite_file, sqlite_path, sqlite_uri
from ...errors import DatabaseLockedError, NotADatabaseError, RestoreError
from ...backup.manifest import describe_tables, expected_sha256, manifest_for_restore, restored, sha256_mismatch
from .backup import SQLITE_SIDECARS, busy_deadline, copy_bytes, integrity_check


def restore_sqlite(backup: Path, url: str, busy_timeout: float) -> dict:
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
    manifest = manifest_for_restore(backup, where)
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

    try:
        check_sqlite_file(target)
        live_is_db = True
    except NotADatabaseError:
        if target.is_dir():
            raise
        live_is_db = False  # garbage where the database was: replace the file itself

    if live_is_db:
        method = "sqlite-backup-api"
        fingerprint, tables, exact = _restore_in_place(backup, target, url, where, busy_timeout)
    else:
        method = "file-replace"
        _replace_file(backup, target)
        engine = open_engine(url)
        try:
            with engine.connect() as conn:
                fingerprint, tables = describe_tables(conn)
        finally:
            engine.dispose()
        exact = True  # no one could have written to a file that was not a database
    return restored(manifest, fingerprint, tables, method=method, backup=backup, sha256=actual, t_start=t_start,
                    exact=exact)


def _restore_in_place(backup: Path, target: Path, url: str, where: str, busy_timeout: float):
    """The online backup API copies the backup into the live file in one transaction; the restored file is
    then described on the same connection. (fingerprint, tables, exact): ``exact`` when no other connection
    committed since the restore began (``PRAGMA data_version``, which the copy itself does not move), so the
    description is of the backup's content and not of the application's writes since."""
    src = sqlite3.connect(sqlite_uri(backup, "ro"), uri=True, isolation_level=None, check_same_thread=False)
    try:
        dest = sqlite3.connect(sqlite_uri(target, "rw"), uri=True, timeout=busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            version = dest.execute("PRAGMA data_version").fetchone()[0]
            try:
                src.backup(dest, pages=-1, progress=busy_deadline(busy_timeout, url))
            except sqlite3.Error as e:
                err = translate_error(e, url)
                if isinstance(err, DatabaseLockedError):
                    raise err from None
                raise RestoreError(
                    f"restoring {backup.name} into {where} failed: {' '.join(str(e).split())}; the target is "
                    "unchanged (the restore runs in one transaction)"
                ) from None
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
            return fingerprint, tables, exact
        finally:
            dest.close()
    finally:
        src.close()


def _replace_file(backup: Path, target: Path) -> None:
    """Atomically put a copy of ``backup`` where a non-database file sits at ``target``."""
    mode = target.stat().st_mode & 0o777
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
