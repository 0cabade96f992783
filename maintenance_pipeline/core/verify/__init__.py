"""Verification: the checks of each mode (``checks.py``: one reading of the live database, one small
function per check), their results and the row-compare walk (``results.py``), and the targets file's own
read-only checks (``user_checks.py``)."""

from .checks import CHECKS, verify_target
from .results import Check, VerifyResult

__all__ = ["verify_target", "CHECKS", "Check", "VerifyResult"]
