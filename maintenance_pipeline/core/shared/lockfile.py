"""The lock file a file database's maintenance lock holds (``core/lock.py`` says what the lock is for): an exclusive
``flock`` on a small file in a folder only this user can write, named from a key. Below the engines: the SQLite engine
takes it (``Engine.maintenance_lock``), the backup folders' holds (``leftovers.py``) too."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path

from ..dburl import mask_url
from ..errors import LockHeldError, LockLostError, UnsafeLockError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def lock_folder() -> Path:
    """This user's lock folder: ``<temp folder>/maintenance_pipeline-<uid>`` (one place for every run of this
    user, whatever its session: the lock only excludes runs that look in the same folder)."""
    return Path(tempfile.gettempdir()) / f"maintenance_pipeline-{os.geteuid()}"


def lock_name(key: str) -> str:
    return f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


def lock_path(key: str) -> Path:
    """Where the lock file of ``key`` is (nothing is written beside the thing locked)."""
    return lock_folder() / lock_name(key)


def _refuse_folder(folder: Path, problem: str) -> UnsafeLockError:
    return UnsafeLockError(
        f"the lock folder {folder} {problem}: another account could plant or hold its lock files; remove it "
        f"(rm -r {folder}, as its owner or root) and rerun; the pipeline makes it again, mode 0700")


def _open_folder() -> tuple[int, Path]:
    """This user's lock folder, made if missing, opened without following a link and checked on the open
    descriptor: (descriptor, path). UnsafeLockError when it is not private to this user."""
    folder = lock_folder()
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise UnsafeLockError(f"cannot make the lock folder {folder}: {e.strerror}; make {folder.parent} "
                              "writable (or point TMPDIR at a folder that is) and rerun") from None
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW | _CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "is a symbolic link" if os.path.islink(folder) else "is not a folder"
            raise _refuse_folder(folder, kind) from None
        raise UnsafeLockError(f"cannot open the lock folder {folder}: {e.strerror}; fix its permissions "
                              f"(chmod 700 {folder}) and rerun") from None
    st = os.fstat(fd)
    me = os.geteuid()
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a folder"
    elif st.st_uid != me:
        problem = f"belongs to uid {st.st_uid}, not to this user (uid {me})"
    elif stat.S_IMODE(st.st_mode) & 0o077:
        problem = f"has mode {stat.S_IMODE(st.st_mode):04o} (group or others may use it; 0700 expected)"
    if problem:
        os.close(fd)
        raise _refuse_folder(folder, problem)
    return fd, folder


def _private_file(fd: int) -> str | None:
    """Why the open descriptor ``fd`` is not a private file of this user (None when it is)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}"
    if st.st_nlink != 1:
        return f"has {st.st_nlink} links (a hard link to another file)"
    return None


class LockFile:
    """The lock file of ``key``, opened safely in this user's lock folder (``fd``: flock it). Never truncated,
    never written: the holder's text goes to a separate file (``write_holder``)."""

    def __init__(self, key: str):
        self.name = lock_name(key)
        self.dir_fd, self.folder = _open_folder()
        try:
            self.fd = self._open()
        except BaseException:
            os.close(self.dir_fd)
            raise

    @property
    def path(self) -> Path:
        return self.folder / self.name

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        try:
            fd = os.open(self.name, flags, 0o600, dir_fd=self.dir_fd)
        except OSError as e:
            what = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be opened ({e.strerror})"
            raise self._refuse(what) from None
        problem = _private_file(fd)
        if problem:
            os.close(fd)
            raise self._refuse(problem)
        with contextlib.suppress(OSError):  # a lock file in use is recent: no temp-folder cleaner takes it
            os.utime(fd)
        return fd

    def _refuse(self, problem: str) -> UnsafeLockError:
        return UnsafeLockError(f"the lock file {self.path} {problem}, not a lock file of this user; remove it "
                               f"(rm {self.path}) and rerun")

    def still_ours(self) -> bool:
        """Whether the folder and the file our descriptors hold are still the ones at their names (a lock file
        removed or replaced meanwhile means another run can take a lock of its own)."""
        try:
            here = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
            folder = os.stat(self.folder, follow_symlinks=False)
        except OSError:
            return False
        mine, my_folder = os.fstat(self.fd), os.fstat(self.dir_fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino) and \
            (folder.st_dev, folder.st_ino) == (my_folder.st_dev, my_folder.st_ino)

    # the holder's text: in "<name>.holder", replaced whole by a rename (the lock file is never written)

    @property
    def _holder_name(self) -> str:
        return self.name[:-len(".lock")] + ".holder"

    def write_holder(self, info: dict) -> None:
        tmp = f".{self._holder_name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600,
                         dir_fd=self.dir_fd)
            try:
                os.write(fd, json.dumps(info).encode())
            finally:
                os.close(fd)
            os.replace(tmp, self._holder_name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError:  # who holds it is a courtesy for the next run's message; the lock itself is held
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.dir_fd)

    def clear_holder(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._holder_name, dir_fd=self.dir_fd)

    def holder(self) -> str:
        """" (pid N, <holder>)" as the holder wrote it, or ""."""
        try:
            fd = os.open(self._holder_name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, dir_fd=self.dir_fd)
        except OSError:
            return ""
        try:
            if _private_file(fd):
                return ""
            info = json.loads(os.read(fd, 4096) or b"{}")
        except (OSError, ValueError):
            return ""
        finally:
            os.close(fd)
        if not isinstance(info, dict) or not info:
            return ""
        who = f" (pid {info.get('pid')}"
        if info.get("holder"):
            who += f", {info['holder']}"
        return who + ")"

    def close(self) -> None:
        for fd in (self.fd, self.dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class FileLockHandle:
    """What ``file_lock`` yields: ``confirm`` says the lock is still this run's."""

    def __init__(self, lock: LockFile, url: str):
        self._lock = lock
        self.url = url
        self.path = lock.path

    def confirm(self, conn=None) -> None:  # noqa: ARG002 - the engine-neutral signature
        """LockLostError when the lock file was removed or replaced since it was locked (another run could
        then hold a lock of its own)."""
        if not self._lock.still_ours():
            raise LockLostError(
                f"the maintenance lock on {mask_url(self.url)} was lost during the run (its lock file was removed "
                "or replaced); nothing was committed; rerun")


@contextlib.contextmanager
def file_lock(key: str, url: str, holder: str = ""):
    """An exclusive ``flock`` on the lock file of ``key`` for the block; LockHeldError at once if another
    process holds it (``url`` names the database in that message); UnsafeLockError if the lock folder or
    file is not private to this user. Yields a ``FileLockHandle``."""
    lock = LockFile(key)
    try:
        try:
            fcntl.flock(lock.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(
                f"another run holds the maintenance lock on {mask_url(url)}{lock.holder()}; wait for it to finish "
                "(or check it is not stuck) and rerun"
            ) from None
        lock.write_holder({"pid": os.getpid(), "holder": holder})
        try:
            yield FileLockHandle(lock, url)
        finally:
            if lock.still_ours():  # a lost lock's holder file is another run's now
                lock.clear_holder()
            fcntl.flock(lock.fd, fcntl.LOCK_UN)
    finally:
        lock.close()
