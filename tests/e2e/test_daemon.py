"""End to end: the automation (schedule, drift sensor, alerts) under a real ``dagster-daemon`` and ``dagster-webserver``.

One test, four phases, against real processes on 127.0.0.1 sharing a temporary DAGSTER_HOME:

(a) a plain ``ALTER TABLE`` on the target -> the daemon's ``schema_drift_sensor`` starts one
    ``verify_database`` run, which fails ``schema_matches_reference``; the drift alert (and the
    run-failure alert) arrive by webhook, email and the alerts log;
(b) three more sensor ticks on the unchanged schema -> no second run, no second drift alert;
(c) a ``maintain_database`` run launched from the UI's GraphQL API fails another way (the
    maintenance lock is held) -> the run-failure alert, with the run's UI link, on all three channels;
(c') a ``maintenance-pipeline run`` (executed in its own process, not launched by the daemon) fails the same way ->
    the daemon's run-failure sensor alerts it too, exactly once;
(d) the webhook receiver is stopped, another run fails -> email and log still arrive, the daemon lives.

No secret (webhook token, SMTP password; SMTP AUTH is really used) appears in any alert, report,
process log or Dagster's storage (op outputs stay in memory: they hold the loaded targets file).
Every process the test
started is stopped by PID (its whole process group: the code servers and run workers it spawned).

Synchronisation is always a poll with a deadline (``wait_until``); nothing waits a fixed time.
The daemon's sensor loop runs at most every 5 s (``dagster._daemon.sensor.MIN_INTERVAL_LOOP_TIME``,
not configurable), so ``sensor_interval_seconds: 1`` yields one tick per ~5 s.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from targets import ROOT, build_demo, demo_target, pg_demo, write_config
from receivers import WEBHOOK_TOKEN, SmtpReceiver, WebhookReceiver, free_port

from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.lock import maintenance_lock
from maintenance_pipeline.core.run.pipeline import run_job

# deployment's asserts report in full, as in a test module; the deployment fixture comes with it
pytest.register_assert_rewrite("deployment")
from deployment import (  # noqa: E402, F401 - deployment is a fixture
    LOCATION,
    RUN_QUERY,
    Channels,
    deployment,
    finished_ticks,
    graphql,
    job_runs,
    launch_run,
    location_loaded,
    pid_alive,
    run_report,
    sensor_ticks,
    step_failure,
)

pytestmark = pytest.mark.timeout(300)

BIN = Path(sys.executable).parent
SMTP_USER, SMTP_PASSWORD = "alerts-bot", "e2e-Smtp-PASSWORD-7f3k"
ALL_OK = "{kind} alert for goals: {{'log': 'ok', 'webhook': 'ok', 'email': 'ok'}}"  # the sensors' log line


# ---------------------------------------------------------------- the test
# the instance on PostgreSQL is the production shape: run by `make test-scale` with the nightly over 22 databases
# (CI runs it after `make test`), which keeps `make test` within its 10 minutes
@pytest.mark.parametrize("target_kind, storage", [("sqlite", "sqlite"),
                                                  pytest.param("sqlite", "postgres", marks=pytest.mark.scale),
                                                  ("postgres", "sqlite")])
def test_automation_under_a_real_daemon(deployment, target_kind, storage, request):
    """``target_kind``: the maintained database (a SQLite file, or PostgreSQL with the password from
    ``${PGPASSWORD}``); ``storage``: where the Dagster instance keeps runs, events and schedules."""
    dep, tmp = deployment, deployment.tmp
    for exe in ("dagster-daemon", "dagster-webserver"):
        if not (BIN / exe).exists():
            pytest.skip(f"{exe} not installed next to {sys.executable}")

    # --- the demo, made equal to its reference first (no drift when the daemon starts)
    targets = None
    secrets_extra: list[str] = []
    if target_kind == "postgres":
        from pgserver import SUPERPASS

        pg = request.getfixturevalue("pg")
        prod, dev = pg_demo.load(pg.url(), prod="e2e_goals", dev="e2e_goals_dev", data_dir=tmp / "data")
        as_var = {u: u.replace(f":{SUPERPASS}@", ":${PGPASSWORD}@") for u in (prod, dev)}
        targets = {"goals": demo_target(url=as_var[prod], reference={"url": as_var[dev]})}
        request.getfixturevalue("monkeypatch").setenv("PGPASSWORD", SUPERPASS)
        secrets_extra.append(SUPERPASS)
    else:
        build_demo.build(tmp / "data")
    report = run_job(load_config(write_config(tmp, targets)), "goals", "maintain_database")
    assert report["status"] == "success", report.get("error")

    webhook = WebhookReceiver()
    smtp = SmtpReceiver(username=SMTP_USER, password=SMTP_PASSWORD)
    dep.receivers += [webhook, smtp]
    assert WEBHOOK_TOKEN in webhook.url
    target_db = tmp / "data" / "goals.db"
    channels = Channels(tmp, webhook, smtp)

    def configure(ui: str) -> Path:
        return write_config(
            tmp, targets,
            alerts={"webhook_url": webhook.url, "log_file": "alerts.jsonl", "ui_base_url": ui,
                    "email": {"host": "127.0.0.1", "port": smtp.port, "sender": "maintenance@example.com",
                              "to": ["dba@example.com"], "username": SMTP_USER, "password": SMTP_PASSWORD}},
            automation={"sensor_interval_seconds": 1},
            schedule={"cron": "0 2 29 2 *", "timezone": "UTC"},  # the nightly run kept out of the way (29 Feb)
        )

    home = tmp / "dagster_home"
    home.mkdir()
    instance_storage = {}
    if storage == "postgres":
        pg = request.getfixturevalue("pg")
        pg.create_database("dagster_e2e")
        # the driver is named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, whose server-side
        # parameters dagster-postgres's NOTIFY statements do not support
        instance_storage = {"storage": {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}}
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        **instance_storage,
        "telemetry": {"enabled": False},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator",
                            "config": {"max_concurrent_runs": 4, "dequeue_interval_seconds": 1,
                                       "tag_concurrency_limits": [{"key": "database", "limit": 1,
                                                                   "value": {"applyLimitPerUniqueValue": True}}]}},
        "run_launcher": {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"},
        "sensors": {"use_threads": True, "num_workers": 4},
        "schedules": {"use_threads": True, "num_workers": 2},
    }))
    workspace = tmp / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "maintenance_pipeline", "working_directory": str(ROOT), "location_name": LOCATION}}]}))
    config_path = tmp / "maintenance.yaml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PYTEST_", "ALERT_"))}
    env.update({"DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config_path), "PYTHONUNBUFFERED": "1",
                "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    if storage == "postgres":
        pg_url = pg.url("dagster_e2e").replace("+psycopg:", "+psycopg2:")
        env["DAGSTER_PG_URL"] = pg_url
        request.getfixturevalue("monkeypatch").setenv("DAGSTER_PG_URL", pg_url)  # this process reads it too

    # the storage schema is created here, once: three processes creating it at once would race
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert instance.get_runs() == [] and instance.all_instigator_state() == []
        t_start = time.monotonic()
        # the webserver first: its port goes into the targets file (ui_base_url) that both processes load;
        # if another process takes the free port before the webserver binds it, try another one
        for attempt in range(1, 4):
            ui = f"http://127.0.0.1:{free_port()}"
            configure(ui)
            web = dep.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p",
                                          ui.rsplit(":", 1)[1], "-w", str(workspace)], env,
                            log_name=f"webserver{attempt}")
            state = dep.wait_until(lambda: "loaded" if location_loaded(ui) else None if web.alive() else "exited",
                                   90, "the webserver to serve the code location")
            if state == "loaded":
                break
            assert dep.procs.pop("webserver").stop() == []
        else:
            pytest.fail(f"the webserver did not start in 3 attempts\n{web.tail()}")
        config = load_config(config_path)
        assert config.alerts.ui_base_url == ui
        daemon = dep.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env)

        # both sensors have ticked once on the unchanged target (the run-failure sensor's first tick
        # sets its cursor; failures before it would be ignored)
        first = dep.wait_until(lambda: finished_ticks(sensor_ticks(instance, "schema_drift_sensor")), 90,
                               "the first schema_drift_sensor tick")
        assert first[-1].status.value == "SKIPPED" and "goals: no drift" in (first[-1].skip_reason or ""), first[-1]
        dep.wait_until(lambda: finished_ticks(sensor_ticks(instance, "alert_on_run_failure")), 30,
                       "the first alert_on_run_failure tick")
        assert not job_runs(instance, "verify_database") and channels.log("drift") == []
        t_ready = time.monotonic()

        # ---------------- (a) drift: a plain ALTER TABLE -> one verify run, failed, drift alert everywhere
        if target_kind == "postgres":
            engine = sa.create_engine(config.targets["goals"].url)
            with engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE goals ADD COLUMN e2e_surprise TEXT")
            engine.dispose()
        else:
            conn = sqlite3.connect(target_db)
            try:
                conn.execute("ALTER TABLE goals ADD COLUMN e2e_surprise TEXT")
                conn.commit()
            finally:
                conn.close()

        runs = dep.wait_until(lambda: [r for r in job_runs(instance, "verify_database")
                                       if r.status == dg.DagsterRunStatus.FAILURE], 90,
                              "a failed verify_database run for goals")
        assert len(job_runs(instance, "verify_database")) == 1
        drift_run = runs[0]
        fingerprint = drift_run.tags["drift.fingerprint"]
        assert drift_run.tags["trigger"] == "drift" and drift_run.tags["dagster/partition"] == "goals"
        assert drift_run.tags["dagster/sensor_name"] == "schema_drift_sensor"
        failure = step_failure(instance, drift_run.run_id)
        assert failure.step_key == "verify"
        assert "schema_matches_reference" in failure.step_failure_data.user_failure_data.description
        rep = run_report(tmp, drift_run.run_id)
        assert rep["status"] == "failed" and rep["failed_step"] == "verify"
        assert [c["passed"] for c in rep["checks"] if c["name"] == "schema_matches_reference"] == [False]

        log, hooks, mails = dep.wait_until(lambda: channels.arrived("drift", fingerprint=fingerprint), 30,
                                           "the drift alert on webhook, email and the alerts log")
        # ... and the sensor's own log line, in the daemon's log, says all three channels took it
        dep.wait_until(lambda: daemon.log_count(ALL_OK.format(kind="drift")) == 1, 30,
                       "the sensor's log line for the drift alert")
        for alert in (log[0], hooks[0]):
            assert alert["target"] == "goals" and alert["job"] == "verify_database"
            assert any("e2e_surprise" in c for c in alert["changes"]), alert
        assert "e2e_surprise" in hooks[0]["text"]
        assert mails[0]["Subject"] == "[maintenance] DRIFT on goals" and mails[0]["To"] == "dba@example.com"
        assert "e2e_surprise" in mails[0].get_body(("plain",)).get_content()

        # the drift run's own failure is alerted too (the same run-failure path as (c))
        log, hooks, mails = dep.wait_until(
            lambda: channels.arrived("run_failure", run_id=drift_run.run_id), 30,
            "the run-failure alert of the drift run")
        assert log[0]["step"] == "verify" and "schema_matches_reference" in log[0]["error"]
        assert log[0]["run_url"] == hooks[0]["run_url"] == f"{ui}/runs/{drift_run.run_id}"
        t_a = time.monotonic()

        # ---------------- (b) no new drift for three more ticks -> no second run, no second alert
        seen = {t.tick_id for t in sensor_ticks(instance, "schema_drift_sensor")}
        later = dep.wait_until(
            lambda: (lambda new: new if len(new) >= 3 else None)(
                [t for t in finished_ticks(sensor_ticks(instance, "schema_drift_sensor")) if t.tick_id not in seen]),
            60, "three more schema_drift_sensor ticks")
        assert all(t.status.value != "FAILURE" and not t.run_ids for t in later), later
        # the sensor still sees the drift each tick and asks again; the run key makes Dagster skip it
        assert all(t.run_keys == [f"goals:{fingerprint}"] for t in later), [t.run_keys for t in later]
        assert daemon.log_count(ALL_OK.format(kind="drift")) == 1
        assert [r.run_id for r in job_runs(instance, "verify_database")] == [drift_run.run_id]
        assert len(instance.get_runs()) == 1
        assert [len(x) for x in channels.all("drift")] == [1, 1, 1]
        assert [len(x) for x in channels.all("run_failure")] == [1, 1, 1]
        t_b = time.monotonic()

        # ---------------- (c) a run fails another way: the maintenance lock is held by someone else
        with maintenance_lock(config.targets["goals"].url, holder="e2e test"):
            locked_run_id = launch_run(ui, "maintain_database", "goals")
            dep.wait_until(lambda: instance.get_run_by_id(locked_run_id).status == dg.DagsterRunStatus.FAILURE,
                           90, f"maintain_database run {locked_run_id} to fail on the held lock")
        failure = step_failure(instance, locked_run_id)
        assert failure.step_key == "migrate", failure
        run_url = f"{ui}/runs/{locked_run_id}"
        log, hooks, mails = dep.wait_until(lambda: channels.arrived("run_failure", run_id=locked_run_id), 30,
                                           "the run-failure alert on webhook, email and the alerts log")
        for alert in (log[0], hooks[0]):
            assert alert["job"] == "maintain_database" and alert["target"] == "goals" and alert["step"] == "migrate"
            assert "maintenance lock" in alert["error"] and alert["run_url"] == run_url
            assert alert["report_path"] == run_report(tmp, locked_run_id)["report_paths"]["markdown"]
        assert f"<{run_url}|" in hooks[0]["text"]
        assert mails[0]["Subject"] == "[maintenance] FAILED maintain_database on goals"
        assert run_url in mails[0].get_body(("plain",)).get_content()
        # the link works: the webserver that ui_base_url names serves the run
        with urllib.request.urlopen(run_url, timeout=10) as resp:
            assert resp.status == 200
        run = graphql(ui, RUN_QUERY, {"id": locked_run_id})["runOrError"]
        assert run == {"__typename": "Run", "runId": locked_run_id, "jobName": "maintain_database",
                       "status": "FAILURE"}
        assert [len(x) for x in channels.all("drift")] == [1, 1, 1]  # still no second drift alert

        # ---------------- (c') the same failure from the command line: the daemon alerts it, once
        with maintenance_lock(config.targets["goals"].url, holder="e2e test"):
            cli = subprocess.run([str(BIN / "maintenance-pipeline"), "run", "maintain_database", "goals", "--json"],
                                 env=env, cwd=tmp, capture_output=True, text=True, timeout=180)
        assert cli.returncode == 1, cli.stdout + cli.stderr
        cli_run_id = json.loads(cli.stdout.splitlines()[0])["run_id"]
        log, hooks, mails = dep.wait_until(lambda: channels.arrived("run_failure", run_id=cli_run_id), 60,
                                           "the run-failure alert of the command-line run")
        assert log[0]["step"] == "migrate" and log[0]["run_url"] == f"{ui}/runs/{cli_run_id}"
        seen = {t.tick_id for t in sensor_ticks(instance, "alert_on_run_failure")}
        dep.wait_until(lambda: len([t for t in finished_ticks(sensor_ticks(instance, "alert_on_run_failure"))
                                    if t.tick_id not in seen]) >= 2, 60, "two more alert_on_run_failure ticks")
        assert [len(x) for x in channels.all("run_failure", run_id=cli_run_id)] == [1, 1, 1]
        t_c = time.monotonic()

        # ---------------- (d) the webhook is down: email and log still arrive, the daemon carries on
        webhook.stop()
        hooks_before = len(webhook.bodies)
        with maintenance_lock(config.targets["goals"].url, holder="e2e test"):
            down_run_id = launch_run(ui, "maintain_database", "goals")
            dep.wait_until(lambda: instance.get_run_by_id(down_run_id).status == dg.DagsterRunStatus.FAILURE,
                           90, f"maintain_database run {down_run_id} to fail")
        log, _, mails = dep.wait_until(
            lambda: channels.arrived("run_failure", with_webhook=False, run_id=down_run_id), 60,
            "the run-failure alert by email and in the alerts log with the webhook down")
        assert log[0]["run_url"] == f"{ui}/runs/{down_run_id}"
        assert f"{ui}/runs/{down_run_id}" in mails[0].get_body(("plain",)).get_content()
        assert len(webhook.bodies) == hooks_before and channels.hooks("run_failure", run_id=down_run_id) == []
        # the channel that is down is logged (endpoint masked) and the others still report ok
        port = urllib.parse.urlsplit(webhook.url).port
        dep.wait_until(lambda: daemon.log_count(f"alert webhook http://127.0.0.1:{port}/… delivery attempt 4/4 "
                                                "failed: ConnectionRefusedError") == 1, 30,
                       "the webhook delivery failure in the daemon's log")
        dep.wait_until(lambda: daemon.log_count("run_failure alert for goals: {'log': 'ok', 'webhook': 'failed: "
                                                "ConnectionRefusedError") == 1, 30,
                       "the sensor's log line for the alert with the webhook down")
        assert daemon.log_count(ALL_OK.format(kind="run_failure")) == 3  # (a), (c) and (c')
        assert daemon.alive() and web.alive()
        ticks = sensor_ticks(instance, "alert_on_run_failure")
        assert not [t for t in ticks if t.status.value == "FAILURE"], [t.error for t in ticks]
        t_d = time.monotonic()

        # ---------------- no secret anywhere; SMTP AUTH really was used
        assert smtp.logins and set(smtp.logins) == {SMTP_USER}
        secrets = [WEBHOOK_TOKEN, SMTP_PASSWORD, *secrets_extra]
        for raw in [r["raw"] for r in webhook.requests] + [e[2] for e in smtp.envelopes]:
            assert not [s for s in secrets if s.encode() in raw], raw[:500]
        for req in webhook.requests:
            assert WEBHOOK_TOKEN in req["path"]  # where it belongs: only the URL the alert was posted to
        print(f"\n[e2e] timings: ready {t_ready - t_start:.1f}s, (a) {t_a - t_ready:.1f}s, "
              f"(b) {t_b - t_a:.1f}s, (c) {t_c - t_b:.1f}s, (d) {t_d - t_c:.1f}s")
    except BaseException:
        print(f"\n{dep.log_tails()}")  # shown by pytest with the failure
        raise
    finally:
        instance.dispose()

    # ---------------- every process stopped by PID, with its code servers and run workers
    for name in ("webserver", "daemon"):
        proc = dep.procs[name]
        left = proc.stop()
        assert left == [], f"{name}: processes still alive after stop: {left}"
        assert proc.popen.returncode is not None
        assert [pid for pid in proc.seen if pid_alive(pid)] == [], f"{name}: a process it started is still alive"
    assert len(dep.procs["daemon"].seen) > 1, "the daemon's code server was never seen in its process group"

    # ---------------- no secret in any file, scanned once every process is gone (a running daemon
    # creates and removes its SQLite -wal/-shm files between listing a directory and reading a file)
    scanned = [p for p in tmp.rglob("*") if p.is_file() and p != config_path]
    assert any(p.name == "alerts.jsonl" for p in scanned) and any(p.suffix == ".md" for p in scanned)
    leaks = sorted({str(p.relative_to(tmp)) for p in scanned for s in secrets if s.encode() in p.read_bytes()})
    # op outputs stay in memory (jobs use mem_io_manager), so Dagster's storage holds no copy of the
    # targets file either: no exception for any file
    assert leaks == [], "\n".join(leaks)

