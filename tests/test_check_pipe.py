"""``check`` / ``diff`` / ``status`` piped into a reader that stopped (``| head``) end quietly with their own exit
code, never a traceback. The reader is gone before the command starts (the pipe's read end closed before the
process exists), so the first write meets a closed pipe every time: real process, real pipe, no timing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from targets import demo_target, write_config


@pytest.mark.parametrize("args, code", [(["check"], 1), (["check", "--format", "json"], 1), (["diff", "goals"], 1),
                                        (["status"], 1)])
def test_a_closed_pipe_ends_the_command_quietly(demo_dir, args, code):
    path = write_config(demo_dir, {"goals": demo_target()})
    read, write = os.pipe()
    os.close(read)  # nobody will ever read: the command's first write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "maintenance_pipeline", "--config", str(path), *args],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr
