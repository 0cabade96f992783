"""Runs whose process is gone: found, and failed with the reason, by the next thing that looks.

``maintenance-pipeline run`` executes its Dagster run inside its own process (``command_line.execute``). When that
process dies without a word (SIGKILL, the OOM killer), nothing records the run's end: it stays STARTED in Dagster's
run storage, counts against the run queue's one-run-per-``database`` limit (the daemon's next run of that database
waits QUEUED behind it) and keeps any op concurrency slot it had claimed (the ``backups`` pool). Dagster's run
monitoring does not notice: its worker health check is the run launcher's, the ``DefaultRunLauncher`` has none
(``supports_check_run_worker_health`` is False in 1.13), and a run executed in process was launched by no launcher
at all; only the jobs' ``dagster/max_runtime`` tag ends it, hours later, as canceled.

So the CLI tags each run with the process that executes it (``process_tags``: pid, host, and the process's identity:
the run id, the boot id, the pid namespace and the process's start time in clock ticks), and ``fail_dead_runs``
(called by the CLI before it launches a run, and by the drift sensor each tick) fails every unfinished run of this
host whose process is gone: ``instance.report_run_failed`` with one line (what died, which step it was in, where its
report is), then the run's concurrency slots are freed. Failing the run records its RUN_FAILURE event, which the
daemon's run-failure sensor alerts like any other (``automation.alert_on_run_failure``: once, naming the step the run
died in, ``where_it_stopped``); nothing here alerts, so a run is never alerted twice.

Never failed: a run of another host, or of another pid namespace or boot of a host of the same name (the process
cannot be seen from here); a run whose tags were copied from another run (a re-execution, a run retry: the tag
names its own run id); a live process. A pid reused by another process is told apart by its start time. Where
``/proc`` is missing, only a pid that does not exist at all counts as gone (a reused pid keeps the run; its
``dagster/max_runtime`` still ends it).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason

PID_TAG = "maintenance_pipeline/pid"
HOST_TAG = "maintenance_pipeline/host"
PROCESS_TAG = "maintenance_pipeline/process"  # "run=<run id> boot=<boot id> pidns=<inode> start=<clock ticks>"

UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
              dg.DagsterRunStatus.CANCELING]
_STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


# ---------------------------------------------------------------- a process, as this host sees it
def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of process ``pid``, from ``/proc/<pid>/stat``; None when there
    is no such process (or no ``/proc``)."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 (state) on; field 22 is starttime
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _host_identity() -> dict[str, str] | None:
    """This kernel's boot id and this process's pid namespace: a pid means the same process only within both."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None
    digits = "".join(c for c in namespace if c.isdigit())
    return {"boot": boot, "pidns": digits} if boot and digits else None


def process_tags(run_id: str, pid: int | None = None) -> dict[str, str]:
    """The tags naming the process that executes run ``run_id``: this process (or process ``pid`` of this host)."""
    pid = os.getpid() if pid is None else pid
    identity = {"run": run_id}
    here, stat = _host_identity(), _stat(pid)
    if here and stat:
        identity.update(here, start=stat[1])
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(),
            PROCESS_TAG: " ".join(f"{k}={v}" for k, v in identity.items())}


def process_gone(run_id: str, tags: dict[str, str]) -> str | None:
    """Why the process that ran ``run_id`` (by its ``tags``) is gone: "" when no such process exists, else a few
    words; None when it may be alive, or is not this host's to judge (another host, pid namespace or boot; tags
    copied from another run; no tags)."""
    pid, host = tags.get(PID_TAG, ""), tags.get(HOST_TAG)
    recorded = dict(part.partition("=")[::2] for part in tags.get(PROCESS_TAG, "").split())
    if not pid.isdigit() or host != socket.gethostname() or recorded.get("run") != run_id:
        return None
    if "start" in recorded:
        here = _host_identity()
        if here is None or any(recorded.get(k) != v for k, v in here.items()):
            return None  # another machine of the same name, this one before a restart, or another pid namespace
        stat = _stat(int(pid))
        if stat is None:
            return ""
        if stat[0] in ("Z", "X"):
            return "it exited and was not reaped yet"
        return f"pid {pid} is another process now" if stat[1] != recorded["start"] else None
    try:  # no identity recorded where it started (no /proc): only a pid that does not exist at all is gone
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return ""
    except OSError:
        return None
    return None


# ---------------------------------------------------------------- failing the run
@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job: str
    target: str | None
    step: str | None  # the step it died in, else the step that failed (whose report it wrote), else None
    report_path: str | None
    message: str  # the one line the run is failed with

    def line(self) -> str:
        return f"run {self.run_id[:8]} ({self.job} on {self.target or '?'}) marked failed: {self.message}"


def _steps(instance: dg.DagsterInstance, run_id: str) -> tuple[list[str], list[str], list[str]]:
    """The run's steps that started, finished and failed, in order."""
    started, done, failed = [], [], []
    for entry in instance.all_logs(run_id, of_type=_STEP_EVENTS):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        {dg.DagsterEventType.STEP_START: started, dg.DagsterEventType.STEP_SUCCESS: done,
         dg.DagsterEventType.STEP_FAILURE: failed}[event.event_type].append(event.step_key)
    return started, done, failed


def _report(reports_dir: Path | None, run: dg.DagsterRun, target: str | None) -> str | None:
    if reports_dir is None or not target:
        return None
    found = sorted((Path(reports_dir) / target).glob(f"*_{run.job_name}_{run.run_id[:8]}.md"))
    return str(found[-1]) if found else None


def where_it_stopped(instance: dg.DagsterInstance, run: dg.DagsterRun,
                     reports_dir: Path | None) -> tuple[str | None, str | None]:
    """(the step a run ended in without a step failure of its own: the one it was running, else the last that failed;
    the path of its report, if one was written): what the run-failure alert names for a run whose process died."""
    started, done, failed = _steps(instance, run.run_id)
    running = [s for s in started if s not in done and s not in failed]
    target = run.tags.get("database") or run.tags.get("dagster/partition")
    return (running[-1] if running else failed[-1] if failed else None), _report(reports_dir, run, target)


def describe(instance: dg.DagsterInstance, run: dg.DagsterRun, why: str, reports_dir: Path | None) -> DeadRun:
    """The dead run, and the one line it is failed with: what died, in which step, where its report is."""
    started, done, failed = _steps(instance, run.run_id)
    running = [s for s in started if s not in done and s not in failed]
    last = running[-1] if running else started[-1] if started else None
    where = (f"during step {last}" if running else f"after step {last}" if last else "before its first step")
    target = run.tags.get("database") or run.tags.get("dagster/partition")
    report = _report(reports_dir, run, target)
    if report:
        said = f"the report of the failed step {failed[-1]} is in {report}" if failed else f"its report is in {report}"
    else:
        said = "no report was written"
    nothing = f"nothing after step {last} ran" if last else "no step ran"
    message = (f"its process (pid {run.tags.get(PID_TAG)} on host {run.tags.get(HOST_TAG)}) is gone"
               f"{f' ({why})' if why else ''}: killed or crashed {where}; {nothing}; {said}")
    step = running[-1] if running else failed[-1] if failed else None
    return DeadRun(run_id=run.run_id, job=run.job_name, target=target, step=step, report_path=report, message=message)


def fail_dead_runs(instance: dg.DagsterInstance, reports_dir: Path | None = None) -> list[DeadRun]:
    """Fail every unfinished run of this host whose process is gone (``process_gone``), with the reason, and free
    the concurrency slots it held; returns them (the run-failure sensor alerts them). A live run, a run of
    another host and a run without our tags are never touched."""
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=UNFINISHED,
                                                             tags={HOST_TAG: socket.gethostname()}))
    dead = []
    for record in records:
        run = record.dagster_run
        why = process_gone(run.run_id, run.tags)
        if why is None:
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status not in UNFINISHED:  # another looker failed it meanwhile
            continue
        found = describe(instance, current, why, reports_dir)
        instance.report_run_failed(current, found.message, JobFailureData(
            error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION))
        storage = instance.event_log_storage
        if storage.supports_global_concurrency_limits:  # what the daemon frees for finished runs, now
            storage.free_concurrency_slots_for_run(run.run_id)
        dead.append(found)
    return dead
