"""Restore from a backup on real SQLite files: the round trip (rollback journal and WAL, with a
connection left open), and the refusals that leave the target untouched (a tampered backup, a
backup without manifest, a missing target).
"""

from __future__ import annotations

import sqlite3

import pytest
from backup_cases import NOW, invariant, live_description, make_db, ro, url_of

from maintenance_pipeline.core import backup as bk
from maintenance_pipeline.core.errors import MissingDatabaseError, RestoreError


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_restore_round_trip(tmp_path, journal_mode):
    live = make_db(tmp_path / "live.db", rows=300, journal_mode=journal_mode)
    res = bk.backup_database(url_of(live), tmp_path / "backups", "live", now=NOW)
    reader = ro(live)  # a connection that stays open across the restore
    assert reader.execute("SELECT count(*) FROM a").fetchone()[0] == 300

    c = sqlite3.connect(live, isolation_level=None)
    c.execute("DELETE FROM b WHERE id > 100")
    c.execute("INSERT INTO a(payload) VALUES (x'00')")
    c.execute("CREATE TABLE junk (x)")
    c.close()
    assert live_description(live)[0] != res.fingerprint

    out = bk.restore_database(res.path, url_of(live))
    assert out["fingerprint"] == res.fingerprint
    assert out["row_counts"] == res.row_counts
    assert out["matches_manifest"] is True
    assert live_description(live) == (res.fingerprint, res.row_counts)
    assert invariant(live) == (300, 300, 300, 0)
    assert reader.execute("SELECT count(*) FROM b").fetchone()[0] == 300  # other connections see it
    reader.close()
    c = sqlite3.connect(live)
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == journal_mode  # the live file keeps its mode
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()
    if journal_mode == "delete":
        # the same pages; only counters in the 100-byte file header move (change counter, schema
        # cookie), which is how other connections learn that their caches are stale
        got, want = live.read_bytes(), res.path.read_bytes()
        assert len(got) == len(want) and got[100:] == want[100:]


def test_restore_with_tampered_backup_leaves_target_untouched(tmp_path):
    live = make_db(tmp_path / "live.db", rows=300)
    res = bk.backup_database(url_of(live), tmp_path / "backups", "live", now=NOW)
    c = sqlite3.connect(live, isolation_level=None)
    c.execute("DELETE FROM b")
    c.close()
    before = live.read_bytes()
    with open(res.path, "r+b") as f:  # one flipped byte deep inside a data page
        f.seek(res.bytes - 100)
        byte = f.read(1)
        f.seek(res.bytes - 100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RestoreError, match="does not match its manifest"):
        bk.restore_database(res.path, url_of(live))
    assert live.read_bytes() == before


def test_restore_refuses_backup_without_manifest_or_missing_target(tmp_path):
    live = make_db(tmp_path / "live.db", rows=10)
    res = bk.backup_database(url_of(live), tmp_path / "backups", "live", now=NOW)
    missing = tmp_path / "gone.db"
    with pytest.raises(MissingDatabaseError):
        bk.restore_database(res.path, url_of(missing))
    assert not missing.exists()
    res.manifest_path.unlink()
    before = live.read_bytes()
    with pytest.raises(RestoreError, match="no manifest"):
        bk.restore_database(res.path, url_of(live))
    assert live.read_bytes() == before
