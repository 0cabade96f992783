"""Migrations: the executor (``executor.py``: one transaction, every verdict before COMMIT), the Alembic
revisions (``revisions.py``), what alignment applies (``align.py``) and what a migration plans and does
(``results.py``)."""

from .executor import fk_violations, migrate
from .results import MigrationPlan, MigrationResult

__all__ = ["migrate", "fk_violations", "MigrationPlan", "MigrationResult"]
