"""Alerts delivered to real receivers on 127.0.0.1: webhook (HTTP), SMTP and the alerts log."""

from __future__ import annotations

import json
import logging
import socket
import threading

import pytest
from receivers import WEBHOOK_TOKEN, SmtpReceiver, WebhookReceiver, refused_port, webhook_receiver  # noqa: F401

from maintenance_pipeline.core.run.alerts import Alert, mask_endpoint, run_link, scrubber, secrets_of, send_alert
from maintenance_pipeline.core.config import AlertSettings, EmailSettings

RUN_ID = "3f2a9c1e-5b7d-4e11-9a0b-6c8d2e4f1a77"
RUN_URL = run_link("http://127.0.0.1:3000", RUN_ID)
SMTP_USER, SMTP_PASSWORD = "alerts", "smtp-Pa55word!"
DB_URL = "postgresql://u:hunter2@h/db"
FAST = {"backoff": 0.01, "timeout": 5.0}


@pytest.fixture
def smtp():
    receiver = SmtpReceiver(username=SMTP_USER, password=SMTP_PASSWORD)
    yield receiver
    receiver.stop()


def settings(tmp_path, webhook_url=None, smtp_port=None, **email) -> AlertSettings:
    mail = None
    if smtp_port is not None:
        mail = EmailSettings(host="127.0.0.1", port=smtp_port, sender="maintenance@example.com",
                             to=("dba@example.com", "ops@example.com"),
                             **({"username": SMTP_USER, "password": SMTP_PASSWORD} | email))
    return AlertSettings(log_file=tmp_path / "logs" / "alerts.jsonl", webhook_url=webhook_url, email=mail,
                         ui_base_url="http://127.0.0.1:3000")


def failure(**kw) -> Alert:
    fields = dict(kind="run_failure", job="maintain_database", target="goals", run_id=RUN_ID, step="migrate",
                  error="DestructiveChangeError: column goals.legacy would be dropped;\n  set align: full",
                  run_url=RUN_URL, report_path="reports/goals/20240101_020000_maintain_database_3f2a9c1e.md")
    return Alert(**(fields | kw))


def log_lines(s: AlertSettings) -> list[dict]:
    return [json.loads(line) for line in s.log_file.read_text().splitlines()]


def email_body(msg) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()


# ---------------------------------------------------------------- the alert itself
def test_titles_text_and_dict():
    a = failure()
    assert a.title() == "❌ maintain_database failed on goals at step migrate"
    assert a.error == "DestructiveChangeError: column goals.legacy would be dropped; set align: full"
    text = a.text()
    assert text.splitlines()[0] == a.title()
    assert f"Error: {a.error}" in text
    assert f"<{RUN_URL}|run 3f2a9c1e>" in text
    assert "Report: reports/goals/" in text
    assert RUN_URL in a.text(slack=False) and "<" not in a.text(slack=False)
    d = a.to_dict()
    assert d["kind"] == "run_failure" and d["step"] == "migrate" and d["created_at"].endswith("+00:00")
    assert Alert(**d) == a
    assert Alert(kind="unreadable", target="goals").title() == "⚠️ target goals unreadable"
    assert Alert(kind="run_failure", job="verify_database").title() == "❌ verify_database failed"
    assert "x &lt;y&gt; &amp; z" in Alert(kind="run_failure", error="x <y> & z").text()
    with pytest.raises(ValueError):
        Alert(kind="oops")


def test_drift_alert_lists_changes(tmp_path, webhook_receiver):
    changes = ["add_column goals.completed_at DATETIME NULL", "add_index ix_goals_status"]
    a = Alert(kind="drift", job="verify_database", target="goals", fingerprint="abc123", changes=changes,
              run_url=RUN_URL, run_id=RUN_ID)
    assert a.title() == "⚠️ schema drift on goals"
    assert a.subject() == "[maintenance] DRIFT on goals"
    text = a.text()
    assert "Changes (2):" in text and all(f"• {c}" in text for c in changes)
    assert "Fingerprint: abc123" in text
    s = settings(tmp_path, webhook_url=webhook_receiver.url)
    assert send_alert(a, s, **FAST) == {"log": "ok", "webhook": "ok", "email": "skipped"}
    body = webhook_receiver.wait_for(1)[0]
    assert body["kind"] == "drift" and body["changes"] == changes and body["text"] == text
    assert log_lines(s)[0]["changes"] == changes


def test_secrets_of_and_masking():
    s = AlertSettings(log_file="x", webhook_url=f"https://hooks.slack.com/services/T000/B000/{WEBHOOK_TOKEN}",
                      email=EmailSettings(host="h", sender="a@b", to=("c@d",), password="pw-123"))
    found = secrets_of(s)
    assert set(found) == {s.webhook_url, f"/services/T000/B000/{WEBHOOK_TOKEN}", WEBHOOK_TOKEN, "pw-123"}
    assert mask_endpoint(s.webhook_url) == "https://hooks.slack.com/…"
    assert mask_endpoint("http://127.0.0.1:8080/a/b?c=d") == "http://127.0.0.1:8080/…"
    scrub = scrubber([*found, "p@ss"])
    assert scrub(f"token {WEBHOOK_TOKEN} pw-123 {DB_URL} pg://x:p%40ss@h") == "token *** *** " \
        "postgresql://u:***@h/db pg://x:***@h"


# ---------------------------------------------------------------- delivery
def test_failure_alert_reaches_webhook_email_and_log(tmp_path, webhook_receiver, smtp):
    s = settings(tmp_path, webhook_url=webhook_receiver.url, smtp_port=smtp.port)
    a = failure()
    assert send_alert(a, s, **FAST) == {"log": "ok", "webhook": "ok", "email": "ok"}

    body = webhook_receiver.wait_for(1)[0]
    assert body["text"] == a.text()
    assert {k: body[k] for k in ("kind", "job", "target", "run_id", "step", "run_url", "report_path")} == {
        "kind": "run_failure", "job": "maintain_database", "target": "goals", "run_id": RUN_ID, "step": "migrate",
        "run_url": RUN_URL, "report_path": a.report_path}
    assert webhook_receiver.requests[0]["headers"]["Content-Type"] == "application/json"
    assert webhook_receiver.requests[0]["path"].endswith(WEBHOOK_TOKEN)

    msg = smtp.wait_for(1)[0]
    assert msg["Subject"] == "[maintenance] FAILED maintain_database on goals"
    assert msg["From"] == "maintenance@example.com" and "dba@example.com" in msg["To"]
    assert smtp.envelopes[0][1] == ["dba@example.com", "ops@example.com"]
    assert smtp.logins == [SMTP_USER]
    text = email_body(msg)
    assert RUN_URL in text and a.error in text and a.title() in text and "step: migrate" in text

    [line] = log_lines(s)
    assert line == a.to_dict()


def test_webhook_answering_500_twice_is_retried(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="maintenance_pipeline.alerts")
    with WebhookReceiver(fail_first=2) as hook:
        out = send_alert(failure(), settings(tmp_path, webhook_url=hook.url), **FAST)
        assert out["webhook"] == "ok"
        assert hook.attempts == 3 and len(hook.wait_for(1)) == 1
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and all("HTTP 500" in m for m in retries)
    assert all(f"http://127.0.0.1:{hook.port}/…" in m for m in retries)


def test_webhook_4xx_is_not_retried(tmp_path):
    with WebhookReceiver(fail_first=10, fail_status=404) as hook:
        out = send_alert(failure(), settings(tmp_path, webhook_url=hook.url), **FAST)
    assert out["webhook"] == "failed: HTTP 404" and hook.attempts == 1


def test_webhook_retries_are_bounded(tmp_path):
    with WebhookReceiver(fail_first=100) as hook:
        out = send_alert(failure(), settings(tmp_path, webhook_url=hook.url), retries=2, **FAST)
    assert out["webhook"] == "failed: HTTP 500" and hook.attempts == 3


def test_webhook_down_email_and_log_still_arrive(tmp_path, smtp, caplog):
    caplog.set_level(logging.WARNING, logger="maintenance_pipeline.alerts")
    hook = WebhookReceiver()
    hook.stop()  # connections are now refused
    s = settings(tmp_path, webhook_url=hook.url, smtp_port=smtp.port)
    out = send_alert(failure(), s, **FAST)
    assert out["log"] == "ok" and out["email"] == "ok"
    assert out["webhook"].startswith("failed: ") and "refused" in out["webhook"].lower()
    assert smtp.wait_for(1)[0]["Subject"].startswith("[maintenance] FAILED")
    assert len(log_lines(s)) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("webhook" in m and "attempt" in m for m in messages) == 4  # 1 + 3 retries
    assert not any(WEBHOOK_TOKEN in m for m in messages)


def test_webhook_that_never_answers_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        out = send_alert(failure(), settings(tmp_path, webhook_url=url), timeout=0.2, retries=1, backoff=0.01)
    assert out["webhook"].startswith("failed: ") and "timed out" in out["webhook"]
    assert out["log"] == "ok"


def test_smtp_down_webhook_and_log_still_arrive(tmp_path, webhook_receiver, caplog):
    caplog.set_level(logging.WARNING, logger="maintenance_pipeline.alerts")
    with refused_port() as port:
        s = settings(tmp_path, webhook_url=webhook_receiver.url, smtp_port=port)
        out = send_alert(failure(), s, **FAST)
    assert out["log"] == "ok" and out["webhook"] == "ok"
    assert out["email"].startswith("failed: ConnectionRefusedError")
    assert len(webhook_receiver.wait_for(1)) == 1 and len(log_lines(s)) == 1
    assert sum("email" in r.getMessage() and "attempt" in r.getMessage() for r in caplog.records) == 4


def test_bad_smtp_login_is_not_retried(tmp_path, smtp, caplog):
    caplog.set_level(logging.WARNING, logger="maintenance_pipeline.alerts")
    out = send_alert(failure(), settings(tmp_path, smtp_port=smtp.port, password="wrong-one"), **FAST)
    assert out["email"].startswith("failed: SMTP 535") and smtp.messages == []
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 1


def test_unwritable_log_does_not_stop_the_other_channels(tmp_path, webhook_receiver):
    (tmp_path / "logs").write_text("a file where the log folder should be")
    out = send_alert(failure(), settings(tmp_path, webhook_url=webhook_receiver.url), **FAST)
    assert out["log"].startswith("failed: ") and out["webhook"] == "ok"


def test_concurrent_alerts_append_whole_lines(tmp_path):
    s = settings(tmp_path)
    big = [f"add_column t{i}.c {'x' * 180}" for i in range(300)]  # ~60 kB per line
    alerts = [failure(changes=big, run_id=f"run-{i}") for i in range(16)]
    threads = [threading.Thread(target=send_alert, args=(a, s)) for a in alerts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log_lines(s)  # every line parses: no two writers interleaved
    assert sorted(line["run_id"] for line in lines) == sorted(a.run_id for a in alerts)
    assert all(line["changes"] == big for line in lines)


def test_long_error_is_cut_after_scrubbing(tmp_path):
    s = settings(tmp_path)
    error = "x" * 260 + f" while connecting to {DB_URL}"  # the password sits across the 300-char cut
    assert error.index("hunter2") < 299 < error.index("hunter2") + 7
    assert send_alert(failure(error=error), s, secrets=["hunter2"])["log"] == "ok"
    logged = log_lines(s)[0]["error"]
    assert len(logged) == 300 and "hun" not in logged and logged.endswith("postgresql://u:***…")


def test_secrets_never_leak(tmp_path, webhook_receiver, smtp, caplog):
    caplog.set_level(logging.DEBUG, logger="maintenance_pipeline")
    webhook_receiver.fail_first = 1  # a retry gets logged too
    s = settings(tmp_path, webhook_url=webhook_receiver.url, smtp_port=smtp.port)
    leaky = (f"could not connect to {DB_URL} (password hunter2); webhook {webhook_receiver.url} "
             f"token {WEBHOOK_TOKEN}; smtp password {SMTP_PASSWORD}")
    a = failure(error=leaky, report_path=f"reports/{WEBHOOK_TOKEN}.md", changes=[f"add_column {SMTP_PASSWORD}"])
    out = send_alert(a, s, secrets=["hunter2"], **FAST)
    assert out == {"log": "ok", "webhook": "ok", "email": "ok"}
    assert smtp.logins == [SMTP_USER]  # the password was used to log in, and only there

    msg = smtp.wait_for(1)[0]
    raw_requests = b"".join(r["raw"] for r in webhook_receiver.requests).decode()
    places = {
        "webhook body": raw_requests + json.dumps(webhook_receiver.wait_for(1), ensure_ascii=False),
        "email": smtp.envelopes[0][2].decode(errors="replace") + str(msg["Subject"]) + email_body(msg),
        "log file": s.log_file.read_text(),
        "log records": "\n".join(r.getMessage() for r in caplog.records),
        "outcome": json.dumps(out),
    }
    assert "postgresql://u:***@h/db" in places["email"] and "postgresql://u:***@h/db" in places["log file"]
    assert caplog.records, "the failed first webhook attempt should have been logged"
    for where, text in places.items():
        for secret in ("hunter2", SMTP_PASSWORD, WEBHOOK_TOKEN, webhook_receiver.url):
            assert secret not in text, f"{secret!r} leaked into the {where}"
