"""What the catalog says is what was measured and what applies.

* A run that never read its database (a missing file, a ``sqlite://`` typo, a models reference that does not import,
  a restore of a backup that does not exist) records its status and report on ``databases/<target>``, and no number:
  no row count of 0, no "0 drift" (the plots would read a fall to 0 as data lost).
* Only the checks that apply are declared (``alembic_at_head`` needs ``migrations:``); each can run alone, in the
  target's own job, whose runs carry the ``database`` tag the run queue limits; the targets file's owners and tags are
  the asset's. Real runs on real SQLite files."""

from __future__ import annotations

import dagster as dg
import pytest

from targets import demo_target, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.errors import ConfigError
from maintenance_pipeline.orchestration.definitions import build_definitions

KEY = dg.AssetKey(["databases", "goals"])
NUMBERS = {"dagster/row_count", "drift_changes", "tables", "size_bytes", "backup_bytes", "backup_age_hours",
           "fk_orphans", "integrity_seconds"}


def _events(instance, run_id: str) -> tuple[list, list]:
    """The run's materializations and observations of ``databases/goals``."""
    made = [e.dagster_event.event_specific_data.materialization
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)]
    seen = [e.dagster_event.event_specific_data.asset_observation
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION)]
    return [m for m in made if m.asset_key == KEY], [o for o in seen if o.asset_key == KEY]


@pytest.mark.parametrize("case, target, job, run_config, step", [
    ("a missing file", {"url": "sqlite:///data/missing.db"}, "verify_database", None, "backup"),
    ("a sqlite:// typo", {"url": "sqlite://app.db"}, "maintain_database", None, "backup"),
    ("a models import that fails", {"reference": {"metadata": "no_such_app.models:Base.metadata"}},
     "verify_database", None, "diff"),
    ("a restore of a backup that does not exist", {}, "restore_database",
     {"ops": {"restore": {"config": {"backup": "backups/goals/nowhere.db"}}}}, "backup"),
])
def test_a_run_that_never_read_the_database_records_no_number(demo_dir, case, target, job, run_config, step):
    defs = build_definitions(load_config(write_config(demo_dir, {"goals": demo_target(**target)})))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(job).execute_in_process(partition_key="goals", instance=instance,
                                                              run_config=run_config, raise_on_error=False)
        assert not result.success
        assert next(e for e in result.all_events if e.is_step_failure).step_key == step
        made, seen = _events(instance, result.run_id)
    assert made == [], case  # nothing measured: the header keeps the last measured state
    [observation] = seen
    assert not NUMBERS & set(observation.metadata), observation.metadata
    assert observation.metadata["status"].value == "failed" and "report" in observation.metadata
    assert observation.description == f"not measured: the run failed at {step} before reading the database"


def test_only_the_checks_that_apply_are_declared_with_the_owners_and_tags_of_the_targets_file(demo_dir):
    config = load_config(write_config(demo_dir, {
        "goals": demo_target(owners=["dba@example.com", "team:data"], tags={"tier": "gold", "pii": None}),
        "plain": demo_target(migrations=None, baseline_revision=None)}))
    defs = build_definitions(config)
    declared = {key: {s.key.name for cd in defs.asset_checks for s in cd.check_specs if s.asset_key == key}
                for key in (KEY, dg.AssetKey(["databases", "plain"]))}
    assert "alembic_at_head" in declared[KEY]
    assert "alembic_at_head" not in declared[dg.AssetKey(["databases", "plain"])]  # nothing could evaluate it
    spec = next(s for s in defs.assets if s.key == KEY)
    assert list(spec.owners) == ["dba@example.com", "team:data"]
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/")} == {"tier": "gold", "pii": ""}
    backups = next(s for s in defs.assets if s.key == dg.AssetKey(["backups", "goals"]))
    assert list(backups.owners) == list(spec.owners)


@pytest.mark.parametrize("setting, says", [
    ({"owners": ["Data Team"]}, "targets.goals.owners[0] must be an email or team:<name>, got 'Data Team'"),
    ({"owners": "dba@example.com"}, "targets.goals.owners must be a list of emails or team:<name>"),
    ({"tags": {"tier": "gold standard"}}, "targets.goals.tags.tier must be up to 63 letters, digits"),
    ({"tags": {"a b": "x"}}, "targets.goals.tags 'a b' is not a tag name"),
])
def test_a_bad_owner_or_tag_fails_the_load_in_one_line(demo_dir, setting, says):
    with pytest.raises(ConfigError) as e:
        load_config(write_config(demo_dir, {"goals": demo_target(**setting)}))
    assert says in str(e.value) and "\n" not in str(e.value)


def test_one_check_runs_alone_in_its_targets_job_under_the_database_tag(demo_dir):
    defs = build_definitions(load_config(write_config(demo_dir)))
    job = defs.resolve_job_def("Checks_goals")
    assert job.tags["database"] == "goals"  # the run queue's per-database limit applies to its runs
    one = job.get_subset(asset_check_selection={dg.AssetCheckKey(KEY, "integrity")})
    with dg.instance_for_test() as instance:
        result = one.execute_in_process(instance=instance)
        assert result.success
        assert [e.check_name for e in result.get_asset_check_evaluations()] == ["integrity"]
        assert instance.get_run_by_id(result.run_id).tags["database"] == "goals"
