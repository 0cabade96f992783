"""PostgreSQL verify primitives that need the backup as a database: a dump is restored into a scratch
database (``rows.scratch_restore``) to count the foreign-key violations it held."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .. import open_engine
from ...errors import BackupError
from . import catalog
from .rows import scratch_restore


def backup_fk_violations(backup: Path, target) -> Counter:
    """``catalog.fk_violations`` of the dump at ``backup``, restored into a scratch database (dropped after).
    The role needs CREATEDB; any failure raises (verify says it in the check's detail)."""
    try:
        with scratch_restore(backup, target.url, schema=target.schema) as scratch_url:
            engine = open_engine(scratch_url)
            try:
                with engine.connect() as conn:
                    return catalog.fk_violations(conn, target.schema)
            finally:
                engine.dispose()
    except Exception as e:
        if "permission denied to create database" in str(e).lower() and "createdb" not in str(e).lower():
            raise BackupError(f"{' '.join(str(e).split())} (the role needs CREATEDB to restore the backup into a "
                              "scratch database)") from None
        raise
