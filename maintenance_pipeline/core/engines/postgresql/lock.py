"""PostgreSQL's maintenance lock: a session-level advisory lock (``pg_try_advisory_lock``) keyed by the
database, held on its own connection for the block; the server drops it if the process dies. That
session's ``application_name`` names the holder, so a second run's error (and ``pg_stat_activity``)
says who has it.

The lock session idles for the whole run, so it turns off ``idle_session_timeout`` and
``idle_in_transaction_session_timeout`` for itself (a role's or database's setting would end it, and the
lock with it, silently). A session can still be ended (``pg_terminate_backend``, a restart): the handle
the block gets remembers the lock session's backend pid, and ``confirm(conn)``, called by the migration on
its own connection right before COMMIT, raises ``LockLostError`` unless that session still holds the lock.
To close the gap between that check and the COMMIT, ``confirm`` also takes a transaction-level advisory
lock on a second key (``commit_key``) in the migration's transaction, and a run that acquires the lock
refuses while another run's transaction holds that key: a run that confirmed commits before anyone else
can start.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from ...dburl import mask_url
from ...errors import LockHeldError, LockLostError

# the granted advisory lock on a 64-bit key, in this database (``objsubid = 1``: a bigint key)
_HELD = ("SELECT {what} FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
         "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
         "AND l.classid::bigint = ((%(key)s >> 32) & 4294967295) AND l.objid::bigint = (%(key)s & 4294967295)")

_NO_IDLE_LIMITS = ("SELECT set_config(name, '0', false) FROM pg_settings "
                   "WHERE name IN ('idle_session_timeout', 'idle_in_transaction_session_timeout')")


def _key(ident: str) -> int:
    return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:8], "big", signed=True)


def advisory_key(url: str) -> int:
    """A stable signed 64-bit key for the target database (host, port, database; no credentials)."""
    from ...dburl import parse_url

    u = parse_url(url)
    return _key(f"maintenance_pipeline:{u.host}:{u.port}:{u.database}")


def commit_key(url: str) -> int:
    """The key a migration's transaction holds from confirming its lock to its COMMIT."""
    return _key(f"maintenance_pipeline:commit:{advisory_key(url)}")


class AdvisoryLockHandle:
    """What ``advisory_lock`` yields: the key and the lock session's backend pid."""

    def __init__(self, url: str, key: int, pid: int):
        self.url, self.key, self.pid = url, key, pid

    def confirm(self, conn) -> None:
        """On the migration's connection, inside its transaction: hold ``commit_key`` until COMMIT, then check
        that the lock session (``pid``) still holds the lock; LockLostError otherwise."""
        guard = conn.exec_driver_sql("SELECT pg_try_advisory_xact_lock(%(k)s)", {"k": commit_key(self.url)}).scalar()
        holders = [r[0] for r in conn.exec_driver_sql(_HELD.format(what="l.pid"), {"key": self.key})]
        if guard and self.pid in holders:
            return
        now = f"; backend pid {holders[0]} holds it now" if holders else ""
        raise LockLostError(
            f"the maintenance lock on {mask_url(self.url)} was lost during the run (its session, backend pid "
            f"{self.pid}, ended: terminated or idle_session_timeout{now}); nothing was committed; rerun")


@contextlib.contextmanager
def advisory_lock(url: str, holder: str):
    from ...dburl import translate_error
    from .. import open_engine

    import sqlalchemy as sa

    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            key = advisory_key(url)
            other = ""
            try:
                conn.exec_driver_sql(_NO_IDLE_LIMITS).all()  # before the lock: it idles for the whole run
                # named before it takes the lock: a second run that finds the lock held reads the holder's name
                # (named after, the second run could look between the two and find a nameless session)
                name = f"maintenance_pipeline: {holder} (pid {os.getpid()})" if holder else "maintenance_pipeline"
                conn.exec_driver_sql("SELECT set_config('application_name', %s, false)", (name[:63],))
                got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
                if got and not conn.exec_driver_sql("SELECT pg_try_advisory_xact_lock(%s)",
                                                    (commit_key(url),)).scalar():
                    # a run whose lock session ended after it confirmed its lock is committing: it goes first
                    conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
                    got, other = False, ", whose migration is committing"
                if got:
                    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
                    conn.commit()  # ends the transaction (and its commit_key test); the session lock stays
                else:
                    other = other or _advisory_holder(conn, key)
                    conn.commit()
            except sa.exc.DBAPIError as e:
                raise translate_error(e, url) from None
            if not got:
                raise LockHeldError(
                    f"another run holds the maintenance lock on {mask_url(url)} (PostgreSQL advisory lock "
                    f"{key}{other}); wait for it to finish (or check it is not stuck) and rerun"
                )
            try:
                yield AdvisoryLockHandle(url, key, pid)
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
