"""A restore checks the backup against its manifest, and against what the event log recorded when the backup was
made, before it touches the target: a backup with a row deleted and its manifest's sha256 edited to match is
refused (rows and fingerprint against the manifest), and so is one whose manifest was edited to match tampered
content (the sha256 the ``backups/<target>`` materialization recorded). The target stays bytewise as it was."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from backup_cases import tamper_backup
from targets import sha256, write_config
from maintenance_pipeline.core.config import load_config
from maintenance_pipeline.core.run.pipeline import run_job
from maintenance_pipeline.orchestration.definitions import build_definitions


def _tamper(backup: Path, *, manifest_too: bool = True) -> None:
    tamper_backup(backup, manifest_rows_too=manifest_too)


def test_a_backup_whose_rows_differ_from_its_manifest_is_refused_before_the_target_is_touched(demo_dir):
    config = load_config(write_config(demo_dir))
    db = demo_dir / "data" / "goals.db"
    made = run_job(config, "goals", "maintain_database")
    backup = Path(made["backup"]["path"])
    _tamper(backup, manifest_too=False)  # sha256 edited to match; the row counts still say 39
    before = sha256(db)
    report = run_job(config, "goals", "restore_database", restore_backup=str(backup))
    assert report["status"] == "failed" and report["failed_step"] == "restore"
    assert "does not hold what its manifest says (rows: manifest → backup: goals 39 → 38)" in report["error"]
    assert sha256(db) == before
    assert report["backup"] is None or report["backup"]["pinned"] is False  # no copy kept for good


def test_a_manifest_edited_to_match_tampered_content_is_refused_by_the_event_log(demo_dir):
    config = load_config(write_config(demo_dir))
    defs = build_definitions(config)
    db = demo_dir / "data" / "goals.db"
    with dg.instance_for_test() as instance:
        made = defs.resolve_job_def("maintain_database").execute_in_process(
            partition_key="goals", instance=instance, raise_on_error=False)
        assert made.success
        backup = Path(instance.fetch_materializations(dg.AssetKey(["backups", "goals"]), limit=1)
                      .records[0].asset_materialization.metadata["path"].path)
        _tamper(backup)  # the manifest now agrees with the tampered file in every way
        before = sha256(db)
        result = defs.resolve_job_def("restore_database").execute_in_process(
            partition_key="goals", instance=instance, raise_on_error=False,
            run_config={"ops": {"restore": {"config": {"backup": str(backup)}}}})
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "this pipeline recorded" in failure.step_failure_data.error.message
        assert "the manifest was edited" in failure.step_failure_data.error.message
    assert sha256(db) == before
