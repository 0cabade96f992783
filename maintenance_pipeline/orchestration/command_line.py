"""A run of ``maintenance-pipeline run``: executed in the command's own process, recorded as a run of the code location.

``JobDefinition.execute_in_process`` records a run without a code location origin (and runs it with an executor of
its own, ignoring the job's): the UI then leaves it out of the Overview's timeline (which places runs by their
repository origin), and the job's Runs tab finds it only by the repository label tag. So the command creates the run
itself, with the origin the code location's runs have (the location ``maintenance_pipeline``, as ``-m
maintenance_pipeline`` and this checkout's ``workspace.yaml`` name it; the repository ``__repository__`` of a
``Definitions``), the job's tags and partition, and executes it in this process with Dagster's ``execute_run``, the
call a run worker makes: the same executor and IO manager as a run the daemon launches.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.execution.api import execute_run
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

LOCATION = "maintenance_pipeline"  # the code location's name: the module's (workspace.yaml, ``-m``)
REPOSITORY = "__repository__"  # the repository of a ``Definitions`` object


def repository_label() -> str:
    """``<repository>@<code location>``: the tag the UI finds a job's runs by (its Runs tab, partition status)."""
    return f"{REPOSITORY}@{LOCATION}"


def origin(job_name: str) -> RemoteJobOrigin:
    """The origin a run of ``job_name`` launched from the code location has (by name: the UI and the run-status
    sensors match a run's location and repository by name)."""
    return RemoteJobOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(LOCATION), REPOSITORY), job_name)


def execute(job: dg.JobDefinition, target: str, instance: dg.DagsterInstance, *, run_id: str,
            run_config: dict | None = None, tags: dict | None = None) -> dg.JobExecutionResult:
    """Run ``job`` on partition ``target`` in this process, recorded with the code location's origin and the tags
    ``execute_in_process`` gives (the job's, the partition's) with ``tags`` and the repository label."""
    run_config = run_config or {}
    all_tags = merge_run_tags(job_def=job, partition_key=target, tags={REPOSITORY_LABEL_TAG: repository_label(),
                                                                      **(tags or {})},
                              asset_selection=None, instance=instance, run_config=run_config)
    run = instance.create_run_for_job(job_def=job, run_id=run_id, run_config=run_config, tags=all_tags,
                                      remote_job_origin=origin(job.name))
    return execute_run(InMemoryJob(job), run, instance, raise_on_error=False)
