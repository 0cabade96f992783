"""A failed step said twice: in one short line, and whole.

``failure_line`` is the line of at most ``MAX_LINE`` characters (our errors as they are, damage with where the good
state is, anything else "this is a bug") for the command line, Dagster's failure and the alerts; ``failure_detail``
is the whole text (that line uncut, then what the driver, the server or a tool said, every line of it) for the
report (``error_detail``) and the run's log. ``report_line`` is the short line as a report holds it (the whole text
is beside it), ``report_not_written`` the line of a run whose report could not be written, ``fix_hint`` what to do
about a failed check, and ``scrub`` masks every secret of the targets file in whatever reaches Dagster, a report or
the command line: both texts pass it. ``state`` is a ``pipeline.RunState``."""

from __future__ import annotations

from ..dburl import scrub_passwords, short_name
from .jobs import MAINTAIN
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


def _passwordless(state, text: str) -> str:
    try:
        t = state.target
        return scrub_passwords(text, t.url, t.reference_url or "")
    except Exception:  # noqa: BLE001 - no target: ``scrub`` still masks every URL's password
        return text


def _message(state, step: str, e: BaseException) -> str:
    """The line a failed step is reported with, not yet cut: our own errors as they are; an I/O error or a corrupt
    page says so, that the file needs checking and which backup holds the last good state; anything else is an
    internal error named with its step."""
    if isinstance(e, MaintenanceError):
        return " ".join(str(e).split())
    t = state.target
    text = _passwordless(state, " ".join(str(getattr(e, "orig", None) or e).split()))
    if says_damaged(text):
        backup = state.backup.path if state.backup and state.backup.verified else None
        good = (f"the last good state is in backup {backup}" if backup else
                f"the last good state is in the newest verified backup in {state.config.backups.dir / t.name}")
        return str(DatabaseDamagedError.met(short_name(t.url), text, f"in step {step}", good))
    return (f"this is a bug in step {step}: {type(e).__name__}: {text[:160]} (the traceback is in the run's log); "
            "please report it with the report")


def _said(e: BaseException) -> list[tuple[str, str]]:
    """What the driver, the server or a tool said under ``e``, whole, as (label, text): the ``detail`` an error
    carries (the text it shortened), then each exception it was raised from (or during) that is not one of ours."""
    out, seen, x = [], set(), e
    while x is not None and id(x) not in seen and len(seen) < 8:
        seen.add(id(x))
        detail = getattr(x, "detail", None)
        if isinstance(detail, str) and detail.strip():
            out.append(("", detail.strip()))
        if not isinstance(x, MaintenanceError):
            out.append((f"{type(x).__name__}: ", str(getattr(x, "orig", None) or x).strip()))
        x = x.__cause__ if x.__cause__ is not None else (None if x.__suppress_context__ else x.__context__)
    return out


def failure_detail(state, step: str, e: BaseException) -> str:
    """The whole error of a failed step, secrets masked: its line uncut, then (each once) what the driver, the
    server or a tool said, every line of it (a lock timeout's, a missing schema's, a duplicate name's reason)."""
    parts = [_message(state, step, e)]
    flat = [" ".join(parts[0].split())]  # what the line already holds whole is not said twice
    for label, text in _said(e):
        words = " ".join(text.split())
        if words and not any(words in f for f in flat):
            parts.append(label + text)
            flat.append(words)
    text = scrub(state, "\n\n".join(parts))  # every password of the targets file, raw and encoded
    if len(text) > MAX_DETAIL:  # a tool's stderr may run to megabytes: its start says what went wrong
        text = text[:MAX_DETAIL] + f"\n… ({len(text) - MAX_DETAIL} more characters not kept)"
    return text


def failure_line(state, step: str, e: BaseException) -> str:
    """The one line a failed step is reported with on the command line, in Dagster and in alerts (at most
    ``MAX_LINE`` characters, secrets masked; the fix kept when the middle is cut). Never a password."""
    return one_line(scrub(state, _message(state, step, e)))


MAX_LINE = 300  # no error line is longer: the whole text is in the report (``error_detail``) and the run's log
MAX_DETAIL = 100_000  # the whole text, up to this (a report and an event of the run's log stay readable)
REST = " (the rest is in the report)"


def one_line(text: str, rest: str = REST, limit: int = MAX_LINE) -> str:
    """``text`` on one line of at most ``limit`` characters. What does not fit is cut from the middle, ``rest``
    saying where it is, so that the last clause (after the last "; ": the fix, by the house style) stays."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head, sep, fix = text.rpartition("; ")
    tail = f"; {fix}" if sep and len(fix) <= limit // 3 else ""
    keep = max(0, limit - len(rest) - len(tail) - 1)
    return text[:keep].rstrip() + "…" + rest + tail


def report_line(line: str | None) -> str | None:
    """The short line as a report holds it: the whole text is beside it, so no "(the rest is in the report)"."""
    if line is None:
        return None
    text = " ".join(str(line).split())
    head, sep, tail = text.partition("…" + REST)
    return one_line(head + ("…" if sep else "") + tail, rest="")


def report_not_written(state, e: BaseException, error: str | None, failed_step: str | None) -> str:
    """The line of a run whose report could not be written: what the run did to the database first (a committed
    migration changed it; a restore replaced it), where its backup is, the step that failed if one did, then why
    the report is missing and its fix. Secrets masked."""
    t, mig, b = state.target, state.migration, state.backup
    db = short_name(t.url)
    if mig is not None and not mig.dry_run and not mig.rolled_back and (mig.applied or (mig.plan and mig.plan.stamp)):
        done = (f"the migration committed: {db} is changed ({len(mig.applied)} change(s)"
                + (f", revision {mig.revision_after}" if mig.revision_after else "") + ")")
    elif state.restored_from is not None:
        done = f"the restore completed: {db} now holds backup {state.restored_from.path}"
    else:
        done = f"{db} was not changed by this run"
    backup = f"backup from before the run: {b.path}" if b is not None else "no backup was taken"
    failed = f"the run failed at {failed_step}: {report_line(error)}; " if error else ""
    why = " ".join(str(getattr(e, "strerror", None) or e).split()) or type(e).__name__
    text = (f"{done}; {backup}; {failed}the report could not be written to {state.config.reports_dir} "
            f"({type(e).__name__}: {why}); make the reports folder writable or free space; its text is in the "
            "run's log")
    return scrub(state, text)


def fix_hint(state, check: str) -> str:
    """What to do about a failed check, named before its detail (the one line may be cut after it)."""
    name = state.target.name
    if check == "schema_matches_reference" and state.spec.schema_difference_fails:
        return (f"align it with `maintenance-pipeline run {MAINTAIN.name} {name}`; preview with "
                f"`maintenance-pipeline check {name} --sql`")
    if check == "integrity":
        return f"the database is damaged: restore a verified backup (`maintenance-pipeline backups list {name}`)"
    if check == "foreign_keys":
        return "fix or delete the orphan rows named below"
    if check in {c.name for c in state.target.checks}:
        return "the targets file's own check: its SQL says what it looks for"
    return ""
