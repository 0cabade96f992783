"""The code location: jobs (and, later, schedules and sensors) built from the targets file.

The targets file is loaded and validated once, when the code location loads; a bad
file fails the load with one line naming the file and the key.
"""

from __future__ import annotations

import dagster as dg

from .core.config import MaintenanceConfig, load_config
from .jobs import make_jobs


def build_definitions(config: MaintenanceConfig | None = None) -> dg.Definitions:
    config = config or load_config()
    return dg.Definitions(jobs=make_jobs(config))
