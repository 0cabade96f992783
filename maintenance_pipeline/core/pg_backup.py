"""PostgreSQL backups: ``pg_dump`` into the backup folder, ``pg_restore`` back, and row comparison.

This module plugs into the dialect seam of ``backup.py`` (``_BACKENDS`` / ``_RESTORERS``): the
layout, manifests, listing and retention are shared with SQLite.

Layout (SPEC §3, op "backup")::

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
   (``backups.restore_check``), and only then moved to its final name (a directory is renamed onto a
   freshly made empty folder of that name, a file is hard-linked: neither ever overwrites anything).
   The manifest is written after it. On any failure nothing is left behind.

Speed: measured on ~0.9 GB, ``pg_dump -Fc`` with its default compression took 27.9 s, ``-Fc -Z0``
4.2 s and ``-Fd -j 2 -Z0`` 3.0 s: compression, not I/O, is the cost. The default is therefore the
directory format, 2 jobs, no compression (``backups.pg_format / pg_jobs / pg_compress``).

sha256 of a directory dump: the sha256 of the ``sha256sum``-style listing of its files in name
order (``<sha256 of file>  <name>\\n`` per file); the manifest also keeps each file's sha256 under
``files``. By hand: ``cd <dump> && LC_ALL=C sha256sum * | sha256sum``.

Secrets: the password never appears on a command line. Every child (``pg_dump``, ``pg_restore``,
``psql``) is built by ``build_command``: host, port, user and database are separate arguments, the
password travels in the child's environment (``PGPASSWORD``), which only the same user can read.
Error messages use ``mask_url`` and any password is scrubbed from a child's stderr.

Restore
-------
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

import functools
import glob
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import backup as bk
from .dburl import mask_url, open_engine, parse_url, translate_error
from .errors import (
    BackupError,
    ConnectionFailedError,
    DatabaseLockedError,
    MaintenanceError,
    RestoreError,
)

BINDIR_ENV = "MAINTENANCE_PG_BINDIR"
FORMATS = {"directory": "d", "custom": "c"}
DEFAULT_FORMAT = "directory"
DEFAULT_JOBS = 2
DEFAULT_COMPRESS = 0
SCRATCH_INFIX = "_mp_scratch_"
_CHUNK = 1 << 20
_TOOLS = ("pg_dump", "pg_restore", "psql")
_INSTALL_GLOBS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # RHEL (PGDG)
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
)
# URL query parameters libpq also reads from the environment (so they need no command-line argument)
_QUERY_ENV = {
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL", "sslpassword": None, "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME", "options": "PGOPTIONS", "target_session_attrs": "PGTARGETSESSIONATTRS",
    "gssencmode": "PGGSSENCMODE", "channel_binding": "PGCHANNELBINDING", "passfile": "PGPASSFILE",
    "service": "PGSERVICE", "sslcompression": "PGSSLCOMPRESSION", "krbsrvname": "PGKRBSRVNAME",
}


# --------------------------------------------------------------------------- connection and commands


@dataclass(frozen=True)
class PgConn:
    """Where a PostgreSQL URL points; ``password`` is never shown by repr."""

    host: str | None
    port: int | None
    user: str | None
    dbname: str | None
    password: str | None = field(default=None, repr=False)
    env: tuple[tuple[str, str], ...] = ()  # libpq environment variables from the URL's query
    masked: str = ""


def conn_info(url: str) -> PgConn:
    u = parse_url(url)
    if u.get_backend_name() != "postgresql":
        raise BackupError(f"{mask_url(url)} is not a PostgreSQL URL")
    host, env = u.host, []
    for key, value in (u.query or {}).items():
        if isinstance(value, tuple):
            value = value[-1]
        if key == "host" and not host:
            host = str(value)
        elif key == "port" and u.port is None:
            env.append(("PGPORT", str(value)))
        elif _QUERY_ENV.get(key):
            env.append((_QUERY_ENV[key], str(value)))
    return PgConn(host=host or None, port=u.port, user=u.username or None, dbname=u.database or None,
                  password=u.password, env=tuple(env), masked=mask_url(url))


@dataclass(frozen=True)
class PgCommand:
    """One child process: its argv (never holds the password) and its environment (may)."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with the password (if any) replaced by ***; for child output in messages."""
        if self.password:
            text = text.replace(self.password, "***")
        return text


def _dbname_arg(name: str) -> str:
    # pg_dump/pg_restore/psql read a --dbname holding "=" or a URI prefix as a connection string
    if "=" in name or name.startswith(("postgres://", "postgresql://")):
        return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return name


def build_command(tool: str | os.PathLike, url: str | None, args: Sequence[str] = (), *,
                  dbname: str | None = None, connect: bool = True,
                  base_env: dict[str, str] | None = None) -> PgCommand:
    """The argv and environment of ``tool`` (``pg_dump``/``pg_restore``/``psql`` or a path to one).

    Host, port, user and database are separate arguments (``dbname`` overrides the URL's); the
    password goes into the child's environment as ``PGPASSWORD`` and nowhere else. Every child is
    built here, so a test can assert on exactly what would be executed. ``connect=False`` builds a
    command that does not connect (``pg_restore --list``): no connection arguments, no password.
    """
    env = dict(os.environ if base_env is None else base_env)
    argv = [str(tool)]
    password = None
    info = conn_info(url) if url is not None else None
    if connect:
        if info is None:
            raise ValueError("build_command(connect=True) needs a URL")
        env.update(info.env)
        if info.password is not None:
            env["PGPASSWORD"] = info.password
            password = info.password
        env.setdefault("PGCONNECT_TIMEOUT", "10")
        env.setdefault("PGAPPNAME", "maintenance_pipeline")
        if info.host:
            argv.append(f"--host={info.host}")
        if info.port:
            argv.append(f"--port={info.port}")
        if info.user:
            argv.append(f"--username={info.user}")
        argv.append("--no-password")  # never wait for a password prompt
        db = dbname or info.dbname
        if db:
            argv.append(f"--dbname={_dbname_arg(db)}")
    argv.extend(str(a) for a in args)
    return PgCommand(argv=argv, env=env, password=password)


# --------------------------------------------------------------------------- finding the tools


@dataclass(frozen=True)
class PgTool:
    name: str
    path: Path
    version: tuple[int, ...]  # (15,) for 15.x, (9, 6) for 9.6.x
    version_text: str  # "15.18"


def version_tuple(text_or_num) -> tuple[int, ...]:
    """(major,) from ``server_version_num`` (150018) or a version text ("15.18", "9.6.24", "17beta1")."""
    if isinstance(text_or_num, int) or str(text_or_num).isdigit():
        n = int(text_or_num)
        return (n // 10000,) if n >= 100000 else (n // 10000, n // 100 % 100)
    m = re.match(r"\s*(\d+)(?:\.(\d+))?", str(text_or_num))
    if not m:
        return ()
    major = int(m.group(1))
    return (major,) if major >= 10 else (major, int(m.group(2) or 0))


def _fmt_version(v: tuple[int, ...]) -> str:
    return ".".join(str(x) for x in v) or "?"


@functools.lru_cache(maxsize=64)
def _tool_version_cached(path: str, mtime_ns: int, size: int) -> tuple[tuple[int, ...], str]:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30,
                             errors="replace", env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError) as e:
        raise BackupError(f"cannot run {path} --version ({e}); reinstall the PostgreSQL client tools or set "
                          f"{BINDIR_ENV} to a folder holding working ones") from None
    m = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*\w*)", out.stdout)
    if out.returncode != 0 or not m:
        first = (out.stdout or out.stderr or "").strip().splitlines()[:1]
        raise BackupError(f"{path} does not look like a PostgreSQL tool ({path} --version said "
                          f"{first[0] if first else 'nothing'!r}); set {BINDIR_ENV} to the PostgreSQL bin folder")
    return version_tuple(m.group(1)), m.group(1)


def tool_version(path: Path) -> tuple[tuple[int, ...], str]:
    st = path.stat()
    return _tool_version_cached(str(path), st.st_mtime_ns, st.st_size)


def _usable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _candidates(name: str) -> list[Path]:
    out: list[Path] = []
    found = shutil.which(name)
    if found:
        out.append(Path(found))
    dirs = []
    for pattern in _INSTALL_GLOBS:
        dirs.extend(glob.glob(pattern))
    dirs.sort(key=lambda d: [int(x) for x in re.findall(r"\d+", d)] or [0], reverse=True)
    for d in dirs:
        p = Path(d) / name
        if _usable(p) and p not in out:
            out.append(p)
    return out


def find_tool(name: str, *, at_least: tuple[int, ...] = (), near: Path | None = None) -> PgTool:
    """Locate ``name`` (``pg_dump``/``pg_restore``/``psql``).

    ``MAINTENANCE_PG_BINDIR`` (env) wins when set. Otherwise the tool beside ``near`` (the folder of
    an already chosen tool), then ``PATH``, then the usual install folders; the first whose version is
    at least ``at_least``, else the newest found (the caller then reports the version mismatch).
    Raises BackupError naming the fix when there is none.
    """
    override = os.environ.get(BINDIR_ENV)
    if override:
        path = Path(override).expanduser() / name
        if not _usable(path):
            raise BackupError(
                f"{name} not found in {BINDIR_ENV}={override}; install the PostgreSQL client tools (Debian: "
                f"apt-get install postgresql-client) or point {BINDIR_ENV} at the folder holding {name}"
            )
        v, text = tool_version(path)
        return PgTool(name, path, v, text)
    candidates = _candidates(name)
    if near is not None and _usable(near / name):
        candidates.insert(0, near / name)
    if not candidates:
        raise BackupError(
            f"{name} not found (looked on PATH and in {', '.join(_INSTALL_GLOBS[:2])}); install the PostgreSQL "
            f"client tools (Debian: apt-get install postgresql-client) or set {BINDIR_ENV} to their bin folder"
        )
    best: PgTool | None = None
    for path in candidates:
        try:
            v, text = tool_version(path)
        except BackupError:
            continue
        tool = PgTool(name, path, v, text)
        if v >= at_least:
            return tool
        if best is None or v > best.version:
            best = tool
    if best is None:
        raise BackupError(f"no working {name} found (tried {', '.join(map(str, candidates))}); reinstall the "
                          f"PostgreSQL client tools or set {BINDIR_ENV} to their bin folder")
    return best


def _check_dump_version(tool: PgTool, server: tuple[int, ...], server_text: str, where: str) -> None:
    if tool.version < server:
        major = _fmt_version(server)
        raise BackupError(
            f"{tool.name} {tool.version_text} ({tool.path}) is older than the server {where} (PostgreSQL "
            f"{server_text}) and cannot dump it; install the PostgreSQL {major} client tools or newer (Debian: "
            f"apt-get install postgresql-client-{major}) or set {BINDIR_ENV} to their bin folder"
        )


# --------------------------------------------------------------------------- running children


def _first_error(stderr: str) -> str:
    """The first error line of a child's stderr (with its DETAIL line, if any), on one line."""
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    index = 0
    for i, line in enumerate(lines):
        if "error:" in line.lower() or "FATAL:" in line:
            index = i
            break
    if not lines:
        return "no error message"
    line = lines[index]
    line = re.sub(r"^(pg_dump|pg_restore|psql)(:[^:]*:\d+)?:\s*(error:\s*)?", "", line)
    line = re.sub(r"^(ERROR|FATAL):\s*", "", line)
    if index + 1 < len(lines) and re.match(r"^(psql:[^:]*:\d+:\s*)?DETAIL:", lines[index + 1]):
        line += " (" + re.sub(r"^(psql:[^:]*:\d+:\s*)?DETAIL:\s*", "", lines[index + 1]).rstrip(".") + ")"
    return line[:400]


def _classify(cmd: PgCommand, stderr: str, where: str, what: str, fix: str, cls=BackupError) -> MaintenanceError:
    msg = cmd.scrub(_first_error(stderr))
    low = msg.lower()
    if any(k in low for k in ("password authentication failed", "no password supplied", "could not connect",
                              "connection refused", "timeout expired", "could not translate host name",
                              "no route to host", "server closed the connection")) or (
            "database" in low and "does not exist" in low):
        return ConnectionFailedError(f"cannot connect to {where}: {msg}; check host, port, database name and "
                                     "credentials")
    if "lock timeout" in low or "could not obtain lock" in low:
        return DatabaseLockedError(f"{what} {where} waited too long for a table lock ({msg}); another session "
                                   "holds a lock on it: wait for it to finish or stop it, then rerun")
    if "no space left" in low or "disk quota" in low:
        return BackupError(f"disk full during {what} {where} ({msg}); free space there and rerun")
    return cls(f"{what} {where} failed: {msg}; {fix}")


def _locked_or(error: Exception, where: str, busy_timeout: float) -> Exception:
    if "lock timeout" in str(error).lower():
        return DatabaseLockedError(f"backup of {where} waited {busy_timeout:g}s for a table lock held by another "
                                   "session; wait for it to finish or stop it, then rerun")
    return error


def _run(cmd: PgCommand, *, timeout: float | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd.argv, env=cmd.env, capture_output=True, text=True, errors="replace",
                              timeout=timeout, umask=0o077, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BackupError(f"{cmd.argv[0]} not found; install the PostgreSQL client tools or set {BINDIR_ENV}") \
            from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{Path(cmd.argv[0]).name} did not finish within {timeout:g}s; check the server and "
                          "rerun") from None


# --------------------------------------------------------------------------- archive listing and hashing


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str  # "TABLE", "TABLE DATA", "VIEW", ...
    schema: str
    name: str


_TOC_RE = re.compile(
    r"^(\d+); \d+ \d+ (MATERIALIZED VIEW DATA|SEQUENCE SET|SEQUENCE OWNED BY|TABLE DATA|MATERIALIZED VIEW|"
    r"FOREIGN TABLE|TABLE|VIEW|SEQUENCE|SCHEMA) (\S+) (.+) (\S+)$"
)


@dataclass
class Listing:
    ok: bool
    detail: str  # one line
    entries: int = 0
    relations: list[TocEntry] = field(default_factory=list)
    header: dict[str, str] = field(default_factory=dict)

    def of(self, *descs: str) -> list[TocEntry]:
        return [e for e in self.relations if e.desc in descs]


def list_archive(path: Path, tool: PgTool | None = None) -> Listing:
    """``pg_restore --list`` of a dump: readable?, its TOC's relations, and (directory) data files present."""
    tool = tool or find_tool("pg_restore")
    out = _run(build_command(tool.path, None, ["--list", str(path)], connect=False), timeout=600)
    if out.returncode != 0:
        return Listing(False, f"pg_restore --list failed: {_first_error(out.stderr)}")
    header, rels, n = {}, [], 0
    for line in out.stdout.splitlines():
        if line.startswith(";"):
            m = re.match(r";\s+([^:]+):\s*(.*)$", line)
            if m:
                header[m.group(1).strip()] = m.group(2).strip()
            continue
        if not line.strip():
            continue
        n += 1
        m = _TOC_RE.match(line)
        if m:
            rels.append(TocEntry(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    listing = Listing(True, "", n, rels, header)
    if path.is_dir():
        names = set(os.listdir(path))
        missing = [e.name for e in listing.of("TABLE DATA")
                   if not any(f == f"{e.dump_id}.dat" or f.startswith(f"{e.dump_id}.dat.") for f in names)]
        if missing:
            return Listing(False, f"pg_restore --list ok but the data of {len(missing)} table(s) is missing from "
                                  f"the dump folder ({', '.join(missing[:5])})", n, rels, header)
    listing.detail = f"pg_restore --list ok: {n} entries, {len(listing.of('TABLE DATA'))} tables with data"
    return listing


def _sha256_one(path: Path) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK * 4)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def dump_files(path: Path) -> list[Path]:
    """Files of a directory dump in a stable order (relative names, sorted bytewise)."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(path).as_posix().encode())


def sha256_dump(path: str | os.PathLike) -> tuple[str, dict[str, str], int]:
    """(sha256, {file: sha256}, bytes) of a dump. A file: its own hash. A directory: the sha256 of
    ``"<sha256>  <name>\\n"`` over its files in name order (``LC_ALL=C sha256sum * | sha256sum``)."""
    path = Path(path)
    if not path.is_dir():
        return _sha256_one(path), {}, path.stat().st_size
    files = dump_files(path)
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        digests = list(pool.map(_sha256_one, files))
    names = [p.relative_to(path).as_posix() for p in files]
    listing = "".join(f"{d}  {n}\n" for d, n in zip(digests, names))
    total = sum(p.stat().st_size for p in files)
    return hashlib.sha256(listing.encode()).hexdigest(), dict(zip(names, digests)), total


# --------------------------------------------------------------------------- helpers on the live database


def _qi(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _ql(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _psycopg_kwargs(url: str) -> dict:
    info = conn_info(url)
    u = parse_url(url)
    kw: dict = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in (u.query or {}).items()}
    for k, v in (("host", info.host), ("port", info.port), ("user", info.user), ("dbname", info.dbname),
                 ("password", info.password)):
        if v is not None:
            kw[k] = v
    kw.setdefault("connect_timeout", 10)
    return kw


def _connect(url: str, *, autocommit: bool = False):
    import psycopg

    try:
        return psycopg.connect(**_psycopg_kwargs(url), autocommit=autocommit)
    except psycopg.Error as e:
        raise translate_error(e, url) from None


def _live_describe(conn, schema: str | None) -> tuple[str, dict[str, dict]]:
    from .snapshot import table_counts, take_snapshot

    snap = take_snapshot(conn, schema=schema)
    counts = table_counts(conn, sorted(snap.tables), schema=schema)
    tables = {n: {"columns": int(v["columns"]), "rows": int(v["rows"])} for n, v in sorted(counts.items())}
    return snap.fingerprint, tables


def _describe_url(url: str, schema: str | None) -> tuple[str, dict[str, dict]]:
    import sqlalchemy as sa

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return _live_describe(conn, schema)
    except sa.exc.DBAPIError as e:
        raise translate_error(e, url) from None
    finally:
        engine.dispose()


def _data_size(conn, schema: str | None) -> int:
    where = "n.nspname = %(s)s" if schema else \
        "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'"
    return int(conn.exec_driver_sql(
        "SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n "
        f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND {where}", {"s": schema} if schema else {}
    ).scalar() or 0)


# --------------------------------------------------------------------------- backup


def _chmod_tree(path: Path) -> None:
    if path.is_dir():
        os.chmod(path, bk.DIR_MODE)
        for root, dirs, files in os.walk(path):
            for d in dirs:
                os.chmod(os.path.join(root, d), bk.DIR_MODE)
            for f in files:
                os.chmod(os.path.join(root, f), bk.FILE_MODE)
    else:
        os.chmod(path, bk.FILE_MODE)


def _fsync_tree(path: Path) -> None:
    if path.is_dir():
        for p in dump_files(path):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        bk._fsync_dir(path)
    else:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rename_dir_unique(src: Path, folder: Path, stem: str, ext: str) -> Path:
    """Move the directory ``src`` to the first free ``stem[_n]ext``: the name is claimed with an exclusive
    mkdir, then ``rename`` replaces that empty folder atomically (never anything else)."""
    for n in range(1, 10_000):
        final = folder / (f"{stem}{ext}" if n == 1 else f"{stem}_{n}{ext}")
        if final.with_suffix(".json").exists() or final.exists():
            continue
        try:
            os.mkdir(final, bk.DIR_MODE)
        except FileExistsError:
            continue
        try:
            os.rename(src, final)
        except OSError:
            os.rmdir(final)
            raise
        return final
    raise BackupError(f"too many backups named {stem}* in {folder}; clean that folder up")


def _remove_tree(*paths: Path | None) -> None:
    for p in paths:
        if p is None:
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


def _check_settings(pg_format: str, pg_jobs: int, pg_compress: int) -> None:
    if pg_format not in FORMATS:
        raise BackupError(f"backups.pg_format must be directory or custom, got {pg_format!r}; fix the targets file")
    if isinstance(pg_jobs, bool) or not isinstance(pg_jobs, int) or pg_jobs < 1:
        raise BackupError(f"backups.pg_jobs must be a whole number >= 1, got {pg_jobs!r}; fix the targets file")
    if isinstance(pg_compress, bool) or not isinstance(pg_compress, int) or not 0 <= pg_compress <= 9:
        raise BackupError(f"backups.pg_compress must be 0 (none, fastest) to 9, got {pg_compress!r}; fix the "
                          "targets file")


def backup_postgresql(
    url: str,
    backups_dir: Path,
    target: str,
    *,
    label: str,
    pinned: bool,
    now: datetime,
    verify: bool = True,
    busy_timeout: float = bk.DEFAULT_BUSY_TIMEOUT,
    pg_format: str = DEFAULT_FORMAT,
    pg_jobs: int = DEFAULT_JOBS,
    pg_compress: int = DEFAULT_COMPRESS,
    restore_check: bool = False,
    schema: str | None = None,
) -> bk.BackupResult:
    """``pg_dump`` of ``url`` into ``backups_dir/<target>/``; see the module docstring."""
    import sqlalchemy as sa

    t_start = time.perf_counter()
    source = mask_url(url)
    _check_settings(pg_format, pg_jobs, pg_compress)
    jobs = pg_jobs if pg_format == "directory" else 1
    timings: dict[str, float] = {}
    folder = backups_dir / target
    stem = f"{target}_{label}_{now.strftime('%Y%m%d_%H%M%S')}"
    staging: Path | None = None
    final: Path | None = None
    manifest_path: Path | None = None

    engine = open_engine(url)  # ConnectionFailedError / BadUrlError before anything is created
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            try:
                trans = conn.begin()
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(busy_timeout * 1000))}")
                server_num = int(conn.exec_driver_sql("SHOW server_version_num").scalar())
                server_text = str(conn.exec_driver_sql("SHOW server_version").scalar()).split()[0]
                in_recovery = bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar())
            except sa.exc.DBAPIError as e:
                raise translate_error(e, url) from None
            server = version_tuple(server_num)
            pg_dump = find_tool("pg_dump", at_least=server)
            _check_dump_version(pg_dump, server, server_text, source)
            pg_restore = find_tool("pg_restore", at_least=pg_dump.version, near=pg_dump.path.parent) \
                if verify or restore_check else None

            try:
                snapshot_id = None if in_recovery else conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
                t = time.perf_counter()
                fingerprint, tables = _live_describe(conn, schema)
                timings["snapshot"] = time.perf_counter() - t
                size_estimate = _data_size(conn, schema)
            except sa.exc.DBAPIError as e:
                raise _locked_or(translate_error(e, url), source, busy_timeout) from None
            except MaintenanceError as e:
                raise _locked_or(e, source, busy_timeout) from None
            if schema and not tables:
                exists = conn.exec_driver_sql("SELECT count(*) FROM pg_namespace WHERE nspname = %(s)s",
                                              {"s": schema}).scalar()
                if not exists:
                    raise BackupError(f"schema {schema!r} does not exist in {source}; fix the target's schema "
                                      "setting in the targets file")

            bk._ensure_folder(folder)
            bk._check_free_space(folder, size_estimate if pg_compress == 0 else size_estimate // 3)
            try:
                try:
                    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".tmp", dir=folder))
                except OSError as e:
                    raise bk._os_backup_error(e, folder) from None
                os.chmod(staging, bk.DIR_MODE)
                out_path = staging / "dump"
                args = [f"--format={FORMATS[pg_format]}", f"--file={out_path}", f"--compress={pg_compress}",
                        f"--lock-wait-timeout={max(1, int(busy_timeout * 1000))}"]
                if jobs > 1:
                    args.append(f"--jobs={jobs}")
                if snapshot_id:
                    args.append(f"--snapshot={snapshot_id}")
                if schema:
                    args.append(f"--schema={_qi(schema)}")  # quoted: a name, not a pattern
                cmd = build_command(pg_dump.path, url, args)
                t = time.perf_counter()
                out = _run(cmd)
                timings["dump"] = time.perf_counter() - t
                if out.returncode != 0:
                    raise _classify(cmd, out.stderr, source, "pg_dump of", "check the server log and the backup "
                                    f"folder {folder}, then rerun")
                if not out_path.exists():
                    raise BackupError(f"pg_dump of {source} wrote nothing to {out_path}; check the PostgreSQL "
                                      "client installation and rerun")
            finally:
                try:
                    trans.rollback()  # ends the exported snapshot; pg_dump is done with it
                except Exception:  # noqa: BLE001 - the connection may already be gone
                    pass

        _chmod_tree(out_path)

        sha, files, size = None, {}, 0
        verified = False
        detail = "not verified (verify=False)"
        check = None
        if verify:
            t = time.perf_counter()
            with ThreadPoolExecutor(max_workers=1) as pool:
                listing_f = pool.submit(list_archive, out_path, pg_restore)
                sha, files, size = sha256_dump(out_path)
                listing = listing_f.result()
            timings["verify"] = time.perf_counter() - t
            if not listing.ok:
                raise BackupError(f"the dump of {source} failed verification ({listing.detail}); it was deleted; "
                                  "check the backup folder's disk and the PostgreSQL client tools, then rerun")
            verified = True
            detail = f"{listing.detail}, sha256 {sha[:12]}…, {size} bytes"
        else:
            size = sum(p.stat().st_size for p in dump_files(out_path)) if out_path.is_dir() else \
                out_path.stat().st_size
        if restore_check:
            t = time.perf_counter()
            check = _restore_check(out_path, url, tables, schema, jobs=max(1, pg_jobs))
            timings["restore_check"] = time.perf_counter() - t
            if not check["passed"]:
                raise BackupError(f"the dump of {source} failed its restore check ({check['detail']}); it was "
                                  "deleted; rerun the backup, and check the server log if it fails again")
            detail = f"{detail}; {check['detail']}"

        t = time.perf_counter()
        try:
            if out_path.is_dir():
                _fsync_tree(out_path)  # pg_dump already syncs; cheap when it did
                final = _rename_dir_unique(out_path, folder, stem, ".dump")
            else:
                _fsync_tree(out_path)
                final = bk._link_unique(out_path, folder, stem, ".dump")
            bk._fsync_dir(folder)
        except OSError as e:
            raise bk._os_backup_error(e, folder) from None
        manifest_path = final.with_suffix(".json")
        pg = {
            "format": pg_format,
            "jobs": jobs,
            "compress": pg_compress,
            "schema": schema,
            "server_version": server_text,
            "pg_dump_version": pg_dump.version_text,
            "snapshot": bool(snapshot_id),
        }
        manifest = {
            "format": bk.MANIFEST_FORMAT,
            "version": bk.MANIFEST_VERSION,
            "file": final.name,
            "target": target,
            "label": label,
            "pinned": bool(pinned),
            "created_at": now.isoformat(),
            "source": source,
            "dialect": "postgresql",
            "method": f"pg_dump-{pg_format}",
            "pg_format": pg_format,
            "pg_jobs": jobs,
            "pg_compress": pg_compress,
            "pg_schema": schema,
            "server_version": server_text,
            "pg_dump_version": pg_dump.version_text,
            "bytes": size,
            "sha256": sha,
            "sha256_of": "files" if final.is_dir() else "file",
            "files": files or None,
            "verified": verified,
            "verify_detail": detail,
            "restore_check": check,
            "fingerprint": fingerprint,
            "row_counts": {n: v["rows"] for n, v in tables.items()},
            "tables": tables,
            "seconds": round(time.perf_counter() - t_start, 3),
        }
        try:
            bk._write_json_atomic(manifest_path, manifest)
        except OSError as e:
            raise bk._os_backup_error(e, folder) from None
        timings["manifest"] = time.perf_counter() - t
    except BaseException:
        _remove_tree(staging, final)
        if manifest_path is not None:
            _remove_tree(manifest_path)
        raise
    finally:
        engine.dispose()
    _remove_tree(staging)

    return bk.BackupResult(
        path=final,
        manifest_path=manifest_path,
        target=target,
        label=label,
        pinned=bool(pinned),
        created_at=manifest["created_at"],
        bytes=size,
        sha256=sha,
        verified=verified,
        verify_detail=detail,
        fingerprint=fingerprint,
        row_counts=dict(manifest["row_counts"]),
        method=manifest["method"],
        seconds=round(time.perf_counter() - t_start, 3),
        source=source,
        dialect="postgresql",
        journal_mode=None,
        tables=tables,
        timings={k: round(v, 4) for k, v in timings.items()},
        pg=pg,
    )


def _restore_check(dump: Path, url: str, tables: dict[str, dict], schema: str | None, *, jobs: int) -> dict:
    want = {n: v["rows"] for n, v in tables.items()}
    with scratch_restore(dump, url, jobs=jobs, schema=schema) as scratch_url:
        _fp, got_tables = _describe_url(scratch_url, schema)
    got = {n: v["rows"] for n, v in got_tables.items()}
    diffs = sorted(n for n in set(want) | set(got) if want.get(n) != got.get(n))
    if diffs:
        detail = "row counts differ after a scratch restore: " + ", ".join(
            f"{n} {want.get(n)} != {got.get(n)}" for n in diffs[:5])
        return {"passed": False, "detail": detail}
    return {"passed": True, "detail": f"restore check ok: restored into a scratch database, row counts of "
                                      f"{len(want)} tables equal ({sum(want.values())} rows)"}


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
    admin = _connect(url, autocommit=True)
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
            raise BackupError(f"cannot create a scratch database on {source}: {_first_error(str(e))}; check "
                              "the server and rerun") from None
        try:
            tool = find_tool("pg_restore")
            listing = list_archive(dump, tool)
            if not listing.ok:
                raise BackupError(f"backup {dump.name} cannot be read ({listing.detail}); pick another backup")
            schemas = [e.name for e in listing.of("SCHEMA")]
            if schemas:  # a dump of the public schema alone creates it: the fresh database already has it
                with _connect(scratch_url, autocommit=True) as fresh:
                    for s in schemas:
                        fresh.execute(f"DROP SCHEMA IF EXISTS {_qi(s)}")
            args = ["--no-owner", "--no-privileges", "--exit-on-error"]
            if jobs > 1:
                args.append(f"--jobs={jobs}")
            args.append(str(dump))
            cmd = build_command(tool.path, url, args, dbname=name)
            out = _run(cmd)
            if out.returncode != 0:
                raise _classify(cmd, out.stderr, source, "restoring the backup into a scratch database on",
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
                 schema: str | None = None) -> tuple[bool, str, list[dict]]:
    """Every row of every kept table of the backup (restored at ``scratch_url``) is still in the live database.

    Same semantics as SQLite's ``verify.rows_preserved``: by primary key when the backup's key columns
    are all kept, with the same values in the kept columns; without a primary key, as multisets of rows
    (a lost duplicate counts). Each side computes ``md5(ROW(kept columns)::text)`` per row and streams
    ``(key as text, hash)`` ordered by the key's text under the "C" collation (so both sides and
    Python agree on the order); the two ordered streams are merged here. Returns (passed, one-line
    detail, planned drops: ``{"table", "column", "rows", "values"}``).
    """
    ignore = set(ignore_tables or ())
    prefix = f"{_qi(schema)}." if schema else ""
    drops: list[dict] = []
    problems: list[str] = []
    compared = rows_total = 0
    bconn = lconn = None
    try:
        bconn = _connect(scratch_url)
        lconn = _connect(live_url)
        import psycopg

        for c in (bconn, lconn):
            c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            c.read_only = True
        for name, bt in sorted(backup_snapshot.tables.items()):
            if name in ignore:
                continue
            qt = prefix + _qi(name)
            n_rows = int(_scalar(bconn, f"SELECT count(*) FROM {qt}"))
            lt = live_snapshot.tables.get(name)
            if lt is None:
                drops.append({"table": name, "column": None, "rows": n_rows, "values": None})
                continue
            live_cols = set(lt.column_names)
            kept = [c for c in bt.column_names if c in live_cols]
            for col in bt.column_names:
                if col not in live_cols:
                    values = int(_scalar(bconn, f"SELECT count({_qi(col)}) FROM {qt}"))
                    drops.append({"table": name, "column": col, "rows": n_rows, "values": values})
            if not kept:
                continue
            row_hash = f"md5(ROW({', '.join(_qi(c) for c in kept)})::text)"
            keys = [c for c in bt.primary_key if c in live_cols] if bt.primary_key else []
            if keys and len(keys) == len(bt.primary_key):
                cols = ", ".join(f'({_qi(k)})::text COLLATE "C"' for k in keys)
                order = ", ".join(str(i + 1) for i in range(len(keys)))
                sql = f"SELECT {cols}, {row_hash} FROM {qt} ORDER BY {order}"
                missing = _merge_pk(_stream(bconn, sql), _stream(lconn, sql))
            else:
                sql = f'SELECT {row_hash} COLLATE "C", count(*) FROM {qt} GROUP BY 1 ORDER BY 1'
                missing = _merge_counts(_stream(bconn, sql), _stream(lconn, sql))
            compared += 1
            rows_total += n_rows
            if missing:
                problems.append(f"{name}: {missing} row(s) missing or changed")
    except MaintenanceError as e:
        return False, f"could not compare rows: {e}", drops
    except Exception as e:  # noqa: BLE001 - psycopg errors: one line, no secrets
        msg = " ".join(str(e).split())
        for url in (live_url, scratch_url):
            pw = parse_url(url).password
            if pw:
                msg = msg.replace(pw, "***")
        return False, f"could not compare rows: {msg[:300]}", drops
    finally:
        for c in (bconn, lconn):
            if c is not None:
                try:
                    c.rollback()
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
    dropped = "; planned drops: " + ", ".join(
        f"{d['table']}.{d['column']} ({d['values']} values)" if d["column"] else f"{d['table']} ({d['rows']} rows)"
        for d in drops) if drops else ""
    if problems:
        return False, "; ".join(problems[:5]) + dropped, drops
    return True, f"all {rows_total} rows of {compared} kept tables present with the same values{dropped}", drops


# --------------------------------------------------------------------------- restore


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
    tables = [f"{_qi(s)}.{_qi(n)}" for s, n, kind, _ in rels if kind in ("r", "p")]
    if tables:
        sql.append(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE;")
    for s, n, c in fks:
        sql.append(f"ALTER TABLE {_qi(s)}.{_qi(n)} DROP CONSTRAINT IF EXISTS {_qi(c)};")
    kinds = {"v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE", "r": "TABLE", "p": "TABLE", "S": "SEQUENCE"}
    for wanted in ("v", "m", "f", "r", "p", "S"):
        for s, n, kind, owned in rels:
            if kind == wanted and (s, n) not in in_dump and not (kind == "S" and owned):
                sql.append(f"DROP {kinds[kind]} IF EXISTS {_qi(s)}.{_qi(n)} CASCADE;")
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
            chunk = os.read(src, _CHUNK)
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


def restore_postgresql(backup: Path, url: str, busy_timeout: float = bk.DEFAULT_BUSY_TIMEOUT, *,
                       schema: str | None = None) -> dict:
    """Restore a dump made by ``backup_postgresql`` into the database at ``url``, in one transaction.

    The dump is checked first (sha256 against its manifest, ``pg_restore --list``): RestoreError and the
    target untouched otherwise. Returns {"fingerprint", "row_counts", "tables", "matches_manifest",
    "method", "backup", "sha256", "seconds"} of the restored target.
    """
    import sqlalchemy as sa

    t_start = time.perf_counter()
    where = mask_url(url)
    backup = Path(backup).expanduser().resolve()
    if not backup.exists():
        raise RestoreError(f"backup {backup} does not exist; pick one from the target's backup folder")
    try:
        manifest = bk.read_manifest(backup)
    except BackupError as e:
        raise RestoreError(f"{e}; the target {where} was not touched") from None
    if manifest.get("dialect") != "postgresql":
        raise RestoreError(f"backup {backup.name} is a {manifest.get('dialect')} backup, not a PostgreSQL dump; the "
                           f"target {where} was not touched; pick a backup of this target")
    expected = manifest.get("sha256")
    if not expected:
        raise RestoreError(f"backup {backup.name} was never verified (no sha256 in its manifest); the target "
                           f"{where} was not touched; pick a verified backup")
    actual, files, _size = sha256_dump(backup)
    if actual != expected:
        changed = sorted(n for n, h in files.items() if (manifest.get("files") or {}).get(n) != h)
        which = f" (changed: {', '.join(changed[:3])})" if changed else ""
        raise RestoreError(f"backup {backup.name} does not match its manifest (sha256 {actual[:12]}… expected "
                           f"{str(expected)[:12]}…){which}: it was altered or damaged; the target {where} was not "
                           "touched; pick another backup")
    schema = schema if schema is not None else manifest.get("pg_schema")

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
            f"not touched; install the PostgreSQL {_fmt_version(dumped_by)} client tools or newer or set "
            f"{BINDIR_ENV} to their bin folder"
        )
    listing = list_archive(backup, pg_restore)
    if not listing.ok:
        raise RestoreError(f"backup {backup.name} cannot be read ({listing.detail}); the target {where} was not "
                           "touched; pick another backup")

    live = _connect(url, autocommit=True)
    try:
        preamble = _restore_preamble(live, listing, schema, busy_timeout)
    finally:
        live.close()
    work = Path(tempfile.mkdtemp(prefix="mp-pg-restore-"))
    try:
        pre = work / "preamble.sql"
        pre.write_text(preamble)
        producer = build_command(pg_restore.path, url, ["--clean", "--if-exists", "--file=-", str(backup)],
                                 connect=False)
        consumer = build_command(psql.path, url, ["--single-transaction", "--quiet", "--no-psqlrc",
                                                  "--set=ON_ERROR_STOP=1", f"--file={pre}", "--file=-"])
        consumer.env["PGOPTIONS"] = (consumer.env.get("PGOPTIONS", "") + " -c client_min_messages=warning").strip()
        with tempfile.TemporaryFile() as err_p, tempfile.TemporaryFile() as err_c:
            rc_p, rc_c = _pipe(producer, consumer, err_p, err_c)
            err_p.seek(0)
            err_c.seek(0)
            stderr_p = err_p.read().decode(errors="replace")
            stderr_c = err_c.read().decode(errors="replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    unchanged = "the target is unchanged (the restore runs in one transaction)"
    if rc_c != 0 and stderr_c.strip():
        err = _classify(consumer, stderr_c, where, f"restoring {backup.name} into", unchanged, cls=RestoreError)
        if isinstance(err, RestoreError):
            err = RestoreError(f"{err}; fix the cause (often objects of other schemas that depend on the "
                               "restored tables, or a role that does not own them) and rerun")
        raise err
    if rc_p != 0:
        raise RestoreError(f"pg_restore could not read {backup.name}: {_first_error(stderr_p)}; {unchanged}; "
                           "pick another backup")
    if rc_c != 0:
        raise RestoreError(f"restoring {backup.name} into {where} failed (psql exit {rc_c}); {unchanged}")

    fingerprint, tables = _describe_url(url, schema)
    row_counts = {n: v["rows"] for n, v in tables.items()}
    return {
        "fingerprint": fingerprint,
        "row_counts": row_counts,
        "tables": tables,
        "matches_manifest": fingerprint == manifest.get("fingerprint") and row_counts == manifest.get("row_counts"),
        "method": "pg_restore-single-transaction",
        "backup": str(backup),
        "sha256": actual,
        "seconds": round(time.perf_counter() - t_start, 3),
    }


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
    "scratch_restore",
    "sha256_dump",
    "version_tuple",
]
