"""Before/after in one run: a clean copy of another commit of this repository, to run beside this one.

The machine these benchmarks run on is shared, so "before" and "after" are measured alternately in the
same run (never taken from an old table): each case runs once for the baseline tree, once for this tree,
round after round, each in a fresh process whose ``PYTHONPATH`` names its tree.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def baseline_tree(ref: str) -> Path:
    """``git archive`` of ``ref`` unpacked in a temporary folder (its bundled weights included)."""
    folder = Path(tempfile.mkdtemp(prefix=f"unetv2-{ref[:12]}-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run_in_tree(tree: Path, script: str, *args: str, timeout: int = 1800) -> str:
    """Run ``python -c script args`` with ``tree`` first on the import path; return its stdout."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                         cwd=tree, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark case failed in {tree}:\n{out.stderr[-3000:]}")
    return out.stdout


def trees(baseline: str | None) -> dict[str, Path]:
    """{"before": the baseline's tree, "after": this checkout} (only "after" without a baseline)."""
    chosen = {"after": REPO}
    if baseline:
        chosen = {"before": baseline_tree(baseline), **chosen}
    return chosen
