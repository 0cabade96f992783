"""The PostgreSQL client tools: finding ``pg_dump``/``pg_restore``/``psql``, their versions, their commands.

Finding a tool: ``MAINTENANCE_PG_BINDIR`` (env) wins when set, else ``PATH``, else the usual
install folders; a ``pg_dump`` older than the server is refused with a message naming both versions.

Secrets: the password never appears on a command line. Every child (``pg_dump``, ``pg_restore``,
``psql``) is built by ``build_command``: host, port, user and database are separate arguments, the
password travels in the child's environment (``PGPASSWORD``), which only the same user can read.
Error messages use ``mask_url`` and any password is scrubbed from a child's stderr.

Also here: the connection parameters of a URL (``conn_info``) and a psycopg connection from one
(``psycopg_connect``), for the few statements that run outside SQLAlchemy.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...dburl import mask_url, parse_url, translate_error, went_away
from ...errors import BackupError, ConnectionFailedError, DatabaseLockedError, MaintenanceError

BINDIR_ENV = "MAINTENANCE_PG_BINDIR"
DEFAULT_JOBS = 2  # parallel jobs of pg_dump (directory format) and pg_restore
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
                  password=u.password, env=tuple(env))


def psycopg_connect(url: str, *, autocommit: bool = False):
    """A psycopg connection to ``url`` (our one-line error when it fails)."""
    import psycopg

    info = conn_info(url)
    kw: dict = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in (parse_url(url).query or {}).items()}
    for k, v in (("host", info.host), ("port", info.port), ("user", info.user), ("dbname", info.dbname),
                 ("password", info.password)):
        if v is not None:
            kw[k] = v
    kw.setdefault("connect_timeout", 10)
    try:
        return psycopg.connect(**kw, autocommit=autocommit)
    except psycopg.Error as e:
        raise translate_error(e, url) from None


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


def fmt_version(v: tuple[int, ...]) -> str:
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


def check_dump_version(tool: PgTool, server: tuple[int, ...], server_text: str, where: str) -> None:
    if tool.version < server:
        major = fmt_version(server)
        raise BackupError(
            f"{tool.name} {tool.version_text} ({tool.path}) is older than the server {where} (PostgreSQL "
            f"{server_text}) and cannot dump it; install the PostgreSQL {major} client tools or newer (Debian: "
            f"apt-get install postgresql-client-{major}) or set {BINDIR_ENV} to their bin folder"
        )


# --------------------------------------------------------------------------- running children


def first_error(stderr: str) -> str:
    """The first error line of a child's stderr (with its DETAIL and HINT lines, if any), on one line; the
    server's own message when pg_restore says "could not execute query: ERROR: ..."."""
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
    line = re.sub(r"^(could not execute query:\s*)?(ERROR|FATAL):\s*", "", line)
    extras = []
    for following in lines[index + 1:index + 3]:
        m = re.match(r"^(?:psql:[^:]*:\d+:\s*)?(DETAIL|HINT):\s*(.*)$", following)
        if not m:
            break
        extras.append(m.group(2).rstrip("."))
    if extras:
        line += " (" + "; ".join(extras) + ")"
    return line[:400]


def classify(cmd: PgCommand, stderr: str, where: str, what: str, fix: str, cls=BackupError) -> MaintenanceError:
    """A child's failure as our error (the child's whole stderr, password scrubbed, as its ``detail``): the
    server gone mid-way, connection, lock timeout, disk full, else ``cls`` with ``fix``."""
    err = _classify(cmd, stderr, where, what, fix, cls)
    if stderr.strip():
        err.detail = cmd.scrub(stderr.strip())
    return err


def _classify(cmd: PgCommand, stderr: str, where: str, what: str, fix: str, cls) -> MaintenanceError:
    msg = cmd.scrub(first_error(stderr))
    low = msg.lower()
    if went_away(stderr) and not any(k in low for k in ("password authentication failed", "no password supplied")):
        # a session the server had accepted, then ended (a crash, a restart, pg_terminate_backend)
        return ConnectionFailedError(
            f"the server went away mid-way through {what} {where} ({msg}): a crash, a restart or a terminated "
            "session after it had let us in; check the server's log, then rerun"
            + (f"; {fix}" if cls is not BackupError else ""))
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


def run(cmd: PgCommand, *, timeout: float | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd.argv, env=cmd.env, capture_output=True, text=True, errors="replace",
                              timeout=timeout, umask=0o077, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise BackupError(f"{cmd.argv[0]} not found; install the PostgreSQL client tools or set {BINDIR_ENV}") \
            from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{Path(cmd.argv[0]).name} did not finish within {timeout:g}s; check the server and "
                          "rerun") from None
