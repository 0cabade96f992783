"""``Engine``: what every database engine provides, with defaults that fit any SQLAlchemy dialect.

An engine is a stateless object (one per engine, from the registry in ``engines/__init__.py``); its
methods take the URL or the connection they work on, so no secret is kept in it. A subclass overrides
what its engine does differently; a primitive an engine cannot provide raises
``UnsupportedEngineError`` with the engine's name, never falls back to another engine's way.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, NoReturn

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import URL

from ..errors import UnsupportedEngineError
from ..schema.model import Change, Column, ForeignKey, SchemaObject, Snapshot, Table
from ..shared.manifest import BackupResult
from ..shared.targets import TargetView
from ..shared.verdicts import RowsVerdict
from .registry import REGISTRY  # backend name -> engine: each subclass with a name enters itself

Url = str | URL  # a database URL, as text or parsed


class Prepare(Exception):  # noqa: N818 - a signal, not a failure
    """Raised inside the migration's transaction by a session that must do slow work outside it before the attempt
    can prove what it must (PostgreSQL: let the scratch restore finish; SQLite: copy the file at BEGIN). The
    executor rolls the attempt back, calls ``prepare()`` holding no lock of the database, and runs it again: the
    slow work never happens while the migration holds the application off."""

    def __init__(self, reason: str, prepare):
        super().__init__(reason)
        self.reason = reason
        self.prepare = prepare


class MigrationSession:
    """An engine's part of one migration, around the single transaction ``migrate`` drives:

    ``with`` the session (resources before the first connection: a pinned file, a scratch restore), then
    ``connected(conn)`` before BEGIN, ``begun(conn, trans, begin)`` right after it (may begin again;
    returns the transaction), ``read_begin_state`` before any change, ``written`` and ``rows_verdict``
    before COMMIT, ``release(conn)`` at the end whatever happened. The defaults do nothing and make no
    rows check; an engine that can check rows overrides ``rows_verdict``."""

    rows_note = ""  # added to a rows-lost error: what the engine's check cannot tell apart

    def __init__(self, engine: "Engine", url: Url, target: TargetView, *, backup: Path | None, dry_run: bool):
        self.engine, self.url, self.target, self.backup, self.dry_run = engine, url, target, backup, dry_run
        self.shown_name = target.name
        self.cleaned: list[str] = []  # what a killed run left, removed on entering (``MigrationResult.cleaned``)
        self.lock_wait: float | None = None  # seconds one attempt waits for a lock (``migrate/attempts.py``)
        self.begin_snapshot = None
        self.reference_snapshot = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def connected(self, conn: sa.Connection) -> None:
        pass

    def begun(self, conn: sa.Connection, trans: sa.RootTransaction, begin: Callable[[], sa.RootTransaction]
              ) -> sa.RootTransaction:
        return trans

    def read_begin_state(self, conn: sa.Connection, begin_snapshot: Snapshot, ignore: Iterable[str]) -> None:
        self.begin_snapshot = begin_snapshot

    def written(self, conn: sa.Connection, after: Snapshot) -> set[str] | None:
        """The tables whose existing rows the migration may have changed (None: unknown, any of them)."""
        return None

    def rows_verdict(self, conn: sa.Connection, after: Snapshot, result: Any) -> RowsVerdict | None:
        """``checks.RowsVerdict`` of the rows the migration changed, before COMMIT; None: not checked."""
        return None

    def check_guard(self) -> dict:
        """Keyword arguments for ``Engine.read_only`` while user checks run inside the migration."""
        return {}

    def explain(self, message: str) -> str:
        """A failed statement's message as the user should read it (SQLite: a table only the attached backup
        holds is "no such table")."""
        return message

    def fk_at_begin(self, conn: sa.Connection, schema: str | None):
        """The foreign-key violations at BEGIN that ``fk_introduced`` compares with (default: of every key the engine
        does not enforce by itself); None when the session judges later, on what the migration touched only."""
        return self.engine.fk_violations(conn, schema, only_unenforced=True)

    def fk_introduced(self, conn: sa.Connection, schema: str | None, at_begin: Counter | None):
        """Violations per (table, parent) the migration introduced, before COMMIT (a Counter: now minus at BEGIN)."""
        return self.engine.fk_violations(conn, schema, only_unenforced=True) - at_begin

    def effects_before(self, conn: sa.Connection):
        """What ``effects_after`` compares with, read just before a statement of the migration (``migrate/measure.py``)."""
        return None

    def effects_after(self, conn: sa.Connection, before: Any, statement: str) -> dict:
        """What the statement just run did: {"locks": ["ACCESS EXCLUSIVE on goals", …], "rewrites": [tables]}."""
        return {}

    def transaction_lock(self) -> str | None:
        """A lock the whole transaction holds from BEGIN (SQLite's write lock), said for the report; None if none."""
        return None

    def blockers(self) -> list[str]:
        """The sessions that held what the last attempt waited for, one line each ("pid N (app) idle in transaction
        for 12 min holds a lock on orders"); never another session's query text."""
        return []

    def release(self, conn: sa.Connection) -> None:
        pass


class AddedColumn(NamedTuple):
    """A column ``Engine.add_columns`` added, for the run's record."""

    change: object  # the ``add_column`` change
    statements: tuple[str, ...] | None  # what ``apply`` would have sent, as it would have sent it; None: sent as such
    started: float  # ``time.perf_counter()`` when its work began
    seconds: float  # its share of the work


class ReadFrom(NamedTuple):
    """What ``Engine.reading_copy`` yields: the URL to read, and what it is."""

    url: object  # the database to read: the live one, or a copy of it
    copied: bool = False  # a consistent copy of the live database taken on entering (the live one is not read)
    note: str = ""  # why the live database is read although the engine would have copied it (one phrase)




class Engine:
    name: ClassVar[str] = ""  # the SQLAlchemy backend name this engine serves
    label: ClassVar[str] = ""  # how people call it, for messages
    # Alembic's batch mode ("move and copy") for ALTERs the engine cannot do in place
    render_as_batch: ClassVar[bool] = False
    # a database holds named schemas (a reference may be read in one: ``reference.schema``)
    has_schemas: ClassVar[bool] = True
    # names of constraints and indexes that differ only in case are one name (SQLite); otherwise compared exactly
    folds_name_case: ClassVar[bool] = False

    kind_name: ClassVar[str] = ""  # how Dagster's catalog names the kind (its icon); default: ``name``
    # tables the engine keeps for itself, added to every target's ``ignore_tables`` when the targets file loads
    internal_tables: ClassVar[tuple[str, ...]] = ()
    # the old spellings of the engine's backup options, directly under ``backups:`` (old key -> the key of the
    # engine's own section ``backups.<name>``); they still load, mapped to that section (``backup_options``)
    legacy_backup_keys: ClassVar[dict[str, str]] = {}

    def size_bytes(self, url: Url) -> int | None:
        """The database's size on disk, for the asset's nightly plot (None: unknown)."""
        return None

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name:
            cls.kind_name = cls.kind_name or cls.name
            REGISTRY[cls.name] = cls()

    def _unsupported(self, what: str):
        return UnsupportedEngineError(f"{self.label or self.name}: {what} is not supported for this engine")

    # ------------------------------------------------------------------ URLs and connections

    def resolve_url(self, url: str, root: Path) -> str:
        """The URL as the targets file means it (``root``: the file's folder, for relative paths)."""
        return url

    def is_lock_wait(self, e: BaseException) -> bool:
        """Whether ``e`` is the engine giving up waiting for a lock another session holds (the migration's attempt is
        then rolled back and tried again)."""
        return False

    def file(self, url: Url) -> Path | None:
        """The database file behind ``url``, for engines that keep one (None: a server)."""
        return None

    def open_engine(self, url: Url, *, busy_timeout: float, check: bool) -> sa.Engine:
        """A SQLAlchemy engine for ``url``: no pool (every connection is closed when released)."""
        from ..dburl import mask_url
        from ..errors import BadUrlError

        try:
            engine = sa.create_engine(url, pool_pre_ping=True, poolclass=sa.pool.NullPool)
        except sa.exc.NoSuchModuleError:
            raise BadUrlError(f"no SQLAlchemy dialect/driver for {mask_url(url)}; install it or fix the URL") from None
        except (sa.exc.ArgumentError, ImportError) as e:
            raise BadUrlError(f"cannot use {mask_url(url)}: {e}; fix the URL or install its driver") from None
        return engine

    probe_sql: ClassVar[str] = "SELECT 1"  # one cheap statement that proves the connection works

    def describe(self, conn: sa.Connection) -> str:
        """A URL naming the database of ``conn``, for messages."""
        return str(conn.engine.url)

    def is_internal_table(self, name: str) -> bool:
        """A table the engine keeps for itself (not the application's)."""
        return False

    def target_schema(self, target: TargetView) -> str | None:
        """The schema a target's tables live in (None: the connection's default)."""
        return target.schema

    def maintenance_lock(self, url: Url, holder: str) -> contextlib.AbstractContextManager:
        """The per-database lock of a migration or a restore (fails fast when another run has it)."""
        raise self._unsupported("a maintenance lock")

    # ------------------------------------------------------------------ schema

    def snapshot(self, conn: sa.Connection, ignore: set[str], schema: str | None):
        """The ``Snapshot`` of ``schema`` as ``conn`` sees it."""
        from .inspect import inspector_snapshot

        return inspector_snapshot(conn, ignore, schema, self)

    def column_counts(self, conn: sa.Connection, names: list[str], schema: str | None) -> dict[str, int]:
        """{table: number of columns} of the named tables that exist."""
        insp = sa.inspect(conn)
        existing = set(insp.get_table_names(schema=schema))
        wanted = [n for n in names if n in existing]
        multi = insp.get_multi_columns(schema=schema, filter_names=wanted) if wanted else {}
        return {k[1]: len(v) for k, v in multi.items()}

    def column_declaration(self, column: dict, rendered: str) -> tuple[str, str | None]:
        """(declaration, default) of a column as the inspector reads it (``column``: its dict)."""
        default = column.get("default")
        return rendered, None if default is None else str(default)

    def model_column_declaration(self, table: sa.Table, column: sa.Column, rendered: str) -> str:
        """How the engine's ``CREATE TABLE`` declares a model's column, written as its snapshot reads it."""
        return rendered

    def metadata_snapshot(self, metadata: sa.MetaData, ignore: Iterable[str], url: Url | None = None) -> Snapshot:
        """A reference given as SQLAlchemy MetaData, as this engine would hold it (types compiled for it);
        ``url``: the target's, for an engine that asks its server what it makes of the models."""
        from .inspect import metadata_snapshot

        return metadata_snapshot(metadata, self, ignore_tables=ignore)

    def schema_version(self, conn: sa.Connection) -> int:
        """A counter the engine bumps on every schema change, read on an open connection."""
        raise self._unsupported("a schema version counter")

    def schema_token(self, conn: sa.Connection) -> object | None:
        """A value that changes whenever the schema behind ``conn`` changes, by any path (None: the engine has none,
        and a snapshot read earlier in a transaction is never reused for a later state)."""
        return None

    def cheap_version(self, url: Url, schema: str | None, ignore: Iterable[str]) -> int | str | None:
        """A value that moves whenever the schema moves, much cheaper than reading it (None: none)."""
        return None

    def version_words(self, version: int | str | None) -> tuple[str, str]:
        """How the sensor's skip reason names a ``cheap_version``: (what it read, "<short> unchanged")."""
        return "schema version", "schema version"

    def type_key(self, declared: str | None) -> str:
        from ..schema.sqltypes import canonical_type

        return canonical_type(declared)

    def default_literal(self, text: str) -> str:
        """A default's SQL text without what the engine adds around a literal (before the shared canonical form)."""
        return text

    def default_key(self, text: str, declared_type: str | None) -> str:
        """The engine's own spellings of a default in canonical form mapped to one (``sqltypes.default_key``
        does the shared part)."""
        return text

    def keeps_quoted_number(self, declared_type: str | None) -> bool:
        """Whether a column of ``declared_type`` keeps ``'0'`` and ``0`` apart."""
        return False

    # ------------------------------------------------------------------ migrations

    def migration(self, url: Url, target: TargetView, *, backup: Path | None, dry_run: bool) -> MigrationSession:
        return MigrationSession(self, url, target, backup=backup, dry_run=dry_run)

    @contextlib.contextmanager
    def dry_run_copy(self, url: Url, backup: Path | None = None) -> contextlib.AbstractContextManager:
        """Where a dry run works: a URL of a scratch copy (then nothing of the live database is locked: a rehearsal
        whose measured costs are the real run's), or None: in place, in a transaction that is rolled back (the
        default: transactional DDL). ``backup``: the run's backup, a copy may be made from it."""
        yield None

    def fk_violations(self, conn: sa.Connection, schema: str | None, *, only_unenforced: bool = False):
        """Rows whose declared foreign key points at a missing parent: Counter of (table, parent) -> n.
        ``only_unenforced``: only the keys the engine does not enforce now (it guarantees the others)."""
        raise self._unsupported("a foreign-key check")

    def implied(self, changes: list[Change], live: Snapshot) -> list[Change]:
        """The changes the engine makes by itself when it applies others in ``changes`` (a column added to a
        table its children inherit from), which must not be applied again. Default: none."""
        return []

    def order_changes(self, changes: list) -> list:
        """The order to apply alignment changes in (``align.order_for_server`` by default)."""
        from .ddl import order_for_server

        return order_for_server(changes)

    def order_by_dependencies(self, conn: sa.Connection, steps: list[Change], live: Snapshot, reference: Snapshot,
                              schema: str | None) -> tuple[list[Change], list[tuple[Change, str]]]:
        """``steps`` (ordered by ``order_changes``) in an order the server accepts given what depends on what in the
        live database, and the steps it would still reject, with why: ``(steps, [(change, why)])``, decided before
        the first statement. Default: as they are, nothing refused."""
        return steps, []

    def alignment_guard(self, conn: sa.Connection):
        """A callable run after the alignment that raises ``MigrationError`` for what the engine does not check
        itself (SQLite: a view the alignment broke). Default: nothing to check."""
        return lambda: None

    def add_column_with_key(self, ops: Operations, table: str, column: Column, fk: ForeignKey,
                            schema: str | None) -> None:
        """Add ``column`` with its single-column foreign key ``fk``."""
        from .ddl import create_foreign_key, sa_column

        ops.add_column(table, sa_column(column), schema=schema)
        create_foreign_key(ops, table, fk, schema)

    def adds_column_in_place(self, column: Column) -> bool:
        """Whether ``ALTER TABLE ... ADD COLUMN`` can add ``column`` (else the table is rebuilt)."""
        return True

    def add_columns(self, ops: Operations, changes: list[Change], apply: Callable[..., bool],
                    schema: str | None) -> list[AddedColumn]:
        """Add the columns of several ``add_column`` changes (in order; none after another step on its table) at once,
        where the engine can do exactly what ``apply(ops, change)`` does for each (its statements, its checks) faster
        than one by one; the ones it added, in order (the others are applied one by one as usual). A column added by
        its own statements (seen as they ran) has ``statements`` None; the others carry the statements ``apply`` would
        have sent, for the run's record. Default: none (SQLite: one schema reload for all, ``sqlite/addcolumns.py``)."""
        return []

    def apply_in_place(self, ops: Operations, change: Change, schema: str | None) -> bool:
        """A change ``align.apply_change_natively`` has no common way for: ALTER it in place (the default:
        Alembic's operations), or return False when the table must be rebuilt instead (``rebuild``)."""
        from .ddl import apply_generic

        return apply_generic(ops, change, self, schema)

    def rebuild(self, ops: Operations, table: Table, changes: list[Change], reference_table: Table | None = None
                ) -> None:
        """Rebuild ``table`` with ``changes`` applied, keeping every row (engines that cannot ALTER in place);
        ``reference_table``: the reference's table, when the reference is a database of this engine."""
        raise self._unsupported("a table rebuild")

    def refusal(self, change: Change, *, same_engine: bool, live: Snapshot | None = None,
                reference: Snapshot | None = None) -> str | None:
        """Why ``change`` cannot be aligned automatically (None: it can). The run is then refused with the reason
        ("write a revision for it"), whatever the align mode: a difference is never applied half-way or wrongly.
        ``live``, ``reference``: the two snapshots (what else a drop would take)."""
        k = change.kind
        if k in ("add_object", "alter_object"):
            ref = change.reference
            if not same_engine:
                return f"the reference is a database of another engine: its {ref.kind} cannot be created on " \
                       f"{self.label}"
            if k == "add_object" and not ref.sql:
                return f"the reference does not say how to create this {ref.kind}"
            if k == "alter_object" and ref.kind == "type":
                from ..schema.model import extends

                if not (ref.values and extends(change.current.values, ref.values)):
                    return "a type can only gain enum values automatically (removing, renaming or reordering " \
                           "values, or changing a domain or composite type, needs its columns rewritten)"
        if k == "drop_object" and not change.current.drop_sql:
            return f"the engine gave no statement to drop this {change.current.kind}"
        if k == "alter_table":
            return self.table_options_refusal(change.current.options, change.reference.options)
        if k == "add_table" and change.reference.options and not (same_engine and change.reference.sql):
            return self.table_options_refusal((), change.reference.options)
        return None

    def table_options_refusal(self, current: tuple[str, ...], reference: tuple[str, ...]) -> str | None:
        """Why a table's options cannot go from ``current`` to ``reference`` (None: ``apply_in_place`` /
        ``rebuild`` / ``complete_new_table`` can do it)."""
        return f"table options {', '.join(current) or 'none'} -> {', '.join(reference) or 'none'} cannot be " \
               f"changed automatically on {self.label}"

    def complete_new_table(self, ops: Operations, table: Table, schema: str | None) -> None:
        """After ``CREATE TABLE`` from the model: what the model's columns and keys do not carry (CHECKs,
        table options)."""
        from .ddl import add_check

        for check in table.checks:
            add_check(ops, table.name, check, schema)

    def complete_new_column(self, ops: Operations, table: str, column: Column, schema: str | None) -> None:
        """After ``ADD COLUMN``: what the column's declaration does not carry (PostgreSQL: its sequence's options and
        name). Default: nothing."""
        return None

    def add_enum_values(self, ops: Operations, current: SchemaObject, reference: SchemaObject) -> None:
        """Give the enum ``current`` the values ``reference`` adds, in their places."""
        raise self._unsupported("enum types")

    def plain_type(self, declared: str | None) -> str:
        """A column declaration's type as ``ALTER COLUMN ... TYPE`` accepts it."""
        return declared or ""

    def type_change(self, ops: Operations, column: str, new_type: str) -> dict:
        """Extra keyword arguments of Alembic's ``alter_column`` for a type change (PostgreSQL: ``USING``)."""
        return {}

    def primary_key_name(self, ops: Operations, table: str, schema: str | None) -> str | None:
        return sa.inspect(ops.get_bind()).get_pk_constraint(table, schema=schema).get("name")

    def environment_error(self, message: str) -> str | None:
        """What a driver's message says is wrong with where the database lives rather than with the migration
        (a read-only file or server), as "what; how to fix it" (None: nothing of the kind)."""
        return None

    def error_hint(self, message: str) -> str | None:
        """How to fix what a failed statement's message says, when the engine knows (timeouts)."""
        return None

    # ------------------------------------------------------------------ backups

    def backup_options(self, raw: dict, key: str, fail: Callable[[str, str], NoReturn]) -> object:
        """The engine's own backup options from its section of the targets file (``backups.<name>``: ``raw``, the
        mapping as written; None: no section), as a frozen value the core keeps without looking into it
        (``BackupSettings.engine_options``) and hands back to ``backup`` as ``settings``. ``key`` names the section
        in messages, ``fail(key, problem)`` raises the one-line error. Default: the engine takes no options."""
        if raw is not None:
            fail(key, f"is not a setting: {self.label or self.name} takes no backup options; remove it")
        return None

    def safety_copy_options(self, options: object) -> object:
        """The options of the safety copy a restore takes of the live database first (``backup.SafetyCopy``), from
        the backups' (``backup_options``; None: the defaults). Default: the same."""
        return options

    def is_bytewise_copy(self, method: str) -> bool:
        """Whether a backup made by ``method`` (its manifest's) is the database file byte for byte: a rolled-back
        run's file then shows the same sha256 as the backup's."""
        return False

    def backup(self, url: Url, backups_dir: Path, target: str, *, label: str, pinned: bool, now: datetime,
               verify: bool, busy_timeout: float, settings: object, schema: str | None,
               copier: Callable | None = None) -> BackupResult:
        """A verified backup with its manifest (``BackupResult``). ``settings``: the engine's own options
        (``backup_options``; None: its defaults). ``copier``: made by the engine's own restore, which takes its
        safety copy inside a lock it holds (how the bytes are copied there)."""
        raise self._unsupported("backing up")

    def equals_backup(self, url: Url, backup: Path, manifest: dict, *, schema: str | None, strict: bool) -> str | None:
        """How the live database was found to hold exactly what ``backup`` holds ("bytewise", …), or None (it differs,
        or the engine cannot tell). ``strict``: the operator named the backup: only an exact judgement counts."""
        return None

    def backup_snapshot(self, backup: Path, url: Url, target: TargetView) -> Snapshot:
        """The schema a backup holds (a restore's dry run compares it with the database's)."""
        raise self._unsupported("reading a backup's schema")

    def restore(self, backup: Path, url: Url, *, busy_timeout: float, schema: str | None, safety: Any = None,
                recreate: bool = False) -> dict:
        """Check ``backup`` against its manifest, then put it in place of the live database; ``safety``
        (``backup.SafetyCopy``): take that copy of the live database first (returned as ``"safety"``);
        ``recreate``: an engine whose database is a file makes a missing one again (else: an error)."""
        raise self._unsupported("restoring")

    def scratch_restore(self, backup: Path, url: Url, *, schema: str | None = None
                        ) -> contextlib.AbstractContextManager:
        """The restore drill's scratch place, a context manager yielding its URL: ``backup`` checked against its
        manifest (sha256; ``RestoreError`` naming the backup otherwise), then restored somewhere that never touches
        the live database ``url`` (a file engine: a copy in a private temporary folder; a server: a scratch
        database beside it), removed when the block ends, whatever happened."""
        raise self._unsupported("a restore drill")

    # ------------------------------------------------------------------ checks

    integrity_name: ClassVar[str] = "the integrity check"  # how verify names ``integrity`` in a detail
    fk_how: ClassVar[str] = ""  # how ``fk_violations`` checks, said after "no row points at a missing parent"

    def readable_copy(self, backup: Path) -> str | None:
        """A URL that reads the backup ``backup`` as a database (None: a backup is not one, e.g. a dump)."""
        return None

    @contextlib.contextmanager
    def reading_copy(self, url: Url, folder: Path | None) -> contextlib.AbstractContextManager:
        """Where verify reads every row of a live database after a change (row counts, integrity, foreign keys,
        user checks), for the block: a ``ReadFrom``. ``folder``: the target's backup folder, where a copy may be
        kept meanwhile. Default: the live database itself (its readers keep no writer from committing)."""
        yield ReadFrom(url)

    def prepare_checks(self, conn: sa.Connection, schema: str | None) -> None:
        """Before user checks: make unqualified names resolve in the target's ``schema``."""

    def integrity(self, conn: sa.Connection, schema: str | None) -> tuple[bool, str]:
        """(ok, one-line detail) of the engine's corruption check; a check it cannot run is a skip that says why."""
        raise self._unsupported("an integrity check")

    def not_valid_keys(self, conn: sa.Connection, schema: str | None) -> list[str]:
        """``table.constraint`` of the foreign keys the engine does not enforce for existing rows."""
        return []

    def backup_fk_violations(self, backup: Path, target: TargetView) -> Counter:
        """``fk_violations`` of the database a backup holds (the orphans that were there before the run)."""
        raise self._unsupported("reading a backup's foreign keys")

    # the first keywords of a query: a user check starting with anything else is not run (a check is one
    # read-only query; ``core/statements.py`` counts the statements)
    query_keywords: ClassVar[frozenset[str]] = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})

    def read_only(self, conn: sa.Connection, restore_authorizer: Callable | None = None,
                  hidden: Callable | None = None) -> contextlib.AbstractContextManager:
        """A context in which ``conn`` cannot write (user checks); yields a dict the guard may fill with what it
        refused ("write", "hidden"). On leaving it normally, the engine confirms the check ran inside the
        transaction it was given (raises ``UserCheckError`` otherwise)."""
        raise self._unsupported("read-only checks")

    def run_check(self, conn: sa.Connection, sql: str):
        """The first value of the one statement ``sql`` (inside ``read_only``); the driver must run one statement
        at most, whatever the text holds."""
        return conn.exec_driver_sql(sql).scalar()
