"""PostgreSQL's maintenance lock: a session-level advisory lock (``pg_try_advisory_lock``) keyed by the
database, held on its own connection for the block; the server drops it if the process dies. That
session's ``application_name`` names the holder, so a second run's error (and ``pg_stat_activity``)
says who has it."""

from __future__ import annotations

import contextlib
import hashlib
import os

from ...dburl import mask_url
from ...errors import LockHeldError


def advisory_key(url: str) -> int:
    """A stable signed 64-bit key for the target database (host, port, database; no credentials)."""
    from ...dburl import parse_url

    u = parse_url(url)
    ident = f"maintenance_pipeline:{u.host}:{u.port}:{u.database}"
    return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_lock(url: str, holder: str):
    from ...dburl import translate_error
    from .. import open_engine

    import sqlalchemy as sa

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            key = advisory_key(url)
            try:
                got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
                if got:
                    name = f"maintenance_pipeline: {holder} (pid {os.getpid()})" if holder else "maintenance_pipeline"
                    conn.exec_driver_sql("SELECT set_config('application_name', %s, false)", (name[:63],))
                    conn.commit()
                else:
                    other = _advisory_holder(conn, key)
                    conn.commit()
            except sa.exc.DBAPIError as e:
                raise translate_error(e, url) from None
            if not got:
                raise LockHeldError(
                    f"another run holds the maintenance lock on {mask_url(url)} (PostgreSQL advisory lock "
                    f"{key}{other}); wait for it to finish (or check it is not stuck) and rerun"
                )
            try:
                yield key
            finally:
                try:
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
                    conn.commit()
                except sa.exc.DBAPIError:  # the session is gone: the server released the lock with it
                    pass
    finally:
        engine.dispose()


def _advisory_holder(conn, key: int) -> str:
    """", held by <application_name> (backend pid N)" for the session holding advisory lock ``key``."""
    row = conn.exec_driver_sql(
        "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = ((%s >> 32) & 4294967295) AND l.objid::bigint = (%s & 4294967295) LIMIT 1",
        (key, key)).first()
    if row is None:
        return ""
    return f", held by {row[1] or 'a session'} (backend pid {row[0]})"


