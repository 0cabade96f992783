"""The backup copy's verification (``PRAGMA integrity_check`` and the sha256 beside it, ``engines/sqlite/backup.py``)
fails wherever SQLite's own check fails: a flipped page in a table's b-tree, an index entry that no longer matches its
row, a duplicate key in a UNIQUE index, an index entry too many, a NULL in a NOT NULL column, a malformed record; and
passes a clean file of every kind of table and index. Real files, damaged byte by byte or through the schema."""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from pathlib import Path

from maintenance_pipeline.core.engines.sqlite.backup import _verify_sqlite_file, integrity_check


def check(path: Path) -> tuple[bool, str, str]:
    """What a backup's verification says of the copy at ``path``: (ok, detail, sha256)."""
    return _verify_sqlite_file(Path(path))


def sqlite_says(path: Path) -> list[str]:
    """SQLite's own ``PRAGMA integrity_check`` (an error reading the file: its message)."""
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in c.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as e:
        return [str(e)]
    finally:
        c.close()


def quick_check(path: Path) -> list[str]:
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [r[0] for r in c.execute("PRAGMA quick_check")]
    finally:
        c.close()


def make_db(path: Path, rows: int = 3000) -> Path:
    """Tables and indexes of every kind: sparse rowids, a multi-column index with a collation and DESC, a UNIQUE
    constraint, a partial and an expression index, a WITHOUT ROWID table, a table without indexes."""
    c = sqlite3.connect(path, isolation_level=None)
    c.executescript(
        """
        PRAGMA page_size=4096;
        CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, name TEXT COLLATE NOCASE,
                            code TEXT UNIQUE, payload BLOB);
        CREATE INDEX ix_items_k ON items (k);
        CREATE INDEX ix_items_name_k ON items (name, k DESC);
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, done INTEGER);
        CREATE INDEX ix_notes_open ON notes (body) WHERE done = 0;
        CREATE INDEX ix_notes_len ON notes (length(body));
        CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
        CREATE TABLE bare (x);
        """
    )
    c.execute("BEGIN")
    c.executemany(
        "INSERT INTO items (id, k, name, code, payload) VALUES (?, ?, ?, ?, randomblob(40))",
        [(i * 10_007, i % 97, f"Name-{i % 500:04d}" if i % 50 else None, f"code-{i:06d}") for i in range(1, rows + 1)],
    )
    c.executemany("INSERT INTO notes (body, done) VALUES (?, ?)", [(f"note {i}", i % 2) for i in range(500)])
    c.executemany("INSERT INTO kv VALUES (?, ?)", [(f"key-{i:04d}", str(i)) for i in range(500)])
    c.executemany("INSERT INTO bare VALUES (?)", [(i,) for i in range(100)])
    c.execute("COMMIT")
    c.close()
    return path


def root_page(path: Path, name: str) -> int:
    c = sqlite3.connect(path)
    try:
        return c.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (name,)).fetchone()[0]
    finally:
        c.close()


def leaf_pages(path: Path, name: str) -> list[int]:
    """The leaf pages of ``name``'s b-tree, in key order (walked from its root page)."""
    data = path.read_bytes()
    out: list[int] = []

    def walk(pgno: int) -> None:
        base = (pgno - 1) * 4096
        hdr = base + (100 if pgno == 1 else 0)
        kind = data[hdr]
        if kind in (0x0A, 0x0D):
            out.append(pgno)
            return
        ncells = struct.unpack(">H", data[hdr + 3:hdr + 5])[0]
        for i in range(ncells):
            ptr = struct.unpack(">H", data[hdr + 12 + 2 * i:hdr + 14 + 2 * i])[0]
            walk(struct.unpack(">I", data[base + ptr:base + ptr + 4])[0])
        walk(struct.unpack(">I", data[hdr + 8:hdr + 12])[0])

    walk(root_page(path, name))
    return out


def patch(path: Path, offset: int, old: bytes, new: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        assert f.read(len(old)) == old
        f.seek(offset)
        f.write(new)


def rewrite_schema(path: Path, name: str, sql: str) -> None:
    """Change what the schema says a table or an index is, not what the file holds (which then no longer
    matches it)."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA writable_schema=ON")
    c.execute("UPDATE sqlite_schema SET sql = ? WHERE name = ?", (sql, name))
    c.execute("PRAGMA writable_schema=OFF")
    c.close()


def test_a_clean_file_of_every_kind_of_table_passes(tmp_path):
    db = make_db(tmp_path / "clean.db")
    assert sqlite_says(db) == ["ok"]
    assert check(db)[:2] == (True, "ok")
    assert integrity_check(db) == (True, "ok")


def test_the_sha256_is_the_files(tmp_path):
    db = make_db(tmp_path / "h.db", rows=200)
    assert check(db)[2] == hashlib.sha256(db.read_bytes()).hexdigest()


def test_a_flipped_page_in_a_tables_btree_fails(tmp_path):
    db = make_db(tmp_path / "flip.db")
    leaves = leaf_pages(db, "items")
    page = leaves[len(leaves) // 2]
    with open(db, "r+b") as f:  # a page in the middle of the table's b-tree, every byte flipped
        f.seek((page - 1) * 4096)
        data = f.read(4096)
        f.seek((page - 1) * 4096)
        f.write(bytes(b ^ 0xFF for b in data))
    assert sqlite_says(db) != ["ok"]
    ok, detail, _ = check(db)
    assert not ok and detail != "ok"
    assert integrity_check(db)[0] is False


def test_a_corrupted_index_entry_fails(tmp_path):
    """The rowid stored in one entry of ix_items_k changed by one (the b-tree still in order): its row has
    no entry any more, and the entry points at no row. quick_check passes; integrity_check and ours fail."""
    db = make_db(tmp_path / "rowid.db")
    c = sqlite3.connect(db)
    k, rowid = c.execute("SELECT k, id FROM items WHERE k = 5 AND id > 9000000 ORDER BY id LIMIT 1").fetchone()
    c.close()
    # the cell: payload size 8, record header (size 3, serial types int8 and int32), k, rowid
    old = bytes([8, 3, 1, 4, k]) + rowid.to_bytes(4, "big", signed=True)
    new = bytes([8, 3, 1, 4, k]) + (rowid + 1).to_bytes(4, "big", signed=True)
    data = db.read_bytes()
    hits = [p for p in leaf_pages(db, "ix_items_k") if old in data[(p - 1) * 4096:p * 4096]]
    assert len(hits) == 1
    patch(db, (hits[0] - 1) * 4096 + data[(hits[0] - 1) * 4096:hits[0] * 4096].index(old), old, new)
    assert quick_check(db) == ["ok"]
    assert any("missing from index ix_items_k" in r for r in sqlite_says(db))
    ok, detail, _ = check(db)
    assert not ok
    assert "missing from index ix_items_k" in detail
    assert integrity_check(db)[0] is False


def test_an_index_that_no_longer_matches_its_column_fails(tmp_path):
    db = make_db(tmp_path / "schema.db")
    assert check(db)[:2] == (True, "ok")
    rewrite_schema(db, "ix_items_k", "CREATE INDEX ix_items_k ON items (id)")  # the entries hold k
    assert quick_check(db) == ["ok"]
    assert sqlite_says(db) != ["ok"]
    ok, detail, _ = check(db)
    assert not ok and "missing from index ix_items_k" in detail


def test_a_duplicate_key_in_a_unique_index_fails(tmp_path):
    db = make_db(tmp_path / "uniq.db")
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("CREATE INDEX ix_items_k_id ON items (k)")  # k repeats: a non-unique index, entries correct
    c.close()
    rewrite_schema(db, "ix_items_k_id", "CREATE UNIQUE INDEX ix_items_k_id ON items (k)")
    assert quick_check(db) == ["ok"]
    assert any("non-unique entry in index ix_items_k_id" in r for r in sqlite_says(db))
    ok, detail, _ = check(db)
    assert not ok and "non-unique entry in index ix_items_k_id" in detail


def test_a_wrong_number_of_entries_fails(tmp_path):
    """A partial index whose WHERE the schema widens: fewer entries than rows now belong."""
    db = make_db(tmp_path / "count.db")
    rewrite_schema(db, "ix_notes_open", "CREATE INDEX ix_notes_open ON notes (body)")
    assert quick_check(db) == ["ok"]
    assert sqlite_says(db) != ["ok"]
    assert check(db)[0] is False


def overwrite_cells(path: Path, table: str, leaf: int) -> None:
    """64 bytes of the ``leaf``-th leaf page of ``table``'s b-tree, past its page header, overwritten."""
    page = leaf_pages(path, table)[leaf]
    with open(path, "r+b") as f:
        f.seek((page - 1) * 4096 + 8)
        f.write(b"\xde\xad\xbe\xef" * 16)


def test_damage_in_a_without_rowid_table_fails(tmp_path):
    db = make_db(tmp_path / "kv.db")
    overwrite_cells(db, "kv", 1)
    assert sqlite_says(db) != ["ok"]
    assert check(db)[0] is False


def test_not_a_database_is_a_failed_check_not_an_exception(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4080)
    ok, detail, sha = check(junk)
    assert not ok and detail
    assert sha is not None


def test_an_index_with_an_entry_too_many_fails(tmp_path):
    """Every row has its entry but the index holds more (the index of a bigger table, moved by the schema):
    only the count finds it."""
    db = tmp_path / "extra.db"
    c = sqlite3.connect(db, isolation_level=None)
    c.executescript(
        """
        CREATE TABLE big (id INTEGER PRIMARY KEY, k INTEGER);
        CREATE TABLE small (id INTEGER PRIMARY KEY, k INTEGER);
        WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s LIMIT 100)
        INSERT INTO big SELECT i, i % 7 FROM s;
        INSERT INTO small SELECT id, k FROM big WHERE id <= 90;
        CREATE INDEX ix_k ON big (k);
        PRAGMA writable_schema=ON;
        UPDATE sqlite_schema SET tbl_name = 'small', sql = 'CREATE INDEX ix_k ON small (k)' WHERE name = 'ix_k';
        PRAGMA writable_schema=OFF;
        """
    )
    c.close()
    assert quick_check(db) == ["ok"]
    assert any("wrong # of entries in index ix_k" in r for r in sqlite_says(db))
    ok, detail, _ = check(db)
    assert not ok and "wrong # of entries in index ix_k" in detail


def test_damage_in_a_table_without_indexes_fails(tmp_path):
    db = make_db(tmp_path / "bare.db")
    overwrite_cells(db, "bare", 0)
    assert sqlite_says(db) != ["ok"]
    assert check(db)[0] is False


def test_a_null_in_a_not_null_column_fails(tmp_path):
    db = make_db(tmp_path / "null.db")
    rewrite_schema(db, "items", "CREATE TABLE items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, name TEXT COLLATE "
                   "NOCASE NOT NULL, code TEXT UNIQUE, payload BLOB)")  # some names are NULL
    assert any("NULL value in items.name" in r for r in sqlite_says(db))
    ok, detail, _ = check(db)
    assert not ok and "NULL value in items.name" in detail


def test_a_malformed_record_header_fails(tmp_path):
    """A record whose header claims more bytes for its last column than the record has."""
    db = tmp_path / "hdr.db"
    c = sqlite3.connect(db, isolation_level=None)
    c.executescript("CREATE TABLE h (id INTEGER PRIMARY KEY, a INTEGER, b TEXT); "
                    "INSERT INTO h VALUES (1, 5, 'hello'), (2, 6, 'world');")
    c.close()
    old = bytes([4, 0, 1, 0x17, 5]) + b"hello"  # header: size 4, NULL (the rowid), int8, text of 5 bytes
    patch(db, db.read_bytes().index(old) + 3, b"\x17", b"\x19")  # text of 6 bytes
    assert sqlite_says(db) != ["ok"]
    assert check(db)[0] is False


def test_an_integer_primary_key_declared_last_passes(tmp_path):
    db = tmp_path / "ipk.db"
    c = sqlite3.connect(db, isolation_level=None)
    c.executescript("CREATE TABLE r (a TEXT, id INTEGER PRIMARY KEY); CREATE INDEX ix_r_a ON r (a); "
                    "INSERT INTO r (a) VALUES ('x'), ('y');")
    c.close()
    assert check(db)[:2] == (True, "ok")
