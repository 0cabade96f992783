"""The backup folder on disk, shared by SQLite and PostgreSQL backups.

Modes (files 0600, folders 0700), the free-space preflight, OS errors as one-line
``BackupError`` messages, names that never overwrite anything (``<stem>.ext``, then ``<stem>_2.ext``, …,
skipping a name whose manifest exists), atomic JSON writes, fsync of folders, hashing and
quiet clean-up.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..errors import BackupError, MaintenanceError

FILE_MODE = 0o600
DIR_MODE = 0o700
DEFAULT_BUSY_TIMEOUT = 10.0  # seconds to wait for a writer holding the source (or restore target)
CHUNK = 1 << 20


def backup_stem(target: str, label: str, now: datetime) -> str:
    """``<target>_<label>_<YYYYmmdd_HHMMSS>``: the name of a backup without its suffix."""
    return f"{target}_{label}_{now.strftime('%Y%m%d_%H%M%S')}"


def ensure_folder(folder: Path) -> None:
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
    except OSError as e:
        raise os_backup_error(e, folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BackupError(
            f"backup folder {folder} is not writable; make it writable by this user or set backups.dir in the "
            "targets file to a writable folder"
        )


def check_free_space(folder: Path, needed: int) -> None:
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


def os_backup_error(e: OSError, folder: Path) -> MaintenanceError:
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


def _first_free_name(folder: Path, stem: str, ext: str, claim: Callable[[Path], bool]) -> Path:
    """The first ``stem[_n]ext`` in ``folder`` (with no manifest beside it) that ``claim`` takes."""
    for n in range(1, 10_000):
        final = folder / (f"{stem}{ext}" if n == 1 else f"{stem}_{n}{ext}")
        if final.with_suffix(".json").exists() or final.exists():
            continue
        if claim(final):
            return final
    raise BackupError(f"too many backups named {stem}* in {folder}; clean that folder up")


def link_unique(tmp: Path, folder: Path, stem: str, ext: str) -> Path:
    """Give the file ``tmp`` the first free name ``stem[_n]ext`` (never overwriting), and return it."""

    def claim(final: Path) -> bool:
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV):
                raise
            if final.exists():  # a file system without hard links: check, then rename
                return False
            os.rename(tmp, final)
            return True
        os.unlink(tmp)
        return True

    return _first_free_name(folder, stem, ext, claim)


def rename_dir_unique(src: Path, folder: Path, stem: str, ext: str) -> Path:
    """Move the directory ``src`` to the first free ``stem[_n]ext``: the name is claimed with an exclusive
    mkdir, then ``rename`` replaces that empty folder atomically (never anything else)."""

    def claim(final: Path) -> bool:
        try:
            os.mkdir(final, DIR_MODE)
        except FileExistsError:
            return False
        try:
            os.rename(src, final)
        except OSError:
            os.rmdir(final)
            raise
        return True

    return _first_free_name(folder, stem, ext, claim)


def write_json_atomic(path: Path, data: dict) -> None:
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
        remove_quietly(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    buf = bytearray(CHUNK * 4)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


class TrickleSync:
    """While a backup is written, flush it to disk every ``interval`` seconds (``fdatasync``), so it never piles up
    dirty pages: the application's own commits, each an fsync on the same disk, would otherwise wait behind one
    burst of writeback of the whole copy (measured: a 0.2-0.5 s commit during a 1 GiB backup). ``fds``: descriptors
    of files the caller holds open; ``folder``: every file below it (a dump being written by ``pg_dump``), opened
    read-only for the flush. Never a live database file: only the copy being made."""

    def __init__(self, *, fds: tuple[int, ...] = (), folder: Path | None = None, interval: float = 0.05):
        import threading

        self.fds, self.folder, self.interval = fds, folder, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickle-sync", daemon=True)

    def __enter__(self) -> TrickleSync:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for fd in self.fds:
                try:
                    os.fdatasync(fd)
                except OSError:
                    pass
            if self.folder is not None:
                for path in [p for p in self.folder.rglob("*") if p.is_file() and not p.is_symlink()]:
                    try:
                        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
                    except OSError:
                        continue
                    try:
                        os.fdatasync(fd)
                    except OSError:
                        pass
                    finally:
                        os.close(fd)


def remove_quietly(*paths: Path) -> None:
    """Unlink each file, ignoring any error (a folder is left alone)."""
    for p in paths:
        try:
            os.unlink(p)
        except OSError:
            pass


def remove_tree(*paths: Path | None) -> None:
    """Remove each file or folder (not following a link), ignoring any error; None is skipped."""
    for p in paths:
        if p is None:
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
        except OSError:
            pass
