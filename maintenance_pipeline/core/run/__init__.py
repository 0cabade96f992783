"""One run: its steps and state (``pipeline.py``), its report (``report.py``), alerts (``alerts.py``) and the
drift sensor's probe (``drift.py``)."""
