"""A command-line run whose process is killed (SIGKILL) would stay STARTED in Dagster's run storage and hold its
database's place in the run queue: the next thing that looks fails it with the reason (``orchestration.liveness``).

Real parts: a real ``maintenance-pipeline run maintain_database goals`` process on a real Dagster instance (a
temporary ``DAGSTER_HOME``), held inside its migrate step (under the maintenance lock) by a revision that reads a
FIFO until the test closes it, then either killed with SIGKILL or let go. The next ``maintenance-pipeline run``
(in this process) and the drift sensor's tick (``build_sensor_context`` on the real instance) fail the killed run;
neither touches a live one, nor a run of another host. Which process is "gone" is judged on real processes too:
a reused pid (another start time), a zombie, tags copied from another run, another host, boot or pid namespace.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from targets import copy_migrations, demo_target, revision, write_config
from maintenance_pipeline import cli
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.orchestration.definitions import build_definitions
from maintenance_pipeline.orchestration.liveness import (
    HOST_TAG, PID_TAG, PROCESS_TAG, fail_dead_runs, process_gone, process_tags)
from maintenance_pipeline.orchestration.ops import BACKUP_POOL

pytestmark = [pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)"),
              pytest.mark.timeout(240)]

HOLD_ENV = "MAINTENANCE_TEST_HOLD_FIFO"
# a revision that, in the test's run process only, waits inside the migration until the test closes the FIFO
HOLD = revision("0003", "0002", f"""    path = os.environ.get({HOLD_ENV!r})
    if path:
        with open(path) as fifo:
            fifo.read()
    op.execute("SELECT 1")""", imports="import os")
BIN = Path(sys.executable).parent
HOST = socket.gethostname()


class Held:
    """``maintenance-pipeline run maintain_database goals`` in its own process, waiting inside its migrate step."""

    def __init__(self, folder: Path, config_path: Path, home: Path, instance: dg.DagsterInstance):
        self.fifo = folder / f"hold-{len(list(folder.glob('hold-*')))}.fifo"
        os.mkfifo(self.fifo)
        self.err = folder / f"{self.fifo.stem}.stderr"
        exe = BIN / "maintenance-pipeline"
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "maintenance_pipeline"]
        env = {**os.environ, "DAGSTER_HOME": str(home), HOLD_ENV: str(self.fifo)}
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(command + ["--config", str(config_path), "run", "maintain_database", "goals"],
                                         env=env, cwd=folder, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        self.fd = self._wait_for_the_reader()
        # the run is the only unfinished one, STARTED, tagged with this process
        runs = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED]
        assert len(runs) == 1, [(r.run_id, r.status) for r in instance.get_runs()]
        self.run = runs[0]
        assert self.run.tags[PID_TAG] == str(self.proc.pid) and self.run.tags[HOST_TAG] == HOST

    def _wait_for_the_reader(self, timeout: float = 120.0) -> int:
        """Open the FIFO's write end once the run has it open for reading (it is then inside the revision)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
            if self.proc.poll() is not None:
                pytest.fail(f"the run exited ({self.proc.returncode}) before its hold:\n{self.err.read_text()}")
            if time.monotonic() >= deadline:
                pytest.fail(f"the run did not reach its hold in {timeout:.0f}s:\n{self.err.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # the reader sees end of file: the revision goes on
            self.fd = None

    def stop(self) -> None:
        self.release()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def site(demo_dir, monkeypatch):
    """The demo with the holding revision, a Dagster home (SQLite storage; the backups pool limited to 1) and the
    instance; yields a ``start`` that launches a held run."""
    migrations = copy_migrations(demo_dir, {"0003_hold.py": HOLD})
    config_path = write_config(demo_dir, {"goals": demo_target(migrations=str(migrations))})
    home = demo_dir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False},
                                                       "concurrency": {"pools": {"default_limit": 1}}}))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    held: list[Held] = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        def start() -> Held:
            held.append(Held(demo_dir, config_path, home, instance))
            return held[-1]

        try:
            yield {"config_path": config_path, "config": load_config(config_path), "instance": instance,
                   "start": start, "dir": demo_dir}
        finally:
            for h in held:
                h.stop()


def failure_message(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.dagster_event.message for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]


def run_failure_alerts(folder: Path, run_id: str) -> list[dict]:
    import json

    path = folder / "alerts.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [a for a in lines if a["kind"] == "run_failure" and a["run_id"] == run_id]


def alert_failure(defs, instance, run_id: str) -> None:
    """What the daemon's run-failure sensor does with the run's RUN_FAILURE event."""
    [failure] = [e.dagster_event for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    context = dg.build_run_status_sensor_context(sensor_name="alert_on_run_failure", dagster_instance=instance,
                                                 dagster_run=instance.get_run_by_id(run_id), dagster_event=failure)
    defs.resolve_sensor_def("alert_on_run_failure")(context.for_run_failure())


def tick(defs, instance, cursor=None):
    context = dg.build_sensor_context(cursor=cursor, instance=instance, definitions=defs)
    return defs.resolve_sensor_def("schema_drift_sensor").evaluate_tick(context)


def expected(pid: int, step: str) -> str:
    return (f"its process (pid {pid} on host {HOST}) is gone: killed or crashed during step {step}; nothing after "
            f"step {step} ran; no report was written")


def test_the_next_cli_run_fails_a_killed_run_frees_its_slots_and_proceeds(site, capsys):
    instance = site["instance"]
    held = site["start"]()
    pid, run_id = held.proc.pid, held.run.run_id
    held.kill()
    # what a run killed inside its backup step leaves: a slot of the backups pool (limit 1), which would keep the
    # next run's backup waiting
    storage = instance.event_log_storage
    assert storage.claim_concurrency_slot(BACKUP_POOL, run_id, "backup").is_claimed
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # what nothing fixed before

    code = cli.main(["--config", str(site["config_path"]), "run", "maintain_database", "goals"])
    out = capsys.readouterr()
    assert code == 0, out
    killed = instance.get_run_by_id(run_id)
    assert killed.status == dg.DagsterRunStatus.FAILURE
    assert failure_message(instance, run_id) == [expected(pid, "migrate")]
    notes = [line for line in out.err.splitlines() if line.startswith("note: ")]
    assert notes == [f"note: run {run_id[:8]} (maintain_database on goals) marked failed: {expected(pid, 'migrate')}"]
    assert storage.get_concurrency_info(BACKUP_POOL).claimed_slots == []
    # it proceeded: a new run, tagged with this process, succeeded (the lock and the file were free)
    new = [r for r in instance.get_runs() if r.run_id != run_id]
    assert len(new) == 1 and new[0].status == dg.DagsterRunStatus.SUCCESS
    assert new[0].tags[PID_TAG] == str(os.getpid()) and f"run={new[0].run_id}" in new[0].tags[PROCESS_TAG]
    # the marking sends no alert itself: the daemon's run-failure sensor alerts the run's RUN_FAILURE event, once,
    # naming the step it died in (a command-line run is a run of the code location: it has its origin)
    assert killed.remote_job_origin is not None and run_failure_alerts(site["dir"], run_id) == []
    alert_failure(build_definitions(site["config"]), instance, run_id)
    [alert] = run_failure_alerts(site["dir"], run_id)
    assert alert["job"] == "maintain_database" and alert["target"] == "goals" and alert["step"] == "migrate"
    assert alert["error"] == expected(pid, "migrate")
    assert cli.main(["--config", str(site["config_path"]), "run", "verify_database", "goals"]) == 0
    assert "note: " not in capsys.readouterr().err and len(run_failure_alerts(site["dir"], run_id)) == 1


def test_the_drift_sensor_leaves_a_live_run_and_another_hosts_run_and_fails_a_killed_one(site):
    instance, config = site["instance"], site["config"]
    defs = build_definitions(config)
    held = site["start"]()
    pid, run_id = held.proc.pid, held.run.run_id

    # alive: neither the sensor's tick nor the CLI's look touches it
    tick(defs, instance)
    assert fail_dead_runs(instance, config.reports_dir) == []
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
    assert failure_message(instance, run_id) == [] and run_failure_alerts(site["dir"], run_id) == []

    held.kill()
    instance.add_run_tags(run_id, {HOST_TAG: "another-host.example"})  # as a run of another machine reads here
    tick(defs, instance)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

    instance.add_run_tags(run_id, {HOST_TAG: HOST})
    result = tick(defs, instance)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert failure_message(instance, run_id) == [expected(pid, "migrate")]
    assert run_failure_alerts(site["dir"], run_id) == []  # the tick marks it; the run-failure sensor alerts it
    alert_failure(defs, instance, run_id)
    [alert] = run_failure_alerts(site["dir"], run_id)
    assert alert["step"] == "migrate" and alert["error"] == expected(pid, "migrate")
    assert alert["run_url"] == f"{config.alerts.ui_base_url}/runs/{run_id}"
    tick(defs, instance, result.cursor)  # once: a failed run is not looked at again
    assert len(failure_message(instance, run_id)) == 1 and len(run_failure_alerts(site["dir"], run_id)) == 1


def test_a_live_run_let_go_finishes_as_if_nobody_had_looked(site):
    instance, config = site["instance"], site["config"]
    held = site["start"]()
    assert fail_dead_runs(instance, config.reports_dir) == []
    held.release()
    assert held.proc.wait(timeout=120) == 0, held.err.read_text()
    assert instance.get_run_by_id(held.run.run_id).status == dg.DagsterRunStatus.SUCCESS


# ---------------------------------------------------------------- which process is gone, on real processes
def test_gone_is_judged_by_pid_start_time_host_boot_and_namespace():
    me = process_tags("run-1")
    assert process_gone("run-1", me) is None  # this very process
    assert process_gone("run-2", me) is None  # tags copied into another run (a re-execution, a retry)
    assert process_gone("run-1", {**me, HOST_TAG: "another-host.example"}) is None
    recorded = dict(p.split("=", 1) for p in me[PROCESS_TAG].split())
    for key in ("boot", "pidns"):  # another machine of the same name, or this one before a restart; a container
        other = " ".join(f"{k}={'1' + v if k == key else v}" for k, v in recorded.items())
        assert process_gone("run-1", {**me, PROCESS_TAG: other}) is None
    reused = " ".join(f"{k}={int(v) + 1 if k == 'start' else v}" for k, v in recorded.items())
    assert process_gone("run-1", {**me, PROCESS_TAG: reused}) == f"pid {os.getpid()} is another process now"
    assert process_gone("run-1", {}) is None and process_gone("run-1", {**me, PID_TAG: "x"}) is None

    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        tags = process_tags("run-1", pid=child.pid)
        assert process_gone("run-1", tags) is None
        child.kill()
        # killed, not reaped yet: a zombie (its /proc entry stays until the wait)
        deadline = time.monotonic() + 30
        while process_gone("run-1", tags) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process_gone("run-1", tags) == "it exited and was not reaped yet"
    finally:
        child.kill()
        child.wait()
    assert process_gone("run-1", tags) == ""
    # where no identity was recorded (no /proc where it ran): a pid that does not exist is gone, a live one is not
    assert process_gone("run-1", {**tags, PROCESS_TAG: "run=run-1"}) == ""
    assert process_gone("run-1", {**me, PROCESS_TAG: "run=run-1"}) is None
