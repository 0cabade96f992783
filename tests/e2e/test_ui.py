"""People launch it from the Dagster UI: a real webserver and a real headless Chromium.

The test opens the Launchpad of ``maintain_database``, picks the partition (the target) and
presses "Launch Run" — no config typed: every op config has a default. The run must succeed,
its page must show the report step's log line, and the report on disk must name the same run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, build_demo, write_config
from receivers import free_port

BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
HINT = "install Chromium (Debian: apt-get install chromium chromium-driver) to run the UI test"


def _need_browser():
    if CHROMIUM and CHROMEDRIVER:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Chromium not found under CI=true; {HINT}")
    pytest.skip(HINT)


def _wait(predicate, timeout: float, what: str, log: Path):
    """Poll ``predicate`` until it returns something truthy. The page re-renders while we look at it:
    an element that went stale between finding and reading it just means "not yet"."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.2)  # a poll with a deadline
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{log.read_text()[-3000:]}")


@pytest.fixture
def webserver(tmp_path):
    build_demo.build(tmp_path / "data")
    config = write_config(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    # runs start at once (no daemon needed for this test); `make ui` runs `dagster dev`, which has one
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}}))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "maintenance_pipeline", "working_directory": str(ROOT)}}]}))
    env = {**os.environ, "DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config)}
    port = free_port()
    log = tmp_path / "webserver.log"
    proc = subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    ui = f"http://127.0.0.1:{port}"

    def up():
        try:
            return urllib.request.urlopen(f"{ui}/server_info", timeout=1).status == 200
        except OSError:
            return False

    try:
        _wait(up, 120, "the webserver", log)
        yield ui, tmp_path, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_launch_maintain_database_from_the_launchpad(webserver, browser):
    from selenium.webdriver.common.by import By

    ui, tmp, log = webserver
    d = browser

    def buttons(label: str):
        return [b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == label and b.is_enabled()]

    def click(find, what: str, keys: str = ""):
        """Find, click (and type) in one poll step, so a re-render in between is simply retried."""
        def attempt():
            found = find()
            if found:
                found[0].click()
                if keys:
                    found[0].send_keys(keys)
                return True
        return _wait(attempt, 60, what, log)

    d.get(f"{ui}/locations/maintenance_pipeline/jobs/maintain_database/playground")
    try:
        click(lambda: buttons("Skip"), "the first-visit dialog")  # Dagster's newsletter prompt
        click(lambda: d.find_elements(By.CSS_SELECTOR, "input[placeholder='Partition']"), "the partition picker",
              keys="goals")
        click(lambda: d.find_elements(By.XPATH, "//span[text()='goals']")[-1:], "the goals partition")
        # the scaffolded run config shows the op config defaults; nothing has to be typed
        assert "dry_run" in d.page_source
        click(lambda: buttons("Launch Run"), "an enabled Launch Run button")
        _wait(lambda: "/runs/" in d.current_url, 60, "the run page", log)
        run_id = d.current_url.rstrip("/").rsplit("/runs/", 1)[1].split("?")[0]
        _wait(lambda: "report written" in d.page_source, 120, "the run to write its report", log)
        d.save_screenshot(str(tmp / "run.png"))
    except BaseException:
        d.save_screenshot(str(tmp / "failure.png"))
        raise
    reports = list((tmp / "reports" / "goals").glob(f"*_maintain_database_{run_id[:8]}.json"))
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["status"] == "success" and report["run_id"] == run_id
    assert report["tables_after"]["goals"] == {"columns": 22, "rows": 39}
