"""The jobs, built from the ``Job`` values of ``core/run/jobs.py`` (the steps ``run_job`` runs too), partitioned by target,
in-process executor.

The steps form a chain; the ``report`` op hangs off the first op's ``started`` output and runs last (``ops.py``): the
executor runs a step once its inputs exist (``require_upstream_step_success: false``), so a failed step stops the
chain but not the report. The jobs name no asset (an asset layer would list them on the assets' pages, but the UI then
treats them as asset jobs and hides their Launchpad): what they record on the assets is logged by their ops."""

from __future__ import annotations

import dagster as dg

from ..core.config import MaintenanceConfig
from ..core.run.jobs import JOBS, Job
from .assets import PRODUCT_TAGS
from .ops import make_ops

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
    # the report step runs once the first step has started it, even after a failed step (``ops.py``). The runs of this
    # product use this executor (the daemon's and the UI's run workers, ``command_line.execute``);
    # ``execute_in_process`` puts an executor of its own in its place (tests), where a failed step leaves the report
    # step unexecuted
    executor = dg.in_process_executor.configured({"step_dependency_config": {"require_upstream_step_success": False}},
                                                 name="in_process")
    common = dict(executor_def=executor, partitions_def=parts,
                  tags={**PRODUCT_TAGS, "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)})

    def build(job: Job) -> dg.JobDefinition:
        steps = job.steps

        def compose():
            first = ops[steps[0]]()
            out = first.result
            for step in steps[1:-1]:
                out = ops[step](out)
            ops[steps[-1]](first.started)  # the report: after the chain, or after the step that failed

        return dg.job(name=job.name, description=job.description, config=partitioned(), **common)(compose)

    return [build(job) for job in JOBS.values()]
