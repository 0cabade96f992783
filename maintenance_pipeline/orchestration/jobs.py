"""The jobs, built from ``pipeline.JOB_STEPS`` (the steps ``run_job`` runs too), partitioned by target,
in-process executor."""

from __future__ import annotations

import dagster as dg

from ..core.config import MaintenanceConfig
from ..core.run.pipeline import JOB_STEPS
from .ops import make_ops

JOB_DESCRIPTIONS = {
    "maintain_database": "Back up, diff against the reference, migrate (Alembic revisions + alignment), verify, "
                         "report. Changes the target.",
    "verify_database": "Back up, diff, verify, report. Never changes the target; the nightly check.",
    "restore_database": "Check the chosen backup (by default the pre-migration backup of the newest run that "
                        "changed the database), take a safety copy and put the backup back under the lock, verify, "
                        "report. Changes the target (a dry run says what it would put back and undo).",
    "restore_drill": "Restore the newest verified backup into a scratch place, check it (integrity, row counts and "
                     "fingerprint against its manifest, user checks), rehearse the pending migration on it, report "
                     "RPO and RTO. Never changes the target.",
}


def partitions_def(config: MaintenanceConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(sorted(config.targets))


MAX_RUNTIME_SECONDS = 4 * 3600  # a maintenance run that takes longer than this is stuck


def make_jobs(config: MaintenanceConfig) -> list[dg.JobDefinition]:
    ops = make_ops(config)
    parts = partitions_def(config)

    def partitioned():  # run config needs no typing: every op config has defaults
        return dg.PartitionedConfig(partitions_def=parts, run_config_for_partition_key_fn=lambda key: {},
                                    tags_for_partition_key_fn=lambda key: {"database": key})

    # Outputs go through Dagster's default IO manager (pickled on disk between steps), so a failed run
    # can be re-executed from its failed step; the run state holds no secret (``pipeline.RunState``).
    # ``dagster/max_runtime``: with run monitoring on (docs/production/dagster.yaml) a stuck run is failed by the
    # daemon after this many seconds, and the failure alert goes out like any other
    common = dict(executor_def=dg.in_process_executor, partitions_def=parts,
                  tags={"product": "maintenance_pipeline", "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)})

    def build(name: str) -> dg.JobDefinition:
        steps = JOB_STEPS[name]

        def compose():
            out = ops[steps[0]]()
            for step in steps[1:]:
                out = ops[step](out)

        return dg.job(name=name, description=JOB_DESCRIPTIONS[name], config=partitioned(), **common)(compose)

    return [build(name) for name in JOB_STEPS]
