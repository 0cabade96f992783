"""The nightly at scale: 20 SQLite and 2 PostgreSQL targets under a real daemon and webserver, the Dagster
instance's storage on PostgreSQL, the instance settings of ``docs/production/dagster.yaml`` as they are.

The nightly schedule fires (a test-only cron naming the next minute) and launches one ``verify_database`` run
per target; as soon as its runs are queued, a second ``verify_database`` run of every target is launched through
the UI's API (someone checking a database while the nightly is still going), so most databases have two runs
queued at once that the per-``database`` run limit must keep apart. A minute after the nightly's tick the
``nightly_restore_drill`` schedule fires (in production an hour after it) and launches one ``restore_drill`` run per
target, queued behind that database's verifications. Measured:

* every run succeeded: one nightly run per target, the manual ones, and one restore drill per target;
* no two runs of one database overlapped (their RUN_START .. RUN_SUCCESS/FAILURE events), and how many
  databases had both runs queued at once (what made that check able to fail);
* the catalog (the webserver's GraphQL API) holds 22 ``databases/*`` assets, each with its declared checks,
  and every check's latest execution passed;
* the ``backups/*`` checks the drills record (``restore_drill``, ``pending_migration_rehearsal``) all passed;
* wall time from the first tick to the last run's end, runs per minute, the peak of runs in progress at once, and
  the drill's share of the night (its runs' time against all runs' time; its RPO and RTO from its reports).

Run it (it starts its own throwaway PostgreSQL server, like the tests)::

    .venv/bin/python benchmarks/nightly_scale.py               # 20 + 2 targets, a second run of each
    .venv/bin/python benchmarks/nightly_scale.py --no-manual   # just the nightly

``tests/scale/test_nightly_scale.py`` (``make test-scale``) runs the same with the suite's PostgreSQL server
and asserts the first three points.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests" / "helpers", ROOT / "examples"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import dagster as dg  # noqa: E402
import yaml  # noqa: E402
from deployment import Deployment, graphql, launch_run, location_loaded  # noqa: E402
from receivers import free_port  # noqa: E402

import build_demo  # noqa: E402
import pg_demo  # noqa: E402
from maintenance_pipeline.core.backup import backup_database  # noqa: E402
from maintenance_pipeline.core.config import load_config  # noqa: E402
from maintenance_pipeline.core.run.pipeline import run_job  # noqa: E402

BIN = Path(sys.executable).parent
PRODUCTION_WORKSPACE = ROOT / "docs" / "production" / "workspace.yaml"
PRODUCTION_INSTANCE = ROOT / "docs" / "production" / "dagster.yaml"
ORPHAN_CHECK = {"name": "no orphaned goals", "expect": 0,
                "sql": "SELECT count(*) FROM goals g WHERE g.parent_id IS NOT NULL "
                       "AND NOT EXISTS (SELECT 1 FROM goals p WHERE p.id = g.parent_id)"}
ENDS = {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED}
CATALOG = """{ assetNodes(group: {groupName: "databases", repositoryName: "__repository__",
  repositoryLocationName: "maintenance_pipeline"}) { assetKey { path }
  assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { status } } } } } }"""


def target(url: str, reference: str) -> dict:
    return {"url": url, "reference": {"url": reference}, "migrations": str(ROOT / "examples" / "migrations"),
            "baseline_revision": "0001", "checks": [ORPHAN_CHECK]}


def write_targets(folder: Path, targets: dict, **top) -> Path:
    data = {"backups": {"dir": "backups", "keep_last": 3, "keep_days": 0}, "reports": {"dir": "reports"},
            "alerts": {"log_file": "alerts.jsonl"}, "targets": targets, **top}
    path = folder / "maintenance.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@contextmanager
def environ(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prepare(work: Path, pg, sqlite_targets: int, pg_targets: int, password: str) -> dict:
    """The targets, each already equal to its reference (the nightly verifies; it has nothing to migrate), each with
    a verified backup (a drill queued before its database's verification still has one to restore)."""
    data = work / "data"
    build_demo.build(data)
    seed = write_targets(work, {"goals": target("sqlite:///data/goals.db", "sqlite:///data/goals_dev.db")})
    report = run_job(load_config(seed), "goals", "maintain_database")
    assert report["status"] == "success", report.get("error")
    targets = {}
    with sqlite3.connect(data / "goals.db") as src:
        for i in range(1, sqlite_targets + 1):
            name = f"db{i:02d}"
            with sqlite3.connect(data / f"{name}.db") as dst:
                src.backup(dst)  # SQLite's own copy
            dst.close()
            targets[name] = target(f"sqlite:///data/{name}.db", "sqlite:///data/goals_dev.db")
    src.close()
    for i in range(1, pg_targets + 1):
        prod, dev = pg_demo.load(pg.url(), prod=f"scale_pg{i}", dev=f"scale_pg{i}_dev", data_dir=work / f"pg{i}")
        hide = f":{password}@"
        targets[f"pg{i}"] = target(prod.replace(hide, ":${PGPASSWORD}@"), dev.replace(hide, ":${PGPASSWORD}@"))
    with environ(PGPASSWORD=password):
        for i in range(1, pg_targets + 1):
            one = write_targets(work / f"pg{i}", {f"pg{i}": targets[f"pg{i}"]})
            report = run_job(load_config(one), f"pg{i}", "maintain_database")
            assert report["status"] == "success", report.get("error")
        every = load_config(write_targets(work, targets))
        for name, t in every.targets.items():
            backup_database(t.url, every.backups.dir, name, label="manual", schema=t.schema)
    return targets


def tick_minutes(ticks: int, lead_seconds: float = 50.0) -> tuple[str, datetime]:
    """A cron naming ``ticks`` adjacent minutes, the first at least ``lead_seconds`` from now (time for the
    daemon to start and load the schedule), and the first tick's time."""
    first = (datetime.now(timezone.utc) + timedelta(seconds=lead_seconds + 60)).replace(second=0, microsecond=0)
    times = [first + timedelta(minutes=k) for k in range(ticks)]
    if len({t.hour for t in times}) == 1:
        cron = f"{','.join(str(t.minute) for t in times)} {first.hour} * * *"
    else:  # across an hour: every minute of those hours, the extra ticks are not waited for
        cron = f"* {','.join(sorted({str(t.hour) for t in times}))} * * *"
    return cron, first


def run_intervals(instance, run_ids) -> tuple[dict[str, tuple[float, float]], list[float]]:
    """Each run's RUN_START .. end, and how long each run's worker took to start (RUN_STARTING: the daemon
    launched it, to RUN_START: a new process has loaded Dagster and the code)."""
    out, launches = {}, []
    for run_id in run_ids:
        events = instance.all_logs(run_id, of_type={dg.DagsterEventType.RUN_STARTING,
                                                    dg.DagsterEventType.RUN_START, *ENDS})
        at = {e.dagster_event_type: e.timestamp for e in events}
        out[run_id] = (at[dg.DagsterEventType.RUN_START], max(e.timestamp for e in events
                                                             if e.dagster_event_type in ENDS))
        if dg.DagsterEventType.RUN_STARTING in at:
            launches.append(at[dg.DagsterEventType.RUN_START] - at[dg.DagsterEventType.RUN_STARTING])
    return out, sorted(launches)


def overlaps(runs: list, intervals: dict) -> list[str]:
    """Pairs of runs of one database whose start..end intervals overlap."""
    by_db: dict[str, list] = {}
    for r in runs:
        by_db.setdefault(r.tags["database"], []).append(intervals[r.run_id])
    bad = []
    for db, spans in sorted(by_db.items()):
        spans.sort()
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            if s2 < e1:
                bad.append(f"{db}: a run started {e1 - s2:.1f} s before the previous one ended")
    return bad


def not_passed(catalog: list) -> list[str]:
    """The declared checks of the catalog's databases whose latest execution did not pass."""
    out = []
    for node in catalog:
        for check in (node["assetChecksOrError"] or {}).get("checks") or []:
            status = (check["executionForLatestMaterialization"] or {}).get("status")
            if status != "SUCCEEDED":
                out.append(f"{'/'.join(node['assetKey']['path'])} {check['name']}: {status}")
    return out


def drill_checks_not_passed(instance, names) -> list[str]:
    """The ``backups/<target>`` checks (the drill's) whose latest execution did not pass, or that never ran."""
    keys = [dg.AssetCheckKey(dg.AssetKey(["backups", n]), c) for n in names
            for c in ("restore_drill", "pending_migration_rehearsal")]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return [f"{'/'.join(k.asset_key.path)} {k.name}: {latest[k].status.value if k in latest else 'never ran'}"
            for k in keys if k not in latest or latest[k].status.value != "SUCCEEDED"]


def drill_figures(reports_dir: Path, runs: list) -> dict:
    """RPO and RTO of each drill run, from its report."""
    rpo, rto = [], []
    for r in runs:
        for path in (reports_dir / r.tags["database"]).glob(f"*_restore_drill_{r.run_id[:8]}.json"):
            d = json.loads(path.read_text()).get("drill") or {}
            if d.get("rpo_hours") is not None:
                rpo.append(d["rpo_hours"])
            if d.get("rto_seconds") is not None:
                rto.append(d["rto_seconds"])
    return {"rpo_hours": sorted(rpo), "rto_seconds": sorted(rto)}


def peak(intervals: dict) -> int:
    points = sorted([(s, 1) for s, _ in intervals.values()] + [(e, -1) for _, e in intervals.values()])
    now = top = 0
    for _, step in points:
        now += step
        top = max(top, now)
    return top


def queued_together(records: list, intervals: dict) -> int:
    """Databases whose later run was created (queued) before their earlier run ended (``records``: RunRecords)."""
    by_db: dict[str, list] = {}
    for r in records:
        by_db.setdefault(r.dagster_run.tags["database"], []).append(r)
    count = 0
    for group in by_db.values():
        group.sort(key=lambda r: intervals[r.dagster_run.run_id][0])
        count += any(b.create_timestamp.timestamp() < intervals[a.dagster_run.run_id][1]
                     for a, b in zip(group, group[1:]))
    return count


def run_nightly(work: Path, pg, *, password: str, sqlite_targets: int = 20, pg_targets: int = 2, ticks: int = 1,
                manual: bool = True, timeout: float = 1200) -> dict:
    """Everything above; returns the figures and what was measured (the caller asserts or prints)."""
    targets = prepare(work, pg, sqlite_targets, pg_targets, password)
    cron, first_tick = tick_minutes(ticks)
    drill_tick = first_tick + timedelta(minutes=ticks)  # the minute after the nightly's last tick
    config_path = write_targets(work, targets, schedule={"cron": cron, "timezone": "UTC"},
                                drill={"cron": f"{drill_tick.minute} {drill_tick.hour} * * *"})
    home = work / "dagster_home"
    home.mkdir()
    shutil.copy(PRODUCTION_INSTANCE, home / "dagster.yaml")
    pg.create_database("dagster_scale")
    pg_url = pg.url("dagster_scale").replace("+psycopg:", "+psycopg2:")  # dagster-postgres's driver
    # production's shape: the code location served by a code server of its own (it launches each run as a process of
    # its own), the webserver and the daemon reading it through workspace.yaml (docs/production/workspace.yaml)
    code_port = free_port()
    shipped = yaml.safe_load(PRODUCTION_WORKSPACE.read_text())
    shipped["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=code_port)
    workspace = work / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(shipped))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PYTEST_"))}
    env.update({"DAGSTER_HOME": str(home), "MAINTENANCE_CONFIG": str(config_path), "DAGSTER_PG_URL": pg_url,
                "PGPASSWORD": password, "PYTHONUNBUFFERED": "1", "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    dep = Deployment(work)
    with environ(DAGSTER_PG_URL=pg_url), dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            ui = f"http://127.0.0.1:{free_port()}"
            dep.start("code-server", [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p",
                                      str(code_port), "-m", "maintenance_pipeline", "--location-name",
                                      "maintenance_pipeline"], env)
            dep.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env)
            dep.start("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", ui.rsplit(":", 1)[1],
                                    "-w", str(workspace)], env)
            dep.wait_until(lambda: location_loaded(ui), 120, "the webserver to serve the code location")
            expected = len(targets) * (ticks + manual)

            def nightly_runs(trigger: str, job: str = "verify_database"):
                return list(instance.get_runs(filters=dg.RunsFilter(job_name=job, tags={"trigger": trigger})))

            wait = (first_tick - datetime.now(timezone.utc)).total_seconds() + 120
            dep.wait_until(lambda: len(nightly_runs("schedule")) >= len(targets), wait, "the nightly's runs")
            if manual:  # while the nightly's runs are queued: a second run of every database, as the UI launches
                for name in sorted(targets):
                    launch_run(ui, "verify_database", name)

            def all_done():
                runs = nightly_runs("schedule") + nightly_runs("e2e") + nightly_runs("schedule", "restore_drill")
                done = [r for r in runs if r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                                                          dg.DagsterRunStatus.CANCELED)]
                return runs if len(runs) >= expected + len(targets) and len(done) == len(runs) else None

            every = dep.wait_until(all_done, timeout, f"{expected} runs and {len(targets)} drills to finish")
            runs = [r for r in every if r.job_name == "verify_database"]
            drills = [r for r in every if r.job_name == "restore_drill"]
            ticks_seen = sorted({r.tags[".dagster/scheduled_execution_time"] for r in runs
                                 if r.tags.get("trigger") == "schedule"})
            intervals, launches = run_intervals(instance, [r.run_id for r in every])
            records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[r.run_id for r in every]))
            catalog = graphql(ui, CATALOG)["assetNodes"]
            drills_not_passed = drill_checks_not_passed(instance, sorted(targets))
        finally:
            dep.teardown()
    start = first_tick.timestamp()
    end = max(e for _, e in intervals.values())
    durations = sorted(e - s for s, e in intervals.values())
    drill_spans = [intervals[r.run_id] for r in drills]
    return {
        "targets": len(targets), "ticks": ticks_seen, "runs": runs, "drill_runs": drills, "intervals": intervals,
        "failed": [f"{r.tags['database']} {r.job_name}: {r.status.value}" for r in every
                   if r.status != dg.DagsterRunStatus.SUCCESS],
        "overlaps": overlaps(every, intervals), "queued_together": queued_together(records, intervals),
        "catalog": catalog, "checks_not_passed": not_passed(catalog) + drills_not_passed,
        "wall_seconds": end - start, "runs_per_minute": len(every) / ((end - start) / 60),
        "drill_seconds": sum(e - s for s, e in drill_spans), "all_run_seconds": sum(durations),
        "drill_wall_seconds": (max(e for _, e in drill_spans) - min(s for s, _ in drill_spans)) if drill_spans else 0.0,
        **drill_figures(work / "reports", drills),
        "median_run_seconds": durations[len(durations) // 2], "peak_in_progress": peak(intervals),
        "median_launch_seconds": launches[len(launches) // 2] if launches else float("nan"),
    }


def describe(result: dict) -> str:
    checks = {len((a["assetChecksOrError"] or {}).get("checks") or []) for a in result["catalog"]}
    return (f"nightly at scale: {result['targets']} targets, {len(result['ticks'])} tick(s), {len(result['runs'])} "
            f"runs, {len(result['failed'])} failed; {result['queued_together']} databases had two runs queued at "
            f"once, {len(result['overlaps'])} overlapping pair(s) of one database\n"
            f"  wall time from the first tick to the last run's end: {result['wall_seconds']:.0f} s; "
            f"{result['runs_per_minute']:.1f} runs/minute; median run {result['median_run_seconds']:.1f} s (its worker "
            f"process took {result['median_launch_seconds']:.1f} s to start); "
            f"at most {result['peak_in_progress']} runs in progress at once\n"
            f"  catalog: {len(result['catalog'])} databases/* assets with {sorted(checks)} checks each, "
            f"{len(result['checks_not_passed'])} not passed at their latest execution (backups/* drill checks "
            f"included)\n" + describe_drill(result))


def describe_drill(result: dict) -> str:
    """The restore drill's share of the night: its runs' time against all runs' time (what it adds to the night's
    work), its own wall time, and the RPO and RTO its reports measured."""
    n, rpo, rto = len(result["drill_runs"]), result["rpo_hours"], result["rto_seconds"]
    share = result["drill_seconds"] / result["all_run_seconds"] if result["all_run_seconds"] else 0.0

    def mid(xs: list) -> float:
        return xs[len(xs) // 2] if xs else float("nan")

    return (f"  restore drill: {n} runs; {result['drill_seconds']:.0f} s of the night's "
            f"{result['all_run_seconds']:.0f} s of run time ({100 * share:.0f}% of the night), "
            f"{result['drill_wall_seconds']:.0f} s from its first run's start to its last's end; "
            f"RTO median {mid(rto):.2f} s (max {max(rto, default=float('nan')):.2f} s), RPO median {mid(rpo):.2f} h")


NIGHT_SECONDS = 8 * 3600  # the night a nightly fits in


def verify_cost_per_gib(work: Path, gib: float = 1.0) -> dict:
    """One ``verify_database`` of a generated ~``gib`` GiB SQLite database (a big table of ~300-byte rows with a
    secondary index, and a few small ones), through the core (``run_job``): what a nightly costs per GiB on this
    machine, beside the per-target cost the nightly measures. The generated file is removed after."""
    from maintenance_pipeline.core.config import load_config
    from maintenance_pipeline.core.run.pipeline import run_job

    folder = work / "gib"
    folder.mkdir()
    db, ref = folder / "big.db", folder / "ref.db"
    schema = ("CREATE TABLE events (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, payload TEXT NOT NULL);"
              "CREATE INDEX ix_events_account ON events (account_id);"
              "CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
    for path in (db, ref):
        conn = sqlite3.connect(path)
        conn.executescript(schema)
        conn.close()
    rows = int(gib * (1 << 30) / 330)
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO events (account_id, payload) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                 f"FROM n LIMIT {rows}) SELECT i % 10000, hex(randomblob(140)) FROM n")
    conn.execute("INSERT INTO accounts (name) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                 "LIMIT 10000) SELECT 'account ' || i FROM n")
    conn.commit()
    conn.close()
    size = db.stat().st_size
    big = {"url": f"sqlite:///{db}", "reference": {"url": f"sqlite:///{ref}"}}
    config = load_config(write_targets(folder, {"big": big}))
    t = time.perf_counter()
    report = run_job(config, "big", "verify_database")
    seconds = time.perf_counter() - t
    steps = {e["step"]: e["seconds"] for e in report["timeline"]}
    shutil.rmtree(folder, ignore_errors=True)
    return {"status": report["status"], "error": report["error"], "bytes": size, "seconds": seconds,
            "seconds_per_gib": seconds / (size / (1 << 30)), "steps": steps}


def describe_cost(result: dict, cost: dict) -> str:
    """The nightly's cost per database: seconds per target (the night's verify runs), per GiB (one generated
    database), and how many 1 GiB targets one machine of this kind verifies in a night."""
    runs = [result["intervals"][r.run_id] for r in result["runs"] if r.run_id in result["intervals"]]
    per_target = sorted(e - s for s, e in runs)
    med = per_target[len(per_target) // 2] if per_target else float("nan")
    per_gib = cost["seconds_per_gib"]
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in cost["steps"].items())
    return (f"  cost per database: a verify run of a small target {med:.1f} s (median, the run worker's start "
            f"included); a {cost['bytes'] / (1 << 30):.2f} GiB target's verify_database {cost['seconds']:.1f} s = "
            f"{per_gib:.1f} s per GiB ({steps}); one 2-core machine verifies about {NIGHT_SECONDS / per_gib:.0f} "
            f"1 GiB targets one after another in an 8-hour night (the instance runs up to 4 at once; the disk, not "
            f"the cores, bounds the backups)")


def main() -> None:
    from pgserver import SUPERPASS, PgServer, find_bindir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite-targets", type=int, default=20)
    parser.add_argument("--pg-targets", type=int, default=2)
    parser.add_argument("--no-manual", action="store_true", help="only the nightly's runs, no second run each")
    args = parser.parse_args()
    bindir = find_bindir()
    if bindir is None:
        sys.exit("PostgreSQL binaries not found; install PostgreSQL (Debian: apt-get install postgresql)")
    pg = PgServer(bindir).start()
    work = Path(tempfile.mkdtemp(prefix="mp-scale-"))
    try:
        result = run_nightly(work, pg, password=SUPERPASS, sqlite_targets=args.sqlite_targets,
                             pg_targets=args.pg_targets, manual=not args.no_manual)
        print(describe(result))
        print(describe_cost(result, verify_cost_per_gib(work)))
        for line in result["failed"] + result["overlaps"] + result["checks_not_passed"]:
            print("  !", line)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
