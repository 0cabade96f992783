"""PostgreSQL backups: ``pg_dump`` into the backup folder (``backup.backup_database``).

This module plugs into the dialect dispatch of ``backup.py``: the layout, manifests, listing and
retention are shared with SQLite. The client tools are found and run by ``tools.py``, a dump
is listed and hashed by ``archive.py``, restored by ``restore.py`` and restored into a
scratch database / compared row by row by ``rows.py`` (all re-exported here).

Layout::

    <backups_dir>/<target>/<target>_<label>_<YYYYmmdd_HHMMSS>.dump    pg_dump output: a folder (mode 0700,
                                                                       files 0600) for the directory format,
                                                                       a file (0600) for the custom format
    <backups_dir>/<target>/<target>_<label>_<YYYYmmdd_HHMMSS>.json    its manifest, mode 0600

How a backup is made
--------------------
1. Preflight, before anything is created: connect (``ConnectionFailedError`` for a wrong password,
   an unreachable server or a missing database), read ``server_version_num``, find ``pg_dump``
   (``MAINTENANCE_PG_BINDIR``, else ``PATH``, else the usual install folders) and refuse one whose
   major version is older than the server's (``BackupError`` naming both versions).
2. In a REPEATABLE READ transaction on the live database: ``pg_export_snapshot()``, the schema
   fingerprint (``snapshot.take_snapshot``, all tables) and exact row counts. ``pg_dump`` is run
   with ``--snapshot`` of that transaction, so the manifest's row counts and fingerprint describe
   exactly the data in the dump.
3. ``pg_dump`` writes into a private staging folder (mode 0700) in the target's backup folder, the
   child runs with umask 077; the dump is checked with ``pg_restore --list`` (and every table's data
   file must exist in a directory dump), hashed, optionally restored into a scratch database
   (``backups.postgresql.restore_check``), and only then moved to its final name (a directory is renamed onto a
   freshly made empty folder of that name, a file is hard-linked: neither ever overwrites anything).
   The manifest is written after it. On any failure nothing is left behind.

Speed: measured on ~0.9 GB, ``pg_dump -Fc`` with its default compression took 27.9 s, ``-Fc -Z0``
4.2 s and ``-Fd -j 2 -Z0`` 3.0 s: compression, not I/O, is the cost. The default is therefore the
directory format, 2 jobs, no compression (``backups.postgresql``: ``format`` / ``jobs`` / ``compress``;
``BackupOptions``).
"""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ...shared.files import (
    DEFAULT_BUSY_TIMEOUT,
    DIR_MODE,
    FILE_MODE,
    backup_stem,
    check_free_space,
    ensure_folder,
    TrickleSync,
    fsync_dir,
    link_unique,
    os_backup_error,
    remove_tree,
    rename_dir_unique,
)
from ...dburl import mask_url, translate_error
from .. import open_engine
from ...errors import BackupError, DatabaseLockedError, MaintenanceError
from ...shared.leftovers import FolderHold
from ...shared.manifest import BackupResult, manifest_head, manifest_tail, write_manifest
from ...shared.reading import describe_tables
from .describe import describe_url
from .archive import dump_files, dump_size, list_archive, sha256_dump
from .catalog import quote_ident
from .restore import restore_postgresql
from .rows import compare_rows, scratch_name, scratch_restore
from .tools import (
    BINDIR_ENV,
    DEFAULT_JOBS,
    PgCommand,
    PgTool,
    build_command,
    check_dump_version,
    classify,
    find_tool,
    run,
    version_tuple,
)

FORMATS = {"directory": "d", "custom": "c"}
DEFAULT_FORMAT = "directory"
DEFAULT_COMPRESS = 0


@dataclass(frozen=True)
class BackupOptions:
    """How a dump is made: ``backups.postgresql`` in the targets file (``parse_options``), kept by the core without
    looking into it and handed back to ``backup_postgresql``."""

    format: str = DEFAULT_FORMAT  # directory | custom
    jobs: int = DEFAULT_JOBS  # parallel pg_dump jobs (directory format) and the restore check's
    compress: int = DEFAULT_COMPRESS  # 0 (none, fastest) to 9
    restore_check: bool = False  # also restore each dump into a scratch database and compare row counts


_OPTION_KEYS = ("format", "jobs", "compress", "restore_check")


def parse_options(raw, key: str, fail) -> BackupOptions:
    """``BackupOptions`` from the section ``raw`` (None: the defaults); ``fail(key, problem)`` raises one line."""
    if raw is None:
        return BackupOptions()
    if not isinstance(raw, dict):
        fail(key, "must be a mapping, e.g. {format: directory, jobs: 2, compress: 0, restore_check: false}")
    unknown = sorted(set(raw) - set(_OPTION_KEYS), key=str)
    if unknown:
        fail(f"{key}.{unknown[0]}", f"is not a known key; allowed here: {', '.join(sorted(_OPTION_KEYS))}")
    fmt = raw.get("format", DEFAULT_FORMAT)
    if not isinstance(fmt, str) or fmt not in FORMATS:
        fail(f"{key}.format", f"must be directory or custom, got {fmt!r}")
    jobs = raw.get("jobs", DEFAULT_JOBS)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        fail(f"{key}.jobs", f"must be a whole number >= 1, got {jobs!r}")
    compress = raw.get("compress", DEFAULT_COMPRESS)
    if isinstance(compress, bool) or not isinstance(compress, int) or not 0 <= compress <= 9:
        fail(f"{key}.compress", f"must be 0 (none, fastest) to 9, got {compress!r}")
    check = raw.get("restore_check", False)
    if not isinstance(check, bool):
        fail(f"{key}.restore_check", f"must be true or false, got {check!r}")
    return BackupOptions(format=fmt, jobs=jobs, compress=compress, restore_check=check)


@dataclass(frozen=True)
class _Plan:
    """What one backup is to make, decided from its arguments before anything is touched."""

    url: str
    source: str  # the URL without its password, for messages and the manifest
    folder: Path  # the target's backup folder
    stem: str  # the dump's and the manifest's name without suffix
    target: str
    label: str
    pinned: bool
    now: datetime
    verify: bool
    busy_timeout: float
    pg_format: str
    pg_jobs: int  # as set (the restore check's jobs)
    jobs: int  # pg_dump's: 1 for the custom format
    pg_compress: int
    restore_check: bool
    schema: str | None


@dataclass(frozen=True)
class _Server:
    """The live server, as the backup's transaction reads it."""

    version: tuple[int, ...]
    text: str  # ``server_version``, its first word
    in_recovery: bool


@dataclass(frozen=True)
class _Tools:
    pg_dump: PgTool
    pg_restore: PgTool | None  # only found when the dump is verified or restore-checked


@dataclass(frozen=True)
class _Live:
    """What the backup's transaction read before the dump: the snapshot pg_dump shares and what it holds."""

    snapshot_id: str | None  # None on a standby (no exported snapshot there)
    fingerprint: str
    tables: dict[str, dict]
    size_estimate: int


@dataclass(frozen=True)
class _Checked:
    """The dump's verification (listing and hash) and restore check, as the manifest records them."""

    sha: str | None
    files: dict
    size: int
    verified: bool
    detail: str
    check: dict | None


@dataclass
class _Made:
    """What this backup has made so far: removed again if it fails (the staging folder also when it succeeds)."""

    staging: Path | None = None
    final: Path | None = None
    manifest: Path | None = None


def backup_postgresql(
    url: str,
    backups_dir: Path,
    target: str,
    *,
    label: str,
    pinned: bool,
    now: datetime,
    verify: bool = True,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    options: BackupOptions | None = None,
    schema: str | None = None,
) -> BackupResult:
    """``pg_dump`` of ``url`` into ``backups_dir/<target>/``; see the module docstring. ``options``: how
    (``BackupOptions``, checked by ``parse_options``; None: the defaults)."""
    t_start = time.perf_counter()
    source = mask_url(url)
    o = options or BackupOptions()
    plan = _Plan(url=url, source=source, folder=backups_dir / target, stem=backup_stem(target, label, now),
                 target=target, label=label, pinned=pinned, now=now, verify=verify, busy_timeout=busy_timeout,
                 pg_format=o.format, pg_jobs=o.jobs, jobs=o.jobs if o.format == "directory" else 1,
                 pg_compress=o.compress, restore_check=o.restore_check, schema=schema)
    timings: dict[str, float] = {}
    made = _Made()
    hold = FolderHold(plan.folder)
    cleaned: list[str] = []

    engine = open_engine(url)  # ConnectionFailedError / BadUrlError before anything is created
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            trans, server = _begin(conn, plan)
            tools = _find_tools(plan, server)
            live = _read_live(conn, plan, server, timings)
            _check_schema_exists(conn, plan, live)

            ensure_folder(plan.folder)
            cleaned = hold.acquire()  # what a killed run left here is removed first (leftovers.py)
            check_free_space(plan.folder, live.size_estimate if plan.pg_compress == 0 else live.size_estimate // 3)
            try:
                out_path = _dump(plan, tools.pg_dump, live.snapshot_id, made, timings)
            finally:
                try:
                    trans.rollback()  # ends the exported snapshot; pg_dump is done with it
                except Exception:  # noqa: BLE001 - the connection may already be gone
                    pass

        _chmod_tree(out_path)
        checked = _check_dump(out_path, plan, tools, live, timings)

        t = time.perf_counter()
        final = _place(out_path, plan, made)
        made.manifest = final.with_suffix(".json")
        pg, manifest = _manifest(plan, final, server, tools, live, checked, t_start)
        write_manifest(made.manifest, manifest)
        timings["manifest"] = time.perf_counter() - t
    except BaseException:
        remove_tree(made.staging, made.final, made.manifest)
        raise
    finally:
        hold.release()
        engine.dispose()
    remove_tree(made.staging)
    return BackupResult.from_manifest(manifest, final, made.manifest, t_start=t_start, timings=timings,
                                      details={"pg": pg}, cleaned=cleaned)


def _begin(conn, plan: _Plan):
    """Open the backup's read-only transaction (``conn`` is REPEATABLE READ) and read the server: (transaction,
    ``_Server``)."""
    import sqlalchemy as sa

    try:
        trans = conn.begin()
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(plan.busy_timeout * 1000))}")
        server_num = int(conn.exec_driver_sql("SHOW server_version_num").scalar())
        server_text = str(conn.exec_driver_sql("SHOW server_version").scalar()).split()[0]
        in_recovery = bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar())
    except sa.exc.DBAPIError as e:
        raise translate_error(e, plan.url) from None
    return trans, _Server(version_tuple(server_num), server_text, in_recovery)


def _find_tools(plan: _Plan, server: _Server) -> _Tools:
    """``pg_dump`` no older than the server (refused otherwise), and ``pg_restore`` beside it when it is needed."""
    pg_dump = find_tool("pg_dump", at_least=server.version)
    check_dump_version(pg_dump, server.version, server.text, plan.source)
    pg_restore = find_tool("pg_restore", at_least=pg_dump.version, near=pg_dump.path.parent) \
        if plan.verify or plan.restore_check else None
    return _Tools(pg_dump, pg_restore)


def _read_live(conn, plan: _Plan, server: _Server, timings: dict[str, float]) -> _Live:
    """In the backup's transaction: the exported snapshot, the fingerprint and row counts, the data's size."""
    import sqlalchemy as sa

    try:
        snapshot_id = None if server.in_recovery else conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
        t = time.perf_counter()
        fingerprint, tables = describe_tables(conn, plan.schema)
        timings["snapshot"] = time.perf_counter() - t
        size_estimate = _data_size(conn, plan.schema)
    except sa.exc.DBAPIError as e:
        raise _locked_or(translate_error(e, plan.url), plan.source, plan.busy_timeout) from None
    except MaintenanceError as e:
        raise _locked_or(e, plan.source, plan.busy_timeout) from None
    return _Live(snapshot_id, fingerprint, tables, size_estimate)


def _check_schema_exists(conn, plan: _Plan, live: _Live) -> None:
    """A schema setting that finds no table: refused when no such schema exists (an empty one is backed up)."""
    if plan.schema and not live.tables:
        exists = conn.exec_driver_sql("SELECT count(*) FROM pg_namespace WHERE nspname = %(s)s",
                                      {"s": plan.schema}).scalar()
        if not exists:
            raise BackupError(f"schema {plan.schema!r} does not exist in {plan.source}; fix the target's schema "
                              "setting in the targets file")


def _dump_args(plan: _Plan, out_path: Path, snapshot_id: str | None) -> list[str]:
    """``pg_dump``'s options (the connection's are added by ``build_command``)."""
    args = [f"--format={FORMATS[plan.pg_format]}", f"--file={out_path}", f"--compress={plan.pg_compress}",
            f"--lock-wait-timeout={max(1, int(plan.busy_timeout * 1000))}"]
    if plan.jobs > 1:
        args.append(f"--jobs={plan.jobs}")
    if snapshot_id:
        args.append(f"--snapshot={snapshot_id}")
    if plan.schema:
        args.append(f"--schema={quote_ident(plan.schema)}")  # quoted: a name, not a pattern
    return args


def _dump(plan: _Plan, pg_dump: PgTool, snapshot_id: str | None, made: _Made, timings: dict[str, float]) -> Path:
    """Run ``pg_dump`` into a new private staging folder (``made.staging``); the dump's path."""
    try:
        made.staging = Path(tempfile.mkdtemp(prefix=f".{plan.stem}.", suffix=".tmp", dir=plan.folder))
    except OSError as e:
        raise os_backup_error(e, plan.folder) from None
    os.chmod(made.staging, DIR_MODE)
    out_path = made.staging / "dump"
    cmd = build_command(pg_dump.path, plan.url, _dump_args(plan, out_path, snapshot_id))
    t = time.perf_counter()
    with TrickleSync(folder=made.staging):  # the dump reaches the disk as pg_dump writes it, not in one burst
        out = run(cmd)
    timings["dump"] = time.perf_counter() - t
    if out.returncode != 0:
        raise classify(cmd, out.stderr, plan.source, "pg_dump of", "check the server log and the backup "
                       f"folder {plan.folder}, then rerun")
    if not out_path.exists():
        raise BackupError(f"pg_dump of {plan.source} wrote nothing to {out_path}; check the PostgreSQL "
                          "client installation and rerun")
    return out_path


def _check_dump(out_path: Path, plan: _Plan, tools: _Tools, live: _Live, timings: dict[str, float]) -> _Checked:
    """Verify the dump (``pg_restore --list`` while it is hashed) and restore-check it, as set: BackupError (and the
    dump deleted by the caller) when it fails either."""
    sha, files, size = None, {}, 0
    verified = False
    detail = "not verified (verify=False)"
    check = None
    if plan.verify:
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1) as pool:
            listing_f = pool.submit(list_archive, out_path, tools.pg_restore)
            sha, files, size = sha256_dump(out_path)
            listing = listing_f.result()
        timings["verify"] = time.perf_counter() - t
        if not listing.ok:
            raise BackupError(f"the dump of {plan.source} failed verification ({listing.detail}); it was deleted; "
                              "check the backup folder's disk and the PostgreSQL client tools, then rerun")
        verified = True
        detail = f"{listing.detail}, sha256 {sha[:12]}…, {size} bytes"
    else:
        size = dump_size(out_path)
    if plan.restore_check:
        t = time.perf_counter()
        check = _restore_check(out_path, plan.url, live.tables, plan.schema, jobs=max(1, plan.pg_jobs))
        timings["restore_check"] = time.perf_counter() - t
        if not check["passed"]:
            raise BackupError(f"the dump of {plan.source} failed its restore check ({check['detail']}); it was "
                              "deleted; rerun the backup, and check the server log if it fails again")
        detail = f"{detail}; {check['detail']}"
    return _Checked(sha, files, size, verified, detail, check)


def _place(out_path: Path, plan: _Plan, made: _Made) -> Path:
    """Move the synced dump to its final name (``made.final``), never over anything; its folder synced."""
    try:
        _fsync_tree(out_path)  # pg_dump already syncs; cheap when it did
        if out_path.is_dir():
            made.final = rename_dir_unique(out_path, plan.folder, plan.stem, ".dump")
        else:
            made.final = link_unique(out_path, plan.folder, plan.stem, ".dump")
        fsync_dir(plan.folder)
    except OSError as e:
        raise os_backup_error(e, plan.folder) from None
    return made.final


def _manifest(plan: _Plan, final: Path, server: _Server, tools: _Tools, live: _Live, checked: _Checked,
              t_start: float) -> tuple[dict, dict]:
    """The result's ``pg`` details and the manifest of the dump at ``final``."""
    pg = {
        "format": plan.pg_format,
        "jobs": plan.jobs,
        "compress": plan.pg_compress,
        "schema": plan.schema,
        "server_version": server.text,
        "pg_dump_version": tools.pg_dump.version_text,
        "snapshot": bool(live.snapshot_id),
    }
    manifest = {
        **manifest_head(final, target=plan.target, label=plan.label, pinned=plan.pinned, now=plan.now,
                        source=plan.source, dialect="postgresql", method=f"pg_dump-{plan.pg_format}"),
        "pg_format": plan.pg_format,
        "pg_jobs": plan.jobs,
        "pg_compress": plan.pg_compress,
        "pg_schema": plan.schema,
        "server_version": server.text,
        "pg_dump_version": tools.pg_dump.version_text,
        "bytes": checked.size,
        "sha256": checked.sha,
        "sha256_of": "files" if final.is_dir() else "file",
        "files": checked.files or None,
        "verified": checked.verified,
        "verify_detail": checked.detail,
        "restore_check": checked.check,
        **manifest_tail(live.fingerprint, live.tables, t_start),
    }
    return pg, manifest


def _data_size(conn, schema: str | None) -> int:
    where = "n.nspname = %(s)s" if schema else \
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'"
    return int(conn.exec_driver_sql(
        "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
        f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND {where}", {"s": schema} if schema else {}
    ).scalar() or 0)


def _locked_or(error: Exception, where: str, busy_timeout: float) -> Exception:
    if "lock timeout" in str(error).lower():
        return DatabaseLockedError(f"backup of {where} waited {busy_timeout:g}s for a table lock held by another "
                                   "session; wait for it to finish or stop it, then rerun")
    return error


def _chmod_tree(path: Path) -> None:
    if path.is_dir():
        os.chmod(path, DIR_MODE)
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), DIR_MODE)
            for f in files:
                os.chmod(os.path.join(root, f), FILE_MODE)
    else:
        os.chmod(path, FILE_MODE)


def _fsync_tree(path: Path) -> None:
    for p in dump_files(path) if path.is_dir() else [path]:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        fsync_dir(path)


def _restore_check(dump: Path, url: str, tables: dict[str, dict], schema: str | None, *, jobs: int) -> dict:
    want = {n: v["rows"] for n, v in tables.items()}
    with scratch_restore(dump, url, jobs=jobs, schema=schema) as scratch_url:
        _fp, got_tables = describe_url(scratch_url, schema)
    got = {n: v["rows"] for n, v in got_tables.items()}
    diffs = sorted(n for n in set(want) | set(got) if want.get(n) != got.get(n))
    if diffs:
        detail = "row counts differ after a scratch restore: " + ", ".join(
            f"{n} {want.get(n)} != {got.get(n)}" for n in diffs[:5])
        return {"passed": False, "detail": detail}
    return {"passed": True, "detail": f"restore check ok: restored into a scratch database, row counts of "
                                      f"{len(want)} tables equal ({sum(want.values())} rows)"}


__all__ = [
    "BINDIR_ENV",
    "PgCommand",
    "PgTool",
    "backup_postgresql",
    "build_command",
    "compare_rows",
    "find_tool",
    "list_archive",
    "restore_postgresql",
    "scratch_name",
    "scratch_restore",
    "sha256_dump",
    "version_tuple",
]

