"""What a manifest records of a PostgreSQL database at a URL (``shared.reading.describe_tables`` on a connection of
its own): the restore, the restore check and the backup's comparison read it."""

from __future__ import annotations

import sqlalchemy as sa

from .. import open_engine
from ...dburl import translate_error
from ...shared.reading import describe_tables


def describe_url(url: str, schema: str | None = None) -> tuple[str, dict[str, dict]]:
    """``describe_tables`` of the database at ``url``; a driver error becomes our one-line error."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            return describe_tables(conn, schema)
    except sa.exc.DBAPIError as e:
        raise translate_error(e, url) from None
    finally:
        engine.dispose()
