"""The code location: each database an asset with its checks (``assets.py``), jobs, the nightly schedule and
the sensors, built from the targets file.

The targets file is loaded and validated once, when the code location loads; a bad
file fails the load with one line naming the file and the key.
"""

from __future__ import annotations

import dagster as dg

from .assets import check_jobs, database_checks, database_specs, drill_checks
from .automation import make_drill_schedules, make_schedules, make_sensors
from ..core.config import MaintenanceConfig, load_config
from ..core.run.jobs import DRILL, VERIFY
from .jobs import make_jobs


def build_definitions(config: MaintenanceConfig | None = None) -> dg.Definitions:
    config = config or load_config()
    jobs = make_jobs(config)
    verify_job = next(j for j in jobs if j.name == VERIFY.name)
    drill_job = next(j for j in jobs if j.name == DRILL.name)
    return dg.Definitions(assets=database_specs(config), asset_checks=database_checks(config) + drill_checks(config),
                          jobs=jobs + check_jobs(config), sensors=make_sensors(config, jobs),
                          schedules=make_schedules(config, verify_job) + make_drill_schedules(config, drill_job))


def job_for(config_path: str, name: str) -> dg.JobDefinition:
    """One job of the targets file at ``config_path``: what ``dg.build_reconstructable_job`` rebuilds in
    another process (``execute_job``, re-execution from a failed step)."""
    return build_definitions(load_config(config_path)).resolve_job_def(name)
