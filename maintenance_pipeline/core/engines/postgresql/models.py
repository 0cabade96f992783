"""A reference given as SQLAlchemy models, read the way PostgreSQL itself would hold it.

The models are created with ``metadata.create_all`` in this session's temporary schema (``pg_temp``) on the
target's own server, read back with the same snapshot as any live schema, and the transaction is rolled back:
nothing is left behind, and no privilege beyond ``TEMPORARY`` (granted to everyone by default) is needed. So an
expression index, a CHECK, a ``server_default``, an ``Identity()`` or a ``Computed()`` column reads exactly as
the server's catalogs will say it once the models are created for real (``lower(name)`` is ``lower((name)::text)``
there): a schema created from the models and the models themselves give zero differences.
"""

from __future__ import annotations

import sqlalchemy as sa

from ...errors import ReferenceImportError


def materialized_snapshot(engine, metadata: sa.MetaData, ignore, url):
    from ...dburl import mask_url, translate_error
    from .. import open_engine

    sa_engine = open_engine(url, check=False)
    schemas = {t.schema for t in metadata.tables.values()}
    try:
        with sa_engine.connect() as conn:
            trans = conn.begin()
            try:
                temp = conn.execution_options(schema_translate_map={s: "pg_temp" for s in schemas | {None}})
                try:
                    metadata.create_all(temp)
                except sa.exc.DBAPIError as e:
                    msg = " ".join(str(e.orig).split())[:200]
                    raise ReferenceImportError(
                        f"the reference models cannot be created on PostgreSQL ({msg}); fix the models, or use a "
                        "reference database URL instead") from None
                name = conn.exec_driver_sql("SELECT nspname FROM pg_catalog.pg_namespace "
                                            "WHERE oid = pg_my_temp_schema()").scalar()
                snap = engine.snapshot(conn, set(ignore or ()), name)
            finally:
                trans.rollback()
    except sa.exc.DBAPIError as e:
        raise translate_error(e, mask_url(url)) from None
    finally:
        sa_engine.dispose()
    return snap
