"""PostgreSQL: a server, reached with psycopg 3.

What differs from a file database: transactional DDL (one transaction undoes everything); a session
advisory lock instead of a lock file (``lock.py``); schemas (``target.schema``); the catalog
fingerprint the sensor reads in one query (``catalog.py``); ``pg_dump``/``pg_restore``/``psql`` for
backups and restores (``tools.py``, ``backup.py``, ``restore.py``); the rows check a scratch restore of
the backup compared inside the migration's REPEATABLE READ transaction (``rows.py``); types keep their
lengths (``types.py``).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from ..base import Engine
from . import types

SNAPSHOT_LOCK_TIMEOUT = 10.0  # seconds a schema read waits for a table lock (if the session sets none)
_NEXTVAL_RE = re.compile(r"^nextval\('.*'(::regclass)?\)$", re.IGNORECASE)
SERIAL_OF = {"INTEGER": "SERIAL", "BIGINT": "BIGSERIAL", "SMALLINT": "SMALLSERIAL"}


class PostgresEngine(Engine):
    name = "postgresql"
    label = "PostgreSQL"
    kind_name = "postgres"
    integrity_name = "amcheck"
    fk_how = " (one anti-join per declared key)"

    @contextlib.contextmanager
    def dry_run_copy(self, url, backup: Path | None = None):
        """The run's backup restored into a scratch database: the dry run rehearses the migration there, holding no
        lock of the live database, and measures what each statement will cost. Without a backup, or when the role
        may not create a database, in place (a transaction rolled back, its locks bounded by ``lock_timeout``)."""
        from ...errors import MaintenanceError
        from .rows import Scratch

        if backup is None:
            yield None
            return
        scratch = Scratch(backup, url)
        try:
            scratch.restore()
        except MaintenanceError:
            scratch.drop()
            yield None
            return
        try:
            yield scratch.url
        finally:
            scratch.drop()

    def is_lock_wait(self, e: BaseException) -> bool:
        """SQLSTATE 55P03 (lock_not_available): the attempt's ``lock_timeout`` ran out waiting for a lock."""
        return getattr(getattr(e, "orig", None), "sqlstate", None) == "55P03"

    def maintenance_lock(self, url, holder: str):
        from .lock import advisory_lock

        return advisory_lock(url, holder)

    # ------------------------------------------------------------------ schema

    def column_counts(self, conn: sa.Connection, names: list[str], schema: str | None) -> dict[str, int]:
        """One catalog query (the inspector reflects every column's type to count them: 1.8 s at 10,000 tables)."""
        from .catalog import schema_of

        wanted = set(names)
        rows = conn.execute(sa.text(
            "SELECT c.relname, count(a.attnum) FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') GROUP BY c.relname"),
            {"schema": schema_of(conn, schema)})
        return {name: int(count) for name, count in rows if name in wanted}

    def snapshot(self, conn: sa.Connection, ignore: set[str], schema: str | None):
        """The inspector's snapshot, waiting at most ``SNAPSHOT_LOCK_TIMEOUT`` for a table lock when the
        session sets no lock timeout of its own (a migration in progress holds its tables)."""
        from ...dburl import mask_url
        from ...errors import ConfigError
        if schema and not sa.inspect(conn).has_schema(schema):
            raise ConfigError(f"schema {schema!r} does not exist in {mask_url(conn.engine.url)}; create it or "
                              "fix the schema setting (schema: or reference.schema:) in the targets file")
        own = conn.exec_driver_sql("SELECT current_setting('lock_timeout')").scalar()
        if own not in ("0", "0ms"):
            return self._full_snapshot(conn, ignore, schema)
        set_local = sa.text("SELECT set_config('lock_timeout', :v, true)")
        conn.execute(set_local, {"v": f"{max(1, int(SNAPSHOT_LOCK_TIMEOUT * 1000))}ms"})
        snap = self._full_snapshot(conn, ignore, schema)
        conn.execute(set_local, {"v": own})
        return snap

    def _full_snapshot(self, conn: sa.Connection, ignore: set[str], schema: str | None):
        """The inspector's tables completed from the catalogs (``objects.py``): checks, index definitions, key and
        table options, types SQLAlchemy does not know, and the schema's views, triggers, functions, sequences,
        types and policies."""
        from ...schema.model import Snapshot
        from ..inspect import inspector_snapshot
        from .catalog import schema_of
        from .objects import merge_table, read_extras

        temporary = bool(schema) and schema.startswith("pg_temp_")  # a models reference (``models.py``)
        snap = inspector_snapshot(conn, ignore, schema, self, temporary=temporary)
        extras, objects = read_extras(conn, schema_of(conn, schema))
        tables = {n: merge_table(t, extras.get(n), self) for n, t in snap.tables.items()}
        kept = {k: o for k, o in objects.items() if not (o.table and o.table in ignore)}
        return Snapshot(self.name, tables, kept)

    def column_declaration(self, column: dict, rendered: str) -> tuple[str, str | None]:
        """A serial column is its integer type with the sequence (``SERIAL``), not a ``nextval`` default;
        identity and stored generated columns say so in their declaration."""
        default = column.get("default")
        if default is not None and _NEXTVAL_RE.match(str(default).strip()):
            default = None
            rendered = SERIAL_OF.get(rendered.upper(), rendered)
        if column.get("identity"):
            rendered += " GENERATED ALWAYS AS IDENTITY" if column["identity"].get("always") \
                else " GENERATED BY DEFAULT AS IDENTITY"
        elif column.get("computed"):
            rendered += f" GENERATED ALWAYS AS ({column['computed']['sqltext']}) STORED"
        return rendered, None if default is None else str(default)

    def metadata_snapshot(self, metadata: sa.MetaData, ignore: Iterable[str], url=None):
        """With the target's ``url``: the models created in a temporary schema of its server and read back, then
        rolled back (``models.py``): exactly what PostgreSQL makes of them. Without one (no server at hand):
        built from the objects, types compiled for PostgreSQL (no definitions: indexes compare by columns)."""
        if url is None:
            return super().metadata_snapshot(metadata, ignore)
        from .models import materialized_snapshot

        return materialized_snapshot(self, metadata, ignore, url)

    def model_column_declaration(self, table: sa.Table, column: sa.Column, rendered: str) -> str:
        """The type PostgreSQL's ``CREATE TABLE`` gives ``column`` (``PGDDLCompiler.get_column_specification``'s
        rule), written as the live snapshot reads it: the table's autoincrement integer primary key is
        ``SERIAL`` / ``BIGSERIAL`` / ``SMALLSERIAL``, an ``Identity()`` column ``<type> GENERATED ... AS
        IDENTITY``; so that aligning a table from models creates it with its sequence or identity."""
        if column.identity is not None:
            return f"{rendered} GENERATED {'ALWAYS' if column.identity.always else 'BY DEFAULT'} AS IDENTITY"
        seq_ok = column.default is None or (isinstance(column.default, sa.Sequence) and column.default.optional)
        if column.primary_key and column is table.autoincrement_column and seq_ok and rendered.upper() in SERIAL_OF:
            return SERIAL_OF[rendered.upper()]
        return rendered

    def schema_token(self, conn: sa.Connection) -> object | None:
        """The transaction's snapshot while the transaction has written nothing (no transaction id yet): under
        REPEATABLE READ the catalog rows a snapshot reads cannot move then (another session's change is not in the
        transaction's snapshot; a change of its own, by any path, would have given it an id); None once it has
        written, or without a fixed snapshot (READ COMMITTED): read again."""
        level, snapshot, xid = conn.exec_driver_sql(
            "SELECT current_setting('transaction_isolation'), txid_current_snapshot()::text, "
            "txid_current_if_assigned()::text").one()  # the txid_ names: every version, 9.4 on
        return snapshot if xid is None and level in ("repeatable read", "serializable") else None

    def cheap_version(self, url, schema: str | None, ignore: Iterable[str]) -> str:
        """One catalog query over the schema's columns, indexes and constraints (``catalog.catalog_fingerprint``)."""
        from ...dburl import translate_error
        from .. import open_engine
        from .catalog import catalog_fingerprint

        engine = open_engine(url, check=False)
        try:
            with engine.connect() as conn:
                return "pg:" + catalog_fingerprint(conn, schema, tuple(ignore))
        except sa.exc.DBAPIError as e:
            raise translate_error(e, url) from None
        finally:
            engine.dispose()

    def version_words(self, version) -> tuple[str, str]:
        return "catalog fingerprint", "fingerprint"

    def type_key(self, declared: str | None) -> str:
        return types.type_key(declared)

    def default_literal(self, text: str) -> str:
        return types.default_literal(text)

    # ------------------------------------------------------------------ migrations

    def migration(self, url, target, *, backup: Path | None, dry_run: bool):
        from .migration import PostgresMigration

        return PostgresMigration(self, url, target, backup=backup, dry_run=dry_run)

    def fk_violations(self, conn: sa.Connection, schema: str | None, *, only_unenforced: bool = False):
        from .catalog import fk_violations

        return fk_violations(conn, schema, only_unenforced=only_unenforced)

    def plain_type(self, declared: str | None) -> str:
        return types.base_type(declared)

    def type_change(self, ops, column: str, new_type: str) -> dict:
        return {"postgresql_using": f"{ops.get_bind().dialect.identifier_preparer.quote(column)}::{new_type}"}

    def primary_key_name(self, ops, table: str, schema: str | None) -> str | None:
        q = ops.get_bind().dialect.identifier_preparer.quote
        qualified = (f"{q(schema)}." if schema else "") + q(table)
        return ops.get_bind().execute(sa.text("SELECT conname FROM pg_catalog.pg_constraint WHERE conrelid = "
                                              "CAST(:t AS regclass) AND contype = 'p'"), {"t": qualified}).scalar()

    def apply_in_place(self, ops, change, schema: str | None) -> bool:
        """How a column gets its values and table options (``align.py``), then Alembic's ALTERs; then the column's own
        sequence (its options and name); a constraint's or an index's name (``ALTER ... RENAME``)."""
        from ..ddl import apply_generic
        from . import align

        if change.kind in ("rename_constraint", "rename_index"):
            align.rename(ops, change, schema)
            return True
        if change.kind == "alter_column":
            now = align.align_value_source(ops, change.table, change.current, change.reference, schema)
            if now is None:
                return True
            change = replace(change, current=replace(now, sequence=change.reference.sequence))
            if change.current != change.reference:
                apply_generic(ops, change, self, schema)
            align.align_sequence(ops, change.table, change.reference, schema)
            return True
        elif change.kind == "alter_table":
            align.set_options(ops, change.table, change.current.options, change.reference.options, schema,
                              change.reference.primary_key)
            return True
        return apply_generic(ops, change, self, schema)

    def refusal(self, change, *, same_engine: bool, live=None, reference=None) -> str | None:
        from . import align

        why = super().refusal(change, same_engine=same_engine, live=live, reference=reference)
        if why is None and change.kind == "drop_column" and live is not None:
            why = align.inherited_drop(change, live, reference)
        return why or align.sequence_refusal(change)

    def implied(self, changes: list, live) -> list:
        from .align import implied_by_parents

        return implied_by_parents(changes, live)

    def order_by_dependencies(self, conn: sa.Connection, steps: list, live, reference, schema: str | None):
        """What depends on what, from ``pg_depend`` (``depends.py``): a view the plan keeps that reads what it drops
        or retypes is dropped first and made again after; what cannot be is refused before the first statement."""
        from .depends import order_by_dependencies

        return order_by_dependencies(conn, steps, live, reference, schema)

    def table_options_refusal(self, current, reference) -> str | None:
        from .align import options_refusal

        return options_refusal(current, reference)

    def complete_new_table(self, ops, table, schema: str | None) -> None:
        from .align import align_sequence, set_options

        super().complete_new_table(ops, table, schema)
        set_options(ops, table.name, (), table.options, schema, table.primary_key)
        for column in table.columns:
            align_sequence(ops, table.name, column, schema)

    def complete_new_column(self, ops, table: str, column, schema: str | None) -> None:
        """A new serial or identity column's sequence set as the reference's (``ADD COLUMN`` gives the defaults)."""
        from .align import align_sequence

        align_sequence(ops, table, column, schema)

    def add_enum_values(self, ops, current, reference) -> None:
        from .align import add_enum_values

        add_enum_values(ops, current, reference)

    def size_bytes(self, url) -> int | None:
        from .. import open_engine

        engine = open_engine(url, check=False)
        try:
            with engine.connect() as conn:
                return int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar())
        except sa.exc.DBAPIError:
            return None
        finally:
            engine.dispose()

    def environment_error(self, message: str) -> str | None:
        if "read-only transaction" in message.lower():
            return ("the server accepts no writes (a standby, or default_transaction_read_only is on for this role "
                    "or database); point the target at the primary, or allow writes for this role")
        return None

    def error_hint(self, message: str) -> str | None:
        from .catalog import timeout_hint

        return timeout_hint(message)

    # ------------------------------------------------------------------ backups

    # backups.pg_format / pg_jobs / pg_compress / restore_check: the spellings before backups.postgresql
    legacy_backup_keys = {"pg_format": "format", "pg_jobs": "jobs", "pg_compress": "compress",
                          "restore_check": "restore_check"}

    def backup_options(self, raw, key: str, fail):
        """``backups.postgresql``: ``{format: directory | custom, jobs: 2, compress: 0, restore_check: false}``
        (``backup.BackupOptions``)."""
        from .backup import parse_options

        return parse_options(raw, key, fail)

    def safety_copy_options(self, options):
        """The backups' dump settings without the restore check: the restore that follows is the check, and the
        safety copy is taken while the restore holds the maintenance lock."""
        from .backup import BackupOptions

        return replace(options or BackupOptions(), restore_check=False)

    def backup(self, url, backups_dir: Path, target: str, *, label: str, pinned: bool, now, verify: bool,
               busy_timeout: float, settings, schema: str | None, copier=None):
        from .backup import backup_postgresql

        return backup_postgresql(url, backups_dir, target, label=label, pinned=pinned, now=now, verify=verify,
                                 busy_timeout=busy_timeout, options=settings, schema=schema)

    def equals_backup(self, url, backup: Path, manifest: dict, *, schema: str | None, strict: bool) -> str | None:
        """By schema fingerprint and row counts (a dump cannot be compared row by row without restoring it); not
        exact, so only when the operator did not name the backup (``strict``)."""
        from .describe import describe_url

        if strict or not manifest.get("fingerprint"):
            return None
        fingerprint, tables = describe_url(url, manifest.get("pg_schema") or schema)
        counts = {n: v["rows"] for n, v in tables.items()}
        if fingerprint == manifest["fingerprint"] and counts == (manifest.get("row_counts") or {}):
            return "by schema fingerprint and row counts; if rows changed in place, name it with --backup"
        return None

    def backup_snapshot(self, backup: Path, url, target):
        """The dump restored into a scratch database (needs CREATEDB), read there, dropped."""
        from ...shared.reading import take_snapshot
        from .. import open_engine
        from .rows import Scratch

        scratch = Scratch(backup, url)
        try:
            scratch.restore()
            engine = open_engine(scratch.url)
            try:
                with engine.connect() as conn:
                    return take_snapshot(conn, ignore_tables=target.ignore_tables, schema=target.schema)
            finally:
                engine.dispose()
        finally:
            scratch.drop()

    def restore(self, backup: Path, url, *, busy_timeout: float, schema: str | None, safety=None,
                recreate: bool = False) -> dict:  # recreate: a server's database is not a file
        """The safety dump first, then the restore in one transaction: commits made between the dump's snapshot
        and the restore's table locks are in neither (README: "Security and failure model")."""
        from .restore import restore_postgresql

        copy = safety.take(url, busy_timeout=busy_timeout, schema=schema) if safety is not None else None
        try:
            return {**restore_postgresql(backup, url, busy_timeout, schema=schema), "safety": copy}
        except Exception as e:
            e.safety = copy  # type: ignore[attr-defined] - taken, and the target unchanged (one transaction)
            raise

    @contextlib.contextmanager
    def scratch_restore(self, backup: Path, url, *, schema: str | None = None):
        """The dump (its sha256 checked against the manifest first) restored into a scratch database beside the
        target: ``<db>_mp_scratch_<hex>``, marked, dropped when the block ends (``rows.Scratch``). The target's
        database is only asked whether its role may create databases (without CREATEDB: one line saying so)."""
        from ...shared.manifest import expected_sha256, manifest_for_restore, sha256_mismatch
        from ...dburl import mask_url, parse_url
        from ...errors import RestoreError
        from .archive import sha256_dump
        from .catalog import quote_ident
        from .rows import Scratch
        from .tools import psycopg_connect

        where, backup = mask_url(url), Path(backup)
        manifest = manifest_for_restore(backup, where)
        if manifest.get("dialect") != self.name:
            raise RestoreError(f"backup {backup.name} is a {manifest.get('dialect')} backup, not a PostgreSQL dump; "
                               "pick a backup of this target")
        expected = expected_sha256(manifest, backup, where)
        actual, files, _size = sha256_dump(backup)
        if actual != expected:
            changed = sorted(n for n, h in files.items() if (manifest.get("files") or {}).get(n) != h)
            raise sha256_mismatch(backup, actual, expected, where,
                                  f" (changed: {', '.join(changed[:3])})" if changed else "")
        with psycopg_connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_catalog.pg_roles "
                               "WHERE rolname = current_user").fetchone()
        if not (row and row[0]):
            user = parse_url(url).username or "this role"
            raise RestoreError(f"role {user!r} may not create databases (the drill restores into a scratch database "
                               f"beside the target); ALTER ROLE {quote_ident(user)} CREATEDB, or turn the drill off "
                               "(drill: {enabled: false})")
        scratch = Scratch(backup, url)
        try:
            scratch.restore()
            yield scratch.url
        finally:
            scratch.drop()

    # ------------------------------------------------------------------ checks

    def prepare_checks(self, conn: sa.Connection, schema: str | None) -> None:
        from .catalog import quote_ident

        if schema:
            conn.execute(sa.text("SELECT set_config('search_path', :v, false)"),
                         {"v": quote_ident(schema) + (", public" if schema != "public" else "")})

    def integrity(self, conn: sa.Connection, schema: str | None) -> tuple[bool, str]:
        from .catalog import integrity

        return integrity(conn, schema)

    def not_valid_keys(self, conn: sa.Connection, schema: str | None) -> list[str]:
        from .catalog import not_valid_foreign_keys

        return not_valid_foreign_keys(conn, schema)

    def backup_fk_violations(self, backup: Path, target):
        """The dump restored into a scratch database, its orphans counted there."""
        from .verify import backup_fk_violations

        return backup_fk_violations(backup, target)

    query_keywords = Engine.query_keywords | {"SHOW"}

    @contextlib.contextmanager
    def read_only(self, conn: sa.Connection, restore_authorizer=None, hidden=None):
        """A savepoint made read-only and always rolled back: whatever the block did inside the transaction is
        undone. A token set for the transaction alone (``set_config(…, true)``) must still be there afterwards:
        a check that ended the transaction (it cannot: one statement, a query, the extended protocol) would
        have lost it."""
        import secrets

        savepoint = conn.begin_nested()
        token = secrets.token_hex(12)
        try:
            conn.exec_driver_sql("SELECT set_config('maintenance_pipeline.check_token', %s, true)", (token,))
            conn.exec_driver_sql("SET LOCAL transaction_read_only = on")
            yield {}
            after = conn.exec_driver_sql("SELECT current_setting('maintenance_pipeline.check_token', true), "
                                         "current_setting('transaction_read_only')").first()
            if tuple(after or ()) != (token, "on"):
                from ...errors import UserCheckError

                raise UserCheckError("a check ran outside the read-only transaction it was given (its transaction "
                                     "ended or became writable); remove it from the targets file and report this")
        finally:
            savepoint.rollback()

    def run_check(self, conn: sa.Connection, sql: str):
        """Through the extended query protocol (a prepared statement): the server refuses a text holding a second
        command, where the simple protocol (psycopg's choice for a statement without parameters) runs them all."""
        import psycopg

        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cur:
                cur.execute(sql, prepare=True)
                if cur.description is None:
                    raise sa.exc.ResourceClosedError("This result object does not return rows.")
                row = cur.fetchone()
        except psycopg.Error as e:
            raise sa.exc.DBAPIError.instance(sql, None, e, psycopg.Error) from None
        return None if row is None else row[0]
