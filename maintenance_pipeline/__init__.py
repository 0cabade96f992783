"""maintenance_pipeline: backup → diff → migrate → verify → report, as Dagster jobs.

The pure core lives in ``maintenance_pipeline.core`` (no Dagster). ``defs`` (the Dagster
code location) is built lazily on first access, so ``import maintenance_pipeline.core``
neither imports Dagster nor reads the targets file.
"""

from __future__ import annotations

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from .orchestration.definitions import build_definitions

        value = build_definitions()
        globals()["defs"] = value
        return value
    raise AttributeError(f"module 'maintenance_pipeline' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"defs"})
