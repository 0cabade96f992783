"""The seed scenario on PostgreSQL: the demo's production and development databases, loaded
into two PostgreSQL databases.

    python examples/pg_demo.py postgresql+psycopg://postgres:PASSWORD@127.0.0.1:5432/postgres

Production is built by the baseline revision 0001 (then its ``alembic_version`` table is
dropped: production predates Alembic, the target sets ``baseline_revision: "0001"``);
development by revisions 0001–0002 plus ``completed_at``; then every row of the SQLite demo
files is copied over. Needs a role that may create databases and (for the row copy) set
``session_replication_role`` (a superuser), as on a throwaway test server.
"""

import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_demo  # noqa: E402


def _create_database(admin_url: str, name: str) -> str:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _upgrade(url: str, revision: str, extra_sql: list[str], keep_version_table: bool) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE / "migrations"))
    cfg.attributes["configure_logger"] = False
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            for sql in extra_sql:
                conn.exec_driver_sql(sql)
            if not keep_version_table:
                conn.exec_driver_sql("DROP TABLE alembic_version")
    finally:
        engine.dispose()


def _copy_rows(sqlite_file: Path, url: str) -> dict[str, int]:
    src = sa.create_engine(f"sqlite:///{sqlite_file}")
    dst = sa.create_engine(url)
    counts = {}
    try:
        md = sa.MetaData()
        md.reflect(dst)
        with src.connect() as s, dst.begin() as d:
            d.exec_driver_sql("SET session_replication_role = replica")  # rows in any order (self-references)
            for table in md.tables.values():  # any order: FK triggers are off for this session
                if table.name == "alembic_version":
                    continue
                rows = [dict(r._mapping) for r in s.exec_driver_sql(f'SELECT * FROM "{table.name}"')]
                for row in rows:
                    for col in table.columns:
                        if isinstance(col.type, sa.Boolean) and row.get(col.name) is not None:
                            row[col.name] = bool(row[col.name])
                if rows:
                    d.execute(table.insert(), rows)
                counts[table.name] = len(rows)
    finally:
        src.dispose()
        dst.dispose()
    return counts


def load(admin_url: str, *, prod: str = "goals", dev: str = "goals_dev", data_dir: Path | None = None) -> tuple[str, str]:
    """Build both PostgreSQL databases; returns (production URL, development URL)."""
    prod_file, dev_file = build_demo.build(data_dir or build_demo.DATA_DIR)
    prod_url, dev_url = _create_database(admin_url, prod), _create_database(admin_url, dev)
    _upgrade(prod_url, "0001", [], keep_version_table=False)
    _upgrade(dev_url, "head", ["ALTER TABLE goals ADD COLUMN completed_at TIMESTAMP WITHOUT TIME ZONE"],
             keep_version_table=False)
    _copy_rows(prod_file, prod_url)
    _copy_rows(dev_file, dev_url)
    return prod_url, dev_url


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for url in load(sys.argv[1]):
        print(sa.engine.make_url(url).render_as_string(hide_password=True))
