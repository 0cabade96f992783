"""verify_target()'s checks on a real PostgreSQL server (foreign keys NOT VALID and orphan rows, integrity
through amcheck when installed and allowed), and connection errors of diff, migrate, verify and the drift
sensor's probe: one clear line, never the password.

Each test builds its own databases on the ``pg`` fixture's server; helpers are in ``pg_migrate_helpers.py``.
"""

from __future__ import annotations

import uuid

import pytest

from maintenance_pipeline.core.run.report import render_markdown

from maintenance_pipeline.core.config import Target
from maintenance_pipeline.core.errors import ConnectionFailedError, MaintenanceError
from maintenance_pipeline.core.migrate.executor import migrate
from maintenance_pipeline.core.schema.reference import reference_snapshot
from maintenance_pipeline.core.verify.checks import verify_target
from pg_migrate_helpers import reference


# ------------------------------------------------------------------------------ verify checks


def test_foreign_keys_not_valid_and_orphans(pg):
    suffix = uuid.uuid4().hex[:8]
    name = f"fk_{suffix}"
    url = pg.create_database(name)
    pg.psql("CREATE TABLE p (id int PRIMARY KEY, a int, b int, UNIQUE (a, b));"
            "CREATE TABLE c (id int PRIMARY KEY, pid int, a int, b int);"
            "INSERT INTO p VALUES (1, 1, 1); INSERT INTO c VALUES (1, 1, 1, 1), (2, 99, NULL, NULL), (3, NULL, 5, 5),"
            " (4, NULL, 1, NULL);"
            "ALTER TABLE c ADD CONSTRAINT c_pid_fk FOREIGN KEY (pid) REFERENCES p(id) NOT VALID;"
            "ALTER TABLE c ADD CONSTRAINT c_ab_fk FOREIGN KEY (a, b) REFERENCES p(a, b) MATCH FULL NOT VALID", name)
    target = Target(name="fk", url=url, reference_url=url)
    ref = reference(target)
    verified = verify_target(target, ref, backup_path=None, backup_verified=True, mode="verify")
    fk = next(c for c in verified.checks if c.name == "foreign_keys")
    # pid 99 is missing; (5, 5) is missing; (1, NULL) is a partly NULL key under MATCH FULL
    assert not fk.passed and "3 orphan row(s): c -> p: 3" in fk.detail, fk.detail
    assert "NOT VALID" in fk.detail and "c.c_pid_fk" in fk.detail and "c.c_ab_fk" in fk.detail
    # after a maintain run without a backup to compare with, every violation counts as introduced
    verified = verify_target(target, ref, backup_path=None, backup_verified=True, mode="maintain")
    fk = next(c for c in verified.checks if c.name == "foreign_keys")
    assert not fk.passed and "introduced 3" in fk.detail


def test_integrity_uses_amcheck_when_installed_and_allowed(pg):
    suffix = uuid.uuid4().hex[:8]
    name = f"am_{suffix}"
    url = pg.create_database(name)
    role = f"plain_{suffix}"
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text); CREATE INDEX t_v ON t (v);"
            "INSERT INTO t SELECT g, g::text FROM generate_series(1, 500) g", name)
    target = Target(name="am", url=url, reference_url=url)
    ref = reference(target)

    def integrity(t: Target):
        return next(c for c in verify_target(t, ref, backup_path=None, backup_verified=True, mode="verify").checks
                    if c.name == "integrity")

    check = integrity(target)
    assert check.passed and check.detail.startswith("skipped: the amcheck extension is not installed")
    # three states: a skipped check does not fail the run, and never reads as passed
    assert check.status == "skipped" and check.to_dict()["status"] == "skipped"
    md = render_markdown({"target": "am", "job": "verify_database", "status": "success",
                          "checks": [check.to_dict(), {"name": "foreign_keys", "passed": True, "detail": "ok"}]})
    assert "⏭️ **integrity**" in md and "all 1 checks passed, 1 skipped (integrity)" in md
    pg.psql("CREATE EXTENSION amcheck", name)
    check = integrity(target)
    assert check.passed and "bt_index_check" in check.detail and "2 B-tree index(es)" in check.detail, check.detail
    assert "verify_heapam" in check.detail
    # a role without EXECUTE on amcheck's functions: a skip that says why and how to fix it
    pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'plain-pw'")
    pg.psql(f"GRANT SELECT ON t TO {role}", name)
    plain = Target(name="am", url=pg.url(name, user=role, password="plain-pw"), reference_url=url)
    check = integrity(plain)
    assert check.passed and check.detail.startswith("skipped: amcheck") and "may not execute" in check.detail
    assert "GRANT EXECUTE" in check.detail


# ------------------------------------------------------------------------------ connection errors


@pytest.mark.parametrize("problem", ["password", "port", "database"])
def test_connection_errors_are_one_clear_line_without_the_password(pg, tmp_path, problem):
    from pgserver import free_port

    from maintenance_pipeline.core.run.drift import ReferenceCache, probe_target

    secret = "Wr0ng-s3cret-Pa55"
    good_name = f"good_{uuid.uuid4().hex[:6]}"
    good = pg.create_database(good_name)
    pg.psql("CREATE TABLE t (id int PRIMARY KEY)", good_name)  # a reference with no table is an error of its own
    bad, expect = {
        "password": (pg.url("postgres", password=secret), "password authentication failed"),
        "port": (f"postgresql+psycopg://postgres:{secret}@127.0.0.1:{free_port()}/postgres", "refused"),
        "database": (pg.url(f"missing_{uuid.uuid4().hex[:6]}"), "does not exist"),
    }[problem]
    password = secret if problem != "database" else "pg-super-secret"
    good_ref = reference_snapshot(url=good, target_dialect="postgresql")
    calls = {
        "diff (reference)": lambda: reference_snapshot(url=bad, target_dialect="postgresql"),
        "migrate": lambda: migrate(Target(name="x", url=bad, reference_url=good), good_ref),
        "verify": lambda: verify_target(Target(name="x", url=bad, reference_url=good), good_ref,
                                        backup_path=None, backup_verified=False),
    }
    for what, call in calls.items():
        with pytest.raises(ConnectionFailedError) as err:
            call()
        msg = str(err.value)
        assert expect in msg and "\n" not in msg and password not in msg, (what, msg)
        assert "check host, port, database name and credentials" in msg, (what, msg)
    probe, _ = probe_target(Target(name="x", url=bad, reference_url=good), None, ReferenceCache())
    assert probe.status == "unreadable" and expect in probe.error and password not in probe.error
    assert issubclass(ConnectionFailedError, MaintenanceError)  # the pipeline reports it on one line
