"""The folder lock that serialises read-merge-writes of shared files between processes."""
import subprocess
import sys
import time

from napari_unetv2.files import locked

HOLDER = """
import sys, time
from pathlib import Path
from napari_unetv2.files import locked
folder = Path(sys.argv[1])
with locked(folder) as held:
    (folder / "held").write_text(str(held))
    time.sleep(1.0)
    (folder / "released").write_text("")
"""


def test_a_second_process_waits_for_the_lock_and_leaves_no_file(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "held").exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder never took the lock"
            time.sleep(0.01)
        assert (tmp_path / "held").read_text() == "True"
        with locked(tmp_path) as held:
            assert held and (tmp_path / "released").exists()  # we got in only after the holder let go
    finally:
        holder.wait(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held", "released"]
