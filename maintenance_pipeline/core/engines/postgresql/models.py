"""A reference given as SQLAlchemy models, read the way PostgreSQL itself would hold it.

The models are created with ``metadata.create_all`` (its DDL events included: a function a ``before_create`` event
makes, a trigger an ``after_create`` one adds) in a schema of their own on the target's server, made for the read
(``mp_models_<random>``, first on the ``search_path``, so what an event creates without naming a schema lands there
beside the tables and resolves there), read back with the same snapshot as any live schema, and the transaction is
rolled back: nothing is left behind. A role that may not create a schema in the database gets the session's temporary
schema (``pg_temp``: ``TEMPORARY`` is granted to everyone by default) instead, where a function an event creates
cannot be found by the tables (PostgreSQL never looks for functions there). So an expression index, a CHECK, a
``server_default``, an ``Identity()`` or a ``Computed()`` column reads exactly as the server's catalogs will say it once
the models are created for real (``lower(name)`` is ``lower((name)::text)`` there): a schema created from the models by
``create_all`` and the models themselves give zero differences.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from ...errors import ReferenceImportError
from .objects import quote


def _own_schema(conn: sa.Connection) -> str | None:
    """A schema made for the read (rolled back with it), or None when the role may not create one."""
    name = f"mp_models_{secrets.token_hex(6)}"
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(f"CREATE SCHEMA {quote(name)}")
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return None
    savepoint.commit()
    return name


def materialized_snapshot(engine, metadata: sa.MetaData, ignore, url):
    from ...dburl import mask_url, translate_error
    from .. import open_engine

    sa_engine = open_engine(url, check=False)
    schemas = {t.schema for t in metadata.tables.values()}
    try:
        with sa_engine.connect() as conn:
            trans = conn.begin()
            try:
                own = _own_schema(conn)
                if own is not None:  # what a DDL event makes without a schema lands beside the tables
                    path = conn.exec_driver_sql("SELECT current_setting('search_path')").scalar()
                    conn.execute(sa.text("SELECT set_config('search_path', :v, true)"),
                                 {"v": f"{quote(own)}, {path}" if path else quote(own)})
                where = own or "pg_temp"
                temp = conn.execution_options(schema_translate_map={s: where for s in schemas | {None}})
                try:
                    metadata.create_all(temp)
                except sa.exc.DBAPIError as e:
                    msg = " ".join(str(e.orig).split())[:200]
                    raise ReferenceImportError(
                        f"the reference models cannot be created on PostgreSQL ({msg}); fix the models, or use a "
                        "reference database URL instead") from None
                name = own or conn.exec_driver_sql("SELECT nspname FROM pg_catalog.pg_namespace "
                                                   "WHERE oid = pg_my_temp_schema()").scalar()
                snap = engine.snapshot(conn, set(ignore or ()), name)
            finally:
                trans.rollback()
    except sa.exc.DBAPIError as e:
        raise translate_error(e, mask_url(url)) from None
    finally:
        sa_engine.dispose()
    return snap
