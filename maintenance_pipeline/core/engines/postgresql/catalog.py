"""PostgreSQL specifics of migrate, verify and the drift sensor (catalog queries, no Dagster).

* ``catalog_fingerprint``: ONE catalog query giving an md5 over every table (persistence, kind,
  partitioning, inheritance, row level security, options), column (type, nullability, default, identity,
  generated, collation), index, constraint (validated or not), trigger and policy of the tables of a
  schema, and its views, functions, sequences and types, as the catalogs store them (``pg_attribute``, ``pg_attrdef``, ``pg_index``,
  ``pg_constraint``; expressions as their stored node trees: decompiling them with
  ``pg_get_indexdef``/``pg_get_constraintdef`` made a new session's query 2.5x slower on 1,000
  tables). It moves whenever anything the snapshot reads moves, so the sensor reflects and diffs
  only when it did (like ``PRAGMA schema_version``); a move that changes nothing the diff sees
  (e.g. a table dropped and created again the same) only costs one reflection.
  (``indnullsnotdistinct`` only from PostgreSQL 15 on.)
* ``begin_migration``: ``SET LOCAL`` (``set_config(..., true)``) of ``lock_timeout``,
  ``statement_timeout`` and, for a target with a ``schema``, ``search_path`` at the start of
  the migration transaction; they end with it.
* ``fk_violations``: rows that violate a declared foreign key, one anti-join per key (MATCH
  SIMPLE: a row with a NULL in the key is not checked; MATCH FULL: a partly NULL key is a
  violation), counted per (table, parent) like SQLite's ``PRAGMA foreign_key_check``. A key
  can be violated although declared: it was added ``NOT VALID``, or its triggers were off
  (``session_replication_role = replica``, ``ALTER TABLE ... DISABLE TRIGGER ALL``).
* ``not_valid_foreign_keys``: keys with ``pg_constraint.convalidated = false``.
* ``integrity``: what PostgreSQL offers without a superuser: ``amcheck``'s ``bt_index_check``
  over every B-tree index and (amcheck >= 1.3) ``verify_heapam`` over every table, when the
  extension is installed and the role may execute them; otherwise a skip with the reason.
  Nothing here creates an extension: verification never changes the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa

from ...errors import MigrationError

__all__ = ["catalog_fingerprint", "begin_migration", "fk_violations", "not_valid_foreign_keys", "integrity",
           "schema_of", "quote_ident"]


def quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def schema_of(conn: sa.Connection, schema: str | None) -> str:
    """``schema``, or the connection's current schema (``public`` by default)."""
    if schema:
        return schema
    return conn.exec_driver_sql("SELECT current_schema()").scalar() or "public"


def _qualified(schema: str, table: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}"


# ------------------------------------------------------------------------ the sensor's fingerprint

_FINGERPRINT_TEXT = """
WITH nsp AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = coalesce(CAST(:schema AS text), current_schema())),
rel AS (
    SELECT c.oid, c.relname, c.relpersistence, c.relkind, c.relispartition, c.relpartbound, c.relrowsecurity,
           c.relforcerowsecurity, c.reloptions
    FROM pg_catalog.pg_class c
    WHERE c.relnamespace = (SELECT oid FROM nsp)
      AND c.relkind IN ('r', 'p') AND c.relname <> ALL (CAST(:ignore AS text[]))
)
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item COLLATE "C"), '')), count(*) FROM (
    SELECT concat_ws('|', 't', r.relname, r.relpersistence, r.relkind, r.relispartition, r.relpartbound::text,
                     r.relrowsecurity, r.relforcerowsecurity, r.reloptions::text,
                     (SELECT array_agg(i.inhparent ORDER BY i.inhseqno) FROM pg_catalog.pg_inherits i
                      WHERE i.inhrelid = r.oid)::text,
                     (SELECT concat_ws(',', pt.partstrat, pt.partattrs::text, pt.partexprs::text)
                      FROM pg_catalog.pg_partitioned_table pt WHERE pt.partrelid = r.oid)) AS item FROM rel r
    UNION ALL
    SELECT concat_ws('|', 'c', r.relname, a.attnum, a.attname, a.atttypid, a.atttypmod, a.attnotnull,
                     a.attidentity, a.attgenerated, a.attcollation, d.adbin::text)
    FROM rel r
    JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    UNION ALL
    SELECT concat_ws('|', 'i', r.relname, i.relname, i.relam, x.indisunique, x.indisprimary,{nulls}
                     x.indkey::text, x.indclass::text, x.indoption::text, x.indcollation::text,
                     x.indexprs::text, x.indpred::text)
    FROM rel r JOIN pg_catalog.pg_index x ON x.indrelid = r.oid JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
    UNION ALL
    SELECT concat_ws('|', 'k', r.relname, k.conname, k.contype, k.convalidated, k.condeferrable, k.condeferred,
                     k.conkey::text, k.confrelid, k.confkey::text, k.confupdtype, k.confdeltype, k.confmatchtype,
                     k.conbin::text)
    FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid
    UNION ALL
    SELECT concat_ws('|', 'g', r.relname, t.tgname, t.tgtype, t.tgfoid, t.tgenabled, t.tgqual::text,
                     t.tgattr::text, t.tgargs::text)
    FROM rel r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT concat_ws('|', 'd', r.relname, d.objsubid, d.description)
    FROM rel r JOIN pg_catalog.pg_description d ON d.objoid = r.oid AND d.classoid = 'pg_catalog.pg_class'::regclass
    UNION ALL
    SELECT concat_ws('|', 'o', r.relname, p.polname, p.polpermissive, p.polcmd, p.polroles::text,
                     p.polqual::text, p.polwithcheck::text)
    FROM rel r JOIN pg_catalog.pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT concat_ws('|', 'v', c.relname, c.relkind, w.ev_action::text)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_rewrite w ON w.ev_class = c.oid
    WHERE c.relnamespace = (SELECT oid FROM nsp) AND c.relkind IN ('v', 'm')
    UNION ALL
    SELECT concat_ws('|', 'f', p.proname, p.prokind, p.proargtypes::text, p.prorettype, p.prolang, p.provolatile,
                     p.prosecdef, p.proconfig::text, md5(p.prosrc))
    FROM pg_catalog.pg_proc p WHERE p.pronamespace = (SELECT oid FROM nsp)
    UNION ALL
    SELECT concat_ws('|', 's', c.relname, s.seqtypid, s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache,
                     s.seqcycle)
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
    WHERE c.relnamespace = (SELECT oid FROM nsp)
    UNION ALL
    SELECT concat_ws('|', 'y', t.typname, t.typtype, t.typbasetype, t.typtypmod, t.typnotnull, t.typdefault,
                     (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e
                      WHERE e.enumtypid = t.oid),
                     (SELECT string_agg(k.conname || ':' || k.conbin::text, ',' ORDER BY k.conname)
                      FROM pg_catalog.pg_constraint k WHERE k.contypid = t.oid),
                     (SELECT string_agg(a.attname || ':' || a.atttypid || ':' || a.atttypmod, ',' ORDER BY a.attnum)
                      FROM pg_catalog.pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0))
    FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_class tr ON tr.oid = t.typrelid
    WHERE t.typnamespace = (SELECT oid FROM nsp) AND (t.typtype IN ('e', 'd') OR tr.relkind = 'c')
) items
"""
_FINGERPRINT_SQL = sa.text(_FINGERPRINT_TEXT.replace("{nulls}", " x.indnullsnotdistinct,"))
_FINGERPRINT_SQL_14 = sa.text(_FINGERPRINT_TEXT.replace("{nulls}", ""))  # before PostgreSQL 15


def catalog_fingerprint(conn: sa.Connection, schema: str | None = None, ignore_tables=()) -> str:
    """md5 over the schema's tables, columns, indexes and constraints (one catalog query)."""
    sql = _FINGERPRINT_SQL if (conn.dialect.server_version_info or (15,)) >= (15,) else _FINGERPRINT_SQL_14
    digest, n = conn.execute(sql, {"schema": schema, "ignore": list(ignore_tables or ())}).one()
    return f"{digest}:{n}"


# ---------------------------------------------------------------------------- the migration


def begin_migration(conn: sa.Connection, *, target_name: str, schema: str | None, lock_timeout: str,
                    statement_timeout: str) -> None:
    """SET LOCAL the DDL timeouts (and the search path of a target with a schema) in the open transaction."""
    settings = [("lock_timeout", lock_timeout), ("statement_timeout", statement_timeout)]
    for name, value in settings:
        savepoint = conn.begin_nested()
        try:
            conn.execute(sa.text("SELECT set_config(:name, :value, true)"), {"name": name, "value": str(value)})
        except sa.exc.DBAPIError as e:
            savepoint.rollback()
            msg = " ".join(str(e.orig).split())
            raise MigrationError(
                f"target {target_name!r}: {name} {value!r} is not a PostgreSQL duration ({msg}); write e.g. "
                f"10s, 500ms or 0 (no limit) in the targets file") from None
        savepoint.commit()
    if schema:
        found = conn.execute(sa.text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :s"),
                             {"s": schema}).first()
        if not found:
            raise MigrationError(f"target {target_name!r}: schema {schema!r} does not exist in the database; "
                                 "create it or fix the target's schema setting")
        # unqualified names in revisions resolve in the target's schema (public still finds extension functions)
        conn.execute(sa.text("SELECT set_config('search_path', :v, true)"),
                     {"v": quote_ident(schema) + (", public" if schema != "public" else "")})


_STORAGE_SQL = sa.text(
    "SELECT c.relname, c.relfilenode FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
    "ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')")
_XACT_WRITES_SQL = sa.text(
    "SELECT relname FROM pg_catalog.pg_stat_xact_user_tables WHERE schemaname = :schema "
    "AND n_tup_upd + n_tup_del > 0")


def table_storage(conn: sa.Connection, schema: str | None = None) -> dict[str, int]:
    """{table: relfilenode}: a table rewritten or truncated in the transaction gets a new one."""
    return dict(conn.execute(_STORAGE_SQL, {"schema": schema_of(conn, schema)}).all())


def tables_written(conn: sa.Connection, storage_before: dict[str, int], schema: str | None = None) -> set[str] | None:
    """Tables whose existing rows this transaction may have changed: rows updated or deleted (by any
    statement, trigger or cascade: ``pg_stat_xact_user_tables`` counts this transaction's own), or the
    table rewritten, truncated or dropped (its ``relfilenode`` moved or is gone). None when the server
    does not count (``track_counts`` off): then every table may have changed."""
    if conn.exec_driver_sql("SELECT current_setting('track_counts')").scalar() != "on":
        return None
    name = schema_of(conn, schema)
    written = {r[0] for r in conn.execute(_XACT_WRITES_SQL, {"schema": name})}
    now = table_storage(conn, name)
    return written | {t for t, node in storage_before.items() if now.get(t) != node}


def timeout_hint(message: str) -> str | None:
    """A fix for PostgreSQL's lock/statement timeout messages, None for other errors."""
    low = message.lower()
    if "lock timeout" in low:
        return ("another session holds a lock on a table this migration alters; wait for it (or end it) "
                "and rerun, or raise the target's lock_timeout")
    if "statement timeout" in low:
        return "a statement ran longer than the target's statement_timeout; raise it, or run off-peak"
    if "other objects depend on it" in low:  # nothing is ever dropped with CASCADE
        return ("objects outside the plan depend on what it drops (nothing is dropped with CASCADE); change or "
                "drop them in a revision first, or keep what they need in the reference")
    return None


# ------------------------------------------------------------------------------ foreign keys

_FK_SQL = sa.text("""
SELECT k.conname, c.relname, pn.nspname, p.relname, k.confmatchtype::text, k.convalidated,
       (SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum) AS cols,
       (SELECT array_agg(a.attname::text ORDER BY u.ord) FROM unnest(k.confkey) WITH ORDINALITY AS u(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum) AS ref_cols,
       NOT k.convalidated OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                                     WHERE t.tgconstraint = k.oid AND t.tgenabled = 'D') AS unenforced
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = k.confrelid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE k.contype = 'f' AND n.nspname = :schema
ORDER BY c.relname, k.conname
""")


@dataclass(frozen=True)
class _Fk:
    name: str
    table: str
    parent_schema: str
    parent: str
    match: str  # f (FULL), s (SIMPLE), p (PARTIAL, unimplemented by PostgreSQL)
    validated: bool
    columns: tuple[str, ...]
    ref_columns: tuple[str, ...]
    unenforced: bool


def _foreign_keys(conn: sa.Connection, schema: str) -> list[_Fk]:
    return [_Fk(r[0], r[1], r[2], r[3], r[4], bool(r[5]), tuple(r[6] or ()), tuple(r[7] or ()), bool(r[8]))
            for r in conn.execute(_FK_SQL, {"schema": schema})]


def not_valid_foreign_keys(conn: sa.Connection, schema: str | None = None) -> list[str]:
    """``table.constraint`` of every foreign key added ``NOT VALID`` and not validated since."""
    return [f"{fk.table}.{fk.name}" for fk in _foreign_keys(conn, schema_of(conn, schema)) if not fk.validated]


def _violation_sql(schema: str, fk: _Fk) -> str:
    child = _qualified(schema, fk.table)
    parent = _qualified(fk.parent_schema, fk.parent)
    cols = [f"c.{quote_ident(col)}" for col in fk.columns]
    join = " AND ".join(f"p.{quote_ident(r)} = c.{quote_ident(col)}" for col, r in zip(fk.columns, fk.ref_columns))
    missing = f"{' AND '.join(f'{c} IS NOT NULL' for c in cols)} AND NOT EXISTS (SELECT 1 FROM {parent} AS p " \
              f"WHERE {join})"
    if fk.match == "f" and len(cols) > 1:  # MATCH FULL: a key that is partly NULL is a violation too
        partial = f"num_nonnulls({', '.join(cols)}) BETWEEN 1 AND {len(cols) - 1}"
        missing = f"({missing}) OR {partial}"
    return f"SELECT count(*) FROM {child} AS c WHERE {missing}"


def fk_violations(conn: sa.Connection, schema: str | None = None, *, only_unenforced: bool = False) -> Counter:
    """Rows violating a declared foreign key: ``(table, parent) -> n`` (one anti-join per key).

    ``only_unenforced``: only the keys the server does not enforce right now (``NOT VALID`` or with
    disabled triggers); every other key is guaranteed by the server for what a transaction writes.
    """
    schema = schema_of(conn, schema)
    out: Counter = Counter()
    for fk in _foreign_keys(conn, schema):
        if only_unenforced and not fk.unenforced:
            continue
        if not fk.columns or len(fk.columns) != len(fk.ref_columns):
            continue
        n = conn.exec_driver_sql(_violation_sql(schema, fk)).scalar()
        if n:
            parent = fk.parent if fk.parent_schema == schema else f"{fk.parent_schema}.{fk.parent}"
            out[(fk.table, parent)] += int(n)
    return out


# -------------------------------------------------------------------------------- integrity

_INDEXES_SQL = sa.text("""
SELECT x.indexrelid, quote_ident(n.nspname) || '.' || quote_ident(i.relname)
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = i.relam
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = :schema AND am.amname = 'btree' AND x.indisvalid AND x.indisready
  AND i.relpersistence <> 't' AND t.relkind IN ('r', 'm')
ORDER BY i.relname
""")

_TABLES_SQL = sa.text("""
SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
ORDER BY c.relname
""")


def _function(conn: sa.Connection, nsp: str, signature: str) -> tuple[bool, bool]:
    """(exists, the current role may execute it) for ``nsp.signature``."""
    full = f"{quote_ident(nsp)}.{signature}"
    row = conn.execute(sa.text("SELECT to_regprocedure(:f) IS NOT NULL, CASE WHEN to_regprocedure(:f) IS NULL "
                               "THEN false ELSE has_function_privilege(to_regprocedure(:f), 'EXECUTE') END"),
                       {"f": full}).one()
    return bool(row[0]), bool(row[1])


def _run_each(conn: sa.Connection, sql: str, items: list[tuple[int, str]], problems: list[str]) -> None:
    for oid, name in items:
        savepoint = conn.begin_nested()
        try:
            bad = conn.exec_driver_sql(sql, (oid,)).first()
        except sa.exc.DBAPIError as e:
            savepoint.rollback()
            problems.append(f"{name}: {' '.join(str(e.orig).split())[:200]}")
            continue
        savepoint.commit()
        if bad is not None and bad[0]:
            problems.append(f"{name}: {bad[0]} problem(s), e.g. {bad[1]}")


def integrity(conn: sa.Connection, schema: str | None = None) -> tuple[bool, str]:
    """amcheck over the schema's B-tree indexes (and heaps, amcheck >= 1.3), or a skip saying why."""
    schema = schema_of(conn, schema)
    ext = conn.exec_driver_sql(
        "SELECT n.nspname, e.extversion FROM pg_catalog.pg_extension e "
        "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'").first()
    if ext is None:
        available = conn.exec_driver_sql(
            "SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'amcheck'").first() is not None
        how = ("a superuser can enable it with CREATE EXTENSION amcheck" if available else
               "it is not even available on this server (PostgreSQL contrib package)")
        return True, (f"skipped: the amcheck extension is not installed in this database ({how}); "
                      "PostgreSQL has no other corruption check a non-superuser can run")
    nsp, version = ext
    index_fn, index_ok = _function(conn, nsp, "bt_index_check(regclass, boolean)")
    args = "%s::oid::regclass, false"
    if not index_fn:  # amcheck 1.0 has the one-argument form only
        index_fn, index_ok = _function(conn, nsp, "bt_index_check(regclass)")
        args = "%s::oid::regclass"
    index_sql = f"SELECT 0, NULL::text FROM (SELECT {quote_ident(nsp)}.bt_index_check({args})) AS checked"
    heap_fn, heap_ok = _function(conn, nsp, "verify_heapam(regclass, boolean, boolean, text, bigint, bigint)")
    user = conn.exec_driver_sql("SELECT current_user").scalar()
    if not index_ok:
        return True, (f"skipped: amcheck {version} is installed but role {user} may not execute "
                      f"{nsp}.bt_index_check (GRANT EXECUTE ON FUNCTION {nsp}.bt_index_check(regclass, boolean) "
                      f"TO {user}, or run verification as a superuser)")
    problems: list[str] = []
    indexes = [(r[0], r[1]) for r in conn.execute(_INDEXES_SQL, {"schema": schema})]
    _run_each(conn, index_sql, indexes, problems)
    checked = f"{len(indexes)} B-tree index(es) (bt_index_check)"
    if heap_fn and heap_ok:
        tables = [(r[0], r[1]) for r in conn.execute(_TABLES_SQL, {"schema": schema})]
        _run_each(conn, f"SELECT count(*), min(msg) FROM {quote_ident(nsp)}.verify_heapam(%s::oid::regclass, "
                        "check_toast => true)", tables, problems)
        checked += f" and {len(tables)} table(s) (verify_heapam)"
    elif heap_fn:
        checked += f"; heap check skipped (role {user} may not execute {nsp}.verify_heapam)"
    else:
        checked += f"; heap check skipped (amcheck {version} has no verify_heapam)"
    if problems:
        return False, f"amcheck {version} found {len(problems)} problem(s) in schema {schema}: " \
                      + "; ".join(problems[:3])
    return True, f"ok: amcheck {version} checked {checked} of schema {schema}"
