"""Runs started from the command line belong to their job in the UI: the job's Runs tab (GraphQL ``pipelineOrError
{ runs }``, what the tab shows) lists them like Launchpad runs. The cause was the repository tag the UI filters a
job's runs by, which in-process runs lacked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from conftest import ROOT, build_demo, write_config
from receivers import free_port

BIN = Path(sys.executable).parent
QUERY = """query { pipelineOrError(params: {pipelineName: "verify_database", repositoryName: "__repository__",
  repositoryLocationName: "maintenance_pipeline"}) { __typename ... on Pipeline { runs { runId } } } }"""


def test_a_cli_run_is_listed_in_its_jobs_runs(tmp_path):
    build_demo.build(tmp_path / "data")
    config = write_config(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}}))
    env = {**os.environ, "DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config)}
    cli = subprocess.run([sys.executable, "-m", "maintenance_pipeline", "run", "verify_database", "goals", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    run_id = json.loads(cli.stdout.splitlines()[0])["run_id"]
    port = free_port()
    log = tmp_path / "webserver.log"
    proc = subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w",
                             str(ROOT / "workspace.yaml")], cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # a poll with a deadline
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                                 data=json.dumps({"query": QUERY}).encode(),
                                                 headers={"Content-Type": "application/json"})
                data = json.loads(urllib.request.urlopen(request, timeout=5).read())["data"]["pipelineOrError"]
                if data["__typename"] == "Pipeline":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert run_id in [r["runId"] for r in data["runs"]]
