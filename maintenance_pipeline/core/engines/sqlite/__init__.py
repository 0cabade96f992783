"""SQLite: a database that is one file beside the application.

What differs from a server: the file is never created by us and never read outside SQLite while we hold a
connection to it (``live_file.py``); one writer at a time (``BEGIN IMMEDIATE``), so the migration's write
lock keeps every other writer out; foreign keys are switched off for the migration (a table rebuild's
DROP would cascade); most ALTERs are table rebuilds (``rebuild.py``); the rows check is the run's
backup attached to the migration's connection (``rows.py``); types compare by affinity (``types.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from ..base import Engine
from . import files
from . import types
from .files import check_sqlite_file, sqlite_path, sqlite_uri

_STORED = re.compile(r"\bGENERATED\b.*\bSTORED\s*$", re.IGNORECASE | re.DOTALL)


class SQLiteEngine(Engine):
    name = "sqlite"
    label = "SQLite"
    render_as_batch = True
    has_schemas = False
    folds_name_case = True
    probe_sql = "PRAGMA schema_version"
    integrity_name = "PRAGMA integrity_check"
    internal_tables = ("sqlite_sequence",)  # AUTOINCREMENT's high-water marks

    # ------------------------------------------------------------------ URLs and connections

    def resolve_url(self, url: str, root: Path) -> str:
        from ...dburl import parse_url

        u = parse_url(url)
        db = u.database
        if db and db != ":memory:" and not db.startswith("file:") and not os.path.isabs(db):
            # relative paths resolve against the targets file's folder
            return u.set(database=str((root / Path(db).expanduser()).resolve())).render_as_string(hide_password=False)
        return url

    def file(self, url) -> Path | None:
        return sqlite_path(url)

    def open_engine(self, url, *, busy_timeout: float, check: bool) -> sa.Engine:
        path = sqlite_path(url)
        if path is None:
            return sa.create_engine("sqlite://")
        check_sqlite_file(path)
        engine = sa.create_engine("sqlite://", creator=files.connect_factory(path, busy_timeout),
                                  poolclass=sa.pool.NullPool)

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001 - SQLAlchemy event signature
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")

        return engine

    def is_lock_wait(self, e: BaseException) -> bool:
        """SQLITE_BUSY / SQLITE_LOCKED: another connection held the write lock (or, at COMMIT, a read lock)
        longer than the attempt's busy timeout."""
        import sqlite3

        from ...errors import DatabaseLockedError

        if isinstance(e, DatabaseLockedError):
            return True
        orig = getattr(e, "orig", None)
        if not isinstance(orig, sqlite3.OperationalError):
            return False
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        return "database is locked" in str(orig) or "database table is locked" in str(orig)

    def describe(self, conn: sa.Connection) -> str:
        # our SQLite engines all say sqlite:// (they connect through a creator): the file names the database
        for row in conn.exec_driver_sql("PRAGMA database_list").fetchall():
            if row[1] == "main" and row[2]:
                return f"sqlite:///{row[2]}"
        return "sqlite://"

    def target_schema(self, target) -> str | None:
        return None

    def is_internal_table(self, name: str) -> bool:
        return name.startswith("sqlite_")  # sqlite_sequence, sqlite_stat1, ...

    def maintenance_lock(self, url, holder: str):
        from ...shared.lockfile import file_lock

        return file_lock(str(sqlite_path(url)), url, holder)

    # ------------------------------------------------------------------ schema

    def snapshot(self, conn: sa.Connection, ignore: set[str], schema: str | None):
        from .snapshot import sqlite_snapshot

        return sqlite_snapshot(conn, ignore, schema)

    def column_counts(self, conn: sa.Connection, names: list[str], schema: str | None) -> dict[str, int]:
        prep = conn.dialect.identifier_preparer
        master = f"{prep.quote_identifier(schema)}.sqlite_master" if schema else "sqlite_master"
        sarg = ", :schema" if schema else ""
        return dict(conn.execute(sa.text(
            f"SELECT m.name, count(*) FROM {master} AS m, pragma_table_xinfo(m.name{sarg}) AS p "
            f"WHERE m.type = 'table' AND p.hidden != 1 GROUP BY m.name"), {"schema": schema} if schema else {}
        ).fetchall())

    def metadata_snapshot(self, metadata: sa.MetaData, ignore: Iterable[str], url=None):
        """The models created in an in-memory SQLite database and read back: exactly what SQLite makes of them."""
        from ...errors import ReferenceImportError
        from ...shared.reading import take_snapshot

        engine = sa.create_engine("sqlite://")
        schemas = {t.schema for t in metadata.tables.values() if t.schema}
        try:
            with engine.begin() as conn:
                if schemas:
                    conn = conn.execution_options(schema_translate_map={s: None for s in schemas})
                try:
                    metadata.create_all(conn)
                except sa.exc.SQLAlchemyError as e:
                    msg = str(getattr(e, "orig", None) or e).splitlines()[0]
                    raise ReferenceImportError(
                        f"the reference MetaData cannot be created on SQLite ({msg}); fix the models "
                        "(types SQLite can store, foreign keys to tables in the same MetaData) or use a reference "
                        "database URL instead"
                    ) from None
                return take_snapshot(conn, ignore_tables=ignore)
        finally:
            engine.dispose()

    def schema_version(self, conn: sa.Connection) -> int:
        return int(conn.exec_driver_sql("PRAGMA schema_version").scalar())

    def schema_token(self, conn: sa.Connection) -> int:
        return self.schema_version(conn)  # SQLite bumps it on every schema change (writable_schema writes bump it too)

    def cheap_version(self, url, schema: str | None, ignore: Iterable[str]) -> int:
        """``PRAGMA schema_version``: SQLite bumps it on every schema change (microseconds to read; the file
        check reads it already)."""
        from ...dburl import translate_error

        path = sqlite_path(url)
        version = check_sqlite_file(path)
        if version is not None:
            return version
        try:  # SQLite could not answer the quick check (busy): ask again, waiting a little
            conn = sqlite3.connect(sqlite_uri(path), uri=True, timeout=2)
            try:
                return conn.execute("PRAGMA schema_version").fetchone()[0]
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise translate_error(e, url) from None

    def version_words(self, version) -> tuple[str, str]:
        return f"schema_version {version}", "schema_version"

    def type_key(self, declared: str | None) -> str:
        return types.type_key(declared)

    def default_key(self, text: str, declared_type: str | None) -> str:
        return types.default_key(text)

    def keeps_quoted_number(self, declared_type: str | None) -> bool:
        return types.keeps_quoted_number(declared_type)

    # ------------------------------------------------------------------ migrations

    def migration(self, url, target, *, backup: Path | None, dry_run: bool):
        from .migration import SQLiteMigration

        return SQLiteMigration(self, url, target, backup=backup, dry_run=dry_run)

    @contextlib.contextmanager
    def dry_run_copy(self, url, backup: Path | None = None):
        """A consistent copy made as the run's backup is (``backup.consistent_copy``): when nothing was written
        since the backup, the copy has the backup's header and the rows check compares with the backup itself
        (a copy through the online backup API would differ in its header and look written by another session)."""
        import shutil
        import tempfile

        from .backup import consistent_copy

        path = sqlite_path(url)
        check_sqlite_file(path)
        tmp = tempfile.mkdtemp(prefix="maintenance-dryrun-")
        try:
            scratch = Path(tmp) / path.name
            consistent_copy(path, url, scratch)
            yield f"sqlite:///{scratch}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def fk_violations(self, conn: sa.Connection, schema: str | None, *, only_unenforced: bool = False):
        from .checks import fk_violations

        return fk_violations(conn)

    def order_changes(self, changes: list) -> list:
        from ..ddl import order_for_names

        return order_for_names(changes)

    def alignment_guard(self, conn: sa.Connection):
        """SQLite checks no view on DROP TABLE, nor during a rebuild (legacy_alter_table): the views that
        worked before the alignment must still work after it."""
        from ...errors import MigrationError
        from .rebuild import broken_views, working_views

        views = working_views(conn)

        def check() -> None:
            broken = broken_views(conn, views)
            if broken:
                v, err = broken[0]
                raise MigrationError(f"the alignment would break view {v} ({err}); drop or change the view first, "
                                     "or align the reference with it")

        return check

    def add_column_with_key(self, ops, table: str, column, fk, schema: str | None) -> None:
        """SQLite adds a column with a REFERENCES clause natively (its default must be NULL); Alembic would
        ask for a full batch rebuild here, so this one statement is written out."""
        q = ops.get_bind().dialect.identifier_preparer.quote
        ddl = f"ALTER TABLE {q(table)} ADD COLUMN {q(column.name)} {column.ddl()}"
        ddl += f" REFERENCES {q(fk.ref_table)}({q(fk.ref_columns[0])})"
        if fk.on_delete:
            ddl += f" ON DELETE {fk.on_delete}"
        if fk.on_update:
            ddl += f" ON UPDATE {fk.on_update}"
        ops.get_bind().exec_driver_sql(ddl)  # as is: text() would read ":x" in a default as a parameter

    def apply_in_place(self, ops, change, schema: str | None) -> bool:
        """Only DROP COLUMN is tried in place (it works unless the column is indexed, keyed or referenced);
        everything else is a table rebuild."""
        if change.kind != "drop_column":
            return False
        bind = ops.get_bind()
        savepoint = bind.begin_nested()
        try:
            ops.drop_column(change.table, change.name)
        except sa.exc.OperationalError:
            savepoint.rollback()
            return False
        savepoint.commit()
        return True

    # what only a table rebuild from the reference's own CREATE TABLE can give a table
    _FROM_REFERENCE = ("add_check", "drop_check", "alter_table")

    def rebuild(self, ops, table, changes: list, reference_table=None) -> None:
        """Alembic's batch copy for what the model describes; a rebuild from the reference's own ``CREATE
        TABLE`` when the table changes in what only SQL text carries (CHECK, STRICT, WITHOUT ROWID, generated
        columns, collations) and the reference is a SQLite database (``rebuild.rebuild_from_reference``)."""
        from .rebuild import rebuild_from_reference, rebuild_table

        if reference_table is not None and reference_table.sql:
            rebuild_from_reference(ops, table, reference_table, changes)
        else:
            rebuild_table(ops, table, changes)

    def refusal(self, change, *, same_engine: bool, live=None, reference=None) -> str | None:
        why = super().refusal(change, same_engine=same_engine, live=live, reference=reference)
        if why or same_engine or not _needs_text(change):
            return why
        return "SQLite keeps CHECK constraints, table options, generated columns and collations only in a table's " \
               "CREATE TABLE text, and the reference is not a SQLite database to take it from"

    def size_bytes(self, url) -> int | None:
        path = sqlite_path(url)
        try:  # stat, never open: the live-file rule
            return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()) if path else None
        except OSError:
            return None

    def environment_error(self, message: str) -> str | None:
        low = message.lower()
        if "readonly database" in low or "read-only database" in low:
            return ("the database file or its folder is read-only for this user (SQLite writes the file and a "
                    "journal beside it); make both writable for the user that runs the pipeline")
        return None

    def adds_column_in_place(self, column) -> bool:
        return not _STORED.search(column.type)  # "cannot add a STORED column": a rebuild does it

    def add_columns(self, ops, changes: list, apply, schema: str | None) -> list:
        """Every ``ADD COLUMN`` re-parses the whole schema: the columns SQLite adds without reading a row are added
        with one reload, as SQLite's own ALTER adds them (``addcolumns.py``)."""
        if schema is not None:
            return []
        from .addcolumns import add_columns

        return add_columns(ops, changes, apply)

    def table_options_refusal(self, current, reference) -> str | None:
        return None  # STRICT and WITHOUT ROWID: a rebuild from the reference's CREATE TABLE

    def complete_new_table(self, ops, table, schema: str | None) -> None:
        return None  # a table from another engine's reference: CHECKs are in ``refusal``'s care


    # ------------------------------------------------------------------ backups

    def backup(self, url, backups_dir: Path, target: str, *, label: str, pinned: bool, now, verify: bool,
               busy_timeout: float, settings, schema: str | None, copier=None):
        from .backup import backup_sqlite

        return backup_sqlite(url, backups_dir, target, label=label, pinned=pinned, now=now, verify=verify,
                             busy_timeout=busy_timeout, copier=copier)

    def is_bytewise_copy(self, method: str) -> bool:
        """The locked copy (``backup.py``): the file's bytes under the write lock; a WAL copy or the backup API
        writes a database of its own."""
        return method == "sqlite-locked-copy"

    def equals_backup(self, url, backup: Path, manifest: dict, *, schema: str | None, strict: bool) -> str | None:
        """Bytewise (a byte-copy backup of a database nothing wrote to since), else by schema and every row (the
        backup attached to a read-only connection: each of its rows in the database with the same values, and the
        same number of rows in each table). Read before this process opens any other connection to the file."""
        from .restore import equals_backup

        return equals_backup(url, backup, manifest)

    def backup_snapshot(self, backup: Path, url, target):
        from ...shared.reading import take_snapshot
        from .. import open_engine

        engine = open_engine(f"sqlite:///{backup}")
        try:
            with engine.connect() as conn:
                return take_snapshot(conn, ignore_tables=target.ignore_tables)
        finally:
            engine.dispose()

    def restore(self, backup: Path, url, *, busy_timeout: float, schema: str | None, safety=None,
                recreate: bool = False) -> dict:
        from .restore import restore_sqlite

        return restore_sqlite(backup, url, busy_timeout, safety=safety, recreate=recreate)

    @contextlib.contextmanager
    def scratch_restore(self, backup: Path, url, *, schema: str | None = None):
        """A copy of ``backup`` in a temporary folder private to this user (0700), hashed as it is copied: what the
        drill measures is exactly the bytes the manifest's sha256 vouches for. The backup is read once as bytes and
        never opened by SQLite; the live database ``url`` is not opened at all. Yields the copy's URL."""
        import hashlib
        import shutil
        import tempfile

        from ...shared.files import CHUNK
        from ...shared.manifest import expected_sha256, manifest_for_restore, sha256_mismatch
        from ...dburl import mask_url
        from ...errors import RestoreError

        where, backup = mask_url(url), Path(backup)
        expected = expected_sha256(manifest_for_restore(backup, where), backup, where)
        folder = Path(tempfile.mkdtemp(prefix="maintenance-drill-"))
        try:
            copy = folder / backup.name
            digest = hashlib.sha256()
            try:
                src = os.open(backup, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
            except OSError as e:
                raise RestoreError(f"cannot read backup {backup.name}: {e.strerror or e} (removed or replaced since it "
                                   "was listed?); rerun") from None
            try:
                try:
                    with open(copy, "xb") as dst:
                        while chunk := os.read(src, CHUNK * 4):
                            digest.update(chunk)
                            dst.write(chunk)
                finally:
                    os.close(src)
            except OSError as e:
                raise RestoreError(f"cannot copy backup {backup.name} into the temporary folder {folder.parent}: "
                                   f"{e.strerror or e}; free space there (or point TMPDIR elsewhere) and rerun"
                                   ) from None
            if digest.hexdigest() != expected:
                raise sha256_mismatch(backup, digest.hexdigest(), expected, where)
            yield f"sqlite:///{copy}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------ checks

    def readable_copy(self, backup: Path) -> str | None:
        return f"sqlite:///{backup}"  # a backup is a database file

    def reading_copy(self, url, folder: Path | None):
        """Rollback journal: a consistent byte copy in ``folder`` (a reader there would keep writers from
        committing); WAL: the live file (``backup.reading_copy``)."""
        from .backup import reading_copy

        return reading_copy(url, folder)

    def integrity(self, conn: sa.Connection, schema: str | None) -> tuple[bool, str]:
        from .checks import integrity

        return integrity(conn)

    def backup_fk_violations(self, backup: Path, target):
        from .checks import fk_check

        return fk_check(backup)

    @contextlib.contextmanager
    def read_only(self, conn: sa.Connection, restore_authorizer=None, hidden=None):
        """An authorizer that allows reads only, for the block (SQLite asks it for every table, column and
        function a statement touches, when the statement is prepared); then ``restore_authorizer`` again."""
        from .checks import read_only_authorizer

        raw = conn.connection.driver_connection
        seen: dict = {}
        before = (raw.in_transaction, raw.total_changes)
        raw.set_authorizer(read_only_authorizer(hidden, seen))
        try:
            yield seen
        finally:
            raw.set_authorizer(restore_authorizer)
        if (raw.in_transaction, raw.total_changes) != before:  # the authorizer refuses both: a tripwire
            from ...errors import UserCheckError

            raise UserCheckError("a check changed the database or its transaction although it ran read-only; "
                                 "remove it from the targets file and report this as a bug")


def _needs_text(change) -> bool:
    if change.kind in SQLiteEngine._FROM_REFERENCE:
        return True
    if change.kind in ("alter_column", "add_column"):
        decl = " ".join(x.type for x in (change.current, change.reference) if x is not None).upper()
        return "GENERATED" in decl or "COLLATE" in decl
    return False
