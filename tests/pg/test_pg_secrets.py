"""Secrets nowhere: a failing run through the real command line and a real Dagster instance, with a revision
whose exception text holds the database URL with its password, then the run-failure alert sent for real to a
webhook and an SMTP server on 127.0.0.1. Every file under DAGSTER_HOME (run storage, event logs, compute logs),
the reports, the alerts log, the backups' manifests, the command's stdout and stderr, and what the receivers got
are searched for each secret, raw, URL-encoded and JSON-escaped: zero hits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import dagster as dg
import yaml

from targets import ROOT
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration.definitions import build_definitions
from pg_migrate_helpers import copy_migrations, demo_databases, revision
from receivers import WEBHOOK_PATH, WEBHOOK_TOKEN, SmtpReceiver, WebhookReceiver

DB_PASSWORD = 'Pw/with@odd:chars%&"x'  # URL-encoding and JSON-escaping both change it
SMTP_PASSWORD = "smtp-Pass/word%42"

LEAK = revision("0003", "0002", '    raise RuntimeError("cannot reach " + '
                                'op.get_bind().engine.url.render_as_string(hide_password=False))')


def _forms(secret: str) -> set[bytes]:
    return {x.encode() for x in (secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1])}


def _hits(blob: bytes, secrets: dict[str, set[bytes]]) -> list[str]:
    return [f"{name} ({form!r})" for name, forms in secrets.items() for form in forms if form in blob]


def test_no_secret_reaches_dagster_storage_logs_reports_alerts_or_the_cli(pg, tmp_path, monkeypatch):
    pg.psql(f"CREATE ROLE leaky LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'")
    prod, dev = demo_databases(pg, tmp_path / "pgdata")
    url = "postgresql+psycopg://leaky:${LEAKY_PW}@" + prod.split("@", 1)[1]
    ref = "postgresql+psycopg://leaky:${LEAKY_PW}@" + dev.split("@", 1)[1]
    migrations = copy_migrations(tmp_path, {"0003_leak.py": LEAK})
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with WebhookReceiver() as hook, SmtpReceiver(username="alerts", password=SMTP_PASSWORD) as smtp:
        config_path = tmp_path / "maintenance.yaml"
        config_path.write_text(yaml.safe_dump({
            "backups": {"dir": "backups", "keep_last": 5, "keep_days": 0}, "reports": {"dir": "reports"},
            "alerts": {"log_file": "alerts.jsonl", "webhook_url": f"http://127.0.0.1:{hook.port}{WEBHOOK_PATH}",
                       "email": {"host": "127.0.0.1", "port": smtp.port, "username": "alerts",
                                 "password": "${SMTP_PW}", "sender": "mp@example.com", "to": ["dba@example.com"]}},
            "targets": {"goals": {"url": url, "reference": {"url": ref}, "migrations": str(migrations),
                                  "baseline_revision": "0001", "align": "full"}}}, sort_keys=False))
        env = {**os.environ, "DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config_path),
               "LEAKY_PW": quote(DB_PASSWORD, safe=""), "SMTP_PW": SMTP_PASSWORD, "PYTHONPATH": str(ROOT)}
        cli = subprocess.run([sys.executable, "-m", "maintenance_pipeline", "run", "maintain_database", "goals",
                              "--json"],
                             cwd=tmp_path, env=env, capture_output=True, timeout=300)
        assert cli.returncode == 1, cli.stderr.decode()[-2000:]
        run_id = json.loads(cli.stdout.decode().splitlines()[0])["run_id"]

        # the run-failure alert, sent by the real sensor on the same instance
        for name in ("DAGSTER_HOME", "MAINTENANCE_CONFIG", "LEAKY_PW", "SMTP_PW"):
            monkeypatch.setenv(name, env[name])
        defs = build_definitions(load_config(config_path))
        with dg.DagsterInstance.get() as instance:
            run = instance.get_run_by_id(run_id)
            failure = next(e for e in instance.all_logs(run_id) if e.dagster_event is not None
                           and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE)
            sensor = defs.resolve_sensor_def("alert_on_run_failure")
            sensor(dg.build_run_status_sensor_context(
                sensor_name="alert_on_run_failure", dagster_instance=instance, dagster_run=run,
                dagster_event=failure.dagster_event).for_run_failure())
            step_failure = next(e for e in instance.all_logs(run_id) if e.dagster_event is not None
                                and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE)
        hook.wait_for(1)
        smtp.wait_for(1)

    # the failure is the revision's, said on one line, the URL masked
    message = step_failure.dagster_event.step_failure_data.error.message
    assert "Alembic revision 0003 failed" in message and "cannot reach postgresql+psycopg://leaky:***@" in message

    secrets = {"database password": _forms(DB_PASSWORD), "webhook token": _forms(WEBHOOK_TOKEN),
               "smtp password": _forms(SMTP_PASSWORD)}
    places: list[tuple[str, bytes]] = [("cli stdout", cli.stdout), ("cli stderr", cli.stderr)]
    scanned = 0
    for folder in (home, tmp_path / "reports", tmp_path / "backups"):
        for path in folder.rglob("*"):
            if path.is_file() and (folder != tmp_path / "backups" or path.suffix == ".json"):
                places.append((str(path), path.read_bytes()))
                scanned += 1
    places.append(("alerts.jsonl", (tmp_path / "alerts.jsonl").read_bytes()))
    places += [("webhook body", json.dumps(b).encode()) for b in hook.bodies]
    places += [("email", raw) for _from, _to, raw in smtp.envelopes]
    storage = [p for p, _ in places if "/history/" in p or p.endswith(".db")]
    compute_logs = [p for p, _ in places if "compute_logs" in p]
    assert storage and compute_logs and scanned > 10, (storage, compute_logs)  # the places were really there
    leaks = [f"{where}: {hit}" for where, blob in places for hit in _hits(blob, secrets)]
    assert leaks == []
