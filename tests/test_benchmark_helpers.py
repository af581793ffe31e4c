"""The benchmarks' shared helpers (benchmarks/common.py): the numbers RESULTS.md prints."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import common  # noqa: E402


def test_mean_sd_is_the_mean_and_sample_sd_over_seeds():
    assert common.mean_sd([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"  # sample sd: sqrt(0.02 / 2)
    assert common.mean_sd([1.5, -2.0], "+.1f") == "-0.2 ± 2.5"  # signed mean, unsigned sd
    assert common.mean_sd((v for v in [1.0, 2.0]), ".3f") == "1.500 ± 0.707"


@pytest.mark.parametrize("values, text", [
    ([0.3], "0.3000 (one seed: no spread)"),
    ([0.1, None, 0.3], "0.2000 ± 0.1414 (n=2)"),
    ([0.25, None], "0.2500 (one seed: no spread) (n=1)"),
    ([None, None], "not run"),
])
def test_mean_sd_says_when_seeds_are_missing_or_alone(values, text):
    assert common.mean_sd(values) == text
