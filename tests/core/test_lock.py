"""The maintenance lock: a second holder fails fast, also from another process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from maintenance_pipeline.core.errors import LockHeldError
from maintenance_pipeline.core.lock import maintenance_lock


def test_second_holder_in_another_process_fails_fast(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    code = (
        "import sys\nfrom maintenance_pipeline.core.lock import maintenance_lock\n"
        "from maintenance_pipeline.core.errors import LockHeldError\n"
        f"try:\n    with maintenance_lock({url!r}):\n        print('acquired')\n"
        "except LockHeldError as e:\n    print('held:', e)\n"
    )
    with maintenance_lock(url, holder="test"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
        assert out.startswith("held:") and "another run holds the maintenance lock" in out and "test" in out
        with pytest.raises(LockHeldError):
            with maintenance_lock(url):
                pass
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "acquired"
    assert not (tmp_path / "x.db").exists()  # the lock never touches the database path
