"""Alembic revisions of a target: which are pending, and running them inside the caller's transaction.

Alembic's own machinery (``ScriptDirectory``, ``EnvironmentContext``/``MigrationContext``) runs the
revision files; the user's ``env.py`` is not needed. A pre-Alembic database with tables is stamped
at the target's ``baseline_revision`` first. The revisions commit nothing (``transactional_ddl``;
``autocommit_block()`` is refused), so ``migrate`` keeps one transaction for the whole run. On
PostgreSQL the version table lives in the target's schema (``version_table_schema``).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from ..config import Target
from ..engines import engine_of
from ..errors import MigrationError
from .results import MigrationPlan, MigrationRecord



def _alembic_config(target: Target) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(target.migrations))
    return cfg


def _script(target: Target) -> ScriptDirectory | None:
    if target.migrations is None:
        return None
    try:
        return ScriptDirectory.from_config(_alembic_config(target))
    except CommandError as e:
        raise MigrationError(f"Alembic migrations at {target.migrations} cannot be read: {e}; fix the folder") from None


def _user_tables(conn: sa.Connection, ignore: tuple[str, ...], schema: str | None = None) -> list[str]:
    names = sa.inspect(conn).get_table_names(schema=schema)
    engine = engine_of(conn)
    return [n for n in names if n not in ignore and not engine.is_internal_table(n)]


def target_schema(conn: sa.Connection, target: Target) -> str | None:
    """The schema the target's tables live in (None = the default schema; ``Engine.target_schema``)."""
    return engine_of(conn).target_schema(target)


def _migration_context(conn: sa.Connection, target: Target) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table_schema": target_schema(conn, target)})


def _revision_file_error(e: BaseException, target: Target) -> MigrationError | None:
    """A revision file that does not import (a syntax error, an import or a name that fails), named with its path
    and line: None when ``e`` did not come from one of the target's revision files."""
    if target.migrations is None:
        return None
    root = str(Path(target.migrations).resolve())
    where = None
    if isinstance(e, SyntaxError) and e.filename and str(Path(e.filename).resolve()).startswith(root):
        where = (e.filename, e.lineno)
    else:
        for frame in traceback.extract_tb(e.__traceback__):
            if str(Path(frame.filename).resolve()).startswith(root):
                where = (frame.filename, frame.lineno)
    if where is None:
        return None
    what = e.msg if isinstance(e, SyntaxError) else " ".join(str(e).split())[:150]
    return MigrationError(f"revision file {where[0]} does not import: {type(e).__name__} at line {where[1]}: "
                          f"{what}; fix the file")


def plan_revisions(conn: sa.Connection, target: Target) -> MigrationPlan:
    """Which revisions are pending; whether a pre-Alembic database needs stamping first (a revision file that does
    not import is named with its line)."""
    try:
        return _plan_revisions(conn, target)
    except MigrationError:
        raise
    except Exception as e:  # noqa: BLE001 - loading a revision module runs the user's code
        err = _revision_file_error(e, target)
        if err is None:
            raise
        raise err from None


def _plan_revisions(conn: sa.Connection, target: Target) -> MigrationPlan:
    script = _script(target)
    schema = target_schema(conn, target)
    mc = _migration_context(conn, target)
    has_table = sa.inspect(conn).has_table("alembic_version", schema=schema)
    current = tuple(mc.get_current_heads()) if has_table else ()
    if script is None:
        return MigrationPlan(has_table, current, None, [])
    stamp = None
    if not current:
        if _user_tables(conn, ("alembic_version",), schema):
            if not target.baseline_revision:
                raise MigrationError(
                    f"target {target.name!r} has tables but no alembic_version table, so its revision is unknown; "
                    "set baseline_revision in the targets file to the revision it is at (base: it predates the first "
                    "revision, and every revision runs)"
                )
            stamp = target.baseline_revision
    start = stamp or (current[0] if len(current) == 1 else None)
    try:
        if stamp is not None:
            script.get_revision(stamp)
        revs = list(script.iterate_revisions("heads", start if not current or len(current) == 1 else current))
    except CommandError as e:
        raise MigrationError(f"cannot plan Alembic revisions for {target.name!r}: {e}; check baseline_revision "
                             "and the revision files") from None
    revs.reverse()
    return MigrationPlan(has_table, current, stamp, [(r.revision, (r.doc or "").strip()) for r in revs])


def current_revision(conn: sa.Connection, target: Target) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version", schema=target_schema(conn, target)):
        return None
    heads = _migration_context(conn, target).get_current_heads()
    return ",".join(heads) or None


def run_revisions(conn: sa.Connection, target: Target, plan: MigrationPlan, result: MigrationRecord) -> None:
    """Run pending revisions inside the caller's transaction, tracking which one is running."""
    script = _script(target)
    if script is None:
        return
    state = {"t": time.monotonic(), "done": 0}
    result.failing_revision = plan.pending[0][0] if plan.pending else None

    def on_apply(*, ctx, step, heads, run_args):  # noqa: ANN001 - Alembic's callback signature
        now = time.monotonic()
        rev, msg = plan.pending[state["done"]]
        for table in declared_row_changes(script, rev):
            result.declared_rows.setdefault(table, rev)
        result.applied.append({"source": "alembic", "description": f"revision {rev}: {msg}".rstrip(": "),
                               "revision": rev, "seconds": round(now - state["t"], 4)})
        state["done"] += 1
        state["t"] = now
        nxt = plan.pending[state["done"]][0] if state["done"] < len(plan.pending) else None
        result.failing_revision = nxt

    def upgrade(rev, context):  # noqa: ANN001
        return script._upgrade_revs("heads", rev)

    with EnvironmentContext(_alembic_config(target), script, fn=upgrade, destination_rev="heads"):
        from alembic import context as alembic_context

        alembic_context.configure(connection=conn, target_metadata=None, transactional_ddl=True,
                                  on_version_apply=on_apply, render_as_batch=engine_of(conn).render_as_batch,
                                  version_table_schema=target_schema(conn, target))
        mc = alembic_context.get_context()
        mc.autocommit_block = _no_autocommit_block  # the instance's, so op.get_context().autocommit_block()
        if plan.stamp:  # recorded in plan.to_dict()["stamp"], not as an applied revision
            mc.stamp(script, plan.stamp)
            state["t"] = time.monotonic()
        if plan.pending:
            alembic_context.run_migrations()


def declared_row_changes(script: ScriptDirectory, rev: str) -> tuple[str, ...]:
    """The tables whose rows revision ``rev`` says it changes: its module-level ``changes_rows``.

    A data migration that updates or deletes rows on purpose declares them, e.g.
    ``changes_rows = ("goal_levels",)``; the run then reports those tables' changed rows with their
    counts instead of rolling back for them. A table the revision drops needs no declaration (a
    planned drop, listed with the values it held)."""
    module = script.get_revision(rev).module
    value = getattr(module, "changes_rows", ())
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (tuple, list, set, frozenset)) or not all(isinstance(v, str) for v in value):
        raise MigrationError(f"revision {rev}: changes_rows must be a tuple of table names, e.g. "
                             f"changes_rows = (\"goals\",); got {value!r}", revision=rev)
    return tuple(value)


def _no_autocommit_block():
    raise MigrationError("the revision uses autocommit_block() (e.g. for CREATE INDEX CONCURRENTLY), which would "
                         "commit part of the run outside its single transaction; run that statement by hand or in a "
                         "revision applied outside the pipeline")
