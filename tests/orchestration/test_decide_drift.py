"""The drift sensor's decision for one target (``automation.decide_drift``), from plain values: the probe of a tick
and the cursor entry ``probe_target`` returned with it. What the sensor does with it on real files is
``test_automation.py``'s."""

from __future__ import annotations

import copy

from maintenance_pipeline.core.run.drift import Probe
from maintenance_pipeline.orchestration.automation import decide_drift

SQLITE_WORDS = ("schema_version 7", "schema_version")
CHANGES = ["goals.completed_at: a column the reference does not have", "goals: no index ix_goals_owner"]


def drifted(fingerprint="fp-one", changes=CHANGES, reflected=True) -> Probe:
    return Probe("goals", "drift", fingerprint, list(changes), reflected=reflected, schema_version=7)


def in_sync(reflected=True) -> Probe:
    return Probe("goals", "ok", None, [], reflected=reflected, schema_version=7)


def entry(fp="", alerted=None, **more) -> dict:
    """A cursor entry as ``probe_target`` makes it after reflecting."""
    return {"sv": 7, "ref": "r1", "fp": fp, "changes": [], "alerted": alerted, **more}


def test_first_sight_in_sync_records_the_entry_and_requests_nothing():
    d = decide_drift("goals", in_sync(), entry(), "verify", SQLITE_WORDS)
    assert d.request is None and d.alert is None and d.warning is None
    assert d.entry == entry()
    assert d.note == "goals: no drift (schema_version 7, reflected)"


def test_first_drift_requests_one_run_of_the_verify_job_and_alerts_once():
    d = decide_drift("goals", drifted(), entry("fp-one"), "verify")
    assert d.request == {"run_key": "goals:fp-one", "job_name": "verify_database", "partition_key": "goals",
                         "tags": {"database": "goals", "trigger": "drift", "drift.fingerprint": "fp-one"}}
    assert d.alert is not None and d.alert.kind == "drift" and d.alert.target == "goals"
    assert d.alert.fingerprint == "fp-one" and d.alert.job == "verify_database"
    assert d.alert.changes == CHANGES
    assert d.alert.error == "2 difference(s) from the reference; starting verify_database"
    assert d.entry["alerted"] == "fp-one" and d.warning is None
    assert d.note == "goals: drift fp-one (2 change(s))"


def test_the_same_fingerprint_again_requests_the_same_run_key_and_sends_no_alert():
    first = decide_drift("goals", drifted(), entry("fp-one"), "verify")
    again = decide_drift("goals", drifted(reflected=False), first.entry, "verify")
    assert again.alert is None
    assert again.request["run_key"] == first.request["run_key"]  # Dagster starts one run per key
    assert again.entry == first.entry


def test_a_new_fingerprint_gets_a_new_run_key_and_a_new_alert():
    first = decide_drift("goals", drifted(), entry("fp-one"), "verify")
    second = decide_drift("goals", drifted("fp-two"), {**first.entry, "fp": "fp-two"}, "verify")
    assert second.request["run_key"] == "goals:fp-two"
    assert second.alert is not None and second.alert.fingerprint == "fp-two"
    assert second.entry["alerted"] == "fp-two"


def test_back_in_sync_requests_nothing_and_ends_the_episode():
    first = decide_drift("goals", drifted(), entry("fp-one"), "verify")
    back = entry("", alerted=first.entry["alerted"])  # probe_target carries ``alerted`` over
    d = decide_drift("goals", in_sync(reflected=False), back, "verify", SQLITE_WORDS)
    assert d.request is None and d.alert is None
    assert d.entry["fp"] == "" and d.entry["alerted"] is None and d.entry["episode"] == 1
    assert back["alerted"] == first.entry["alerted"]  # the entry given is not changed
    assert d.note == "goals: no drift (schema_version 7, schema_version unchanged)"


def test_the_same_drift_after_a_return_to_sync_is_alerted_and_run_again():
    """A DBA fixes the drift by hand, the same difference comes back next week: a new episode, a new alert and a
    new run (Dagster starts one run per run key)."""
    first = decide_drift("goals", drifted(), entry("fp-one"), "verify")
    fixed = decide_drift("goals", in_sync(reflected=False), entry("", alerted=first.entry["alerted"]), "verify")
    again = decide_drift("goals", drifted(), {**fixed.entry, "fp": "fp-one"}, "verify")
    assert again.alert is not None and again.alert.kind == "drift"
    assert again.request["run_key"] != first.request["run_key"]
    assert again.request["run_key"] == f"{first.request['run_key']}:1"
    quiet = decide_drift("goals", drifted(), again.entry, "verify")  # the same episode: no second alert
    assert quiet.alert is None and quiet.request["run_key"] == again.request["run_key"]


def test_an_unreadable_target_is_a_warning_requests_nothing_and_alerts_once_per_error():
    probe = Probe("goals", "unreadable", error="database file data/goals.db does not exist")
    d = decide_drift("goals", probe, entry(error=probe.error), "verify")
    assert d.request is None
    assert d.warning == "target goals unreadable: database file data/goals.db does not exist"
    assert d.note == "goals: unreadable (database file data/goals.db does not exist)"
    assert d.alert is not None and d.alert.kind == "unreadable" and d.alert.error == probe.error
    assert d.entry["error_alerted"] == probe.error

    again = decide_drift("goals", probe, d.entry, "verify")
    assert again.alert is None and again.warning == d.warning and again.request is None

    other = Probe("goals", "unreadable", error="permission denied")
    changed = decide_drift("goals", other, {**d.entry, "error": other.error}, "verify")
    assert changed.alert is not None and changed.alert.error == "permission denied"


def test_on_drift_maintain_requests_maintain_database_and_verify_requests_verify_database():
    maintain = decide_drift("goals", drifted(), entry("fp-one"), "maintain")
    verify = decide_drift("goals", drifted(), entry("fp-one"), "verify")
    assert maintain.request["job_name"] == maintain.alert.job == "maintain_database"
    assert verify.request["job_name"] == verify.alert.job == "verify_database"
    assert maintain.alert.error.endswith("starting maintain_database")


def test_the_entry_given_is_not_changed_and_the_old_stale_backup_mark_is_dropped():
    given = entry("fp-one", stale_alerted="2026-01-01")
    kept = copy.deepcopy(given)
    d = decide_drift("goals", drifted(), given, "verify")
    assert given == kept
    assert "stale_alerted" not in d.entry and d.entry["alerted"] == "fp-one"
