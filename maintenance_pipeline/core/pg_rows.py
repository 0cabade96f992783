"""PostgreSQL dumps read back: a scratch restore of a dump, and its rows compared with the live database.

``scratch_restore`` restores a dump into a fresh ``<db>_mp_scratch_<random>`` database on the
target's server (the backup's restore check, verify's ``rows_preserved`` and foreign-key counts),
and drops it afterwards. ``compare_rows`` checks that every row of the backup is still live.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .checks import AFTER_COMMIT_NOTE, compare_kept_rows
from .dburl import mask_url, parse_url, scrub_passwords
from .errors import BackupError, MaintenanceError
from .pg_archive import list_archive
from .pg_checks import quote_ident as _qi
from .pg_tools import DEFAULT_JOBS, build_command, classify, find_tool, first_error, psycopg_connect, run

SCRATCH_INFIX = "_mp_scratch_"


def _ql(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# --------------------------------------------------------------------------- scratch restore


def scratch_name(dbname: str | None) -> str:
    """``<db>_mp_scratch_<random>``, cut to PostgreSQL's 63-byte identifier limit."""
    suffix = SCRATCH_INFIX + secrets.token_hex(4)
    base = (dbname or "db").encode()[: 63 - len(suffix)].decode(errors="ignore")
    return base + suffix


def _drop_database(admin, name: str) -> None:
    import psycopg

    try:
        admin.execute(f"DROP DATABASE IF EXISTS {_qi(name)} WITH (FORCE)")
    except psycopg.errors.SyntaxError:  # PostgreSQL < 13
        admin.execute(f"DROP DATABASE IF EXISTS {_qi(name)}")


@contextmanager
def scratch_restore(backup_path: str | os.PathLike, url: str, *, jobs: int = DEFAULT_JOBS,
                    schema: str | None = None) -> Iterator[str]:
    """Restore the dump into a fresh scratch database ``<db>_mp_scratch_<random>`` on ``url``'s server.

    Yields the scratch database's URL (it holds the password: mask it before showing it). The scratch
    database is dropped afterwards, whatever happened. The role needs CREATEDB (BackupError otherwise).
    The restore runs without owners and privileges (``--no-owner --no-privileges``), so any role
    that may create databases can do it, with ``jobs`` parallel jobs. ``schema`` is informational: the
    dump holds what it holds (a target with a schema is dumped with ``--schema``).
    """
    import psycopg

    dump = Path(backup_path)
    if not dump.exists():
        raise BackupError(f"backup {dump} does not exist; pick one from the target's backup folder")
    source = mask_url(url)
    u = parse_url(url)
    name = scratch_name(u.database)
    scratch_url = u.set(database=name).render_as_string(hide_password=False)
    admin = psycopg_connect(url, autocommit=True)
    try:
        try:
            info = admin.execute(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                "WHERE datname = current_database()").fetchone()
            options = f" ENCODING {_ql(info[0])} LC_COLLATE {_ql(info[1])} LC_CTYPE {_ql(info[2])}"
            try:
                admin.execute(f"CREATE DATABASE {_qi(name)} TEMPLATE template0{options}")
            except psycopg.errors.InsufficientPrivilege:
                raise
            except psycopg.Error:  # e.g. an ICU database: the server's defaults will do for a scratch copy
                admin.execute(f"CREATE DATABASE {_qi(name)} TEMPLATE template0")
        except psycopg.errors.InsufficientPrivilege:
            user = u.username or "this role"
            raise BackupError(
                f"cannot create a scratch database on {source} to restore the backup into: role {user!r} may not "
                f"create databases; grant it (ALTER ROLE {_qi(user)} CREATEDB) or turn off backups.restore_check"
            ) from None
        except psycopg.Error as e:
            raise BackupError(f"cannot create a scratch database on {source}: {first_error(str(e))}; check "
                              "the server and rerun") from None
        try:
            tool = find_tool("pg_restore")
            listing = list_archive(dump, tool)
            if not listing.ok:
                raise BackupError(f"backup {dump.name} cannot be read ({listing.detail}); pick another backup")
            schemas = [e.name for e in listing.of("SCHEMA")]
            if schemas:  # a dump of the public schema alone creates it: the fresh database already has it
                with psycopg_connect(scratch_url, autocommit=True) as fresh:
                    for s in schemas:
                        fresh.execute(f"DROP SCHEMA IF EXISTS {_qi(s)}")
            args = ["--no-owner", "--no-privileges", "--exit-on-error"]
            if jobs > 1:
                args.append(f"--jobs={jobs}")
            args.append(str(dump))
            cmd = build_command(tool.path, url, args, dbname=name)
            out = run(cmd)
            if out.returncode != 0:
                raise classify(cmd, out.stderr, source, "restoring the backup into a scratch database on",
                               "check that the dump is complete and the server log")
            yield scratch_url
        finally:
            try:
                _drop_database(admin, name)
            except psycopg.Error:
                pass
    finally:
        admin.close()


# --------------------------------------------------------------------------- row comparison


def _stream(conn, sql: str, itersize: int = 20_000):
    with conn.cursor(name=f"mp_{secrets.token_hex(4)}") as cur:
        cur.itersize = itersize
        cur.execute(sql)
        yield from cur


def _scalar(conn, sql: str):
    return conn.execute(sql).fetchone()[0]


def _merge_pk(backup_rows, live_rows) -> int:
    """Rows of ``backup_rows`` ((key..., hash) ordered by key) with no equal row in ``live_rows``."""
    missing = 0
    live = iter(live_rows)
    cur = next(live, None)
    for row in backup_rows:
        key, h = row[:-1], row[-1]
        while cur is not None and cur[:-1] < key:
            cur = next(live, None)
        hashes = set()
        while cur is not None and cur[:-1] == key:  # the live table's own key may differ: keep all matches
            hashes.add(cur[-1])
            cur = next(live, None)
        if h not in hashes:
            missing += 1
    return missing


def _merge_counts(backup_rows, live_rows) -> int:
    """Rows of the multiset ``backup_rows`` ((hash, n) ordered by hash) not in ``live_rows``."""
    missing = 0
    live = iter(live_rows)
    cur = next(live, None)
    for h, n in backup_rows:
        while cur is not None and cur[0] < h:
            cur = next(live, None)
        have = cur[1] if cur is not None and cur[0] == h else 0
        if have < n:
            missing += n - have
    return missing


def compare_rows(live_url: str, scratch_url: str, backup_snapshot, live_snapshot, ignore_tables: Sequence[str],
                 schema: str | None = None, only: set[str] | None = None) -> tuple[bool, str, list[dict]]:
    """Every row of every kept table of the backup (restored at ``scratch_url``) is still in the live database.

    Same semantics as SQLite's ``verify.rows_preserved`` (``checks.compare_kept_rows``): by primary key
    when the backup's key columns are all kept, with the same values in the kept columns; without a
    primary key, as multisets of rows (a lost duplicate counts). Each side computes
    ``md5(ROW(kept columns)::text)`` per row and streams ``(key as text, hash)`` ordered by the key's
    text under the "C" collation (so both sides and Python agree on the order); the two ordered
    streams are merged here. Returns (passed, one-line detail, planned drops: ``{"table", "column",
    "rows", "values"}``). ``only``: compare these tables only (those the migration wrote to).
    """
    ignore = set(ignore_tables or ())
    prefix = f"{_qi(schema)}." if schema else ""
    drops: list[dict] = []
    bconn = lconn = None

    def missing_rows(name: str, kept: list[str], keys: list[str] | None) -> int:
        qt = prefix + _qi(name)
        row_hash = f"md5(ROW({', '.join(_qi(c) for c in kept)})::text)"
        if keys:
            cols = ", ".join(f'({_qi(k)})::text COLLATE "C"' for k in keys)
            order = ", ".join(str(i + 1) for i in range(len(keys)))
            sql = f"SELECT {cols}, {row_hash} FROM {qt} ORDER BY {order}"
            return _merge_pk(_stream(bconn, sql), _stream(lconn, sql))
        sql = f'SELECT {row_hash} COLLATE "C", count(*) FROM {qt} GROUP BY 1 ORDER BY 1'
        return _merge_counts(_stream(bconn, sql), _stream(lconn, sql))

    try:
        bconn = psycopg_connect(scratch_url)
        lconn = psycopg_connect(live_url)
        import psycopg

        for c in (bconn, lconn):
            c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            c.read_only = True
        passed, detail = compare_kept_rows(
            backup_snapshot, live_snapshot, ignore, drops,
            count_rows=lambda name: int(_scalar(bconn, f"SELECT count(*) FROM {prefix}{_qi(name)}")),
            count_values=lambda name, col: int(_scalar(bconn,
                                                       f"SELECT count({_qi(col)}) FROM {prefix}{_qi(name)}")),
            missing_rows=missing_rows, failure_note=AFTER_COMMIT_NOTE, only=only)
        if only is not None:
            untouched = len({n for n in backup_snapshot.tables if n not in ignore} - only)
            if untouched:
                detail += f"; {untouched} other table(s) not written by the migration"
    except MaintenanceError as e:
        return False, f"could not compare rows: {e}", drops
    except Exception as e:  # noqa: BLE001 - psycopg errors: one line, no secrets
        msg = scrub_passwords(" ".join(str(e).split()), live_url, scratch_url)
        return False, f"could not compare rows: {msg[:300]}", drops
    finally:
        for c in (bconn, lconn):
            if c is not None:
                try:
                    c.rollback()
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
    return passed, detail, drops
