"""``make ui PORT=…``: the webserver and the daemon start on that port without a warning (no superseded
``dagster dev``, no instance file Dagster would ignore), and the targets file's links follow the port."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request

import pytest

from targets import ROOT, build_demo, write_config
from deployment import Proc
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
    make = Proc("make_ui", ["make", "-s", "-C", str(ROOT), "ui", f"PORT={port}"], env, ROOT, tmp_path)
    ui = f"http://127.0.0.1:{port}"

    def output() -> str:
        return make.out.read_text() + make.err.read_text()

    try:
        deadline = time.monotonic() + 180
        while True:  # a poll with a deadline
            try:
                if urllib.request.urlopen(f"{ui}/server_info", timeout=1).status == 200:
                    break
            except OSError:
                pass
            assert make.alive(), output()[-3000:]
            assert time.monotonic() < deadline, output()[-3000:]
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        while "dagster.daemon" not in output() and time.monotonic() < deadline:
            time.sleep(0.2)  # the daemon logs as it starts its loops
    finally:
        make.stop()
    text = output()
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
