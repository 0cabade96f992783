"""The zygote of the crash trials: ``python crash_zygote.py zygote`` imports the pipeline once, warms it up
with one whole run, then ``fork``s one child per trial (no ~1 s of Python start-up and imports per trial).

The child runs ``pipeline.run_job`` with each step function (``step_backup``, ``step_diff``,
``step_migrate``, ``step_verify``, ``finish``) wrapped to write a marker first, stamped with
``time.monotonic()`` (one clock for every process on Linux); the maintenance lock is wrapped to mark when
it is taken and given back, and SQLAlchemy's ``commit`` event marks the migration's COMMIT (sent while
the lock is held). All of that in the child only: no product code changes. The zygote reaps a child only
when told to, so the pid a kill goes to cannot be reused meanwhile.

``Zygote`` is the parent's side (JSON lines in: commands; JSON lines out: events); ``_zygote_main`` the
zygote's own. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from crash_checks import TARGET

JOB = "maintain_database"
INJECT_VAR = "CRASH_HARNESS_INJECT"  # the zygote's children plant a bug on purpose (the self-check)
RUN_TIMEOUT = 60.0  # seconds one child run may take


class ZygoteError(RuntimeError):
    pass


class Zygote:
    """``python crash_zygote.py zygote``: JSON lines in (commands), JSON lines out (events)."""

    def __init__(self, work: Path, inject: str | None = None):
        self.stderr_path = Path(work) / "zygote.stderr"
        self.stderr = open(self.stderr_path, "wb")
        env = {**os.environ, INJECT_VAR: inject} if inject else None
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "zygote"], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, bufsize=0)
        self.buf = b""
        self.pending: set[int] = set()
        self.expect("ready", timeout=60)

    def send(self, **cmd) -> None:
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        self.proc.stdin.flush()

    def next(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ZygoteError(f"no answer from the zygote in time; stderr: {self._stderr_tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ZygoteError(f"the zygote exited ({self.proc.poll()}); stderr: {self._stderr_tail()}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def expect(self, ev: str, timeout: float = RUN_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next(deadline)
            if msg["ev"] == ev:
                return msg
            if msg["ev"] == "error":
                raise ZygoteError(msg.get("error"))

    def warm(self, config: Path) -> dict:
        self.send(op="warm", config=str(config))
        return self.expect("warmed", timeout=120)

    def fork_run(self, config: Path) -> int:
        self.send(op="run", config=str(config))
        pid = self.expect("forked")["pid"]
        self.pending.add(pid)
        return pid

    def reap(self, pid: int, timeout: float = RUN_TIMEOUT) -> tuple[dict, list[dict]]:
        """Reap ``pid`` (after it ended or was killed): its exit event and the markers not read yet."""
        self.send(op="reap", pid=pid)
        deadline = time.monotonic() + timeout
        marks = []
        while True:
            msg = self.next(deadline)
            if msg["ev"] == "exit" and msg["pid"] == pid:
                self.pending.discard(pid)
                return msg, marks
            if msg.get("pid") == pid and msg["ev"] == "mark":
                marks.append(msg)

    def close(self) -> None:
        for pid in list(self.pending):
            try:
                os.kill(pid, signal.SIGKILL)  # not reaped yet: still this child (a zombie at worst)
            except ProcessLookupError:
                pass
            try:
                self.reap(pid, timeout=10)
            except ZygoteError:
                pass
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.stderr.close()

    def _stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


# --------------------------------------------------------------------------- the zygote's own side


def _commit_early(url: str) -> None:
    """A bug planted on purpose (``inject="commit-early"``): with the lock held, one change of the migration
    (the demo's ``goals.completed_at``) committed on its own, before the migration's one transaction; a
    kill after it leaves a schema that is neither the pre-run one nor the migrated one."""
    from maintenance_pipeline.core.engines.sqlite.files import sqlite_path

    conn = sqlite3.connect(sqlite_path(url), isolation_level=None, timeout=30)
    try:
        if "completed_at" not in {r[1] for r in conn.execute("SELECT * FROM pragma_table_info('goals')")}:
            conn.execute("ALTER TABLE goals ADD COLUMN completed_at DATETIME")
    finally:
        conn.close()


def _zygote_main() -> int:
    proto = os.dup(1)  # the protocol's own descriptor: nothing the product prints can corrupt it
    os.dup2(2, 1)
    from contextlib import contextmanager

    import sqlalchemy as sa

    from maintenance_pipeline.core.migrate import executor as migrate_mod
    from maintenance_pipeline.core.run import pipeline
    from maintenance_pipeline.core.config import load_config

    def send(**msg) -> None:
        os.write(proto, (json.dumps(msg, default=str) + "\n").encode())  # one write < PIPE_BUF: atomic

    inject = os.environ.get(INJECT_VAR)

    def child(config_path: str) -> int:
        me = os.getpid()

        def mark(name: str, **kw) -> None:
            send(ev="mark", pid=me, name=name, t=time.monotonic(), **kw)

        real_lock = migrate_mod.maintenance_lock
        locked = [False]

        @contextmanager
        def marked_lock(url, **kw):
            with real_lock(url, **kw) as got:
                mark("lock")
                if inject == "commit-early":
                    _commit_early(url)
                locked[0] = True
                try:
                    yield got
                finally:
                    locked[0] = False
                    mark("unlock")

        def on_commit(conn) -> None:  # SQLAlchemy's commit event: just before the DBAPI commit
            if locked[0]:
                mark("commit")

        def marked(name: str, fn):
            def step(*args, **kw):
                mark(name)
                return fn(*args, **kw)
            return step

        migrate_mod.maintenance_lock = marked_lock
        sa.event.listen(sa.engine.Engine, "commit", on_commit)
        # run_job looks its steps up in the module when it runs: each one writes its marker first
        for name in ("backup", "diff", "migrate", "verify"):
            setattr(pipeline, f"step_{name}", marked(name, getattr(pipeline, f"step_{name}")))
        pipeline.finish = marked("report", pipeline.finish)
        try:
            mark("start")
            report = pipeline.run_job(load_config(config_path), TARGET, JOB)
            mark("done", status=report["status"], error=(report["error"] or "")[:1500],
                 drift_after=None if report["drift_after"] is None else len(report["drift_after"]))
            return 0
        except BaseException as e:  # noqa: BLE001
            import traceback

            mark("crashed", error=f"{type(e).__name__}: {e} {traceback.format_exc()[-1000:]}"[:1500])
            return 70

    send(ev="ready", pid=os.getpid())
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        cmd = json.loads(line)
        try:
            if cmd["op"] == "warm":  # imports and caches everything a run touches, before any fork
                report = pipeline.run_job(load_config(cmd["config"]), TARGET, JOB)
                send(ev="warmed", status=report["status"], error=report["error"])
            elif cmd["op"] == "run":
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    code = 70
                    try:
                        code = child(cmd["config"])
                    finally:
                        os._exit(code)
                send(ev="forked", pid=pid)
            elif cmd["op"] == "reap":
                _, status = os.waitpid(cmd["pid"], 0)
                send(ev="exit", pid=cmd["pid"],
                     signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                     code=os.WEXITSTATUS(status) if os.WIFEXITED(status) else None)
        except Exception as e:  # noqa: BLE001
            send(ev="error", error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    if sys.argv[1:] == ["zygote"]:
        sys.exit(_zygote_main())
    sys.exit("usage: crash_zygote.py zygote  (started by CrashSuite; see tests/safety/test_crash.py)")
