"""The test suite's own contract: real-data tests fail instead of skipping when CI requires the shared data."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_TEST = "tests/test_splits.py::test_sha_table_matches_shared_copies"


@pytest.mark.slow  # two pytest runs in subprocesses
def test_missing_shared_data_skips_for_a_user_and_fails_in_ci(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "M2G_REQUIRE_SHARED_DATA"}
    user = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", REAL_DATA_TEST],
                          cwd=ROOT, env=dict(env, M2G_SHARED_DATA=str(tmp_path / "absent")),
                          capture_output=True, text=True)
    assert user.returncode == 0 and "1 skipped" in user.stdout, user.stdout[-1500:]
    ci = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", REAL_DATA_TEST],
                        cwd=ROOT, env=dict(env, M2G_SHARED_DATA=str(tmp_path / "absent"),
                                           M2G_REQUIRE_SHARED_DATA="1"),
                        capture_output=True, text=True)
    assert ci.returncode == 1 and "1 failed" in ci.stdout and "M2G_REQUIRE_SHARED_DATA" in ci.stdout, \
        ci.stdout[-1500:]
