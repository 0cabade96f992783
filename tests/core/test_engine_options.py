"""An engine's own backup options: its section of the targets file (``backups: {postgresql: {...}}``) is read by the
engine and kept opaque by the core; the old spellings directly under ``backups:`` (``pg_format``, ...) still load,
both at once is one line naming the new key. An engine's own tables join every target's ``ignore_tables``."""

from __future__ import annotations

import sqlite3

import pytest
import yaml

from maintenance_pipeline.core import backup as backup_mod
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.engines import engine_named
from maintenance_pipeline.core.errors import BackupError, ConfigError

PG_URL = "postgresql+psycopg://app@127.0.0.1:1/app"  # never connected to: loading the file reads no database


def write(tmp_path, backups: dict, targets: dict | None = None):
    targets = targets or {"app": {"url": PG_URL, "reference": {"url": PG_URL + "_dev"}}}
    path = tmp_path / "maintenance.yaml"
    path.write_text(yaml.safe_dump({"backups": {"dir": "backups", **backups}, "targets": targets}, sort_keys=False))
    return path


def one_line_error(path) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_the_old_and_the_new_spelling_load_the_same_options(tmp_path):
    pg = engine_named("postgresql")
    for name in ("old", "new", "none"):
        (tmp_path / name).mkdir()
    old = load_config(write(tmp_path / "old", {"pg_format": "custom", "pg_jobs": 3, "pg_compress": 6,
                                               "restore_check": True}))
    new = load_config(write(tmp_path / "new", {"postgresql": {"format": "custom", "jobs": 3, "compress": 6,
                                                              "restore_check": True}}))
    default = load_config(write(tmp_path / "none", {}))
    assert old.backups.options_for(pg) == new.backups.options_for(pg)
    assert new.backups.options_for(pg) != default.backups.options_for(pg)  # the values were read, not defaulted
    assert new.backups.options_for(pg) == pg.backup_options({"format": "custom", "jobs": 3, "compress": 6,
                                                             "restore_check": True}, "backups.postgresql", None)
    assert default.backups.options_for(pg) == pg.backup_options(None, "backups.postgresql", None)
    assert new.backups.options_for(engine_named("sqlite")) is None  # SQLite takes none


def test_both_spellings_at_once_is_one_line_naming_the_new_key(tmp_path):
    msg = one_line_error(write(tmp_path, {"pg_jobs": 4, "postgresql": {"format": "custom"}}))
    assert "backups.pg_jobs" in msg and "backups.postgresql.jobs" in msg


def test_an_unknown_key_under_backups_postgresql_is_one_line(tmp_path):
    msg = one_line_error(write(tmp_path, {"postgresql": {"format": "custom", "jobz": 2}}))
    assert "backups.postgresql.jobz is not a known key" in msg and "jobs" in msg


@pytest.mark.parametrize("backups, key", [({"postgresql": {"format": "tar"}}, "backups.postgresql.format"),
                                          ({"pg_format": "tar"}, "backups.pg_format"),
                                          ({"pg_compress": 12}, "backups.pg_compress"),
                                          ({"postgresql": {"restore_check": "yes"}},
                                           "backups.postgresql.restore_check")],
                         ids=["new", "old", "old-compress", "new-bool"])
def test_a_bad_value_names_the_key_as_written(tmp_path, backups, key):
    assert f"{key} must be" in one_line_error(write(tmp_path, backups))


@pytest.mark.parametrize("section", [{}, {"journal_mode": "wal"}], ids=["empty", "a-key"])
def test_a_backups_sqlite_section_is_one_line_saying_sqlite_takes_no_options(tmp_path, section):
    msg = one_line_error(write(tmp_path, {"sqlite": section}))
    assert "backups.sqlite" in msg and "SQLite takes no backup options" in msg


def test_an_engine_this_version_does_not_know_is_an_unknown_key(tmp_path):
    msg = one_line_error(write(tmp_path, {"mysql": {"format": "x"}}))
    assert "backups.mysql is not a known key" in msg and "postgresql" in msg


def test_the_engines_own_tables_join_every_targets_ignore_tables(tmp_path):
    targets = {"plain": {"url": "sqlite:///a.db", "reference": {"url": "sqlite:///b.db"}},
               "listed": {"url": "sqlite:///a.db", "reference": {"url": "sqlite:///b.db"},
                          "ignore_tables": ["alembic_version", "audit"]},
               "server": {"url": PG_URL, "reference": {"url": PG_URL + "_dev"}}}
    cfg = load_config(write(tmp_path, {}, targets))
    assert cfg.targets["plain"].ignore_tables == ("alembic_version", "sqlite_sequence")
    assert cfg.targets["listed"].ignore_tables == ("alembic_version", "audit", "sqlite_sequence")
    assert cfg.targets["server"].ignore_tables == ("alembic_version",)  # no other engine's table


def _db(path):
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT); INSERT INTO t (a) VALUES ('x');")
    con.close()


def test_backup_database_leaves_another_engines_options_and_refuses_unknown_keywords(tmp_path):
    _db(tmp_path / "app.db")
    url = f"sqlite:///{tmp_path / 'app.db'}"
    res = backup_mod.backup_database(url, tmp_path / "bk", "app", pg_format="custom", pg_jobs=4, restore_check=True,
                                     postgresql={"format": "custom"})
    assert res.verified and res.dialect == "sqlite" and "pg" not in res.to_dict()
    with pytest.raises(TypeError, match="pg_fromat"):
        backup_mod.backup_database(url, tmp_path / "bk", "app", pg_fromat="custom")
    with pytest.raises(BackupError, match="SQLite takes no backup options"):
        backup_mod.backup_database(url, tmp_path / "bk", "app", sqlite={"x": 1})


def test_which_backup_is_a_byte_copy_is_the_engines_word():
    assert engine_named("sqlite").is_bytewise_copy("sqlite-locked-copy")
    assert not engine_named("sqlite").is_bytewise_copy("sqlite-wal-copy")
    assert not engine_named("postgresql").is_bytewise_copy("pg_dump-directory")
