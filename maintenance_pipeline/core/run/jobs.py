"""What each job is, said once: its steps, how its run verifies, how its own backup is named and kept, what it
may change and which options it takes. The pipeline (``pipeline.py``), the Dagster jobs, the command line, the
automation, the failures and the report read these values; a new job is one more ``Job`` here and, if it needs a
step of its own, one more step function in ``pipeline.STEPS``.
"""

from __future__ import annotations

from dataclasses import dataclass

# a verify run's backup is named for what launched it: the schedule (nightly), the drift sensor, or a person
_TRIGGER_LABELS = {"schedule": "nightly", "drift": "drift", "manual": "manual"}


@dataclass(frozen=True)
class Job:
    name: str
    steps: tuple[str, ...]  # in order; the last, ``report``, runs after the chain or after the step that failed
    description: str
    verify_mode: str | None = None  # which checks its verify step runs (``verify.checks.CHECKS``)
    backup_label: str | None = None  # the label of the backup its first step takes; None: named for its trigger
    pins_backup: bool = False  # that backup is kept from retention (``backups.pin_pre_migration``)
    plans_revisions: bool = False  # its diff plans the Alembic revisions it will apply (others: only pending or not)
    changes_database: bool = False
    restores: bool = False  # puts a backup back: its backup step chooses and checks the backup, no backup of its own
    takes_dry_run: bool = False
    takes_align: bool = False
    about_backups: bool = False  # what it records belongs to ``backups/<target>``, never to the database's asset
    schema_difference_fails: bool = False  # a schema that differs from the reference fails it, as drift to align

    def label_for(self, trigger: str) -> str:
        """The label of this job's own backup, launched by ``trigger`` (schedule, drift, manual)."""
        return self.backup_label or _TRIGGER_LABELS.get(trigger, "manual")

    @property
    def report_step(self) -> str:
        return self.steps[-1]

    @property
    def last_work_step(self) -> str:
        """The step after which the report is written (the one before ``report``)."""
        return self.steps[-2]


MAINTAIN = Job(
    "maintain_database", ("backup", "diff", "migrate", "verify", "report"),
    "Back up, diff against the reference, migrate (Alembic revisions + alignment), verify, report. Changes the "
    "target.",
    verify_mode="maintain", backup_label="pre-migration", pins_backup=True, plans_revisions=True,
    changes_database=True, takes_dry_run=True, takes_align=True)
VERIFY = Job(
    "verify_database", ("backup", "diff", "verify", "report"),
    "Back up, diff, verify, report. Never changes the target; the nightly check.",
    verify_mode="verify", schema_difference_fails=True)
RESTORE = Job(
    "restore_database", ("backup", "restore", "verify", "report"),
    "Check the chosen backup (by default the pre-migration backup of the newest run that changed the database), take "
    "a safety copy and put the backup back under the lock, verify, report. Changes the target (a dry run says what "
    "it would put back and undo).",
    verify_mode="restore", backup_label="pre-restore", pins_backup=True, changes_database=True, restores=True,
    takes_dry_run=True)
DRILL = Job(
    "restore_drill", ("drill", "report"),  # never changes the target (drill.py)
    "Restore the newest verified backup into a scratch place, check it (integrity, row counts and fingerprint against "
    "its manifest, user checks), rehearse the pending migration on it, report RPO and RTO. Never changes the target.",
    about_backups=True)

JOBS: dict[str, Job] = {j.name: j for j in (MAINTAIN, VERIFY, RESTORE, DRILL)}


def job_named(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise ValueError(f"unknown job {name!r}; one of {', '.join(JOBS)}") from None


# what the drift sensor starts for a target, by its ``on_drift`` setting
ON_DRIFT: dict[str, Job] = {"verify": VERIFY, "maintain": MAINTAIN}
