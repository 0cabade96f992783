"""``make ui PORT=…``: the webserver and the daemon start on that port without a warning (no superseded
``dagster dev``, no instance file Dagster would ignore), and the targets file's links follow the port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, build_demo, write_config
from maintenance_pipeline.core.config import load_config
from receivers import free_port


def test_make_ui_serves_on_the_port_without_warnings(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    build_demo.build(tmp_path / "data")
    config = write_config(tmp_path, alerts={"log_file": "alerts.jsonl",
                                            "ui_base_url": "${UI_BASE_URL:-http://127.0.0.1:3000}"})
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config)}
    log = tmp_path / "ui.log"
    proc = subprocess.Popen(["make", "-s", "-C", str(ROOT), "ui", f"PORT={port}"], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    ui = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:  # a poll with a deadline
            try:
                if urllib.request.urlopen(f"{ui}/server_info", timeout=1).status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        while "dagster.daemon" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)  # the daemon logs as it starts its loops
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = log.read_text()
    assert f"Dagster UI: {ui}" in text and f"Serving dagster-webserver on {ui}" in text
    assert "dagster.daemon" in text  # the daemon ran beside it (schedules, sensors, alerts)
    for warning in ("SupersessionWarning", "will not be used", "DeprecationWarning"):
        assert warning not in text, text[-3000:]
    # the links in reports and alerts follow the port make ui was given
    os.environ["UI_BASE_URL"] = ui
    try:
        assert load_config(config).alerts.ui_base_url == ui
    finally:
        del os.environ["UI_BASE_URL"]
