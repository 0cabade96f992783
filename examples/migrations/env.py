"""Alembic environment for the demo database (fractal goals).

Two ways in:

* ``alembic -c examples/alembic.ini upgrade head`` -- the usual one: an engine is made
  from ``sqlalchemy.url``. On SQLite, BEGIN is emitted by SQLAlchemy (the stdlib driver
  would otherwise autocommit every DDL statement), so a whole upgrade is one
  transaction: it is applied completely or not at all.
* A program passes its own connection in ``config.attributes["connection"]``. It is used
  as it is: if it is already in a transaction, Alembic runs inside that transaction and
  commits nothing (the caller commits or rolls back).

The revisions are hand-written: there is no model metadata for autogenerate.
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, event, pool
from sqlalchemy.engine import Connection, Engine

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = None


def _sqlite_transactional_ddl(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 driver, emit BEGIN (so DDL is transactional)."""

    @event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection, _record):  # noqa: ANN001
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transactional_ddl=True,  # one transaction for the whole upgrade (SQLite allows it)
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return

    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    if engine.dialect.name == "sqlite":
        _sqlite_transactional_ddl(engine)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
