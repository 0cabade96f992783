"""The file lock against another local account: a lock folder that is not private to this user (open to
others, someone else's, a link) is refused; a link or a hard link planted as a lock file is refused; nothing
is ever opened for writing through them, so the file they point at (a live SQLite database) stays bytewise
as it was. And a lock file removed during a run loses the lock before COMMIT (``confirm``).

Every test works in a temp folder of its own (``tempfile.tempdir``, ``TMPDIR`` for processes): the real
per-user lock folder is never touched.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import subprocess
import sys
import tempfile

import pytest

from targets import copy_migrations, demo_target, revision, sha256, write_config
from maintenance_pipeline.core.shared.leftovers import FolderHold
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import LockHeldError, LockLostError, UnsafeLockError
from maintenance_pipeline.core.lock import file_lock, lock_folder, lock_path, maintenance_lock
from maintenance_pipeline.core.run.pipeline import run_job


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """A temp folder of the test's own, as the system's temp folder for this process and its children."""
    root = tmp_path / "tmp"
    root.mkdir()
    root.chmod(0o1777)  # like /tmp: anyone may make a folder in it
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setenv("TMPDIR", str(root))
    assert lock_folder().parent == root
    return root


def _database(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 200,)] * 500)
    conn.commit()
    conn.close()
    assert path.stat().st_size > 4096
    return path


def _one_line(e) -> str:
    text = str(e)
    assert "\n" not in text and text
    return text


def _bad_folder(how, temp_root, tmp_path, victim, keys):
    """The lock folder made by "another account" as ``how``, with a link named as each key's lock file
    pointing at ``victim``."""
    folder = lock_folder()
    if how == "a link to a folder":
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        theirs.chmod(0o777)
        folder.symlink_to(theirs)
        where = theirs
    else:
        folder.mkdir(mode=0o700)
        where = folder
    for key in keys:
        (where / lock_path(key).name).symlink_to(victim)
    if how == "open to everyone":
        folder.chmod(0o777)
    elif how == "owned by another account":
        if os.geteuid() != 0:
            pytest.skip("making a folder owned by another account needs root")
        os.chown(folder, pwd.getpwnam("nobody").pw_uid, -1)
    return folder


@pytest.mark.parametrize("how", ["open to everyone", "owned by another account", "a link to a folder"])
def test_a_lock_folder_not_private_to_this_user_is_refused(temp_root, tmp_path, how):
    victim = _database(tmp_path / "victim.db")
    before = sha256(victim)
    backups = tmp_path / "backups"
    backups.mkdir()
    target = tmp_path / "target.db"
    folder = _bad_folder(how, temp_root, tmp_path, victim, [str(target), f"backups:{os.path.realpath(backups)}"])
    listing = sorted(os.listdir(folder))

    with pytest.raises(UnsafeLockError) as err:
        with maintenance_lock(f"sqlite:///{target}", holder="test"):
            pytest.fail("the lock was taken in a folder another account controls")
    msg = _one_line(err.value)
    assert f"the lock folder {folder}" in msg and f"rm -r {folder}" in msg and "mode 0700" in msg, msg

    hold = FolderHold(backups)  # the backup folder's hold: the same folder, the same refusal
    with pytest.raises(UnsafeLockError):
        hold.acquire()
    hold.release()

    assert sha256(victim) == before and victim.stat().st_size > 4096
    assert sorted(os.listdir(folder)) == listing  # nothing written there either (no holder file)
    assert not target.exists()


def test_a_link_planted_as_the_lock_file_is_refused_and_its_target_untouched(temp_root, tmp_path):
    victim = _database(tmp_path / "victim.db")
    before = sha256(victim)
    target = tmp_path / "target.db"
    url = f"sqlite:///{target}"
    with maintenance_lock(url) as held:  # the folder, made private by the pipeline itself
        path = held.path
    path.unlink()
    path.symlink_to(victim)
    for attempt in range(2):
        with pytest.raises(UnsafeLockError) as err:
            with file_lock(str(target), url, holder="test"):
                pytest.fail("the lock was taken through a link")
        msg = _one_line(err.value)
        assert f"the lock file {path} is a symbolic link" in msg and f"rm {path}" in msg, msg
    assert sha256(victim) == before and path.is_symlink()


def test_a_hard_link_planted_as_the_lock_file_is_refused(temp_root, tmp_path):
    victim = _database(tmp_path / "victim.db")
    before = sha256(victim)
    folder = tmp_path / "backups"
    folder.mkdir()
    key = f"backups:{os.path.realpath(folder)}"
    hold = FolderHold(folder)
    hold.acquire()
    hold.release()
    path = lock_path(key)
    path.unlink()
    os.link(victim, path)  # same file system: tmp_path holds both
    hold = FolderHold(folder)
    with pytest.raises(UnsafeLockError) as err:
        hold.acquire()
    hold.release()
    assert "has 2 links" in _one_line(err.value)
    assert sha256(victim) == before


def test_the_lock_file_is_never_written_and_the_holder_is_still_named(temp_root, tmp_path):
    target = tmp_path / "target.db"
    url = f"sqlite:///{target}"
    with maintenance_lock(url) as held:
        path = held.path
    path.write_bytes(b"kept as it is")  # whatever the lock file holds, taking the lock never changes it
    assert oct(lock_folder().stat().st_mode & 0o777) == oct(0o700)
    code = ("from maintenance_pipeline.core.lock import maintenance_lock\n"
            "from maintenance_pipeline.core.errors import LockHeldError\n"
            f"try:\n    with maintenance_lock({url!r}):\n        print('acquired')\n"
            "except LockHeldError as e:\n    print('held:', e)\n")
    with maintenance_lock(url, holder="migrate goals") as held:
        assert held.path == path and path.read_bytes() == b"kept as it is"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
        assert out.startswith("held:") and f"(pid {os.getpid()}, migrate goals)" in out, out
        with pytest.raises(LockHeldError):
            with maintenance_lock(url):
                pass
        held.confirm(None)  # still ours
    assert path.read_bytes() == b"kept as it is"
    assert sorted(os.listdir(lock_folder())) == [path.name]  # the holder file went with the lock


def test_a_lock_file_removed_during_the_run_loses_the_lock(temp_root, tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    with maintenance_lock(url) as held:
        held.path.unlink()
        with maintenance_lock(url, holder="a second run"):  # what made it unsafe: a second run gets a lock too
            with pytest.raises(LockLostError) as err:
                held.confirm(None)
    assert "was lost during the run" in _one_line(err.value) and "nothing was committed" in str(err.value)


# ------------------------------------------------------------------------------ a real run of the demo


def test_a_run_with_a_link_planted_as_the_lock_file_leaves_the_live_database_unchanged(temp_root, demo_config):
    url = demo_config.targets["goals"].url
    db = demo_config.root / "data" / "goals.db"
    with maintenance_lock(url) as held:
        path = held.path
    path.unlink()
    path.symlink_to(db)  # the live database, as the attack had it
    before = sha256(db)

    report = run_job(demo_config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate", report["error"]
    assert f"the lock file {path} is a symbolic link" in _one_line(report["error"])
    assert sha256(db) == before and path.is_symlink() and os.readlink(path) == str(db)

    path.unlink()  # the fix the line names
    report = run_job(demo_config, "goals", "maintain_database")
    assert report["status"] == "success", report["error"]
    assert sha256(db) != before


def test_a_lock_lost_during_a_migration_commits_nothing(temp_root, demo_dir, monkeypatch):
    db = demo_dir / "data" / "goals.db"
    with maintenance_lock(f"sqlite:///{db}") as held:
        monkeypatch.setenv("MP_LOCK_FILE", str(held.path))
    # a revision that removes the run's lock file: the lock is gone while the migration is in its transaction
    steal = revision("0003", "0002", '    os.unlink(os.environ["MP_LOCK_FILE"])', imports="import os\n")
    config = load_config(write_config(demo_dir, {"goals": demo_target(
        migrations=str(copy_migrations(demo_dir, {"0003_steal.py": steal})))}))
    before = sha256(db)
    report = run_job(config, "goals", "maintain_database")
    assert report["status"] == "failed" and report["failed_step"] == "migrate", report["error"]
    msg = _one_line(report["error"])
    assert "the maintenance lock on" in msg and "was lost during the run" in msg and "nothing was committed" in msg
    assert sha256(db) == before
