"""A failed step said in one line: ``failure_line`` (our errors as they are, damage with where the good state
is, anything else "this is a bug"), ``one_line`` (at most ``MAX_LINE`` characters), ``fix_hint`` (what to do about a failed
check) and ``scrub`` (every secret of the targets file masked) for whatever reaches Dagster, a report or the command line. ``state`` is a
``pipeline.RunState``."""

from __future__ import annotations

from ..dburl import scrub_passwords, short_name
from ..errors import DatabaseDamagedError, MaintenanceError, says_damaged


def scrub(state, text: str) -> str:
    """``text`` with every secret of the targets file masked (``alerts.config_secrets``): what may reach Dagster's
    storage, its logs, a report or the command line."""
    from .alerts import config_secrets, scrubber

    try:
        config = state.config
    except Exception:  # noqa: BLE001 - a targets file that does not load holds no secret we could know
        config = None
    return scrubber(config_secrets(config) if config is not None else [])(text)


def failure_line(state, step: str, e: BaseException) -> str:
    """The one line a failed step is reported with (report, Dagster, alerts): our own errors as they are; an
    I/O error or a corrupt page says so, that the file needs checking and which backup holds the last good
    state; anything else is an internal error named with its step. Never a password."""
    if isinstance(e, MaintenanceError):
        return one_line(str(e))
    t = state.target
    text = scrub_passwords(" ".join(str(getattr(e, "orig", None) or e).split()), t.url, t.reference_url or "")
    if says_damaged(text):
        backup = state.backup.path if state.backup and state.backup.verified else None
        good = (f"the last good state is in backup {backup}" if backup else
                f"the last good state is in the newest verified backup in {state.config.backups.dir / t.name}")
        return str(DatabaseDamagedError.met(short_name(t.url), text, f"in step {step}", good))
    return one_line(f"this is a bug in step {step}: {type(e).__name__}: {text[:160]} (the traceback is in the run's "
                    "log); please report it with the report")


MAX_LINE = 300  # no error line is longer: what does not fit is in the report's sections


def one_line(text: str) -> str:
    """``text`` on one line of at most ``MAX_LINE`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 31] + "… (the rest is in the report)"


def fix_hint(state, check: str) -> str:
    """What to do about a failed check, named before its detail (the one line may be cut after it)."""
    name = state.target.name
    if check == "schema_matches_reference" and state.job == "verify_database":
        return (f"align it with `maintenance-pipeline run maintain_database {name}`; preview with "
                f"`maintenance-pipeline check {name} --sql`")
    if check == "integrity":
        return f"the database is damaged: restore a verified backup (`maintenance-pipeline backups list {name}`)"
    if check == "foreign_keys":
        return "fix or delete the orphan rows named below"
    if check in {c.name for c in state.target.checks}:
        return "the targets file's own check: its SQL says what it looks for"
    return ""
