"""Peak memory of tile mode on a 4096x4096 RGB image stays under 3 GB (a bound, not a timing)."""
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_inference.py"


def test_4096_tile_mode_peak_memory_under_3gb():
    sys.path.insert(0, str(BENCH.parent))
    try:
        from bench_inference import run_case
    finally:
        sys.path.pop(0)
    result = run_case(4096, "tile", 512, threads=1)
    assert result["peak_rss_mb"] < 3000, json.dumps(result)
