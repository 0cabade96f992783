"""One exception type per kind of failure.

Every message is one line that names what is wrong and how to fix it. The Dagster
layer shows ``str(error)`` as the run's error line, in alerts and in reports, so a
message must never contain a secret (URLs are masked with ``dburl.mask_url``).
"""

from __future__ import annotations

from pathlib import Path


class MaintenanceError(Exception):
    """Base class: a failure a person can act on."""

    kind = "error"
    # What a failure may carry for the layers above, set where it is raised and read with ``getattr(e, name, None)``
    # (unset until then: annotations only): the driver's or the tool's whole text (the message holds its start),
    # and what the run had done when it failed (a ``MigrationResult``; the report writes it).
    detail: str
    result: object

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class ConfigError(MaintenanceError):
    """The targets file is wrong: unknown key, missing field, bad cron, bad value."""

    kind = "bad_config"


class MissingEnvVarError(ConfigError):
    kind = "missing_env_var"


class BadUrlError(MaintenanceError):
    kind = "bad_url"


class UnsupportedEngineError(BadUrlError):
    """A URL of a database engine no package in ``core/engines`` provides."""

    kind = "unsupported_engine"


class MissingDatabaseError(MaintenanceError):
    """A SQLite path that does not exist. It is never created."""

    kind = "missing_database"
    path: Path  # the file not found, when the one who raised it knows it (a reference's reader says so)


class NotADatabaseError(MaintenanceError):
    """The file exists but is not a database, or is corrupt."""

    kind = "not_a_database"


class DatabaseLockedError(MaintenanceError):
    kind = "database_locked"


class ConnectionFailedError(MaintenanceError):
    """Unreachable server or bad credentials."""

    kind = "connection_failed"


class ReferenceImportError(MaintenanceError):
    kind = "reference_import"


class MigrationError(MaintenanceError):
    """A broken Alembic revision or a failing alignment step; the target was rolled back."""

    kind = "migration_failed"

    def __init__(self, message: str, revision: str | None = None):
        super().__init__(message)
        self.revision = revision


class DestructiveChangeRefusedError(MaintenanceError):
    """``align: additive`` meets a destructive difference: the whole run is refused before COMMIT."""

    kind = "destructive_refused"


class UnalignableChangeError(MaintenanceError):
    """A difference the product sees but cannot apply itself (an enum value removed, table inheritance, ...): the
    whole run is refused before COMMIT, with the reason and "write a revision for it"."""

    kind = "unalignable"


class SchemaLeftDifferentError(MaintenanceError):
    """After the revisions and the alignment the schema would still differ from the reference."""

    kind = "schema_left_different"


class RowsLostError(MaintenanceError):
    """The migration would lose or change rows of a kept table that no revision declared."""

    kind = "rows_lost"


class UserCheckError(ConfigError):
    """A check in the targets file that does not run, writes, or fails on the migrated database."""

    kind = "bad_check"


class DatabaseDamagedError(MaintenanceError):
    """An I/O error or a corrupt page met mid-run: the file needs checking; the last good state is named."""

    kind = "database_damaged"

    @classmethod
    def met(cls, where: str, text: str, during: str, good: str) -> "DatabaseDamagedError":
        """``<db>: <what the driver said> <during>; check the file and its disk …; <where the good state is>``."""
        return cls(f"{where}: {text[:80]} {during}; check the file and its disk before the next run; {good}")


# what SQLite, PostgreSQL and the OS say when the file or the disk under a database is failing
_DAMAGE = ("disk i/o error", "database disk image is malformed", "file is not a database", "could not read block",
           "could not write block", "invalid page in block", "input/output error")


def says_damaged(text: str) -> bool:
    """Whether a driver's message says the database file or its disk is failing."""
    low = text.lower()
    return any(k in low for k in _DAMAGE)


class BackupError(MaintenanceError):
    """Backup folder not writable, disk full, or the copy failed verification."""

    kind = "backup_failed"


class InvalidManifestError(BackupError):
    """A backup manifest that names a file outside its own folder or stem, or is a link: left alone."""

    kind = "invalid_manifest"


class LockHeldError(MaintenanceError):
    """Another run holds the maintenance lock on this target."""

    kind = "lock_held"


class UnsafeLockError(MaintenanceError):
    """The lock folder (or a lock file in it) is not private to this user: another account could plant a link
    there or hold the lock; nothing is opened through it."""

    kind = "unsafe_lock"


class LockTimeoutError(MigrationError, DatabaseLockedError):
    """Every attempt of the migration waited its ``lock_timeout`` for a lock another session held; each was rolled
    back and nothing was committed; the sessions that blocked it are named."""

    kind = "lock_timeout"
    attempts: list[dict]  # each attempt's record (``Attempts.log``)


class LockLostError(MaintenanceError):
    """The run's maintenance lock ended while it worked (its session terminated, its lock file removed):
    the run is rolled back before COMMIT."""

    kind = "lock_lost"


class VerificationFailedError(MaintenanceError):
    kind = "verification_failed"


class RestoreError(MaintenanceError):
    kind = "restore_failed"


class ReportError(MaintenanceError):
    """The run's report could not be written (a full or read-only reports folder); the message says first what
    the run did to the database (a committed migration changed it) and where its backup is."""

    kind = "report_not_written"
