"""The machinery of the end-to-end daemon test (``test_daemon.py``): real processes, their Dagster state
and the alerts they send.

``Proc`` is a process started in its own session, so that it can be stopped by PID together with
everything it started (code servers, run workers): ``stop`` signals its whole process group.
``Deployment`` (the ``deployment`` fixture: import it into the test module) holds the processes
and the alert receivers of one test, polls with a deadline (``wait_until``: nothing waits a fixed
time) and stops them all at teardown. Then: the UI's GraphQL API, what the Dagster instance
holds (sensor ticks, runs, step failures, reports), and ``Channels``, the alerts as they arrived
by the alerts log, the webhook and email.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from receivers import SmtpReceiver, WebhookReceiver

LOCATION = "maintenance_pipeline"  # the code location, as the test's workspace.yaml names it
FINISHED = {"SUCCESS", "SKIPPED", "FAILURE"}


# ---------------------------------------------------------------- processes
def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class Proc:
    """A process started in its own session (so its group id is its PID), output to files."""

    def __init__(self, name: str, args: list[str], env: dict, cwd: Path, logs: Path):
        self.name = name
        self.out, self.err = logs / f"{name}.stdout.log", logs / f"{name}.stderr.log"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        self.pid = self.popen.pid
        self.seen: set[int] = {self.pid}  # every PID of its group the test ever saw

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_count(self, text: str) -> int:
        """How many lines of its stdout+stderr (code servers write there too) contain ``text``."""
        return sum(line.count(text) for path in (self.out, self.err) if path.exists()
                   for line in path.read_text(errors="replace").splitlines())

    def group(self) -> list[int]:
        pids = group_pids(self.pid)
        self.seen.update(pids)
        return pids

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.out, self.err):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts)

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM to the group, wait, SIGKILL what is left; returns PIDs of the group still alive."""
        self.group()
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + timeout
        while self.group() and time.monotonic() < deadline:  # code server / run workers shutting down
            time.sleep(0.2)
        if self.group() or self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)
            deadline = time.monotonic() + 10
            while self.group() and time.monotonic() < deadline:
                time.sleep(0.2)
        return self.group()


# ---------------------------------------------------------------- deployment
class Deployment:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: dict[str, Proc] = {}
        self.receivers = []

    def log_tails(self) -> str:
        return "\n".join(f"===== {name} (pid {p.pid}, {'running' if p.alive() else f'exit {p.popen.returncode}'})"
                         f" =====\n{p.tail()}" for name, p in self.procs.items())

    def wait_until(self, predicate, timeout: float, what: str):
        """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}", pytrace=False)
            for proc in self.procs.values():
                proc.group()  # remember the code servers and run workers each process started
            dead = [n for n, p in self.procs.items() if not p.alive()]
            if dead:
                pytest.fail(f"{', '.join(dead)} exited while waiting for {what}\n{self.log_tails()}", pytrace=False)
            time.sleep(0.2)

    def start(self, name: str, args: list[str], env: dict, log_name: str | None = None) -> Proc:
        self.procs[name] = proc = Proc(log_name or name, args, env, self.tmp, self.tmp)
        return proc

    def teardown(self) -> None:
        for receiver in self.receivers:
            receiver.stop()
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def deployment(tmp_path):
    dep = Deployment(tmp_path)
    try:
        yield dep
    finally:
        dep.teardown()  # safety net: the test itself stops everything and checks it is gone


def graphql(ui: str, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{ui}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        data = json.loads(resp.read())
    assert "errors" not in data, data
    return data["data"]


LOCATIONS_QUERY = "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus } } } }"
LAUNCH = """mutation Launch($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
RUN_QUERY = """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { runId jobName status } } }"""


def location_loaded(ui: str) -> bool:
    try:
        entries = graphql(ui, LOCATIONS_QUERY)["workspaceOrError"].get("locationEntries") or []
    except (urllib.error.URLError, ConnectionError, OSError):
        return False
    return any(e["name"] == LOCATION and e["loadStatus"] == "LOADED" for e in entries)


def launch_run(ui: str, job: str, target: str) -> str:
    """Launch ``job`` for ``target`` the way the UI's Launch button does."""
    params = {"selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job},
              "runConfigData": {},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": target},
                                             {"key": "database", "value": target},
                                             {"key": "trigger", "value": "e2e"}]}}
    result = graphql(ui, LAUNCH, {"p": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


# ---------------------------------------------------------------- Dagster state
def sensor_ticks(instance, sensor_name: str) -> list:
    state = next((s for s in instance.all_instigator_state() if s.instigator_name == sensor_name), None)
    if state is None:
        return []
    return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))


def finished_ticks(ticks) -> list:
    return [t for t in ticks if t.status.value in FINISHED]


def job_runs(instance, job: str, target: str = "goals") -> list:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=job, tags={"database": target})))


def step_failure(instance, run_id: str):
    events = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert len(events) == 1, events
    return events[0].dagster_event


def run_report(tmp: Path, run_id: str) -> dict:
    for path in sorted((tmp / "reports" / "goals").glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("run_id") == run_id:
            return data
    raise AssertionError(f"no JSON report for run {run_id} in {tmp / 'reports' / 'goals'}")


# ---------------------------------------------------------------- alerts on the three channels
class Channels:
    def __init__(self, tmp: Path, webhook: WebhookReceiver, smtp: SmtpReceiver):
        self.log_file, self.webhook, self.smtp = tmp / "alerts.jsonl", webhook, smtp

    def log(self, kind: str, **match) -> list[dict]:
        lines = self.log_file.read_text().splitlines() if self.log_file.exists() else []
        alerts = [json.loads(line) for line in lines if line.endswith("}")]  # a line is written in one write
        return [a for a in alerts if a["kind"] == kind and all(a.get(k) == v for k, v in match.items())]

    def hooks(self, kind: str, **match) -> list[dict]:
        return [b for b in self.webhook.bodies if b["kind"] == kind and all(b.get(k) == v for k, v in match.items())]

    def mails(self, kind: str, **match) -> list:
        """Messages whose body lists ``kind: <kind>`` and each ``key: value`` of ``match``."""
        out = []
        for msg in self.smtp.messages:
            body = msg.get_body(("plain",)).get_content()
            fields = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
            if fields.get("kind") == kind and all(fields.get(k) == str(v) for k, v in match.items()):
                out.append(msg)
        return out

    def all(self, kind: str, **match):
        return self.log(kind, **match), self.hooks(kind, **match), self.mails(kind, **match)

    def arrived(self, kind: str, with_webhook: bool = True, **match):
        """All expected channels have at least one such alert -> (log, webhook, mail) lists, else None."""
        log, hooks, mails = self.all(kind, **match)
        return (log, hooks, mails) if log and mails and (hooks or not with_webhook) else None
