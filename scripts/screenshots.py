"""Regenerate the README's screenshots of the Dagster UI (``make screenshots``).

Builds the demo into a temp folder, runs verify (fails: drift), maintain, then verify three times through
the CLI on a temp DAGSTER_HOME, starts ``dagster-webserver`` (and ``dagster-daemon``, which evaluates
freshness) on it and saves PNGs of the main pages with headless Chromium at 1400x1000:

    .venv/bin/python scripts/screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HINT = "apt-get install chromium chromium-driver"
JOB = "/locations/maintenance_pipeline/jobs/maintain_database"


def wait(predicate, timeout: float, what: str):
    """Poll ``predicate`` until it returns something truthy (the page re-renders under us: an error is "not yet")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - a stale element, a refused connection: not yet
            value = None
        if value:
            return value
        time.sleep(0.2)  # a poll with a deadline
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def prepare(tmp: Path, ui: str) -> dict:
    """The demo, its targets file and a Dagster home in ``tmp``; returns the environment for the CLI and webserver."""
    sys.path.insert(0, str(ROOT / "examples"))
    import build_demo

    build_demo.build(tmp / "data")
    target = {"url": "sqlite:///data/goals.db", "reference": {"url": "sqlite:///data/goals_dev.db"},
              "migrations": str(ROOT / "examples" / "migrations"), "baseline_revision": "0001",
              "checks": [{"name": "no orphaned goals", "expect": 0,
                          "sql": "SELECT count(*) FROM goals g WHERE g.parent_id IS NOT NULL AND NOT EXISTS "
                                 "(SELECT 1 FROM goals p WHERE p.id = g.parent_id)"}]}
    config = tmp / "maintenance.yaml"
    config.write_text(yaml.safe_dump({
        "backups": {"dir": "backups", "keep_last": 5, "keep_days": 0}, "reports": {"dir": "reports"},
        "alerts": {"log_file": "alerts.jsonl", "ui_base_url": ui}, "targets": {"goals": target},
        # the daemon runs for freshness only: no scheduled or sensor runs while the pictures are taken
        "automation": {"schedules_running": False, "sensors_running": False}}, sort_keys=False))
    home = tmp / "home"
    home.mkdir()
    # runs start at once, without the daemon's queue; no first-visit (newsletter) dialog
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "telemetry": {"enabled": False}, "nux": {"enabled": False},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}}))
    (tmp / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "maintenance_pipeline", "working_directory": str(ROOT)}}]}))
    return {**os.environ, "DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config)}


def run(env: dict, job: str, expect_success: bool) -> str:
    """One run through the CLI; returns its run id."""
    proc = subprocess.run([sys.executable, "-m", "maintenance_pipeline", "run", job, "goals", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if (proc.returncode == 0) != expect_success:
        raise RuntimeError(f"{job} goals exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return json.loads(proc.stdout.splitlines()[0])["run_id"]


def start(tmp: Path, env: dict, name: str, *args: str) -> subprocess.Popen:
    """``dagster-webserver`` or ``dagster-daemon`` on the temp workspace, in its own process group."""
    log = (tmp / f"{name}.log").open("w")
    return subprocess.Popen([str(BIN / name), *args, "-w", str(tmp / "workspace.yaml")], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """Its whole process group (the code server it started too)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except ProcessLookupError:  # already gone
        pass


def browser(chromium: str, chromedriver: str, profile: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # the viewport itself 1400x1000, not the window
                           {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    return driver


# scroll ``el`` to ``offset`` px below the top of the nearest box that scrolls (a log, a page's column), not the page
SCROLL = """const el = arguments[0]; let box = el.parentElement;
while (box && !(box.scrollHeight > box.clientHeight && /(auto|scroll)/.test(getComputedStyle(box).overflowY)))
  box = box.parentElement;
if (box) box.scrollTop += el.getBoundingClientRect().top - box.getBoundingClientRect().top - arguments[1];
return Boolean(box);"""


class Pages:
    """The pages to capture, on a driver ``d`` against the UI at ``ui``."""

    def __init__(self, d, ui: str, out: Path):
        self.d, self.ui, self.out = d, ui, out

    def text(self) -> str:
        return self.d.find_element(By.TAG_NAME, "body").text

    def find(self, text: str, start: bool = False):
        """The shown elements whose own text is ``text`` (or starts with it)."""
        test = f"starts-with(normalize-space(text()), '{text}')" if start else f"normalize-space(text())='{text}'"
        return [e for e in self.d.find_elements(By.XPATH, f"//*[{test}]") if e.is_displayed()]

    def buttons(self, label: str):
        return [b for b in self.d.find_elements(By.TAG_NAME, "button")
                if b.text.strip() == label and b.is_displayed() and b.is_enabled()]

    def click(self, find, what: str, keys: str = "") -> None:
        """Find and click (and type) in one poll step, so a re-render in between is simply retried."""
        def attempt():
            found = find()
            if found:
                found[0].click()
                if keys:
                    found[0].send_keys(keys)
                return True
        wait(attempt, 60, what)

    def open(self, path: str, *texts: str) -> None:
        """Go to ``path`` and wait until every one of ``texts`` shows."""
        self.d.get(self.ui + path)
        wait(lambda: all(t in self.text() for t in texts), 90, f"{path} to show {', '.join(texts)}")

    def scroll_to(self, text: str, offset: int = 0, start: bool = False) -> None:
        wait(lambda: self.find(text, start) and self.d.execute_script(SCROLL, self.find(text, start)[-1], offset),
             30, f"{text!r} to scroll to")

    def save(self, name: str) -> None:
        # the mouse off every tooltip; content is there: a moment for charts and transitions to finish drawing
        self.d.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 1399, "y": 0})
        time.sleep(0.5)
        path = self.out / name
        self.d.save_screenshot(str(path))
        print(path)

    def job(self) -> None:
        self.open(JOB, "backup", "diff", "migrate", "verify", "report", "Publish the run")
        self.save("job.png")

    def launchpad(self) -> None:
        self.open(JOB + "/playground", "Launch Run")
        self.click(lambda: self.d.find_elements(By.CSS_SELECTOR, "input[placeholder='Partition']"),
                   "the partition picker", keys="goals")
        self.click(lambda: self.d.find_elements(By.XPATH, "//span[text()='goals']")[-1:],
                   "the goals partition")
        wait(lambda: "dry_run" in self.text() and "partition: goals" in self.text() and self.buttons("Launch Run"),
             60, "the scaffolded config of partition goals")
        self.save("launchpad.png")

    def run_report(self, run_id: str) -> None:
        self.open(f"/runs/{run_id}", "report written", "Show Markdown", "the schema changed")
        self.scroll_to("the schema changed", 8)  # the schema change verify recorded, the report step's line and report
        self.save("run_report.png")

    def failed_run(self, run_id: str) -> None:
        self.open(f"/runs/{run_id}?logs=step%3Averify", "Check schema_matches_reference failed")
        self.scroll_to("verification failed:", 0, start=True)  # the error, then each check's evaluation
        self.save("failed_run.png")

    def asset_checks(self) -> None:
        self.open("/assets/databases/goals?view=checks", "schema_matches_reference", "no_orphaned_goals",
                  "Succeeded")
        self.click(lambda: self.find("schema_matches_reference"), "the check schema_matches_reference")
        self.click(lambda: self.find("Execution history"), "the check's execution history")
        wait(lambda: "Failed" in self.text() and self.text().count("Passed") >= 4, 60, "the check's history")
        self.save("asset_checks.png")

    def asset_plots(self) -> None:
        self.open("/assets/databases/goals", "Metadata")
        self.click(lambda: self.buttons("Plots"), "the Plots toggle")
        wait(lambda: "size_bytes" in self.text() and "dagster/row_count" in self.text()
             and len(self.d.find_elements(By.TAG_NAME, "canvas")) >= 4, 60, "the metadata plots")
        self.scroll_to("Metadata", 16)
        self.save("asset_plots.png")

    def backups_freshness(self) -> None:
        loaded = [0.0]

        def passing():  # the daemon evaluates freshness every 2 s: reload now and then until the verdict shows
            if time.monotonic() - loaded[0] > 10:
                self.d.get(self.ui + "/assets/backups/goals")
                loaded[0] = time.monotonic()
            return "Freshness policy" in self.text() and "Passing" in self.text()
        wait(passing, 120, "the backups asset's freshness")
        self.save("backups_freshness.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        print(f"screenshots: Chromium and ChromeDriver not found on PATH ({HINT})", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="screenshots-"))
    servers, driver = [], None
    try:
        with socket.socket() as s:  # a free port
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ui = f"http://127.0.0.1:{port}"
        env = prepare(tmp, ui)
        failed = run(env, "verify_database", expect_success=False)  # drift before the migration
        maintained = run(env, "maintain_database", expect_success=True)
        for _ in range(3):  # a few observations for the plots
            run(env, "verify_database", expect_success=True)
        servers.append(start(tmp, env, "dagster-webserver", "-h", "127.0.0.1", "-p", str(port)))
        servers.append(start(tmp, {**env, "FRESHNESS_DAEMON_INTERVAL_SECONDS": "2"}, "dagster-daemon", "run"))
        wait(lambda: urllib.request.urlopen(f"{ui}/server_info", timeout=1).status == 200, 120, "the webserver")
        driver = browser(chromium, chromedriver, tmp / "chromium")
        pages = Pages(driver, ui, args.out)
        pages.job()
        pages.launchpad()
        pages.run_report(maintained)
        pages.failed_run(failed)
        pages.asset_checks()
        pages.asset_plots()
        pages.backups_freshness()
    except Exception as error:  # noqa: BLE001 - one line (and the servers' last words), not a traceback
        logs = "".join(f"\n--- {log.name}:\n{log.read_text()[-1500:]}" for log in sorted(tmp.glob("*.log")))
        print(f"screenshots: {error}{logs}", file=sys.stderr)
        if driver is not None:
            shot = Path(tempfile.gettempdir()) / "screenshots-failure.png"
            driver.save_screenshot(str(shot))
            print(f"screenshots: the page at that moment: {shot}", file=sys.stderr)
        return 1
    finally:
        if driver is not None:
            driver.quit()
        for proc in servers:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
