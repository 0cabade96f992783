"""PostgreSQL backups against a real throwaway server (the ``pg`` fixture): pg_dump in both formats,
manifests, verification, restore check, settings from the targets file, the password kept out of every
argv, and clear one-line errors (with the password nowhere) for every way a backup can fail.
Restores and row comparison are in ``test_restore.py``; shared helpers in ``pg_backup_helpers.py``."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from targets import write_config

from maintenance_pipeline.core import backup as bk
from maintenance_pipeline.core.engines.postgresql import backup as pb
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.dburl import mask_url
from maintenance_pipeline.core.errors import BackupError, ConnectionFailedError, DatabaseLockedError

from pg_backup_helpers import DEV, PROD, assert_one_line_without, copy_db, scratch_databases, snapshot

NAME_RE = re.compile(r"^goals_(nightly|pre-restore|pre-migration)_\d{8}_\d{6}(_\d+)?\.dump$")


def nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


# --------------------------------------------------------------------------- backup


@pytest.mark.parametrize("fmt", ["directory", "custom"])
def test_backup_each_format_writes_verified_dump_and_manifest(pg, demo, tmp_path, fmt):
    res = bk.backup_database(demo, tmp_path, "goals", label="nightly", pg_format=fmt, pg_jobs=2, pg_compress=0)
    folder = tmp_path / "goals"
    assert NAME_RE.match(res.path.name), res.path.name
    assert sorted(p.name for p in folder.iterdir()) == sorted([res.path.name, res.manifest_path.name])  # no temp left
    assert res.path.is_dir() is (fmt == "directory")
    assert res.verified and res.dialect == "postgresql" and res.method == f"pg_dump-{fmt}"

    m = bk.read_manifest(res.path)
    assert m["dialect"] == "postgresql" and m["method"] == f"pg_dump-{fmt}"
    assert m["pg_format"] == fmt and m["pg_jobs"] == (2 if fmt == "directory" else 1) and m["pg_compress"] == 0
    assert m["label"] == "nightly" and m["pinned"] is False and m["verified"] is True
    assert m["source"] == mask_url(demo) and "***" in m["source"]
    assert m["server_version"].startswith("15") and m["pg_dump_version"].startswith("15")
    # sha256 and bytes: a file's own hash; a folder's is over its files in name order (sha256sum * | sha256sum)
    if fmt == "directory":
        files = sorted(p.name for p in res.path.iterdir())
        listing = "".join(f"{hashlib.sha256((res.path / n).read_bytes()).hexdigest()}  {n}\n" for n in files)
        assert m["sha256"] == hashlib.sha256(listing.encode()).hexdigest() and m["sha256_of"] == "files"
        assert m["bytes"] == sum((res.path / n).stat().st_size for n in files)
        assert set(m["files"]) == set(files)
        assert stat.S_IMODE(res.path.stat().st_mode) == 0o700
        assert all(stat.S_IMODE((res.path / n).stat().st_mode) == 0o600 for n in files)
    else:
        assert m["sha256"] == hashlib.sha256(res.path.read_bytes()).hexdigest()
        assert m["bytes"] == res.path.stat().st_size
        assert stat.S_IMODE(res.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(res.manifest_path.stat().st_mode) == 0o600
    # schema fingerprint and exact row counts of the live database (all tables), taken in the dump's snapshot
    assert m["fingerprint"] == snapshot(demo).fingerprint
    assert m["row_counts"]["goals"] == 39 and len(m["row_counts"]) == 13
    assert m["row_counts"] == {t: int(pg.psql(f'SELECT count(*) FROM "{t}"', PROD)) for t in m["row_counts"]}
    assert m["tables"]["goals"] == {"columns": 20, "rows": 39}
    # verified with pg_restore --list, which lists every table's data
    assert "pg_restore --list ok" in m["verify_detail"] and "13 tables with data" in m["verify_detail"]
    listing = pb.list_archive(res.path)
    assert listing.ok and {e.name for e in listing.of("TABLE DATA")} == set(m["row_counts"])
    # the password is nowhere
    text = res.manifest_path.read_text() + json.dumps(res.to_dict())
    assert "pg-super-secret" not in text
    assert res.to_dict()["pg"]["format"] == fmt
    # listing, newest verified, retention treat it like any backup (a folder is removed as a whole)
    assert bk.newest_verified(tmp_path, "goals")["path"] == str(res.path)
    res2 = bk.backup_database(demo, tmp_path, "goals", label="nightly", pg_format=fmt)
    removed = bk.apply_retention(tmp_path, "goals", keep_last=1, keep_days=0)
    assert removed == [res.path] and not res.path.exists() and res2.path.exists()


def test_restore_check_compressed_custom_and_scratch_dropped(pg, demo, tmp_path):
    res = bk.backup_database(demo, tmp_path, "goals", pg_format="custom", pg_compress=6, restore_check=True)
    m = bk.read_manifest(res.path)
    assert m["pg_compress"] == 6 and m["restore_check"]["passed"] is True
    assert "restore check ok" in res.verify_detail and "13 tables" in m["restore_check"]["detail"]
    assert scratch_databases(pg) == []


def test_list_archive_detects_a_damaged_dump(pg, demo, tmp_path):
    res = bk.backup_database(demo, tmp_path, "goals")
    broken = tmp_path / "broken.dump"
    shutil.copytree(res.path, broken)
    data = sorted(p for p in broken.iterdir() if p.name.endswith(".dat") and p.name != "toc.dat")
    gone = next(e.name for e in pb.list_archive(broken).of("TABLE DATA") if f"{e.dump_id}.dat" == data[0].name)
    data[0].unlink()
    listing = pb.list_archive(broken)
    assert not listing.ok and "data of 1 table(s) is missing" in listing.detail and gone in listing.detail
    (broken / "toc.dat").write_bytes(b"garbage")
    assert not pb.list_archive(broken).ok


def test_pipeline_passes_pg_settings_and_schema(pg, demo, tmp_path):
    from maintenance_pipeline.core.run import pipeline

    cfg_path = write_config(tmp_path, {"goals": {"url": demo, "reference": {"url": pg.url(DEV)}}},
                            backups={"dir": "backups", "pg_format": "custom", "pg_compress": 1,
                                     "restore_check": True})
    state = pipeline.start(load_config(cfg_path), "goals", "verify_database")
    b = pipeline.step_backup(state)
    assert b["method"] == "pg_dump-custom" and b["pg"]["compress"] == 1 and b["verified"]
    assert "restore check ok" in b["verify_detail"]
    assert Path(b["path"]).parent == tmp_path / "backups" / "goals"


# --------------------------------------------------------------------------- secrets


def test_password_goes_through_the_environment_never_argv(pg, demo, tmp_path, monkeypatch):
    pw = "S3cr3t:p@ss/w0rd?#%"
    url = f"postgresql+psycopg://bkuser:{quote(pw, safe='')}@127.0.0.1:{pg.port}/bk_secret"
    cmd = pb.build_command("pg_dump", url, ["--format=d", "--file=/tmp/x"])
    assert all(pw not in a and quote(pw, safe="") not in a for a in cmd.argv)
    assert cmd.env["PGPASSWORD"] == pw
    assert "--host=127.0.0.1" in cmd.argv and f"--port={pg.port}" in cmd.argv and "--username=bkuser" in cmd.argv
    assert "--dbname=bk_secret" in cmd.argv and "--no-password" in cmd.argv
    assert pw not in repr(cmd)

    # and for real: every child the backup, its restore check and a restore start, through logging wrappers
    pg.psql("DROP DATABASE IF EXISTS bk_secret WITH (FORCE)")
    pg.psql("DROP ROLE IF EXISTS bkuser")
    pg.psql(f"CREATE ROLE bkuser LOGIN SUPERUSER PASSWORD '{pw}'")
    pg.psql("CREATE DATABASE bk_secret OWNER bkuser TEMPLATE bk_goals")
    bindir, log = tmp_path / "bin", tmp_path / "argv.log"
    bindir.mkdir()
    for tool in ("pg_dump", "pg_restore", "psql"):
        script = bindir / tool
        script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$0 $*" >> "{log}"\n'
                          f'[ -n "$PGPASSWORD" ] && echo "{tool} got PGPASSWORD" >> "{log}"\n'
                          f'exec "{pg.bindir / tool}" "$@"\n')
        script.chmod(0o755)
    monkeypatch.setenv(pb.BINDIR_ENV, str(bindir))
    res = bk.backup_database(url, tmp_path / "backups", "goals", restore_check=True)
    pg.psql("DELETE FROM goals WHERE parent_id IS NOT NULL", "bk_secret")
    bk.restore_database(res.path, url)
    assert pg.psql("SELECT count(*) FROM goals", "bk_secret") == "39"
    text = log.read_text()
    assert "pg_dump got PGPASSWORD" in text and "psql got PGPASSWORD" in text and "pg_restore got PGPASSWORD" in text
    assert pw not in text and quote(pw, safe="") not in text
    for f in (tmp_path / "backups" / "goals").glob("*.json"):
        assert pw not in f.read_text()


# --------------------------------------------------------------------------- errors


def _fake_tool(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("case", ["wrong_password", "unreachable_port", "missing_database"])
def test_connection_errors_are_clear_and_leave_nothing(pg, demo, tmp_path, case):
    from pgserver import free_port

    bad = "Wr0ng-Zebra-Pa55"
    url = {"wrong_password": pg.url(PROD, password=bad),
           "unreachable_port": f"postgresql+psycopg://postgres:{bad}@127.0.0.1:{free_port()}/{PROD}",
           "missing_database": pg.url("bk_no_such_db")}[case]
    with pytest.raises(ConnectionFailedError) as e:
        bk.backup_database(url, tmp_path / "backups", "goals")
    msg = assert_one_line_without(e.value, bad, "pg-super-secret")
    assert {"wrong_password": "password authentication failed", "unreachable_port": "refused",
            "missing_database": "does not exist"}[case] in msg
    assert "***" in msg or case != "wrong_password"
    assert nothing_in(tmp_path / "backups")
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'bk_no_such_db'") == "0"


def test_pg_dump_missing(pg, demo, tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv(pb.BINDIR_ENV, str(empty))
    with pytest.raises(BackupError) as e:
        bk.backup_database(demo, tmp_path / "backups", "goals")
    msg = assert_one_line_without(e.value, "pg-super-secret")
    assert "pg_dump not found" in msg and pb.BINDIR_ENV in msg and "postgresql-client" in msg
    assert nothing_in(tmp_path / "backups")


def test_pg_dump_older_than_server(pg, demo, tmp_path, monkeypatch):
    bindir = tmp_path / "old-bin"
    _fake_tool(bindir, "pg_dump", 'echo "pg_dump (PostgreSQL) 12.3"\n')
    monkeypatch.setenv(pb.BINDIR_ENV, str(bindir))
    with pytest.raises(BackupError) as e:
        bk.backup_database(demo, tmp_path / "backups", "goals")
    msg = assert_one_line_without(e.value, "pg-super-secret")
    server = pg.psql("SHOW server_version").split()[0]
    assert "pg_dump 12.3" in msg and f"PostgreSQL {server}" in msg and "older than the server" in msg
    assert "postgresql-client-15" in msg
    assert nothing_in(tmp_path / "backups")


def test_pg_dump_failing_leaves_no_partial_dump(pg, demo, tmp_path, monkeypatch):
    bindir = tmp_path / "failing-bin"
    _fake_tool(bindir, "pg_dump", 'if [ "$1" = "--version" ]; then echo "pg_dump (PostgreSQL) 15.99"; exit 0; fi\n'
                                  'for a in "$@"; do case "$a" in --file=*) f="${a#--file=}";; esac; done\n'
                                  'mkdir -p "$f" && echo partial > "$f/toc.dat"\n'
                                  'echo "pg_dump: error: query failed: ERROR:  out of shared memory" >&2\nexit 1\n')
    shutil.copy(pg.bindir / "pg_restore", bindir / "pg_restore")
    monkeypatch.setenv(pb.BINDIR_ENV, str(bindir))
    with pytest.raises(BackupError) as e:
        bk.backup_database(demo, tmp_path / "backups", "goals")
    msg = assert_one_line_without(e.value, "pg-super-secret")
    assert msg.startswith("pg_dump of postgresql+psycopg://postgres:***@") and "out of shared memory" in msg
    assert nothing_in(tmp_path / "backups" / "goals")


def test_backup_waits_for_a_lock_only_busy_timeout(pg, demo, tmp_path):
    url = copy_db(pg, "bk_locked")
    env = {**os.environ, "PGPASSWORD": "pg-super-secret"}
    holder = subprocess.Popen([str(pg.bindir / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                               "-d", "bk_locked", "-X", "-q", "-c",
                               "BEGIN; LOCK TABLE goals IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30);"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                       "WHERE c.relname = 'goals' AND l.mode = 'AccessExclusiveLock' AND l.granted", "bk_locked") == "1":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the lock holder never got its lock")
        with pytest.raises(DatabaseLockedError) as e:
            bk.backup_database(url, tmp_path / "backups", "goals", busy_timeout=0.5)
        assert_one_line_without(e.value, "pg-super-secret")
        assert nothing_in(tmp_path / "backups" / "goals")
    finally:
        holder.kill()
        holder.wait()


def test_versions_and_names():
    assert pb.version_tuple(150018) == (15,) and pb.version_tuple(90624) == (9, 6)
    assert pb.version_tuple("15.18 (Debian)") == (15,) and pb.version_tuple("9.6.24") == (9, 6)
    assert pb.version_tuple("17beta1") == (17,) and (9, 6) < (15,)
    name = pb.scratch_name("x" * 80)
    assert len(name.encode()) <= 63 and "_mp_scratch_" in name
    assert pb.build_command("psql", "postgresql+psycopg://u@h/we=ird", []).argv[-1] == "--dbname=dbname='we=ird'"
