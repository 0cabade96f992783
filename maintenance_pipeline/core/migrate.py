"""Migrate: pending Alembic revisions, then alignment, in ONE transaction, under a lock.

The flow of ``migrate()``:

1. take the maintenance lock (a second run fails fast; SQLite: a file lock, PostgreSQL: a
   session advisory lock);
2. open one connection; on SQLite switch ``PRAGMA foreign_keys`` off *before* the
   transaction (it cannot change inside one; off means a table rebuild's DROP never
   cascades) and begin with ``BEGIN IMMEDIATE``; on PostgreSQL begin and ``SET LOCAL``
   ``lock_timeout``/``statement_timeout`` (and ``search_path`` for a target with a ``schema``);
3. stamp a pre-Alembic database at ``baseline_revision``; run the pending revisions with
   Alembic's own machinery (``EnvironmentContext``/``MigrationContext``; the user's
   ``env.py`` is not needed, the revision files are);
4. snapshot the schema as the transaction now sees it, diff it against the reference and
   apply what ``align`` allows (``align.py``);
5. foreign keys (SQLite: ``PRAGMA foreign_key_check``; PostgreSQL: an anti-join per key the server
   does not enforce, i.e. ``NOT VALID`` or with disabled triggers): a violation the run introduced
   aborts it;
6. commit, or roll back on any error (the SQLite file is then bytewise what it was; PostgreSQL's
   DDL is transactional, so its schema and rows are exactly what they were).

Alembic runs inside that transaction on both: the revisions see the caller's open transaction and
commit nothing (``transactional_ddl``; Alembic's per-revision transactions are no-ops inside one).
On PostgreSQL the version table lives in the target's schema (``version_table_schema``).

A dry run does all of that on a scratch copy (SQLite) or rolls back (other servers),
and returns the SQL it ran.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from alembic.operations import Operations

from . import align as align_mod
from . import pg_checks
from .config import Target
from .dburl import check_sqlite_file, mask_url, open_engine, sqlite_path, translate_error
from .diff import diff
from .errors import MaintenanceError, MigrationError
from .lock import maintenance_lock
from .model import ADDITIVE_KINDS, Change, Snapshot
from .snapshot import take_snapshot


@dataclass
class MigrationPlan:
    has_version_table: bool
    current: tuple[str, ...]
    stamp: str | None
    pending: list[tuple[str, str]]  # (revision, message) in the order they will run

    def to_dict(self) -> dict:
        return {
            "before": ",".join(self.current) or self.stamp or None,
            "stamp": self.stamp,
            "pending": [r for r, _ in self.pending],
        }


@dataclass
class MigrationResult:
    plan: MigrationPlan
    dry_run: bool
    align: str
    applied: list[dict] = field(default_factory=list)  # {"source", "description", "seconds"}
    aligned: list[Change] = field(default_factory=list)
    refused: list[Change] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    revision_after: str | None = None
    failing_revision: str | None = None  # the revision running when a failure happened
    drift_after: list[Change] = field(default_factory=list)  # what the plan leaves (seen inside the transaction)

    def to_dict(self) -> dict:
        return {
            "revisions": {**self.plan.to_dict(), "after": self.revision_after},
            "applied": self.applied,
            "refused": [c.to_dict() for c in self.refused],
            "sql": self.sql,
            "dry_run": self.dry_run,
            "align": self.align,
        }


def _script(target: Target) -> ScriptDirectory | None:
    if target.migrations is None:
        return None
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(target.migrations))
    try:
        return ScriptDirectory.from_config(cfg)
    except CommandError as e:
        raise MigrationError(f"Alembic migrations at {target.migrations} cannot be read: {e}; fix the folder") from None


def _user_tables(conn: sa.Connection, ignore: tuple[str, ...], schema: str | None = None) -> list[str]:
    names = sa.inspect(conn).get_table_names(schema=schema)
    return [n for n in names if n not in ignore and not n.startswith("sqlite_")]


def _schema(conn: sa.Connection, target: Target) -> str | None:
    """The target's schema on PostgreSQL (None = the default schema); SQLite has none."""
    return target.schema if conn.dialect.name != "sqlite" else None


def _migration_context(conn: sa.Connection, target: Target) -> MigrationContext:
    return MigrationContext.configure(conn, opts={"version_table_schema": _schema(conn, target)})


def plan_revisions(conn: sa.Connection, target: Target) -> MigrationPlan:
    """Which revisions are pending; whether a pre-Alembic database needs stamping first."""
    script = _script(target)
    schema = _schema(conn, target)
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
                    "set baseline_revision in the targets file to the revision it is at (never upgraded from base)"
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


def split_by_align(changes: list[Change], align: str) -> tuple[list[Change], list[Change]]:
    """(to apply, refused) under an align mode."""
    if align == "none":
        return [], []
    if align == "full":
        return list(changes), []
    return [c for c in changes if c.kind in ADDITIVE_KINDS], [c for c in changes if c.kind not in ADDITIVE_KINDS]


def fk_violations(conn: sa.Connection, schema: str | None = None, *, only_unenforced: bool = False) -> Counter:
    """Violations of declared foreign keys, counted per (table, parent).

    PostgreSQL: an anti-join per key (``pg_checks.fk_violations``; ``only_unenforced`` limits it to
    the keys the server does not enforce now). SQLite:

    A foreign key that SQLite cannot check at all (``foreign key mismatch``: the parent columns are
    not its primary key or a unique key) is counted once as ``(table, "parent (foreign key mismatch)")``
    instead of failing the whole check, so such a pre-existing key does not block a run, and one the
    run introduces is caught like a violation.
    """
    if conn.dialect.name == "postgresql":
        return pg_checks.fk_violations(conn, schema, only_unenforced=only_unenforced)
    if conn.dialect.name != "sqlite":
        return Counter()
    try:
        rows = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        return Counter((r[0], r[2]) for r in rows)
    except sa.exc.OperationalError as e:
        if "foreign key mismatch" not in str(e.orig):
            raise
    out: Counter = Counter()
    tables = [r[0] for r in conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
    quote = conn.dialect.identifier_preparer.quote
    for t in tables:
        try:
            out.update((r[0], r[2]) for r in conn.exec_driver_sql(f"PRAGMA foreign_key_check({quote(t)})"))
        except sa.exc.OperationalError as e:
            if "foreign key mismatch" not in str(e.orig):
                raise
            for fk in conn.exec_driver_sql('SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', (t,)):
                out[(t, f"{fk[0]} (foreign key mismatch)")] = 1
    return out


def migrate(target: Target, reference: Snapshot, *, align: str | None = None, dry_run: bool = False) -> MigrationResult:
    align = align or target.align
    path = sqlite_path(target.url)
    if dry_run and path is not None:
        return _dry_run_on_copy(target, reference, align, path)
    with maintenance_lock(target.url, holder=f"migrate {target.name}"):
        engine = open_engine(target.url)
        try:
            return _run(engine, target, reference, align, dry_run)
        finally:
            engine.dispose()


def _dry_run_on_copy(target: Target, reference: Snapshot, align: str, path: Path) -> MigrationResult:
    check_sqlite_file(path)
    with tempfile.TemporaryDirectory(prefix="maintenance-dryrun-") as tmp:
        scratch = Path(tmp) / path.name
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        dst = sqlite3.connect(scratch)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        engine = open_engine(f"sqlite:///{scratch}")
        try:
            scratch_target = dataclasses.replace(target, url=f"sqlite:///{scratch}")
            return _run(engine, scratch_target, reference, align, dry_run=True, named=target)
        finally:
            engine.dispose()
            shutil.rmtree(tmp, ignore_errors=True)


def _run(engine: sa.Engine, target: Target, reference: Snapshot, align: str, dry_run: bool,
         named: Target | None = None) -> MigrationResult:
    """``named``: the target that error messages name (a dry run works on a scratch copy)."""
    sql: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        head = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if head in ("SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT"):
            return
        text = " ".join(statement.split())
        if parameters:
            text += f"  -- params {parameters!r}"
        sql.append(text)

    def guard(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        # a revision (or anything else) must not end the run's one transaction: what ran before would stay
        # committed whatever fails after it
        words = statement.lstrip().split(None, 2)
        head = words[0].upper().rstrip(";") if words else ""
        second = words[1].upper() if len(words) > 1 else ""
        if head in ("COMMIT", "END", "BEGIN", "START", "ABORT") or (head == "ROLLBACK" and second != "TO") \
                or (head == "PREPARE" and second == "TRANSACTION"):
            raise MigrationError(f"{' '.join(statement.split())[:60]!r} would end the migration's single "
                                 "transaction; remove it from the revision (the pipeline commits once, at the end)")

    with engine.connect() as conn:
        fk_setting = None
        if conn.dialect.name == "sqlite":
            # PRAGMA foreign_keys is a no-op inside a transaction, and SQLAlchemy's Connection begins
            # one on its first execute: set it on the driver connection (autocommit) before BEGIN.
            # With it on, a rebuild's DROP TABLE would cascade ON DELETE to other tables' rows.
            raw = conn.connection.driver_connection
            fk_setting = raw.execute("PRAGMA foreign_keys").fetchone()[0]
            raw.execute("PRAGMA foreign_keys=OFF")
            conn.info["immediate"] = True
        sa.event.listen(conn, "before_cursor_execute", capture)
        state = {"phase": "plan", "step": None}
        result = None
        try:
            try:
                trans = conn.begin()  # BEGIN IMMEDIATE: waits busy_timeout for another writer, then fails
            except sa.exc.DBAPIError as e:
                raise translate_error(e, (named or target).url) from None
            sa.event.listen(conn, "before_cursor_execute", guard)
            try:
                if conn.dialect.name == "sqlite" and conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
                    raise MigrationError("PRAGMA foreign_keys could not be switched off; a table rebuild could "
                                         "cascade deletes, so nothing was changed")
                pg = conn.dialect.name == "postgresql"
                if pg:
                    pg_checks.begin_migration(conn, target_name=(named or target).name, schema=target.schema,
                                              lock_timeout=target.lock_timeout,
                                              statement_timeout=target.statement_timeout)
                schema = _schema(conn, target)
                fk_before = fk_violations(conn, schema, only_unenforced=pg)
                plan = plan_revisions(conn, target)
                result = MigrationResult(plan=plan, dry_run=dry_run, align=align, sql=sql)
                state["phase"] = "alembic"
                _run_revisions(conn, target, plan, result)
                state["phase"] = "align"
                _align(conn, target, reference, align, result, state)
                state["phase"], state["step"] = "foreign_key_check", None
                fk_after = fk_violations(conn, schema, only_unenforced=pg)
                introduced = {k: n - fk_before.get(k, 0) for k, n in fk_after.items() if n > fk_before.get(k, 0)}
                if introduced:
                    worst = ", ".join(f"{t} -> {p}: {n}" for (t, p), n in sorted(introduced.items()))
                    raise MigrationError(f"the migration would leave rows pointing at missing parents ({worst})")
                result.revision_after = _current_revision(conn, target)
                after = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
                result.drift_after = diff(after, reference, ignore_tables=target.ignore_tables)
            except Exception as e:  # noqa: BLE001 - every failure rolls back, then is reported on one line
                trans.rollback()
                failing = result.failing_revision if result is not None else None
                raise _as_migration_error(e, state, failing, named or target) from e
            if dry_run:
                trans.rollback()
            else:
                trans.commit()
            return result
        finally:
            if sa.event.contains(conn, "before_cursor_execute", guard):
                sa.event.remove(conn, "before_cursor_execute", guard)
            if fk_setting:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _current_revision(conn: sa.Connection, target: Target) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version", schema=_schema(conn, target)):
        return None
    heads = _migration_context(conn, target).get_current_heads()
    return ",".join(heads) or None


def _run_revisions(conn: sa.Connection, target: Target, plan: MigrationPlan, result: MigrationResult) -> None:
    """Run pending revisions inside the caller's transaction, tracking which one is running."""
    script = _script(target)
    if script is None:
        return
    state = {"t": time.monotonic(), "done": 0}
    result.failing_revision = plan.pending[0][0] if plan.pending else None

    def on_apply(*, ctx, step, heads, run_args):  # noqa: ANN001 - Alembic's callback signature
        now = time.monotonic()
        rev, msg = plan.pending[state["done"]]
        result.applied.append({"source": "alembic", "description": f"revision {rev}: {msg}".rstrip(": "),
                               "revision": rev, "seconds": round(now - state["t"], 4)})
        state["done"] += 1
        state["t"] = now
        nxt = plan.pending[state["done"]][0] if state["done"] < len(plan.pending) else None
        result.failing_revision = nxt

    def upgrade(rev, context):  # noqa: ANN001
        return script._upgrade_revs("heads", rev)

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(target.migrations))
    with EnvironmentContext(cfg, script, fn=upgrade, destination_rev="heads"):
        from alembic import context as alembic_context

        alembic_context.configure(connection=conn, target_metadata=None, transactional_ddl=True,
                                  on_version_apply=on_apply, render_as_batch=conn.dialect.name == "sqlite",
                                  version_table_schema=_schema(conn, target))
        mc = alembic_context.get_context()
        mc.autocommit_block = _no_autocommit_block  # the instance's, so op.get_context().autocommit_block()
        if plan.stamp:  # recorded in plan.to_dict()["stamp"], not as an applied revision
            mc.stamp(script, plan.stamp)
            state["t"] = time.monotonic()
        if plan.pending:
            alembic_context.run_migrations()


def _no_autocommit_block():
    raise MigrationError("the revision uses autocommit_block() (e.g. for CREATE INDEX CONCURRENTLY), which would "
                         "commit part of the run outside its single transaction; run that statement by hand or in a "
                         "revision applied outside the pipeline")


def _created_index_names(changes: list[Change]) -> set[str]:
    names = set()
    for ch in changes:
        if ch.kind == "add_index":
            names.add(ch.reference.name)  # type: ignore[union-attr]
        elif ch.kind == "add_table":
            names.update(ix.name for ix in ch.reference.indexes)  # type: ignore[union-attr]
    return names


def _order_for_names(changes: list[Change]) -> list[Change]:
    """Index names are schema-wide on SQLite: an index (or a table's indexes) being dropped whose name is
    about to be created goes first, or the CREATE INDEX fails with "index ... already exists"."""
    created = _created_index_names(changes)
    if not created:
        return changes

    def frees_a_name(ch: Change) -> bool:
        if ch.kind == "drop_index":
            return ch.current.name in created  # type: ignore[union-attr]
        if ch.kind == "drop_table":
            return any(ix.name in created for ix in ch.current.indexes)  # type: ignore[union-attr]
        return False

    first = [c for c in changes if frees_a_name(c)]
    return first + [c for c in changes if not frees_a_name(c)]


# PostgreSQL applies every change in place, in this order: new tables first (parents before children),
# then the drops of keys and indexes (a key on the old primary key or on a column whose type changes
# would block those changes; an index name is schema-wide and may be reused by an add), then the
# column and key changes, and the drops of columns and tables last.
_SERVER_ORDER = ("add_table", "drop_foreign_key", "drop_index", "drop_unique", "add_column", "alter_column",
                 "alter_primary_key", "add_unique", "add_index", "add_foreign_key", "drop_column", "drop_table")


def _order_for_server(changes: list[Change]) -> list[Change]:
    rank = {k: i for i, k in enumerate(_SERVER_ORDER)}
    return sorted(changes, key=lambda c: rank.get(c.kind, len(rank)))  # stable: the diff's order within a kind


def _blocked_by_kept_names(live: Snapshot, to_apply: list[Change]) -> tuple[list[Change], list[Change]]:
    """An index whose name is taken by a live index (or unique key, or table) that stays is not created:
    index names are schema-wide, so it could only be created by dropping the other (refused under
    ``additive``). It is refused instead of failing the whole run."""
    taken: set[str] = set()
    for t in live.tables.values():
        taken.add(t.name)
        taken.update(ix.name for ix in t.indexes)
        taken.update(u.name for u in t.uniques if u.name)
    for ch in to_apply:
        if ch.kind in ("drop_index", "drop_unique") and ch.current is not None:
            taken.discard(ch.current.name)  # type: ignore[union-attr]
        elif ch.kind == "drop_table":
            taken.discard(ch.table)
            taken.difference_update(ix.name for ix in ch.current.indexes)  # type: ignore[union-attr]
            taken.difference_update(u.name for u in ch.current.uniques if u.name)  # type: ignore[union-attr]
    blocked = [ch for ch in to_apply if ch.kind == "add_index" and ch.reference.name in taken]  # type: ignore[union-attr]
    return [ch for ch in to_apply if ch not in blocked], blocked


def _align(conn: sa.Connection, target: Target, reference: Snapshot, align: str, result: MigrationResult,
           state: dict | None = None) -> None:
    state = state if state is not None else {}
    schema = _schema(conn, target)
    live = take_snapshot(conn, ignore_tables=target.ignore_tables, schema=schema)
    changes = diff(live, reference, ignore_tables=target.ignore_tables)
    to_apply, refused = split_by_align(changes, align)
    to_apply, blocked = _blocked_by_kept_names(live, to_apply)
    result.refused = refused + blocked
    if not to_apply:
        return
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        to_apply = _order_for_names(to_apply)
        views = align_mod.working_views(conn)
    else:
        to_apply = _order_for_server(to_apply)
    # a single-column FK arriving with its column is added with it (natively on SQLite)
    column_fks = {}
    for ch in to_apply:
        if ch.kind == "add_foreign_key" and len(ch.reference.columns) == 1:  # type: ignore[union-attr]
            if any(c.kind == "add_column" and c.table == ch.table and c.name == ch.reference.columns[0]
                   for c in to_apply):
                column_fks[(ch.table, ch.reference.columns[0])] = ch  # type: ignore[union-attr]
    ops = Operations(MigrationContext.configure(conn, opts={"transactional_ddl": True}))
    rebuild: dict[str, list[Change]] = {}
    for ch in to_apply:
        if ch.kind == "add_foreign_key" and \
                column_fks.get((ch.table, ch.reference.columns[0])) is ch:  # type: ignore[union-attr]
            continue  # added with its column
        if sqlite and ch.kind == "drop_column" and ch.table in rebuild:
            # the table is rebuilt anyway: dropping the column natively first would rewrite it twice
            rebuild[ch.table].append(ch)
            continue
        fk_ch = column_fks.get((ch.table, ch.name)) if ch.kind == "add_column" else None
        state["step"] = ch.describe()
        t0 = time.monotonic()
        n_sql = len(result.sql)
        if align_mod.apply_change_natively(ops, ch, column_fk=fk_ch.reference if fk_ch else None, schema=schema):
            desc = ch.describe() + (f" with foreign key {fk_ch.reference.describe()}" if fk_ch else "")
            result.applied.append({"source": "align", "description": desc, "seconds": round(time.monotonic() - t0, 4)})
            result.aligned.append(ch)
            if fk_ch:
                result.aligned.append(fk_ch)
        else:
            del result.sql[n_sql:]  # a native attempt that SQLite refused (rolled back) is not part of the plan
            rebuild.setdefault(ch.table, []).append(ch)
    if rebuild:
        now = take_snapshot(conn, ignore_tables=target.ignore_tables)
        for table, chs in rebuild.items():
            state["step"] = f"rebuilding table {table} (" + "; ".join(c.describe() for c in chs) + ")"
            t0 = time.monotonic()
            align_mod.rebuild_table(ops, now.tables[table], chs)
            result.applied.append({"source": "align",
                                   "description": f"rebuilt table {table} (rows kept): "
                                   + "; ".join(c.describe() for c in chs),
                                   "seconds": round(time.monotonic() - t0, 4)})
            result.aligned.extend(chs)
    state["step"] = None
    if sqlite:
        # SQLite checks no view on DROP TABLE, nor during a rebuild (legacy_alter_table): check them here
        broken = align_mod.broken_views(conn, views)
        if broken:
            v, err = broken[0]
            raise MigrationError(f"the alignment would break view {v} ({err}); drop or change the view first, "
                                 "or align the reference with it")


def _as_migration_error(e: Exception, state: dict, failing, target: Target) -> Exception:
    phase = state.get("phase", "plan")
    if isinstance(e, MaintenanceError) and phase == "plan":
        return e
    if isinstance(e, sa.exc.OperationalError) and "locked" in str(e).lower() and "timeout" not in str(e).lower():
        return translate_error(e, target.url)
    line = " ".join(str(getattr(e, "orig", None) or e).split())[:300] or type(e).__name__
    hint = pg_checks.timeout_hint(line) if isinstance(e, sa.exc.DBAPIError) else None
    line = re.sub(r"_alembic_tmp_", "", line)  # Alembic's temporary copy is the table itself to the reader
    if not isinstance(e, MaintenanceError):
        line = f"{type(e).__name__}: {line}"
    rolled = f"{mask_url(target.url)} was rolled back to its state before the run"
    if phase == "alembic":
        rev = failing or "?"
        return MigrationError(f"Alembic revision {rev} failed: {line}; {rolled}; "
                              f"{hint or 'fix the revision and rerun'}", revision=rev)
    if phase == "align":
        step = state.get("step")
        at = f" at {step}" if step else ""
        return MigrationError(f"alignment failed{at}: {line}; {rolled}; "
                              f"{hint or 'fix the data or the reference, or use align: none'}")
    if hint:
        return MigrationError(f"migration failed at {phase}: {line}; {rolled}; {hint}")
    return MigrationError(f"migration failed at {phase}: {line}; {rolled}")
