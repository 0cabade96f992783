"""Shared helpers for the SQLite alignment tests (test_migrate, test_rebuild, test_rebuild_keeps).

A ``Case`` is a target and a reference file built in tmp_path with plain CREATE TABLE/INSERT;
``run()`` aligns the target with ``migrate()`` (given a byte copy as the run's backup, as the pipeline does), ``remaining()`` diffs a fresh snapshot against
the reference, ``q()`` reads the file with sqlite3 and ``unchanged()`` compares its sha256 with
the one taken before the run. Import the ``case`` fixture into the test module that uses it.
Test modules register this module for pytest's assertion rewriting before importing it, so
``assert_aligned`` reports its failures like an assert in the test itself.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from targets import sha256

from maintenance_pipeline.core.engines import open_engine
from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.schema.diff import diff
from maintenance_pipeline.core.migrate.executor import migrate
from maintenance_pipeline.core.schema.reference import reference_snapshot
from maintenance_pipeline.core.schema.snapshot import take_snapshot


def make_db(path: Path, sql: str) -> Path:
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.commit()
    con.close()
    return path


class Case:
    """A target file and a reference file; ``run()`` aligns the target."""

    def __init__(self, folder: Path, target_sql: str, reference_sql: str):
        self.path = make_db(folder / "target.db", target_sql)
        self.ref_path = make_db(folder / "reference.db", reference_sql)
        self.target = Target(name="t", url=f"sqlite:///{self.path}", reference_url=f"sqlite:///{self.ref_path}")
        self.ref = reference_snapshot(url=self.target.reference_url, target_dialect="sqlite",
                                      ignore_tables=self.target.ignore_tables)
        self.sha_before = sha256(self.path)

    def run(self, align: str = "full", dry_run: bool = False):
        # as the pipeline runs it: with the run's backup attached (rows compared inside the transaction)
        backup = self.path.with_name("backup.db")
        shutil.copyfile(self.path, backup)
        return migrate(self.target, self.ref, align=align, dry_run=dry_run, backup=backup)

    def remaining(self) -> list:
        engine = open_engine(self.target.url)
        try:
            live = take_snapshot(engine, ignore_tables=self.target.ignore_tables)
        finally:
            engine.dispose()
        return diff(live, self.ref, ignore_tables=self.target.ignore_tables, renames=self.target.renames)

    def q(self, sql: str, *params) -> list[tuple]:
        con = sqlite3.connect(self.path)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def table_sql(self, name: str) -> str:
        return self.q("SELECT sql FROM sqlite_master WHERE name = ?", name)[0][0]

    def unchanged(self) -> bool:
        return sha256(self.path) == self.sha_before


@pytest.fixture
def case(tmp_path):
    def build(target_sql: str, reference_sql: str) -> Case:
        return Case(tmp_path, target_sql, reference_sql)

    return build


def rebuilt(result) -> list[str]:
    return [a["description"] for a in result.applied if a["description"].startswith("rebuilt table")]


def indexes(c: Case, table: str) -> set[tuple]:
    return {(r[1], r[2]) for r in c.q(f'PRAGMA index_list("{table}")') if r[3] == "c"}


def fk_list(c: Case, table: str) -> set[tuple]:
    return {(r[2], r[3], r[4], r[6]) for r in c.q(f'PRAGMA foreign_key_list("{table}")')}


def assert_aligned(c: Case, result) -> None:
    assert c.remaining() == [], [ch.describe() for ch in c.remaining()]
    assert result.drift_after == []
    assert result.rows is not None, "the rows were not compared inside the transaction"
    assert c.q("PRAGMA integrity_check") == [("ok",)]
    assert c.q("PRAGMA foreign_key_check") == []
