"""Backups of real SQLite files (no mocks): the copy and its manifest, consistency under a
concurrent writer (WAL and rollback journal), a lock held too long, a crashed writer's hot
journal, and the failures that must leave nothing behind (missing or fake source, unwritable or
full folder, a copy that fails verification, a bad target name).

Retention is in test_retention.py, restore in test_restore.py; shared helpers in backup_cases.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from backup_cases import NOW, WRITER, invariant, live_description, make_db, ro, url_of
from targets import sha256

from maintenance_pipeline.core import backup as bk
from maintenance_pipeline.core.engines.sqlite.backup import integrity_check
from maintenance_pipeline.core.errors import (
    BackupError,
    DatabaseLockedError,
    MissingDatabaseError,
    NotADatabaseError,
)


def backup_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- backup


def test_rollback_journal_backup_is_bytewise_copy_with_right_manifest(tmp_path):
    src = make_db(tmp_path / "app.db")
    before = sha256(src)
    res = bk.backup_database(url_of(src), tmp_path / "backups", "app", label="nightly", now=NOW)

    assert res.path == tmp_path / "backups" / "app" / "app_nightly_20260301_020000.db"
    assert res.manifest_path == res.path.with_suffix(".json")
    assert res.method == "sqlite-locked-copy"
    assert res.path.read_bytes() == src.read_bytes()
    assert sha256(src) == before  # source untouched
    assert res.sha256 == before and res.bytes == src.stat().st_size
    assert res.verified and "integrity_check ok" in res.verify_detail
    fingerprint, rows = live_description(src)
    assert res.fingerprint == fingerprint
    assert res.row_counts == rows == {"a": 500, "b": 500, "counter": 1}

    manifest = json.loads(res.manifest_path.read_text())
    assert manifest["sha256"] == before
    assert manifest["bytes"] == src.stat().st_size
    assert manifest["fingerprint"] == fingerprint
    assert manifest["row_counts"] == rows
    assert manifest["tables"]["a"] == {"columns": 2, "rows": 500}
    assert manifest["label"] == "nightly" and manifest["pinned"] is False and manifest["verified"] is True
    assert manifest["method"] == "sqlite-locked-copy"
    assert manifest["source"] == url_of(src)
    assert datetime.fromisoformat(manifest["created_at"]) == NOW
    assert bk.read_manifest(res.path)["path"] == str(res.path)

    for p in (res.path, res.manifest_path):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert backup_files(res.path.parent) == [res.path.name, res.manifest_path.name]  # no temp files left
    assert json.loads(json.dumps(res.to_dict()))["sha256"] == before


def test_backup_masks_password_and_collision_gets_suffix(tmp_path):
    src = make_db(tmp_path / "app.db", rows=10)
    first = bk.backup_database(url_of(src), tmp_path / "bk", "app", now=NOW)
    second = bk.backup_database(url_of(src), tmp_path / "bk", "app", now=NOW)
    assert first.path.name == "app_nightly_20260301_020000.db"
    assert second.path.name == "app_nightly_20260301_020000_2.db"
    assert second.manifest_path.name == "app_nightly_20260301_020000_2.json"
    assert [m["path"] for m in bk.list_backups(tmp_path / "bk", "app")] == [str(second.path), str(first.path)]


def wait_for_commits(path: Path, at_least: int, proc: subprocess.Popen, deadline_s: float = 60.0) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"writer died: {proc.stderr.read().decode() if proc.stderr else ''}"
        c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0)
        try:
            n = c.execute("SELECT n FROM counter").fetchone()[0]
        except sqlite3.OperationalError as e:  # a rollback-journal writer in a tight loop: try again
            assert "locked" in str(e), e
            n = -1
        finally:
            c.close()
        if n >= at_least:
            return n
        time.sleep(0.001)  # polling interval, not synchronisation: the deadline bounds the wait
    raise AssertionError(f"writer committed fewer than {at_least} transactions in {deadline_s}s")


@pytest.mark.parametrize(
    ("journal_mode", "method"), [("wal", "sqlite-wal-copy"), ("delete", "sqlite-locked-copy")]
)
def test_backup_while_another_process_writes_is_a_consistent_snapshot(tmp_path, journal_mode, method):
    src = make_db(tmp_path / "live.db", rows=20_000, journal_mode=journal_mode)  # ~10 MB
    stop = tmp_path / "stop"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(stop)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        start_n = wait_for_commits(src, 20_000 + 50, proc)
        res = bk.backup_database(url_of(src), tmp_path / "backups", "live", now=NOW)
        wait_for_commits(src, 20_000 + (start_n - 20_000) * 2 + 20, proc)  # the writer still runs afterwards
    finally:
        stop.touch()
        try:
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rc == 0, proc.stderr.read().decode()

    assert res.method == method and res.verified
    assert integrity_check(res.path) == (True, "ok")
    a, b, n, orphans = invariant(res.path)
    assert a == b == n and orphans == 0, (a, b, n, orphans)
    assert n >= start_n  # at least what was committed when the backup began
    assert res.row_counts == {"a": a, "b": b, "counter": 1}
    assert res.sha256 == sha256(res.path)
    # the copy is one self-contained rollback-journal file: nothing beside it, header says "legacy"
    assert backup_files(res.path.parent) == [res.path.name, res.manifest_path.name]
    with open(res.path, "rb") as f:
        f.seek(18)
        assert f.read(2) == b"\x01\x01"


HOLDER = r"""
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
c.execute("ROLLBACK")
"""


def test_source_locked_longer_than_busy_timeout(tmp_path):
    src = make_db(tmp_path / "app.db", rows=10)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(src)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t = time.monotonic()
        with pytest.raises(DatabaseLockedError, match="locked"):
            bk.backup_database(url_of(src), tmp_path / "backups", "app", now=NOW, busy_timeout=0.3)
        assert time.monotonic() - t < 10
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert backup_files(tmp_path / "backups" / "app") == []
    assert bk.backup_database(url_of(src), tmp_path / "backups", "app", now=NOW).verified  # free again


CRASHER = r"""
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("PRAGMA cache_size=5")  # spill changed pages into the file before COMMIT
c.execute("BEGIN")
c.execute("UPDATE a SET payload = zeroblob(200)")
os._exit(0)  # crash mid-transaction: a hot journal stays behind
"""


def test_backup_after_a_writer_crashed_mid_transaction(tmp_path):
    src = make_db(tmp_path / "app.db", rows=2000)
    c = ro(src)
    committed = c.execute("SELECT sum(length(payload)), count(DISTINCT payload) FROM a").fetchone()
    c.close()
    subprocess.run([sys.executable, "-c", CRASHER, str(src)], check=True)
    assert Path(f"{src}-journal").exists()  # hot journal: the file holds uncommitted pages
    res = bk.backup_database(url_of(src), tmp_path / "backups", "app", now=NOW)
    assert res.verified and res.method == "sqlite-locked-copy"
    c = ro(res.path)
    assert c.execute("SELECT sum(length(payload)), count(DISTINCT payload) FROM a").fetchone() == committed
    c.close()


def test_missing_source_creates_nothing(tmp_path):
    backups = tmp_path / "backups"
    missing = tmp_path / "nope" / "app.db"
    with pytest.raises(MissingDatabaseError, match="does not exist"):
        bk.backup_database(url_of(missing), backups, "app", now=NOW)
    assert not backups.exists()
    assert not missing.exists() and not missing.parent.exists()


def test_text_file_posing_as_database(tmp_path):
    fake = tmp_path / "app.db"
    fake.write_text("id,name\n1,not a database\n")
    with pytest.raises(NotADatabaseError, match="not a SQLite database"):
        bk.backup_database(url_of(fake), tmp_path / "backups", "app", now=NOW)
    assert not (tmp_path / "backups").exists()


def test_unwritable_backup_folder_is_a_clear_error(tmp_path):
    src = make_db(tmp_path / "app.db", rows=5)
    blocker = tmp_path / "a_file"
    blocker.write_text("I am a file, not a folder")
    with pytest.raises(BackupError, match="not writable") as e:
        bk.backup_database(url_of(src), blocker / "backups", "app", now=NOW)
    assert "\n" not in str(e.value) and str(blocker / "backups" / "app") in str(e.value)
    assert blocker.read_text() == "I am a file, not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_backup_folder_leaves_nothing(tmp_path):
    src = make_db(tmp_path / "app.db", rows=5)
    folder = tmp_path / "backups" / "app"
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        with pytest.raises(BackupError, match="not writable"):
            bk.backup_database(url_of(src), tmp_path / "backups", "app", now=NOW)
    finally:
        folder.chmod(0o700)
    assert backup_files(folder) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_disk_full_is_a_clear_error_and_leaves_nothing(tmp_path, tiny_disk):
    src = make_db(tmp_path / "app.db", rows=5000)  # ~2-3 MB
    with pytest.raises(BackupError, match="disk space") as e:
        bk.backup_database(url_of(src), tiny_disk, "app", now=NOW)
    assert str(tiny_disk / "app") in str(e.value)
    assert backup_files(tiny_disk / "app") == []


def test_copy_that_fails_integrity_check_is_deleted(tmp_path):
    src = make_db(tmp_path / "app.db", rows=2000)
    size = src.stat().st_size
    with open(src, "r+b") as f:  # damage a page in the middle, keep the header valid
        f.seek((size // 4096 // 2) * 4096)
        f.write(b"\xde\xad\xbe\xef" * 1024)
    with pytest.raises(BackupError, match="failed its integrity check"):
        bk.backup_database(url_of(src), tmp_path / "backups", "app", now=NOW)
    assert backup_files(tmp_path / "backups" / "app") == []


def test_bad_target_name_is_refused(tmp_path):
    src = make_db(tmp_path / "app.db", rows=1)
    with pytest.raises(BackupError, match="bad backup target"):
        bk.backup_database(url_of(src), tmp_path / "backups", "../escape", now=NOW)
    assert not (tmp_path / "backups").exists()
