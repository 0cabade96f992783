"""PostgreSQL dumps read back: a scratch restore of a dump, and its rows compared with the live database.

``scratch_restore`` restores a dump into a fresh ``<db>_mp_scratch_<random>`` database on the
target's server (the backup's restore check, verify's ``rows_preserved`` and foreign-key counts),
and drops it afterwards. ``compare_rows`` checks that every row of the backup is still live.

A scratch database is marked as ours (``COMMENT ON DATABASE``: ``scratch_mark``), and while its
``Scratch`` lives, the session that made it holds an advisory lock named after it (in the target
database). A run killed (SIGKILL, a server crash, its session killed) leaves its scratch database
behind: ``drop_stale_scratches``, called by a maintain run under the maintenance lock, drops those of
its own database (the exact name pattern and the mark for that database) that nobody uses.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ...shared.verdicts import AFTER_COMMIT_NOTE, RowsVerdict, compare_kept_rows, merge_counted, merge_keyed
from ...dburl import mask_url, parse_url, scrub_passwords
from ...errors import BackupError, MaintenanceError
from .archive import list_archive
from .catalog import quote_ident as _qi
from .tools import DEFAULT_JOBS, build_command, classify, find_tool, first_error, psycopg_connect, run
from .types import base_type, type_key

SCRATCH_INFIX = "_mp_scratch_"
_HEX = 8  # hex digits of a scratch database's random part


def _ql(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# --------------------------------------------------------------------------- scratch restore


def _scratch_base(dbname: str | None) -> str:
    return (dbname or "db").encode()[: 63 - len(SCRATCH_INFIX) - _HEX].decode(errors="ignore")


def scratch_name(dbname: str | None) -> str:
    """``<db>_mp_scratch_<random>``, cut to PostgreSQL's 63-byte identifier limit."""
    return _scratch_base(dbname) + SCRATCH_INFIX + secrets.token_hex(_HEX // 2)


def is_scratch_of(name: str, dbname: str | None) -> bool:
    """``name`` has exactly the form of a scratch database of ``dbname`` (``scratch_name``)."""
    return re.fullmatch(re.escape(_scratch_base(dbname) + SCRATCH_INFIX) + f"[0-9a-f]{{{_HEX}}}", name) is not None


def scratch_mark(dbname: str | None) -> str:
    """The comment on a scratch database of ``dbname``: only databases carrying it are ever dropped as leftovers
    (a name cut to 63 bytes may be shared by two databases; the mark holds the whole name)."""
    return (f'maintenance_pipeline scratch restore of database "{dbname or "db"}"; dropped by its run, or by a '
            "later maintain run once no session uses it")


def _scratch_lock_key(name: str) -> tuple[int, int]:
    """The advisory lock (two int4 keys) a live ``Scratch`` holds, in the target database."""
    digest = hashlib.sha256(f"maintenance_pipeline:scratch:{name}".encode()).digest()
    return (int.from_bytes(hashlib.sha256(b"maintenance_pipeline:scratch").digest()[:4], "big", signed=True),
            int.from_bytes(digest[:4], "big", signed=True))


def _drop_database(admin, name: str) -> None:
    import psycopg

    try:
        admin.execute(f"DROP DATABASE IF EXISTS {_qi(name)} WITH (FORCE)")
    except psycopg.errors.SyntaxError:  # PostgreSQL < 13
        admin.execute(f"DROP DATABASE IF EXISTS {_qi(name)}")


def drop_stale_scratches(url: str) -> list[str]:
    """Drop the scratch databases a killed run left for ``url``'s database; returns their names.

    Only databases whose name has exactly the form ``scratch_name`` gives this database, that carry its
    ``scratch_mark``, that no session is connected to and whose advisory lock no live ``Scratch`` holds; the
    DROP has no FORCE (a session connecting meanwhile makes it fail: that database is left). Call it under
    the maintenance lock. Best effort: a database that cannot be dropped (another role's, in use) is left,
    and a failure to connect returns nothing (the run's own steps report that)."""
    import psycopg

    dbname = parse_url(url).database
    try:
        conn = psycopg_connect(url, autocommit=True)
    except MaintenanceError:
        return []
    dropped: list[str] = []
    try:
        rows = conn.execute(
            "SELECT d.datname, shobj_description(d.oid, 'pg_database'), "
            "  EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid) "
            "FROM pg_database d WHERE strpos(d.datname, %s) > 0 ORDER BY 1", (SCRATCH_INFIX,)).fetchall()
        mark = scratch_mark(dbname)
        for name, comment, in_use in rows:
            if in_use or comment != mark or not is_scratch_of(name, dbname):
                continue
            key = _scratch_lock_key(name)
            if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", key).fetchone()[0]:
                continue  # its run is alive (between its restore and its use)
            try:
                conn.execute(f"DROP DATABASE {_qi(name)}")  # no FORCE: a connected session makes it fail
                dropped.append(name)
            except psycopg.Error:
                pass
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", key)
    except psycopg.Error:
        pass
    finally:
        try:
            conn.close()
        except psycopg.Error:
            pass
    return dropped


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
    scratch = Scratch(backup_path, url, jobs=jobs)
    try:
        scratch.restore()
        yield scratch.url
    finally:
        scratch.drop()


def _failed_statement(stderr: str) -> str:
    """The head of the statement pg_restore failed on ("Command was: ..."), without what follows the object's name
    (a body, a comment's text, a definition): "it failed at CREATE EXTENSION IF NOT EXISTS amcheck; ", or ""."""
    m = re.search(r"^Command was: (.*)$", stderr, re.M)
    if not m:
        return ""
    head = re.split(r"\(| AS | IS | USING | WITH | CHECK |;", m.group(1), maxsplit=1)[0]
    return f"it failed at {' '.join(head.split())[:100]}; " if head.strip() else ""


class Scratch:
    """A scratch database holding a dump: ``restore()`` (or ``start()`` it in a thread and ``wait()``), ``drop()``.

    A maintain run starts the restore of its backup before the migration's BEGIN, so it runs beside
    the migration and is ready for the rows check before COMMIT.

    The dump's schemas are created first (``CREATE SCHEMA IF NOT EXISTS``) and their own entries left out
    of the restore: a dump of a whole database records ``public`` without creating it (it is there already,
    whoever owns it), a dump made with ``--schema`` creates its schema."""

    def __init__(self, backup_path: str | os.PathLike, url: str, *, jobs: int = DEFAULT_JOBS):
        self.dump, self.source_url = Path(backup_path), url
        self.jobs = jobs
        u = parse_url(url)
        self.name = scratch_name(u.database)
        self.mark = scratch_mark(u.database)
        self.url = u.set(database=self.name).render_as_string(hide_password=False)
        self._admin = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> "Scratch":
        def work() -> None:
            try:
                self.restore()
            except BaseException as e:  # noqa: BLE001 - re-raised by wait()
                self._error = e

        self._thread = threading.Thread(target=work, name=f"scratch-restore-{self.name}", daemon=True)
        self._thread.start()
        return self

    def ready(self) -> bool:
        """Whether ``wait`` would return at once (the restore finished, or failed)."""
        return self._thread is None or not self._thread.is_alive()

    def wait(self) -> str:
        """The scratch database's URL once the restore finished; its error if it failed."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.url

    def _create(self) -> None:
        """CREATE DATABASE (the target's encoding and locale, else the server's), marked as ours; the session
        making it holds the scratch's advisory lock until ``drop``."""
        import psycopg

        source = mask_url(self.source_url)
        self._admin = admin = psycopg_connect(self.source_url, autocommit=True)
        try:
            # it idles until ``drop`` (the whole migration): a role's idle timeouts must not end it (and its lock)
            admin.execute("SELECT set_config(name, '0', false) FROM pg_settings "
                          "WHERE name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout')")
            admin.execute("SELECT pg_try_advisory_lock(%s, %s)", _scratch_lock_key(self.name))
            info = admin.execute(
                "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                "WHERE datname = current_database()").fetchone()
            options = f" ENCODING {_ql(info[0])} LC_COLLATE {_ql(info[1])} LC_CTYPE {_ql(info[2])}"
            try:
                admin.execute(f"CREATE DATABASE {_qi(self.name)} TEMPLATE template0{options}")
            except psycopg.errors.InsufficientPrivilege:
                raise
            except psycopg.Error:  # e.g. an ICU database: the server's defaults will do for a scratch copy
                admin.execute(f"CREATE DATABASE {_qi(self.name)} TEMPLATE template0")
            admin.execute(f"COMMENT ON DATABASE {_qi(self.name)} IS {_ql(self.mark)}")
        except psycopg.errors.InsufficientPrivilege:
            user = parse_url(self.source_url).username or "this role"
            raise BackupError(
                f"role {user!r} may not create databases (a scratch restore of the backup is the comparison); "
                f"ALTER ROLE {_qi(user)} CREATEDB, or turn off backups.postgresql.restore_check"
            ) from None
        except psycopg.Error as e:
            raise BackupError(f"cannot create a scratch database on {source}: {first_error(str(e))}; check "
                              "the server and rerun") from None

    def restore(self) -> None:
        if not self.dump.exists():
            raise BackupError(f"backup {self.dump} does not exist; pick one from the target's backup folder")
        self._create()
        tool = find_tool("pg_restore")
        listing = list_archive(self.dump, tool)
        if not listing.ok:
            raise BackupError(f"backup {self.dump.name} cannot be read ({listing.detail}); pick another backup")
        schemas = sorted({e.name for e in listing.of("SCHEMA")})
        work = Path(tempfile.mkdtemp(prefix="mp-pg-scratch-"))
        try:
            args = ["--no-owner", "--no-privileges", "--exit-on-error"]
            if schemas:
                with psycopg_connect(self.url, autocommit=True) as fresh:
                    for s in schemas:
                        fresh.execute(f"CREATE SCHEMA IF NOT EXISTS {_qi(s)}")
                args.append(f"--use-list={self._use_list(tool, work)}")
            if self.jobs > 1:
                args.append(f"--jobs={self.jobs}")
            args.append(str(self.dump))
            cmd = build_command(tool.path, self.source_url, args, dbname=self.name)
            out = run(cmd)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if out.returncode != 0:
            at = cmd.scrub(_failed_statement(out.stderr))
            raise classify(cmd, out.stderr, mask_url(self.source_url), "restoring the backup into a scratch database "
                           "on", f"{at}the scratch restore runs as the target's role: give it what that needs (the "
                           "server log says more), then rerun")

    def _use_list(self, tool, work: Path) -> Path:
        """The dump's table of contents without its SCHEMA entries (created already), for ``--use-list``."""
        out = run(build_command(tool.path, None, ["--list", str(self.dump)], connect=False), timeout=600)
        if out.returncode != 0:
            raise BackupError(f"backup {self.dump.name} cannot be read (pg_restore --list failed: "
                              f"{first_error(out.stderr)}); pick another backup")
        path = work / "toc.list"
        path.write_text("".join(";" + line + "\n" if re.match(r"^\d+; \d+ \d+ SCHEMA ", line) else line + "\n"
                                for line in out.stdout.splitlines()))
        return path

    def drop(self) -> None:
        """Drop the scratch database (after the restore, if one is running); never raises. If the session that
        made it is gone (killed by the server's idle-session timeout, say), a new one drops it."""
        import psycopg

        if self._thread is not None and self._thread.is_alive() and self._admin is not None:
            try:  # a restore no compare needs any more: end it (FORCE ends pg_restore's sessions) instead of waiting
                _drop_database(self._admin, self.name)
            except psycopg.Error:
                pass
        if self._thread is not None:
            self._thread.join()
        admin, self._admin = self._admin, None
        if admin is None:
            return
        try:
            _drop_database(admin, self.name)
        except psycopg.Error:
            try:
                with psycopg_connect(self.source_url, autocommit=True) as fresh:
                    _drop_database(fresh, self.name)
            except (psycopg.Error, MaintenanceError):
                pass
        finally:
            try:
                admin.close()
            except psycopg.Error:
                pass


# --------------------------------------------------------------------------- row comparison


def _stream(conn, sql: str, itersize: int = 20_000):
    with conn.cursor(name=f"mp_{secrets.token_hex(4)}") as cur:
        cur.itersize = itersize
        cur.execute(sql)
        yield from cur


def _scalar(conn, sql: str):
    return conn.execute(sql).fetchone()[0]


def _keyed(rows, n_keys: int):
    """``(k1, …, kn, digest)`` rows as ``(key, digest)`` for ``checks.merge_keyed`` (a one-column key as itself)."""
    for r in rows:
        yield (r[0] if n_keys == 1 else tuple(r[:n_keys]), r[n_keys])


def _key_label(key) -> str:
    return repr(key) if not isinstance(key, tuple) else "(" + ", ".join(repr(k) for k in key) + ")"


def row_queries(qualified: str, kept: list[str], keys: list[str] | None,
                casts: dict[str, tuple[str, str]] | None = None, through_text: bool = False) -> str:
    """The query both sides stream for one table: ``md5(ROW(kept columns)::text)`` per row, with the key's
    text under the "C" collation (so both sides and Python agree on the order); without a usable key,
    ``(digest, count)`` per distinct row.

    ``casts``: {column: (its type in the backup, its type now)} for the backup's side of a column whose type the
    migration changed: its value as the new type renders it (``10`` is ``10.00`` as ``numeric(8,2)``), when the cast
    loses nothing (cast back, it is the value it was); a value the cast changes (``10.5`` as ``numeric(8,0)``) keeps
    its old text, so it counts as changed. ``through_text``: cast through the value's text (enums)."""
    casts = casts or {}

    def value(c: str) -> str:
        if c not in casts:
            return _qi(c)
        old, new = casts[c]
        src = f"({_qi(c)})::text" if through_text else _qi(c)
        back = f"CAST(CAST({src} AS {new})::text AS {old})" if through_text else f"CAST(CAST({src} AS {new}) AS {old})"
        return (f"CASE WHEN {back} IS NOT DISTINCT FROM {_qi(c)} THEN CAST({src} AS {new})::text "
                f"ELSE ({_qi(c)})::text END")

    row_hash = f"md5(ROW({', '.join(value(c) for c in kept)})::text)"
    if keys:
        cols = ", ".join(f'({value(k)})::text COLLATE "C"' for k in keys)
        order = ", ".join(str(i + 1) for i in range(len(keys)))
        return f"SELECT {cols}, {row_hash} FROM {qualified} ORDER BY {order}"
    return f'SELECT {row_hash} COLLATE "C", count(*) FROM {qualified} GROUP BY 1 ORDER BY 1'


def _retyped(backup_snapshot, live_snapshot) -> dict[str, dict[str, tuple[str, str]]]:
    """{table: {column: (type in the backup, type now)}} of the kept columns whose type changed (not only their
    collation or how they get their values), as ``CAST`` accepts them."""
    def plain(declared: str) -> str:
        return re.split(r"\s+COLLATE\s+", base_type(declared), maxsplit=1, flags=re.IGNORECASE)[0].strip()

    out: dict[str, dict[str, tuple[str, str]]] = {}
    for name, bt in backup_snapshot.tables.items():
        lt = live_snapshot.tables.get(name)
        for col in bt.columns if lt is not None else ():
            now = lt.column(col.name)
            if now is None or not col.type or not now.type:
                continue
            old, new = plain(col.type), plain(now.type)
            if type_key(old) != type_key(new):
                out.setdefault(name, {})[col.name] = (old, new)
    return out


def merge_streams(ref_rows, live_rows, keys: list[str] | None) -> tuple[int, list[str]]:
    """Rows of the reference missing or changed on the live side: (how many, a few keys)."""
    if keys:
        n, sample = merge_keyed(_keyed(ref_rows, len(keys)), _keyed(live_rows, len(keys)))
        return n, [_key_label(k) for k in sample]
    return merge_counted(ref_rows, live_rows)


def compare_rows(live_url: str, scratch_url: str, backup_snapshot, live_snapshot, ignore_tables: Sequence[str],
                 schema: str | None = None, only: set[str] | None = None) -> tuple[bool, str, list[dict]]:
    """Every row of every kept table of the backup (restored at ``scratch_url``) is still in the live database.

    Same semantics as SQLite's ``verify.rows_preserved`` (``checks.compare_kept_rows``): by primary key
    when the backup's key columns are all kept, with the same values in the kept columns; without a
    primary key, as multisets of rows (a lost duplicate counts). Each side computes
    ``md5(ROW(kept columns)::text)`` per row and streams ``(key as text, hash)`` ordered by the key's
    text under the "C" collation (so both sides and Python agree on the order); the two ordered
    streams are merged here; a column whose type the migration changed is compared by meaning (the backup's
    value cast to the new type when the cast keeps it: ``row_queries``). Returns (passed, one-line detail, planned
    drops: ``{"table", "column", "rows", "values"}``). ``only``: compare these tables only (those the migration
    wrote to).
    """
    import psycopg

    try:
        live = psycopg_connect(live_url)
    except MaintenanceError as e:
        return False, f"could not compare rows: {e}", []
    try:
        live.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        live.read_only = True
        v = _compare(live, scratch_url, backup_snapshot, live_snapshot, ignore_tables, schema=schema, only=only,
                     failure_note=AFTER_COMMIT_NOTE, secrets=(live_url,))
    finally:
        try:
            live.rollback()
            live.close()
        except Exception:  # noqa: BLE001
            pass
    return v.passed, v.detail, v.drops


def compare_in_transaction(conn, scratch_url: str, backup_snapshot, live_snapshot, ignore_tables: Sequence[str], *,
                           schema: str | None, only: set[str] | None, declared: dict[str, str]) -> RowsVerdict:
    """``rows_preserved`` of a migration, decided before its COMMIT: the backup (restored at ``scratch_url``)
    against the migration's own transaction (``conn``: its SQLAlchemy connection, which sees its own
    changes; REPEATABLE READ, so rows other sessions commit meanwhile are not seen), table by table,
    both sides streamed in key order and merged here. ``only``: the tables the migration wrote to."""
    # psycopg: its named cursors run inside the migration's open transaction
    return _compare(conn.connection.driver_connection, scratch_url, backup_snapshot, live_snapshot, ignore_tables,
                    schema=schema, only=only, declared=declared)


def _compare(live, scratch_url: str, backup_snapshot, live_snapshot, ignore_tables: Sequence[str], *,
             schema: str | None, only: set[str] | None, declared: dict[str, str] | None = None,
             failure_note: str = "", secrets: tuple[str, ...] = ()) -> RowsVerdict:
    """The backup restored at ``scratch_url`` against the psycopg connection ``live``."""
    import psycopg

    ignore = set(ignore_tables or ())
    prefix = f"{_qi(schema)}." if schema else ""
    drops: list[dict] = []
    losses: list[dict] = []
    bconn = None

    retyped = _retyped(backup_snapshot, live_snapshot)

    def missing_rows(name: str, kept: list[str], keys: list[str] | None) -> tuple[int, list[str]]:
        sql = row_queries(prefix + _qi(name), kept, keys)
        casts = {c: t for c, t in retyped.get(name, {}).items() if c in kept}
        # a retyped column is compared by meaning: the backup's value cast to the new type (directly, else through
        # its text); a cast the backup's server cannot make (a type the migration created) compares the text
        for how in ((False, True) if casts else ()):
            ref_rows, live_rows = _stream(bconn, row_queries(prefix + _qi(name), kept, keys, casts, how)), \
                _stream(live, sql)
            try:
                return merge_streams(ref_rows, live_rows, keys)
            except psycopg.Error:
                if bconn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                    raise  # not the backup's cast: the comparison itself failed
                bconn.rollback()
            finally:
                ref_rows.close()
                live_rows.close()
        return merge_streams(_stream(bconn, sql), _stream(live, sql), keys)

    try:
        bconn = psycopg_connect(scratch_url)
        bconn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        bconn.read_only = True
        # values are rendered (and a timestamp cast to timestamptz) in the time zone of the live side's session
        bconn.execute("SELECT set_config('TimeZone', %s, false)", (_scalar(live, "SHOW TimeZone"),))
        bconn.commit()
        passed, detail = compare_kept_rows(
            backup_snapshot, live_snapshot, ignore, drops,
            count_rows=lambda name: int(_scalar(bconn, f"SELECT count(*) FROM {prefix}{_qi(name)}")),
            count_values=lambda name, col: int(_scalar(bconn,
                                                       f"SELECT count({_qi(col)}) FROM {prefix}{_qi(name)}")),
            missing_rows=missing_rows, failure_note=failure_note, only=only, declared=declared, losses=losses)
        if only is not None:
            untouched = len({n for n in backup_snapshot.tables if n not in ignore} - only)
            if untouched:
                detail += f"; {untouched} other table(s) not written by the migration"
    except MaintenanceError as e:
        return RowsVerdict(False, f"could not compare rows: {e}", drops, [], error=str(e))
    except Exception as e:  # noqa: BLE001 - psycopg errors: one line, no secrets
        msg = scrub_passwords(" ".join(str(e).split()), scratch_url, *secrets)[:300]
        return RowsVerdict(False, f"could not compare rows: {msg}", drops, [], error=msg)
    finally:
        if bconn is not None:
            try:
                bconn.rollback()
                bconn.close()
            except Exception:  # noqa: BLE001
                pass
    return RowsVerdict(passed, detail, drops, losses)
