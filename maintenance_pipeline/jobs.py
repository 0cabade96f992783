"""The three jobs of SPEC §3, partitioned by target, in-process executor."""

from __future__ import annotations

import dagster as dg

from .core.config import MaintenanceConfig
from .ops import make_ops

JOB_DESCRIPTIONS = {
    "maintain_database": "Back up, diff against the reference, migrate (Alembic revisions + alignment), verify, "
                         "report. Changes the target.",
    "verify_database": "Back up, diff, verify, report. Never changes the target; the nightly check.",
    "restore_database": "Safety backup, restore a backup (newest verified by default), verify, report.",
}


def partitions_def(config: MaintenanceConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(sorted(config.targets))


def make_jobs(config: MaintenanceConfig) -> list[dg.JobDefinition]:
    ops = make_ops(config)
    parts = partitions_def(config)

    def partitioned():  # run config needs no typing: every op config has defaults
        return dg.PartitionedConfig(partitions_def=parts, run_config_for_partition_key_fn=lambda key: {},
                                    tags_for_partition_key_fn=lambda key: {"database": key})

    # Outputs stay in memory (one process runs the whole job): the run state carries the loaded
    # targets file, and a pickled copy on disk would hold its passwords and webhook token.
    common = dict(executor_def=dg.in_process_executor, partitions_def=parts, tags={"product": "maintenance_pipeline"},
                  resource_defs={"io_manager": dg.mem_io_manager})

    @dg.job(name="maintain_database", description=JOB_DESCRIPTIONS["maintain_database"], config=partitioned(),
            **common)
    def maintain_database():
        ops["report"](ops["verify"](ops["migrate"](ops["diff"](ops["backup"]()))))

    @dg.job(name="verify_database", description=JOB_DESCRIPTIONS["verify_database"], config=partitioned(), **common)
    def verify_database():
        ops["report"](ops["verify"](ops["diff"](ops["backup"]())))

    @dg.job(name="restore_database", description=JOB_DESCRIPTIONS["restore_database"], config=partitioned(),
            **common)
    def restore_database():
        ops["report"](ops["verify"](ops["restore"](ops["backup"]())))

    return [maintain_database, verify_database, restore_database]
