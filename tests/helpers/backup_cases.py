"""Shared helpers for the backup, retention and restore tests on real SQLite files.

``make_db`` builds a database whose consistency is checkable (tables a, b and counter, see
``invariant``); ``live_description`` is its schema fingerprint and row counts as the pipeline
sees them; ``NOW`` is the fixed clock the tests pass to ``backup_database``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.schema.snapshot import table_counts, take_snapshot

NOW = datetime(2026, 3, 1, 2, 0, 0, tzinfo=timezone.utc)

# A writer process for ``make_db``'s tables: argv db, stop file[, truncate_every]. Each transaction inserts a pair of
# rows and bumps the counter (so every committed state has count(a) = count(b) = counter); it prints "ready" after its
# first commit and its number of commits at the end; every ``truncate_every`` commits it empties the WAL.
WRITER = r"""
import os, sqlite3, sys
db, stop = sys.argv[1], sys.argv[2]
truncate_every = int(sys.argv[3]) if len(sys.argv) > 3 else 0
c = sqlite3.connect(db, timeout=60, isolation_level=None)
commits = 0
while not os.path.exists(stop):
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO a(payload) VALUES (randomblob(200))")
    c.execute("INSERT INTO b(a_id, payload) VALUES (last_insert_rowid(), randomblob(200))")
    c.execute("UPDATE counter SET n = n + 1")
    c.execute("COMMIT")
    commits += 1
    if commits == 1:
        print("ready", flush=True)
    if truncate_every and commits % truncate_every == 0:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
c.close()
print(commits, flush=True)
"""


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def make_db(path: Path, *, rows: int = 500, journal_mode: str = "delete") -> Path:
    """Tables a, b (b.a_id -> a.id, one b per a) and counter(n) = number of pairs."""
    c = sqlite3.connect(path, isolation_level=None)
    try:
        c.execute(f"PRAGMA journal_mode={journal_mode}")
        c.execute("BEGIN")
        c.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        c.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER NOT NULL REFERENCES a(id), payload BLOB)")
        c.execute("CREATE INDEX ix_b_a ON b (a_id)")
        c.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
        c.execute("INSERT INTO counter VALUES (0)")
        for _ in range(rows):
            c.execute("INSERT INTO a(payload) VALUES (randomblob(200))")
            c.execute("INSERT INTO b(a_id, payload) VALUES (last_insert_rowid(), randomblob(200))")
        c.execute("UPDATE counter SET n = ?", (rows,))
        c.execute("COMMIT")
    finally:
        c.close()
    return path


def live_description(path: Path) -> tuple[str, dict]:
    engine = open_engine(url_of(path))
    try:
        with engine.connect() as conn:
            snap = take_snapshot(conn)
            counts = table_counts(conn, sorted(snap.tables))
    finally:
        engine.dispose()
    return snap.fingerprint, {n: v["rows"] for n, v in counts.items()}


def ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def invariant(path: Path) -> tuple[int, int, int, int]:
    """(count(a), count(b), counter.n, orphans): a consistent snapshot has the first three equal, 0 orphans."""
    c = ro(path)
    try:
        a = c.execute("SELECT count(*) FROM a").fetchone()[0]
        b = c.execute("SELECT count(*) FROM b").fetchone()[0]
        n = c.execute("SELECT n FROM counter").fetchone()[0]
        orphans = c.execute("SELECT count(*) FROM b LEFT JOIN a ON a.id = b.a_id WHERE a.id IS NULL").fetchone()[0]
    finally:
        c.close()
    return a, b, n, orphans


def tamper_backup(backup: Path, *, manifest_rows_too: bool = True) -> None:
    """Delete one root goal from a demo backup (an orphan follows) and make its manifest's sha256 and bytes match
    (``manifest_rows_too``: its row counts as well, so the manifest agrees with the tampered file in every way)."""
    import json

    from maintenance_pipeline.core.backup import sha256_file

    conn = sqlite3.connect(backup)
    conn.execute("DELETE FROM goals WHERE id = (SELECT max(id) FROM goals WHERE parent_id IS NULL)")
    conn.commit()
    conn.close()
    mpath = backup.with_suffix(".json")
    m = json.loads(mpath.read_text())
    m["sha256"], m["bytes"] = sha256_file(backup), backup.stat().st_size
    if manifest_rows_too:
        m["row_counts"]["goals"] -= 1
        m["tables"]["goals"]["rows"] -= 1
    mpath.write_text(json.dumps(m))

