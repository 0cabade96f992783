"""PostgreSQL restore: a dump made by ``pg_backup`` back into the live database, in one transaction.

``restore_postgresql`` (``backup.restore_database`` for ``postgresql`` URLs) checks the dump first
(sha256 against the manifest, ``pg_restore --list``), then runs ``pg_restore --clean --if-exists``
into ``psql --single-transaction -v ON_ERROR_STOP=1``: the whole restore is one transaction, and if
anything fails the target is unchanged. ``pg_restore --clean`` only drops what the dump holds; a table
created after the backup (e.g. by the migration being rolled back) would survive it, and a foreign
key from it to a restored table would make the restore fail. So the same transaction first locks the
live tables (``lock_timeout`` = the busy timeout) and drops, in the dump's schemas, the tables, views
and sequences the dump does not have and every foreign key of those schemas' tables (the dump
recreates its own). ``pg_restore``'s output reaches ``psql`` through this process, and ``psql`` is
only allowed to commit (its input is only closed) once ``pg_restore`` has exited successfully.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ...shared.files import CHUNK, DEFAULT_BUSY_TIMEOUT
from ...dburl import mask_url, translate_error
from .. import open_engine
from ...errors import BackupError, RestoreError
from ...shared.manifest import expected_sha256, manifest_for_restore, restored, sha256_mismatch
from .describe import describe_url
from .archive import Listing, list_archive, sha256_dump
from .catalog import quote_ident
from .tools import (
    BINDIR_ENV,
    PgCommand,
    PgTool,
    build_command,
    classify,
    find_tool,
    first_error,
    fmt_version,
    psycopg_connect,
    version_tuple,
)


def _restore_preamble(live, listing: Listing, schema: str | None, busy_timeout: float) -> str:
    """SQL run first in the restore's transaction: lock the live tables of the dump's schemas, drop the
    relations the dump does not have and every foreign key of those schemas' tables."""
    in_dump = {(e.schema, e.name) for e in listing.of("TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE",
                                                      "SEQUENCE")}
    schemas = sorted({s for s, _ in in_dump} | {schema or "public"})
    rels = live.execute(
        "SELECT n.nspname, c.relname, c.relkind, "
        "  EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid "
        "          AND d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass) AS owned "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND NOT c.relispartition "
        "ORDER BY 1, 2", (schemas,)).fetchall()
    fks = live.execute(
        "SELECT n.nspname, c.relname, k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'f' AND n.nspname = ANY(%s) "
        "ORDER BY 1, 2, 3", (schemas,)).fetchall()
    ms = max(1, int(busy_timeout * 1000))
    sql = ["SET client_min_messages = warning;", f"SET lock_timeout = {ms};"]
    tables = [f"{quote_ident(s)}.{quote_ident(n)}" for s, n, kind, _ in rels if kind in ("r", "p")]
    if tables:
        sql.append(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE;")
    for s, n, c in fks:
        sql.append(f"ALTER TABLE {quote_ident(s)}.{quote_ident(n)} DROP CONSTRAINT IF EXISTS {quote_ident(c)};")
    kinds = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "r": "TABLE", "p": "TABLE", "S": "SEQUENCE"}
    for wanted in ("v", "m", "f", "r", "p", "S"):
        for s, n, kind, owned in rels:
            if kind == wanted and (s, n) not in in_dump and not (kind == "S" and owned):
                sql.append(f"DROP {kinds[kind]} IF EXISTS {quote_ident(s)}.{quote_ident(n)} CASCADE;")
    sql.append("SET lock_timeout = 0;")
    return "\n".join(sql) + "\n"


def _pipe(producer: PgCommand, consumer: PgCommand, err_p, err_c) -> tuple[int, int]:
    """Run ``producer | consumer`` through this process; the consumer's input is only closed (so psql
    only commits) when the producer succeeded, otherwise the consumer is killed (nothing is committed)."""
    p = subprocess.Popen(producer.argv, env=producer.env, stdout=subprocess.PIPE, stderr=err_p,
                         stdin=subprocess.DEVNULL, umask=0o077)
    try:
        c = subprocess.Popen(consumer.argv, env=consumer.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=err_c, umask=0o077)
    except BaseException:
        p.kill()
        p.wait()
        raise
    broken = False
    try:
        src = p.stdout.fileno()
        dst = c.stdin
        while True:
            chunk = os.read(src, CHUNK)
            if not chunk:
                break
            if broken:
                continue  # drain so the producer can finish
            try:
                dst.write(chunk)
            except BrokenPipeError:  # psql stopped (ON_ERROR_STOP): keep draining, then report its error
                broken = True
                p.kill()
        rc_p = p.wait()
        if rc_p != 0 and not broken:
            c.kill()  # never let psql see a clean end of input after a failed pg_restore
        else:
            try:
                dst.close()
            except BrokenPipeError:
                pass
        rc_c = c.wait()
        return rc_p, rc_c
    except BaseException:
        c.kill()
        p.kill()
        c.wait()
        p.wait()
        raise
    finally:
        if p.stdout:
            p.stdout.close()


@dataclass(frozen=True)
class _Restore:
    """A restore decided before the target is touched: the checked dump, its manifest and the client tools."""

    backup: Path
    url: str
    where: str  # the URL without its password
    manifest: dict
    sha256: str  # the dump's, checked against the manifest
    schema: str | None  # the dump's (``pg_schema``) unless given
    pg_restore: PgTool
    psql: PgTool
    listing: Listing


@dataclass(frozen=True)
class _Piped:
    """How ``pg_restore | psql`` ended: exit codes and error output of each."""

    consumer: PgCommand  # psql's command, for the classification of its error
    rc_p: int
    rc_c: int
    stderr_p: str
    stderr_c: str


def restore_postgresql(backup: Path, url: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, *,
                       schema: str | None = None) -> dict:
    """Restore a dump made by ``backup_postgresql`` into the database at ``url``, in one transaction.

    The dump is checked first (sha256 against its manifest, ``pg_restore --list``): RestoreError and the
    target untouched otherwise. Returns {"fingerprint", "row_counts", "tables", "matches_manifest",
    "method", "backup", "sha256", "seconds"} of the restored target.
    """
    t_start = time.perf_counter()
    plan = _plan_restore(backup, url, schema)
    live = psycopg_connect(url, autocommit=True)
    try:
        preamble = _restore_preamble(live, plan.listing, plan.schema, busy_timeout)
    finally:
        live.close()
    _raise_if_failed(plan, _run_restore(plan, preamble))

    manifest = plan.manifest
    fingerprint, tables = describe_url(url, plan.schema)
    if manifest.get("row_counts"):  # checked inside the restore's transaction: what it committed is the backup's
        tables = {n: {**v, "rows": manifest["row_counts"].get(n, v["rows"])} for n, v in tables.items()}
    return restored(manifest, fingerprint, tables, method="pg_restore-single-transaction", backup=plan.backup,
                    sha256=plan.sha256, t_start=t_start, exact=bool(manifest.get("row_counts")))


def _plan_restore(backup: Path, url: str, schema: str | None) -> _Restore:
    """Check the dump (its manifest, its sha256) and find client tools that can read it: RestoreError, and the target
    untouched, otherwise."""
    where = mask_url(url)
    backup = Path(backup).expanduser().resolve()
    if not backup.exists():
        raise RestoreError(f"backup {backup} does not exist; pick one from the target's backup folder")
    manifest = manifest_for_restore(backup, where)
    if manifest.get("dialect") != "postgresql":
        raise RestoreError(f"backup {backup.name} is a {manifest.get('dialect')} backup, not a PostgreSQL dump; the "
                           f"target {where} was not touched; pick a backup of this target")
    expected = expected_sha256(manifest, backup, where)
    actual, files, _size = sha256_dump(backup)
    if actual != expected:
        changed = sorted(n for n, h in files.items() if (manifest.get("files") or {}).get(n) != h)
        which = f" (changed: {', '.join(changed[:3])})" if changed else ""
        raise sha256_mismatch(backup, actual, expected, where, which)
    schema = schema if schema is not None else manifest.get("pg_schema")
    pg_restore, psql = _restore_tools(backup, url, where, manifest)
    listing = list_archive(backup, pg_restore)
    if not listing.ok:
        raise RestoreError(f"backup {backup.name} cannot be read ({listing.detail}); the target {where} was not "
                           "touched; pick another backup")
    return _Restore(backup, url, where, manifest, actual, schema, pg_restore, psql, listing)


def _restore_tools(backup: Path, url: str, where: str, manifest: dict) -> tuple[PgTool, PgTool]:
    """``pg_restore`` no older than the server nor than the ``pg_dump`` that made the dump, ``psql`` beside it."""
    import sqlalchemy as sa

    engine = open_engine(url)  # ConnectionFailedError before anything else
    try:
        with engine.connect() as conn:
            server = version_tuple(int(conn.exec_driver_sql("SHOW server_version_num").scalar()))
    except sa.exc.DBAPIError as e:
        raise translate_error(e, url) from None
    finally:
        engine.dispose()
    dumped_by = version_tuple(manifest.get("pg_dump_version") or "0")
    try:
        pg_restore = find_tool("pg_restore", at_least=max(dumped_by, server))
        psql = find_tool("psql", near=pg_restore.path.parent)
    except BackupError as e:
        raise RestoreError(f"{e}; the target {where} was not touched") from None
    if pg_restore.version < dumped_by:
        raise RestoreError(
            f"pg_restore {pg_restore.version_text} ({pg_restore.path}) is older than the pg_dump "
            f"{manifest.get('pg_dump_version')} that made {backup.name} and cannot read it; the target {where} was "
            f"not touched; install the PostgreSQL {fmt_version(dumped_by)} client tools or newer or set "
            f"{BINDIR_ENV} to their bin folder"
        )
    return pg_restore, psql


def _run_restore(plan: _Restore, preamble: str) -> _Piped:
    """``pg_restore --clean --if-exists`` piped into one ``psql`` transaction: ``preamble`` first, the row count check
    last (files in a private work folder, removed after)."""
    work = Path(tempfile.mkdtemp(prefix="mp-pg-restore-"))
    try:
        pre = work / "preamble.sql"
        pre.write_text(preamble)
        post = work / "check.sql"
        post.write_text(_row_count_check(plan.manifest.get("row_counts") or {}, plan.schema))
        producer = build_command(plan.pg_restore.path, plan.url, ["--clean", "--if-exists", "--file=-",
                                                                  str(plan.backup)], connect=False)
        consumer = build_command(plan.psql.path, plan.url, ["--single-transaction", "--quiet", "--no-psqlrc",
                                                            "--set=ON_ERROR_STOP=1", f"--file={pre}", "--file=-",
                                                            f"--file={post}"])
        consumer.env["PGOPTIONS"] = (consumer.env.get("PGOPTIONS", "") + " -c client_min_messages=warning").strip()
        with tempfile.TemporaryFile() as err_p, tempfile.TemporaryFile() as err_c:
            rc_p, rc_c = _pipe(producer, consumer, err_p, err_c)
            err_p.seek(0)
            err_c.seek(0)
            stderr_p = err_p.read().decode(errors="replace")
            stderr_c = err_c.read().decode(errors="replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _Piped(consumer, rc_p, rc_c, stderr_p, stderr_c)


def _raise_if_failed(plan: _Restore, piped: _Piped) -> None:
    """RestoreError naming the cause when either side of the pipe failed (psql's error first: it rolled back)."""
    backup, where = plan.backup, plan.where
    unchanged = "the target is unchanged (the restore runs in one transaction)"
    if piped.rc_c != 0 and piped.stderr_c.strip():
        err = classify(piped.consumer, piped.stderr_c, where, f"restoring {backup.name} into", unchanged,
                       cls=RestoreError)
        if isinstance(err, RestoreError):
            err = RestoreError(f"{err}; fix the cause (often objects of other schemas that depend on the "
                               "restored tables, or a role that does not own them) and rerun")
        raise err
    if piped.rc_p != 0:
        raise RestoreError(f"pg_restore could not read {backup.name}: {first_error(piped.stderr_p)}; {unchanged}; "
                           "pick another backup")
    if piped.rc_c != 0:
        raise RestoreError(f"restoring {backup.name} into {where} failed (psql exit {piped.rc_c}); {unchanged}")


CHECK_MARK = "maintenance_pipeline restore check"


def _row_count_check(row_counts: dict, schema: str | None) -> str:
    """SQL run last inside the restore's single transaction: every table holds the manifest's row count, or
    the whole restore rolls back (``schema``: the dump's; a dump of the whole database holds ``public``). The count is decided there, before COMMIT, so the application's writes
    after the restore never make it look wrong (nor a wrong restore look right)."""
    if not row_counts:
        return ""
    prefix = f"{quote_ident(schema or 'public')}."  # pg_restore's script empties the search_path
    lines = ["DO $mp_check$ DECLARE n bigint; BEGIN"]
    for table, want in sorted(row_counts.items()):
        name = table.replace("'", "''")
        lines.append(f"  SELECT count(*) INTO n FROM {prefix}{quote_ident(table)}; IF n <> {int(want)} THEN "
                     f"RAISE EXCEPTION '{CHECK_MARK}: table {name} has % rows, the backup''s manifest says {int(want)}',"
                     f" n; END IF;")
    lines.append("END $mp_check$;")
    return "\n".join(lines) + "\n"
