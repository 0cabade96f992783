"""A consistent copy of a WAL-mode SQLite database at ``cp`` speed, writers never blocked (``sqlite-wal-copy``).

What is copied
--------------
A WAL database is its main file plus the committed frames of its ``-wal`` file (SQLite's file format,
"The Write-Ahead Log"): a 32-byte header (magic, format version, page size, checkpoint sequence, two
salts, a checksum of the header) and frames of a 24-byte header (page number, the database size in
pages after the commit for a transaction's last frame and 0 otherwise, the header's salts, a cumulative
checksum of everything before it and the frame's first 8 bytes and page) and one page. The state after
the commit in frame K is the main file with the last version of each page among frames 1..K written
over it, cut to frame K's database size. A checkpoint copies frames into the main file (it
"backfills"); once it has copied them all, the next writer starts the WAL over from frame 1 with new
salts (a "restart"; TRUNCATE also cuts the file to 0 bytes); frames after the last one of the current
generation are stale and carry older salts.

How (``copy``, under a read transaction the caller opened on its own connection)
------------------------------------------------------------------------------
1. the -wal's descriptor was pinned before the connection (``pinned_wal``; the live-file rule,
   ``live_file.py``) and is still the file SQLite uses (same device and inode as the path: a WAL
   deleted and made again between the pin and the connection is another file);
2. scan the WAL as it is now, to the size it has now: the header must be valid, of the main file's
   page size; each frame must carry the header's salts, a page number and the right cumulative
   checksum (big- or little-endian words as the magic says); the scan stops at the first frame that
   does not, and K is the last commit frame before it. Frames after K (a transaction being written,
   a torn tail, a rolled-back spill, a stale generation) are never used;
3. copy the main file's bytes (``copy_file_range``, the kernel's fastest path) through the pinned
   descriptor (after the scan: the scan needs only what was in the WAL at BEGIN, see below, and the WAL
   grows while the main file is copied);
4. read each page's last frame up to K again and write it into the copy at (page - 1) * page size,
   each frame header byte-equal to the scan's; read the WAL header again: it must be unchanged;
   cut the copy to frame K's database size; every page up to it must have come from the main file
   or a frame.
Anything unexpected (no -wal at pin time, another inode, a bad header, another page size, a WAL too big
to be worth scanning, a frame or the header changed between scan and apply, a page missing) returns
False and the caller falls back to the online backup API (``sqlite-backup-api``), as before. The
caller then switches the copy to ``journal_mode=DELETE`` (``leave_wal_mode``), as the backup API's copy
is: one self-contained file.

Why the result is one committed state
-------------------------------------
Our read transaction took a snapshot: the WAL up to its last commit at BEGIN, frame M0. SQLite's WAL
readers hold a read lock on a read mark; checkpoints only copy frames no reader still needs, and a
restart needs every read mark but 0 free. Two cases, and we need not know which one we are in:

* read mark > 0 (the WAL was in use at BEGIN): the WAL cannot restart while we hold it, so frames
  1..M0 stay as they are and new frames are only appended after them; a checkpoint writes into the
  main file only frames <= our mark <= M0 (and cuts the main file only to the size at M0, when every
  frame is copied). The scan reaches M0 (its frames were whole and valid before BEGIN), so K >= M0;
  every page a checkpoint wrote into the main file before or during our byte copy is in a frame <= K
  and is written over with its version as of K. Pages in no frame up to K did not change since the
  WAL started, so the main file's bytes are theirs. Frames M0+1..K are later commits, committed
  before we read them, never rewritten in this generation: the copy is the state at commit K, a
  later state than the snapshot but one the database really had.
* read mark 0 (everything was backfilled at BEGIN; our snapshot reads the main file only): a
  checkpoint needs the lock on read mark 0 to write into the main file, so the main file cannot
  change while we hold it, and it is the state at M0. The writer MAY restart (or, TRUNCATE, empty)
  the WAL now. If the scan read the old generation, its frames <= M0 are already in the main file
  (writing them again changes nothing) and any after M0 are later commits; if it read a new
  generation, that generation starts from the main file's state (a restart happens only with every
  frame backfilled, and no frame can be backfilled past M0 while we hold read mark 0), and a prefix
  of it up to a commit is a later committed state. No commit found at all (K = 0: an empty WAL, or a
  new generation with no commit yet) only happens here (with read mark > 0, frames 1..M0 >= 1 are
  there): the main file alone is the state at M0. A restart BETWEEN the scan and the apply may
  overwrite frames we are about to use: the new generation writes its header before its first frame,
  so the second read of the header (after the last frame is read) differs, a frame header differs, or
  a read comes up short. Only a restart changes them, and a restart happens only while we hold read
  mark 0: then the main file alone is our snapshot, stable while we hold it, and it is copied again,
  alone (the pages written from the old generation are dropped with the first copy).

A committed frame is only rewritten after a restart, so in the first case nothing we use changes
under us, and in the second any change is seen. Every frame used carries the salts of the header the
scan read, so all of them are of one generation. The frames after M0 up to K were complete when
scanned (checksummed, the commit frame last); a commit frame written whose COMMIT then failed on a
sync error is what SQLite's own WAL recovery would also keep. The copy is checked afterwards by the
backup's ``integrity_check`` (not here: the copy path stays at ``cp`` speed).

Writers: a WAL read transaction never blocks a writer; it only holds checkpoints back (the WAL grows
meanwhile), for the length of the byte copy where the backup API held them back for its whole run.

Cost: the byte copy, plus reading and checksumming (in Python, ~60 us a frame) the WAL's valid frames
at BEGIN; under a steady writer that is at most about ``wal_autocheckpoint`` frames (1000 by default,
4 MiB); stale frames after them (a WAL file stays as long as it once grew) stop the scan at the first.
More valid frames than ``max(WAL_SCAN_MIN, main file / 16)`` bytes of them (a checkpoint held back by a
long reader) fall back to the backup API, which would then be about as fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ...dburl import mask_url
from ...errors import BackupError
from .files import sqlite_uri

WAL_HEADER = 32
FRAME_HEADER = 24
WAL_MAGIC = (0x377F0682, 0x377F0683)  # little- / big-endian checksum words
WAL_VERSION = 3007000
WAL_SCAN_MIN = 64 << 20
READ_FRAMES = 256  # frames read at a time by the scan
_NATIVE_WORDS = struct.calcsize("I") == 4


@contextlib.contextmanager
def pinned_wal(db: str | os.PathLike) -> Iterator[int | None]:
    """``live_file.pinned`` for the database's ``-wal``: a read-only descriptor opened BEFORE the first
    connection to the database and closed after the last; None when there is no -wal to pin."""
    try:
        fd: int | None = os.open(f"{os.fspath(db)}-wal", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def copy(src: Path, src_fd: int, wal_fd: int, tmp_fd: int, copy_bytes: Callable[[int, int, int], None]) -> bool:
    """Build the copy in the empty ``tmp_fd`` from the pinned main file and -wal descriptors, under a read
    transaction the caller holds on the source (see the module's docstring). True: the copy holds one
    committed state (still marked WAL: ``leave_wal_mode`` next); False: ``tmp_fd`` is emptied again and the
    caller uses the backup API. OSError (the copy's disk) propagates."""
    try:
        st, fst = os.stat(f"{src}-wal"), os.fstat(wal_fd)
    except FileNotFoundError:
        return False
    if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
        return False
    page_size = _page_size(os.pread(src_fd, 18, 0))
    main_size = os.fstat(src_fd).st_size
    if page_size is None:
        return False
    scan = scan_wal(wal_fd, page_size, fst.st_size,
                    max_frames=max(WAL_SCAN_MIN, main_size // 16) // (FRAME_HEADER + page_size))
    if scan is None:
        return False
    copy_bytes(src_fd, tmp_fd, main_size)
    copied = os.fstat(tmp_fd).st_size  # less when a checkpoint cut the main file meanwhile: frames have the rest
    if scan.frames:
        ok = _apply(scan, wal_fd, tmp_fd, copied // page_size)
        if ok is None:  # the WAL restarted under us: read mark 0, so the main file alone is the snapshot
            os.ftruncate(tmp_fd, 0)
            copy_bytes(src_fd, tmp_fd, main_size)
            ok = os.fstat(tmp_fd).st_size == main_size == os.fstat(src_fd).st_size
    else:  # no commit in the WAL: read mark 0, the main file alone (no checkpoint writes into it meanwhile)
        ok = copied == main_size
    if not ok:
        os.ftruncate(tmp_fd, 0)
        return False
    return True


class WalScan:
    """What ``scan_wal`` found: the header's bytes, the database size after the last commit (0: none) and,
    for each page in a frame up to it, (frame index, that frame's 24 header bytes) of its last version."""

    def __init__(self, header: bytes, page_size: int):
        self.header = header
        self.page_size = page_size
        self.pages = 0
        self.frames = 0  # frames up to and with the last commit
        self.last: dict[int, tuple[int, bytes]] = {}


def scan_wal(wal_fd: int, page_size: int, size: int, *, max_frames: int | None = None) -> WalScan | None:
    """Validate the WAL's first ``size`` bytes as SQLite's recovery does; None when its header is not a valid
    WAL header of ``page_size`` (an empty WAL is a valid scan with no commit), or when it has more than
    ``max_frames`` valid frames (stale ones after them, of an earlier generation, are not counted)."""
    header = os.pread(wal_fd, WAL_HEADER, 0)
    if not header:
        return WalScan(b"", page_size)
    if len(header) < WAL_HEADER:
        return None
    magic, version, wal_page_size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", header)
    if magic not in WAL_MAGIC or version != WAL_VERSION or wal_page_size != page_size:
        return None
    words = _words(magic & 1, page_size)
    s = _checksum(words(header[:24]), 0, 0)
    if s != (c1, c2):
        return None
    scan = WalScan(header, page_size)
    frame_size = FRAME_HEADER + page_size
    total = max(0, (size - WAL_HEADER) // frame_size)
    if max_frames is not None and total > max_frames:
        total = max_frames + 1  # reading the one after the limit tells whether the limit is passed
    pending: dict[int, tuple[int, bytes]] = {}
    index = 0
    while index < total:
        want = min(READ_FRAMES, total - index)
        buf = memoryview(os.pread(wal_fd, want * frame_size, WAL_HEADER + index * frame_size))
        got = len(buf) // frame_size
        for i in range(got):
            frame = buf[i * frame_size:(i + 1) * frame_size]
            pgno, commit, fs1, fs2, fc1, fc2 = struct.unpack_from(">6I", frame)
            if pgno == 0 or fs1 != salt1 or fs2 != salt2:
                return scan
            s = _checksum(words(frame[:8]), *s)
            s = _checksum(words(frame[FRAME_HEADER:]), *s)
            if s != (fc1, fc2):
                return scan
            pending[pgno] = (index + i, bytes(frame[:FRAME_HEADER]))
            if commit:
                scan.last.update(pending)
                pending.clear()
                scan.pages, scan.frames = commit, index + i + 1
        if got < want:
            break
        index += want
    return None if max_frames is not None and index > max_frames else scan


def _apply(scan: WalScan, wal_fd: int, tmp_fd: int, copied_pages: int) -> bool | None:
    """Write each page's last frame up to the last commit into the copy and cut it to that commit's size;
    None when a frame or the WAL header changed since the scan (a restart: see the module's docstring), False
    when a page is missing."""
    ps = scan.page_size
    frame_size = FRAME_HEADER + ps
    if any(p not in scan.last for p in range(copied_pages + 1, scan.pages + 1)):
        return False  # a page neither the main file nor a frame has (never expected: see the docstring)
    for pgno, (index, head) in sorted(scan.last.items(), key=lambda kv: kv[1][0]):
        frame = os.pread(wal_fd, frame_size, WAL_HEADER + index * frame_size)
        if len(frame) != frame_size or frame[:FRAME_HEADER] != head:
            return None
        if pgno <= scan.pages:
            view = memoryview(frame)[FRAME_HEADER:]
            done, at = 0, (pgno - 1) * ps
            while done < ps:
                done += os.pwrite(tmp_fd, view[done:], at + done)
    if os.pread(wal_fd, WAL_HEADER, 0) != scan.header:
        return None  # restarted while we read: what we read may be of two generations
    os.ftruncate(tmp_fd, scan.pages * ps)
    return True


def leave_wal_mode(path: Path, url: str) -> None:
    """Switch the finished copy to ``journal_mode=DELETE``: one self-contained file that opens read-only
    without -wal/-shm beside it (as the backup API's copy is)."""
    try:
        dest = sqlite3.connect(sqlite_uri(path, "rw"), uri=True, isolation_level=None, check_same_thread=False)
        try:
            dest.execute("PRAGMA synchronous=OFF")  # the caller fsyncs the finished file
            mode = dest.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        finally:
            dest.close()
    except sqlite3.Error as e:
        msg = " ".join(str(e).split())
        if "disk is full" in msg.lower() or "disk i/o" in msg.lower():
            raise OSError(errno.ENOSPC, msg) from None
        raise BackupError(f"the WAL copy of {mask_url(url)} does not open as a database ({msg}); rerun the "
                          "backup") from None
    if str(mode).lower() != "delete":
        raise BackupError(f"could not switch the backup copy of {mask_url(url)} out of WAL mode ({mode})")


def _page_size(head: bytes) -> int | None:
    """The page size in a main file's header (bytes 16-17, 1 meaning 65536), None when not a valid one."""
    if len(head) < 18:
        return None
    n = int.from_bytes(head[16:18], "big")
    n = 65536 if n == 1 else n
    return n if 512 <= n <= 65536 and n & (n - 1) == 0 else None


def _words(big_endian: int, page_size: int) -> Callable[[memoryview | bytes], object]:
    """The 32-bit words of a checksummed span in the WAL's byte order (a zero-copy view when native)."""
    order = "big" if big_endian else "little"
    if _NATIVE_WORDS and order == sys.byteorder:
        return lambda b: memoryview(b).cast("B").cast("I")
    prefix = ">" if big_endian else "<"
    return lambda b: struct.unpack(f"{prefix}{len(b) // 4}I", b)


def _checksum(words, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum over ``words`` (an even number of them), continuing from (s0, s1)."""
    it = iter(words)
    for a, b in zip(it, it):
        s0 = (s0 + a + s1) & 0xFFFFFFFF
        s1 = (s1 + b + s0) & 0xFFFFFFFF
    return s0, s1
