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

from targets import ROOT, build_demo, demo_target, write_config
from deployment import LAUNCH, LOCATION, RUN_QUERY, graphql
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


# the chart drawn under a plot's heading (Dagster draws each numeric metadata entry with Chart.js on a canvas):
# its size and how many of its pixels are painted, or null while there is none
PLOTTED = """
const heading = [...document.querySelectorAll('div, span, h1, h2, h3, h4')].find(
    e => e.children.length === 0 && e.textContent.trim() === arguments[0]);
if (!heading) return null;
let box = heading;
while (box && !box.querySelector('canvas')) box = box.parentElement;
const canvas = box && box.querySelector('canvas');
if (!canvas || !canvas.width || !canvas.height) return null;
const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
return painted ? {width: canvas.width, height: canvas.height, painted: painted} : null;
"""


@pytest.fixture
def webserver(tmp_path):
    build_demo.build(tmp_path / "data")
    # the catalog shows who looks after the database and its labels (the targets file's owners and tags)
    config = write_config(tmp_path, {"goals": demo_target(owners=["dba@example.com", "team:data"],
                                                           tags={"tier": "gold", "pii": ""})})
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
    sys.path.insert(0, str(ROOT / "scripts"))
    from screenshots import browser as start_browser  # the same headless Chromium `make screenshots` drives

    driver = start_browser(CHROMIUM, CHROMEDRIVER, tmp_path / "chromium")
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

    d.get(f"{ui}/locations/maintenance_pipeline/jobs/maintain_database")
    try:
        click(lambda: buttons("Skip"), "the first-visit dialog")  # Dagster's newsletter prompt
        # the job page offers its Launchpad (an op job: a job naming assets loses it) and draws its ops
        click(lambda: [e for e in d.find_elements(By.XPATH, "//a[normalize-space()='Launchpad']")], "the Launchpad tab")
        _wait(lambda: "/playground" in d.current_url, 60, "the Launchpad", log)
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


def test_the_database_asset_page_and_a_cli_run_in_its_jobs_runs(webserver, browser):
    """After runs on the demo (each the way ``maintenance-pipeline run`` makes it), the asset pages show the declared
    checks with their latest status, the latest measured state in the header (row count, every table's columns), plots
    of the numbers every run measures (the overview's Metadata section, Plots: a chart per numeric entry; the API
    gives its points), the backups asset's freshness, and a failed run's page shows its checks and its report."""
    import sqlite3

    import dagster as dg
    from dagster._core.utils import make_new_run_id
    from selenium.webdriver.common.by import By

    from maintenance_pipeline.core.config import load_config
    from maintenance_pipeline.orchestration import command_line
    from maintenance_pipeline.orchestration.definitions import build_definitions

    ui, tmp, log = webserver
    d = browser
    defs = build_definitions(load_config(tmp / "maintenance.yaml"))

    def run(job: str):
        return command_line.execute(defs.resolve_job_def(job), "goals", instance, run_id=make_new_run_id())

    with dg.DagsterInstance.from_config(str(tmp / "home")) as instance:
        failed = run("verify_database")
        assert not failed.success  # the demo before its migration: drift
        assert run("maintain_database").success
        verify_runs = []
        db = tmp / "data" / "goals.db"
        for n in range(3):
            with sqlite3.connect(db) as conn:  # the application writes between the nights
                conn.executemany("INSERT INTO goals (id, type, name) VALUES (?, 'task', ?)",
                                 [(f"e2e-{n}-{i}", "written by the application") for i in range(20)])
            result = run("verify_database")
            assert result.success
            verify_runs.append(result.run_id)
        with sqlite3.connect(db) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name "
                                                 "NOT IN ('alembic_version', 'sqlite_sequence')")]
            rows_now = sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
    def buttons(label: str):
        return [b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip() == label and b.is_enabled()]

    def click(find, what: str):
        from selenium.common.exceptions import ElementClickInterceptedException

        def attempt():
            for skip in buttons("Skip"):  # Dagster's first-visit dialog, whenever it shows up
                skip.click()
            found = find()
            if found:
                try:
                    found[0].click()
                except ElementClickInterceptedException:  # a dialog over it: dismissed on the next poll
                    return None
                return True
        return _wait(attempt, 60, what, log)

    def text() -> str:
        try:
            return d.find_element(By.TAG_NAME, "body").text
        except Exception:  # noqa: BLE001 - the page re-rendered under us: not yet
            return ""

    try:
        d.get(f"{ui}/assets/databases/goals?view=checks")
        for name in ("schema_matches_reference", "rows_preserved", "backup_verified", "alembic_at_head",
                     "no_orphaned_goals"):
            _wait(lambda: name in text(), 60, f"the check {name} on the asset page", log)
        _wait(lambda: "Succeeded" in text() and "Passed" in text(), 60, "the checks' latest status", log)
        d.save_screenshot(str(tmp / "asset_checks.png"))
        # the asset's overview: its Metadata section plots each numeric entry of the runs' observations over time
        d.get(f"{ui}/assets/databases/goals")
        # the header: the latest measured row count (the third verify run's), and the Columns of every table (one
        # the migration never touched among them)
        _wait(lambda: "Row count" in text() and f"{rows_now:,}" in text(), 60, f"the row count {rows_now:,}", log)
        _wait(lambda: "session_templates.template_data" in text(), 60, "an unchanged table's column in Columns",
              log)
        click(lambda: buttons("Plots"), "the Metadata section's Plots toggle")
        plotted = _wait(lambda: d.execute_script(PLOTTED, "size_bytes"), 60, "the plot of size_bytes", log)
        assert plotted["width"] > 100 and plotted["painted"] > 200, plotted  # a drawn line, not an empty canvas
        assert d.execute_script(PLOTTED, "dagster/row_count")
        d.save_screenshot(str(tmp / "asset_plots.png"))
        d.get(f"{ui}/assets/backups/goals")
        _wait(lambda: "reshness" in text(), 60, "the backups asset's freshness", log)
        d.get(f"{ui}/runs/{failed.run_id}")
        _wait(lambda: "ASSET_MATERIALIZATION" in text() and "databases / goals" in text() and
              "Check schema_matches_reference failed" in text() and "Show Markdown" in text() and
              "report written" in text(), 60, "the failed run's checks, what it measured and its report", log)
        # a refusal is a clean failure: its line and the report, no stack trace, no "verify failed: verification ..."
        assert "Stack Trace" not in text() and "verify failed:" not in text()
        d.save_screenshot(str(tmp / "failed_run.png"))
    except BaseException:
        d.save_screenshot(str(tmp / "failure.png"))
        raise
    # the points of that canvas are not in the page: the API the plot reads gives them, one per run, the three
    # verify runs' among them, equal to the file's size now (verify changes nothing)
    events = graphql(ui, '{ assetOrError(assetKey: {path: ["databases", "goals"]}) { ... on Asset { '
                         'assetMaterializations { runId metadataEntries { label ... on IntMetadataEntry { intValue } '
                         '... on TableSchemaMetadataEntry { schema { columns { name } } } } } } } }'
                     )["assetOrError"]["assetMaterializations"]
    sizes = {o["runId"]: e["intValue"] for o in events for e in o["metadataEntries"] if e["label"] == "size_bytes"}
    assert len(events) == 5 and len(sizes) == 5  # every run read the database: each recorded what it measured
    assert [sizes[r] for r in verify_runs] == [db.stat().st_size] * 3
    latest = {e["label"]: e for e in events[0]["metadataEntries"]}
    assert events[0]["runId"] == verify_runs[-1] and latest["dagster/row_count"]["intValue"] == rows_now
    assert {c["name"].split(".")[0] for c in latest["dagster/column_schema"]["schema"]["columns"]} == set(tables)

    # the failed run, through the webserver's API: the step that failed says its line with the report attached and
    # no stack; the report step ran (it published the report the failed step wrote); the error is logged once
    steps = graphql(ui, '{ runOrError(runId: "%s") { ... on Run { stepStats { stepKey status } } } }' % failed.run_id
                    )["runOrError"]["stepStats"]
    assert {s["stepKey"]: s["status"] for s in steps} == {"backup": "SUCCESS", "diff": "SUCCESS", "verify": "FAILURE",
                                                          "report": "SUCCESS"}
    logs = graphql(ui, '{ logsForRun(runId: "%s") { ... on EventConnection { events { __typename '
                       '... on MessageEvent { message level stepKey } ... on ExecutionStepFailureEvent { error { '
                       'message stack } failureMetadata { metadataEntries { label } } } } } } }' % failed.run_id
                   )["logsForRun"]["events"]
    [failure] = [e for e in logs if e["__typename"] == "ExecutionStepFailureEvent"]
    assert failure["error"]["stack"] == [] and failure["error"]["message"].startswith("verification failed: ")
    assert {"report", "report_path"} <= {m["label"] for m in failure["failureMetadata"]["metadataEntries"]}
    errors = [e["message"] for e in logs if e["__typename"] == "LogMessageEvent" and e["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("verification failed: schema_matches_reference")

    # the catalog: owners and tags from the targets file; the schedules and sensors that run its jobs; the checks
    # that apply, each runnable alone, through the target's own job (tagged with its database: the run queue's limit)
    node = graphql(ui, '{ assetNodeOrError(assetKey: {path: ["databases", "goals"]}) { ... on AssetNode { '
                       'description owners { ... on UserAssetOwner { email } ... on TeamAssetOwner { team } } '
                       'tags { key value } '
                       'targetingInstigators { ... on Schedule { name } ... on Sensor { name } } '
                       'assetChecksOrError { ... on AssetChecks { checks { name canExecuteIndividually jobNames } } } '
                       '} } }')["assetNodeOrError"]
    assert node["owners"] == [{"email": "dba@example.com"}, {"team": "data"}]
    assert {(t["key"], t["value"]) for t in node["tags"]} == {("tier", "gold"), ("pii", ""), ("dagster/kind/sqlite", "")}
    # the sensor that watches its checks and freshness is among its automations (the jobs name no asset: the UI would
    # hide their Launchpad), and its description says which schedule and sensor run its jobs
    assert [i["name"] for i in node["targetingInstigators"]] == ["alert_on_checks_and_freshness"]
    assert "nightly_verification" in node["description"] and "schema_drift_sensor" in node["description"]
    checks = {c["name"]: c for c in node["assetChecksOrError"]["checks"]}
    assert all(c["canExecuteIndividually"] == "CAN_EXECUTE" for c in checks.values())
    job = checks["integrity"]["jobNames"][0]  # what the UI's Execute button launches: the first job holding it
    assert job == "Checks_goals"
    launched = graphql(ui, LAUNCH, {"p": {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job,
                     "assetSelection": [], "assetCheckSelection": [{"assetKey": {"path": ["databases", "goals"]},
                                                                    "name": "integrity"}]},
        "runConfigData": "{}", "executionMetadata": {}}})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    check_run = launched["run"]["runId"]
    _wait(lambda: graphql(ui, RUN_QUERY, {"id": check_run})["runOrError"]["status"] in ("SUCCESS", "FAILURE"), 120,
          "the check run", log)
    assert graphql(ui, RUN_QUERY, {"id": check_run})["runOrError"]["status"] == "SUCCESS"
    with dg.DagsterInstance.from_config(str(tmp / "home")) as instance:
        assert instance.get_run_by_id(check_run).tags["database"] == "goals"
        evaluated = [e.dagster_event.event_specific_data.check_name
                     for e in instance.all_logs(check_run, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    assert evaluated == ["integrity"]

    # a run started from the command line belongs to its job like a Launchpad run: the job's Runs tab lists it
    # (the cause was the repository tag the UI filters a job's runs by, which in-process runs lacked)
    env = {**os.environ, "DAGSTER_HOME": str(tmp / "home"), "MAINTENANCE_CONFIG": str(tmp / "maintenance.yaml")}
    cli = subprocess.run([sys.executable, "-m", "maintenance_pipeline", "run", "verify_database", "goals", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    run_id = json.loads(cli.stdout.splitlines()[0])["run_id"]
    runs = graphql(ui, '{ pipelineOrError(params: {pipelineName: "verify_database", repositoryName: "__repository__", '
                       'repositoryLocationName: "maintenance_pipeline"}) { ... on Pipeline { runs { runId } } } }'
                   )["pipelineOrError"]["runs"]
    assert run_id in [r["runId"] for r in runs]
    # and the Overview's timeline, which places a run by its repository origin, has every one of them
    timeline = graphql(ui, '{ runsOrError { ... on Runs { results { runId pipelineName repositoryOrigin { '
                           'repositoryLocationName repositoryName } } } } }')["runsOrError"]["results"]
    assert run_id in [r["runId"] for r in timeline] and len(timeline) == 7
    assert all(r["repositoryOrigin"] == {"repositoryLocationName": "maintenance_pipeline",
                                         "repositoryName": "__repository__"} for r in timeline), timeline
