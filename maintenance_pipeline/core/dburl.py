"""Database URLs: parsing and masking (no secret in a message), and driver errors said in one line.
Opening one is the engine's (``engines.open_engine``)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import (
    BadUrlError,
    ConnectionFailedError,
    DatabaseLockedError,
    MaintenanceError,
    MissingDatabaseError,
    NotADatabaseError,
)


def parse_url(url: str | URL) -> URL:
    try:
        u = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as e:
        raise BadUrlError(
            f"bad database URL {mask_url(str(url))!r}: {e}; write it as dialect+driver://user@host/db "
            "or sqlite:///path/to/file.db"
        ) from None
    return u


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ***; safe for logs, reports and alerts."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:  # not parseable: strip anything between :// and @
        s = str(url)
        if "://" in s and "@" in s:
            head, rest = s.split("://", 1)
            return f"{head}://***@{rest.rsplit('@', 1)[1]}"
        return s
    return u.render_as_string(hide_password=True)


def short_name(url: str | URL) -> str:
    """A database named in a few words for one-line errors: a file's name, or ``db on host``; never a password."""
    try:
        u = make_url(url) if isinstance(url, str) else url
    except Exception:  # noqa: BLE001 - only for a message
        return mask_url(url)
    if u.host:
        return f"database {u.database} on {u.host}" + (f":{u.port}" if u.port else "")
    return Path(u.database).name if u.database else mask_url(u)


def scrub_passwords(text: str, *urls: str | URL) -> str:
    """``text`` on one line with the password of each of ``urls`` replaced by *** (for messages)."""
    for url in urls:
        try:
            password = (make_url(url) if isinstance(url, str) else url).password
        except Exception:  # noqa: BLE001 - only for a message
            continue
        if password:
            text = text.replace(str(password), "***")
    return " ".join(text.split())


# what a driver says when the server ended a session it had accepted (a crash, a restart, pg_terminate_backend):
# not a problem of the address or the credentials
SERVER_WENT_AWAY = ("server closed the connection unexpectedly", "terminating connection due to administrator",
                    "terminating connection because of crash", "connection to server was lost",
                    "the database system is shutting down", "ssl connection has been closed unexpectedly",
                    "could not receive data from server")


def went_away(text: str) -> bool:
    """Whether a driver's or a tool's text says the server ended an established session."""
    low = text.lower()
    return any(k in low for k in SERVER_WENT_AWAY)


def translate_error(e: BaseException, url: str | URL) -> MaintenanceError:
    """Map a driver error to one of our one-line errors (carrying the driver's whole text as ``detail``)."""
    err = _translate(e, url)
    said = str(getattr(e, "orig", e) or e).strip()
    if said:
        err.detail = said
    return err


def _translate(e: BaseException, url: str | URL) -> MaintenanceError:
    msg = str(getattr(e, "orig", e) or e).strip().splitlines()[0] if str(e) else type(e).__name__
    low = msg.lower()
    where = mask_url(url)
    if went_away(str(getattr(e, "orig", e) or e)):
        return ConnectionFailedError(
            f"the server of {where} ended the session ({msg}): it went away mid-way (a crash, a restart or a "
            "terminated session), after it had let us in; check the server's log, then rerun"
        )
    if "locked" in low or "busy" in low:
        return DatabaseLockedError(
            f"database {where} is locked by another connection ({msg}); wait for the other writer to finish "
            "or stop it, then rerun"
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return NotADatabaseError(
            f"database {where} is corrupt or not a database ({msg}); restore it from a backup"
        )
    if "unable to open" in low:
        return MissingDatabaseError(f"cannot open database {where} ({msg}); check the path and its permissions")
    if any(k in low for k in ("password", "authentication", "connection refused", "could not connect",
                               "timeout", "does not exist", "no route", "name or service")):
        return ConnectionFailedError(
            f"cannot connect to {where}: {msg}; check host, port, database name and credentials"
        )
    hint = getattr(getattr(getattr(e, "orig", e), "diag", None), "message_hint", None)  # the server's own advice
    return ConnectionFailedError(f"database {where} failed: {msg}"
                                 + (f" (the server's hint: {' '.join(str(hint).split()).rstrip('.')})" if hint else ""))

