"""Figures a test wants shown at the end of every run of the suite (pytest captures what tests print).

A test appends lines to ``FIGURES`` (``from figures import FIGURES``); the ``pytest_terminal_summary`` hook of
``tests/conftest.py`` prints them after the results.
"""

from __future__ import annotations

FIGURES: list[str] = []
