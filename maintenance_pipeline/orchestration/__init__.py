"""The Dagster layer, thin over the core: ops (``ops.py``: one per pipeline step), jobs (``jobs.py``, built from
``core.run.jobs``), the schedule and sensors (``automation.py``), the code location
(``definitions.py``)."""
