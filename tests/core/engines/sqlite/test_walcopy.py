"""The WAL copy (``engines/sqlite/walcopy.py``): a WAL database copied as its main file's bytes plus the WAL's
committed frames, under one read transaction, writers never blocked. Real files, real writer processes:

* copies taken again and again while another process commits pairs of rows and a counter in a loop (also
  one that empties the WAL with TRUNCATE checkpoints all the time, so that copies run with read mark 0
  while the WAL restarts under them) are each one committed state, integrity_check ok;
* the copy of a quiet database holds exactly what SQLite's online backup API copies, page for page, with
  committed frames only in the WAL, several versions of a page, and a database that shrank (VACUUM);
* a copy right after a TRUNCATE checkpoint (an empty WAL) is the main file, and the next generation's
  frames are copied after it;
* frames after the last commit (a transaction not committed, a torn frame, a half-written frame) are not;
* without a -wal file, or with a WAL header that is not one, the online backup API copies as before.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from backup_cases import WRITER, invariant, make_db, ro, url_of

from maintenance_pipeline.core.engines.sqlite import walcopy
from maintenance_pipeline.core.engines.sqlite.backup import consistent_copy, integrity_check

# A process holding the database open (so its WAL stays), doing what the test asks, line by line.
HOLDER = r"""
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA wal_autocheckpoint=0")
print("ready", flush=True)
for line in sys.stdin:
    out = c.execute(line).fetchall()
    print(repr(out), flush=True)
"""


class Holder:
    def __init__(self, db: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr.read()

    def __call__(self, sql: str) -> str:
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline().strip()
        assert out, self.proc.stderr.read()
        return out

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0, self.proc.stderr.read()


@pytest.fixture
def holder():
    made: list[Holder] = []
    yield lambda db: made.append(Holder(db)) or made[-1]
    for h in made:
        h.close()


def copy(src: Path, dest: Path) -> str:
    """The copy as a backup makes it (no connection of this process to ``src`` is open here)."""
    return consistent_copy(src, url_of(src), dest)


def self_contained(path: Path) -> bool:
    """One rollback-journal file: header bytes 18-19 say so, nothing beside it."""
    with open(path, "rb") as f:
        f.seek(18)
        legacy = f.read(2) == b"\x01\x01"
    return legacy and not any(Path(f"{path}{s}").exists() for s in ("-wal", "-shm", "-journal"))


def pages(path: Path) -> list[bytes]:
    data = path.read_bytes()
    size = int.from_bytes(data[16:18], "big")
    size = 65536 if size == 1 else size
    return [data[i:i + size] for i in range(0, len(data), size)]


def backup_api_copy(src: Path, dest: Path) -> None:
    s = ro(src)
    d = sqlite3.connect(dest, isolation_level=None)
    try:
        s.backup(d)
        d.execute("PRAGMA journal_mode=DELETE")
    finally:
        d.close()
        s.close()


# --------------------------------------------------------------------------- under a writer


@pytest.mark.parametrize("truncate_every", [0, 7], ids=["autocheckpoint", "truncate-checkpoints"])
def test_every_copy_under_a_writer_is_one_committed_state(tmp_path, truncate_every):
    src = make_db(tmp_path / "live.db", rows=20_000, journal_mode="wal")  # ~10 MB
    stop = tmp_path / "stop"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(stop), str(truncate_every)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    methods, counters = [], []
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()  # its first commit is in
        for i in range(30):
            dest = tmp_path / f"copy{i}.db"
            methods.append(copy(src, dest))
            assert integrity_check(dest) == (True, "ok"), (i, methods[-1])
            a, b, n, orphans = invariant(dest)
            assert a == b == n and orphans == 0, (i, methods[-1], a, b, n, orphans)
            assert self_contained(dest)
            counters.append(n)
            dest.unlink()
    finally:
        stop.touch()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    commits = int(out.split()[-1])

    assert set(methods) <= {"sqlite-wal-copy", "sqlite-backup-api"}
    # copies back to back hold the writer's checkpoints back, so its WAL may outgrow what is worth scanning
    # (``max_frames``): those copies are the backup API's, as they should be; the WAL copy is used, and every copy,
    # of either kind, is one committed state
    assert "sqlite-wal-copy" in methods, methods
    assert counters == sorted(counters) and counters[0] > 20_000  # later copies, later states
    assert 20_000 + commits >= counters[-1] > counters[0]  # the writer went on committing meanwhile


# --------------------------------------------------------------------------- against the backup API


def test_the_wal_copy_holds_what_the_backup_api_copies(tmp_path, holder):
    src = make_db(tmp_path / "live.db", rows=3000, journal_mode="wal")
    h = holder(src)
    h("INSERT INTO a(payload) SELECT randomblob(300) FROM a LIMIT 2000")
    h("UPDATE counter SET n = n + 1")
    h("UPDATE counter SET n = n + 1")  # the same page, several versions in the WAL
    h("PRAGMA wal_checkpoint(PASSIVE)")  # the main file has some frames already, the WAL the rest
    h("DELETE FROM a WHERE id % 3 = 0")
    h("VACUUM")  # a smaller database: the main file is longer than the last commit's size
    h("INSERT INTO a(payload) VALUES (randomblob(5000))")
    wal_frames = (Path(f"{src}-wal").stat().st_size - 32) // (4096 + 24)
    assert wal_frames > 100

    method = copy(src, tmp_path / "wal.db")
    backup_api_copy(src, tmp_path / "api.db")

    assert method == "sqlite-wal-copy"
    assert integrity_check(tmp_path / "wal.db") == (True, "ok")
    ours, theirs = pages(tmp_path / "wal.db"), pages(tmp_path / "api.db")
    assert len(ours) == len(theirs) < src.stat().st_size // 4096
    assert ours[1:] == theirs[1:]  # every page but the first, byte for byte
    # page 1: the same but for the header's change counter / schema cookie / version-valid-for
    assert ours[0][100:] == theirs[0][100:]
    assert self_contained(tmp_path / "wal.db")


# --------------------------------------------------------------------------- read mark 0, empty WAL


def test_a_copy_right_after_a_truncate_checkpoint(tmp_path, holder):
    src = make_db(tmp_path / "live.db", rows=100, journal_mode="wal")
    h = holder(src)
    h("UPDATE counter SET n = n + 1000")
    h("PRAGMA wal_checkpoint(TRUNCATE)")
    assert Path(f"{src}-wal").stat().st_size == 0  # everything is in the main file; readers take read mark 0

    assert copy(src, tmp_path / "c1.db") == "sqlite-wal-copy"
    assert invariant(tmp_path / "c1.db")[2] == 1100
    assert integrity_check(tmp_path / "c1.db") == (True, "ok")

    # the next generation of the WAL (new salts, from frame 1) on top of it
    h("INSERT INTO a(payload) VALUES (randomblob(200))")
    h("INSERT INTO b(a_id, payload) VALUES (last_insert_rowid(), randomblob(200))")
    h("UPDATE counter SET n = 101")
    assert copy(src, tmp_path / "c2.db") == "sqlite-wal-copy"
    assert invariant(tmp_path / "c2.db") == (101, 101, 101, 0)
    assert integrity_check(tmp_path / "c2.db") == (True, "ok")


# --------------------------------------------------------------------------- what is not a commit


def _append_frame(wal: Path, pgno: int, commit: int, page: bytes, *, valid: bool, cut: int | None = None) -> None:
    """Append a frame to the WAL, its checksum continuing the chain (``valid``) or not; ``cut``: only that
    many of its bytes (a half-written frame)."""
    data = wal.read_bytes()
    magic, _v, size, _seq, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    words = walcopy._words(magic & 1, size)
    frame = 32 + (len(data) - 32) // (24 + size) * (24 + size)
    s = (c1, c2) if len(data) < 32 + 24 + size else struct.unpack(">2I", data[frame - 24 - size + 16:][:8])
    head = struct.pack(">4I", pgno, commit, salt1, salt2)
    s = walcopy._checksum(words(head[:8]), *s)
    s = walcopy._checksum(words(page), *s)
    if not valid:
        s = (s[0] ^ 1, s[1])
    out = head + struct.pack(">2I", *s) + page
    with open(wal, "r+b") as f:  # no connection of this process is open; the holder's is idle
        f.seek(frame)
        f.write(out[:cut])
        f.truncate()


def test_frames_after_the_last_commit_are_not_copied(tmp_path, holder):
    src = make_db(tmp_path / "live.db", rows=200, journal_mode="wal")
    h = holder(src)
    h("INSERT INTO a(payload) VALUES (randomblob(200))")
    h("INSERT INTO b(a_id, payload) VALUES (last_insert_rowid(), randomblob(200))")
    h("UPDATE counter SET n = 201")
    wal = Path(f"{src}-wal")
    db_pages = src.stat().st_size // 4096 + 5
    garbage = os.urandom(4096)
    # a transaction's frames without its commit: a valid frame of garbage for page 2, then its commit frame
    # torn (the checksum does not match), then half a frame
    _append_frame(wal, 2, 0, garbage, valid=True)
    _append_frame(wal, 2, db_pages, garbage, valid=False)
    _append_frame(wal, 3, db_pages, garbage, valid=True, cut=1000)

    assert copy(src, tmp_path / "c.db") == "sqlite-wal-copy"
    assert integrity_check(tmp_path / "c.db") == (True, "ok")
    assert invariant(tmp_path / "c.db") == (201, 201, 201, 0)


def test_a_garbage_commit_frame_after_a_valid_frame_is_not_copied(tmp_path, holder):
    """The frame the scan would wrongly stop after, were it to check salts but not checksums."""
    src = make_db(tmp_path / "live.db", rows=50, journal_mode="wal")
    h = holder(src)
    h("UPDATE counter SET n = 49")
    h("UPDATE counter SET n = 50")  # (a write of the value already there writes nothing)
    _append_frame(Path(f"{src}-wal"), 1, 1, os.urandom(4096), valid=False)
    assert copy(src, tmp_path / "c.db") == "sqlite-wal-copy"
    assert integrity_check(tmp_path / "c.db") == (True, "ok")  # page 1 garbage would not even open
    assert invariant(tmp_path / "c.db") == (50, 50, 50, 0)


# --------------------------------------------------------------------------- the backup API instead


def test_without_a_wal_file_the_backup_api_copies(tmp_path):
    src = make_db(tmp_path / "live.db", rows=300, journal_mode="wal")  # closed: its WAL went with it
    assert not Path(f"{src}-wal").exists()
    assert copy(src, tmp_path / "c.db") == "sqlite-backup-api"
    assert integrity_check(tmp_path / "c.db") == (True, "ok")
    assert invariant(tmp_path / "c.db") == (300, 300, 300, 0)
    assert self_contained(tmp_path / "c.db")


def test_a_wal_header_that_is_not_one_falls_back_to_the_backup_api(tmp_path, holder):
    src = make_db(tmp_path / "live.db", rows=300, journal_mode="wal")
    h = holder(src)
    h("UPDATE counter SET n = 300")
    h("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(f"{src}-wal", "wb") as f:  # the holder is idle, this process has no connection to the file
        f.write(b"\0" * 100)
    assert copy(src, tmp_path / "c.db") == "sqlite-backup-api"
    assert integrity_check(tmp_path / "c.db") == (True, "ok")
    assert invariant(tmp_path / "c.db") == (300, 300, 300, 0)



def test_a_wal_restarted_between_the_scan_and_the_apply_is_not_used(tmp_path, holder):
    """The race the second read of each frame header and of the WAL header is for, made to happen: the WAL
    scanned, then emptied and written again (new salts, from frame 1) before the frames are applied."""
    src = make_db(tmp_path / "live.db", rows=100, journal_mode="wal")
    h = holder(src)
    for n in range(101, 111):
        h(f"UPDATE counter SET n = {n}")
    dest = tmp_path / "c.db"
    with open(src, "rb") as main, open(f"{src}-wal", "rb") as wal:  # this process has no connection to it
        scan = walcopy.scan_wal(wal.fileno(), 4096, os.fstat(wal.fileno()).st_size)
        assert scan is not None and scan.frames == 10 and scan.pages == src.stat().st_size // 4096
        h("PRAGMA wal_checkpoint(TRUNCATE)")
        for n in range(111, 131):
            h(f"UPDATE counter SET n = {n}")
        with open(dest, "wb") as out:
            out.write(main.read())
            out.flush()
            assert walcopy._apply(scan, wal.fileno(), out.fileno(), src.stat().st_size // 4096) is None  # a restart: the main file alone


def test_more_valid_frames_than_worth_scanning_is_no_scan(tmp_path, holder):
    src = make_db(tmp_path / "live.db", rows=100, journal_mode="wal")
    h = holder(src)
    for n in range(101, 111):
        h(f"UPDATE counter SET n = {n}")  # 10 frames, one commit each
    with open(f"{src}-wal", "rb") as wal:  # this process has no connection to the file
        size = os.fstat(wal.fileno()).st_size
        assert walcopy.scan_wal(wal.fileno(), 4096, size, max_frames=9) is None
        assert walcopy.scan_wal(wal.fileno(), 4096, size, max_frames=10).frames == 10
