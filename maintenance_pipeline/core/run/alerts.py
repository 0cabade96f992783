"""Alerts: one message per failed run, detected drift, unreadable target, change of a backup's freshness and change
of a check's verdict (failing, resolved), sent to the alerts log (always, first), the webhook (Slack-compatible JSON)
and email, each retried and none ever raising. Every string that leaves this module is scrubbed of secrets.
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

from ..config import AlertSettings
from ..dburl import parse_url
from .report import mask_secrets

log = logging.getLogger("maintenance_pipeline.alerts")

# stale_backup / backup_fresh: the backups asset's freshness turned FAIL / back to PASS; check_failed /
# check_resolved: a check's latest evaluation turned failing / passing again (``check`` names it)
KINDS = ("run_failure", "drift", "unreadable", "stale_backup", "backup_fresh", "check_failed", "check_resolved")
_SUBJECT = {"run_failure": "FAILED", "drift": "DRIFT", "unreadable": "UNREADABLE", "stale_backup": "STALE BACKUP",
            "backup_fresh": "RESOLVED stale backup", "check_failed": "CHECK FAILED", "check_resolved": "RESOLVED check"}


def _one_line(value, limit: int | None = None) -> str | None:
    """Whitespace collapsed to single spaces; cut to ``limit`` (only after scrubbing: a cut
    secret would no longer match its mask)."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_link(ui_base_url: str | None, run_id: str | None) -> str | None:
    """The run's page in the Dagster UI."""
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}" if ui_base_url and run_id else None


@dataclass
class Alert:
    kind: str
    job: str | None = None
    target: str | None = None
    run_id: str | None = None
    step: str | None = None
    error: str | None = None
    run_url: str | None = None
    report_path: str | None = None
    fingerprint: str | None = None
    check: str | None = None  # check_failed / check_resolved: the check's name
    created_at: str = field(default_factory=_now)
    changes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r} is not one of {', '.join(KINDS)}")
        self.error = _one_line(self.error)
        self.report_path = None if self.report_path is None else str(self.report_path)
        self.changes = [c for c in map(_one_line, self.changes or ()) if c]

    def title(self) -> str:
        target = self.target or "?"
        if self.kind == "drift":
            return f"⚠️ schema drift on {target}"
        if self.kind == "unreadable":
            return f"⚠️ target {target} unreadable"
        if self.kind == "stale_backup":
            return f"⚠️ no fresh verified backup of {target}"
        if self.kind == "backup_fresh":
            return f"✅ resolved: {target} has a fresh verified backup again"
        if self.kind == "check_failed":
            return f"❌ check {self.check or '?'} failing on {target}"
        if self.kind == "check_resolved":
            return f"✅ resolved: check {self.check or '?'} passes again on {target}"
        return (f"❌ {self.job or 'run'} failed" + (f" on {self.target}" if self.target else "")
                + (f" at step {self.step}" if self.step else ""))

    def subject(self) -> str:
        job = f" {self.job}" if self.job and self.kind == "run_failure" else \
            f" {self.check}" if self.check and self.kind in ("check_failed", "check_resolved") else ""
        sep = " " if self.kind == "unreadable" else " on "
        return _one_line(f"[maintenance] {_SUBJECT[self.kind]}{job}{sep}{self.target or '?'}")

    def text(self, slack: bool = True) -> str:
        """Multi-line text; ``slack`` escapes &<> and writes the run link as <url|run id>."""
        esc = (lambda s: str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")) if slack else str
        lines = [esc(self.title())]
        if self.job and self.kind != "run_failure":
            lines.append(f"Job: {esc(self.job)}")
        if self.error:
            lines.append(f"Error: {esc(self.error)}")
        if self.changes:
            lines.append(f"Changes ({len(self.changes)}):")
            lines += [f"• {esc(c)}" for c in self.changes]
        if self.fingerprint:
            lines.append(f"Fingerprint: {esc(self.fingerprint)}")
        short = str(self.run_id)[:8] if self.run_id else None
        if self.run_url and slack:
            lines.append(f"Run: <{self.run_url}|run {esc(short or 'page')}>")
        elif self.run_url or short:
            lines.append("Run: " + " ".join(x for x in (short, self.run_url) if x))
        if self.report_path:
            lines.append(f"Report: {esc(self.report_path)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- secrets
def secrets_of(settings: AlertSettings) -> list[str]:
    """The secrets in the alert settings: the webhook URL, its path, token (last path segment),
    query and password, and the SMTP password. Callers add database passwords."""
    out = [settings.email.password] if settings.email and settings.email.password else []
    if url := settings.webhook_url:
        out.append(url)
        try:
            p = urlsplit(url)
            token = p.path.rstrip("/").rsplit("/", 1)[-1]
            out += [x for x in (p.path if p.path.strip("/") else "", token if len(token) >= 6 else "",
                                p.query, p.password) if x]
        except ValueError:
            pass
    return out


def config_secrets(config) -> list[str]:
    """Everything of a targets file that must never be written anywhere: the alert secrets (webhook URL and
    token, SMTP password) and every target's and reference's database password, and those URLs whole."""
    out = list(secrets_of(config.alerts))
    for t in config.targets.values():
        for url in (t.url, t.reference_url):
            if not url:
                continue
            try:
                parsed = parse_url(url)
            except Exception:  # noqa: BLE001 - an unparsable URL: the whole text is the secret
                out.append(str(url))
                continue
            if parsed.password:
                out += [str(parsed.password), parsed.render_as_string(hide_password=False), str(url)]
    return out


def scrubber(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function masking ``://user:password@`` and every value of ``secrets`` (also URL-quoted and
    JSON-escaped, as an error message may carry it)."""
    values: set[str] = set()
    for s in secrets:
        if s and str(s).strip():
            values.update({str(s), quote(str(s), safe=""), quote_plus(str(s)), json.dumps(str(s))[1:-1]})
    pattern = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))) if values else None
    # URLs first (``scheme://user:***@host``: the reader still sees which database), then any secret left
    return lambda text: pattern.sub("***", mask_secrets(str(text))) if pattern else mask_secrets(str(text))


def _scrubbed(alert: Alert, scrub) -> Alert:
    """A copy of ``alert`` with every string scrubbed, then the error and changes cut short."""
    d = {k: v if k in ("kind", "created_at") else [scrub(x) for x in v] if isinstance(v, list)
         else scrub(v) if isinstance(v, str) else v for k, v in alert.to_dict().items()}
    d["error"] = _one_line(d["error"], 300)  # short, as failures.MAX_LINE: the whole error is in the report
    d["changes"] = [_one_line(c, 200) for c in d["changes"]]
    return Alert(**d)


def mask_endpoint(url: str) -> str:
    """scheme://host[:port]/… — a webhook URL's path is its secret."""
    try:
        p = urlsplit(url)
        host = p.hostname or "?"
        return f"{p.scheme}://{host}{f':{p.port}' if p.port else ''}/…"
    except ValueError:
        return "<webhook>/…"


# ---------------------------------------------------------------- delivery
class _Failure(Exception):
    """A delivery failure with a short reason; ``permanent`` ones are not retried."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


def _retry(send: Callable[[], None], channel: str, scrub, retries: int, backoff: float) -> str:
    attempts = 1 + max(0, retries)
    for attempt in range(1, attempts + 1):
        try:
            send()
            return "ok"
        except Exception as e:  # noqa: BLE001 - a channel never breaks the caller
            reason = _one_line(scrub(str(e) if isinstance(e, _Failure) else f"{type(e).__name__}: {e}"), 300)
            final = getattr(e, "permanent", isinstance(e, (ValueError, TypeError))) or attempt == attempts
            log.warning("alert %s delivery attempt %d/%d failed%s: %s", channel, attempt, attempts,
                        "" if final else ", retrying", reason)
            if final:
                return f"failed: {reason}"
            time.sleep(backoff * 2 ** (attempt - 1))
    return "failed"


def _post_webhook(url: str, body: bytes, timeout: float) -> None:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "maintenance-pipeline"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as e:  # 4xx is our mistake (retry only 408/429), 5xx the server's
        e.close()
        raise _Failure(f"HTTP {e.code}", permanent=400 <= e.code < 500 and e.code not in (408, 429)) from None
    except urllib.error.URLError as e:  # refused, DNS, timeout while connecting
        raise _Failure(f"{type(e.reason).__name__}: {e.reason}" if isinstance(e.reason, Exception)
                       else str(e.reason)) from None
    except ValueError as e:  # malformed URL
        raise _Failure(f"bad webhook URL: {e}", permanent=True) from None


def _smtp_send(email, msg: EmailMessage, timeout: float) -> None:
    try:
        with smtplib.SMTP(email.host, email.port, timeout=timeout) as smtp:
            if email.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if email.username and email.password:
                smtp.login(email.username, email.password)
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as e:  # 4xx transient, 5xx permanent (bad login, refused sender)
        raise _Failure(f"SMTP {e.smtp_code}: {e.smtp_error.decode(errors='replace')}",
                       permanent=not 400 <= e.smtp_code < 500) from None
    except (smtplib.SMTPNotSupportedError, smtplib.SMTPRecipientsRefused, ssl.SSLError) as e:
        raise _Failure(f"{type(e).__name__}: {e}", permanent=True) from None


def _write_log(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = line.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while data:  # one write for the whole line; loop only on a (rare) short write
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _email_message(alert: Alert, email, scrub) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = scrub(alert.subject())
    msg["From"], msg["To"] = email.sender, ", ".join(email.to)
    msg["Date"], msg["Message-ID"] = formatdate(usegmt=True), make_msgid("maintenance")
    fields = "\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}"
                       for k, v in alert.to_dict().items() if v not in (None, [], ""))
    msg.set_content(scrub(alert.text(slack=False)) + "\n\n" + scrub(fields) + "\n")
    return msg


def send_alert(alert: Alert, settings: AlertSettings, *, secrets: Iterable[str] = (), timeout: float = 5.0,
               retries: int = 3, backoff: float = 0.5) -> dict[str, str]:
    """Deliver ``alert``: log file first, then webhook and email (each up to 1 + ``retries``
    attempts, backoff doubling). Never raises; returns each channel's outcome."""
    scrub = scrubber([*secrets_of(settings), *secrets])
    alert = _scrubbed(alert, scrub)
    data = alert.to_dict()
    outcome: dict[str, str] = {}
    try:
        _write_log(Path(settings.log_file), json.dumps(data, ensure_ascii=False, default=str) + "\n")
        outcome["log"] = "ok"
    except Exception as e:  # noqa: BLE001 - the other channels still go out
        reason = _one_line(scrub(f"{type(e).__name__}: {e}"), 300)
        outcome["log"] = f"failed: {reason}"
        log.error("alert log %s not written: %s", scrub(str(settings.log_file)), reason)

    outcome["webhook"] = outcome["email"] = "skipped"
    if url := settings.webhook_url:
        body = json.dumps({"text": scrub(alert.text(slack=True)), **data}, default=str).encode("utf-8")
        outcome["webhook"] = _retry(lambda: _post_webhook(url, body, timeout), f"webhook {mask_endpoint(url)}",
                                    scrub, retries, backoff)
    if email := settings.email:
        outcome["email"] = _retry(lambda: _smtp_send(email, _email_message(alert, email, scrub), timeout),
                                  f"email {email.host}:{email.port}", scrub, retries, backoff)
    if any(v.startswith("failed") for v in outcome.values()):
        log.warning("alert %s: %s", scrub(alert.title()), ", ".join(f"{k}={v}" for k, v in outcome.items()))
    return outcome
