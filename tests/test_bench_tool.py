"""tools/bench.py --quick runs end to end on its tiny net: a table row with times for
caffe_lite and OpenCV (when installed; PyTorch is left out to keep the test short), and caffe_lite's output equal to OpenCV's.
Timings are not checked (speed goals live in the bench, not in tests)."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench.py"


def test_bench_quick_tiny_net():
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "tiny",
                           "--threads", "2", "--peers", "opencv"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| tiny net")]
    assert len(rows) == 2, proc.stdout                   # batch 1 and 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert not cells[1].startswith("skipped"), row
        assert float(cells[1]) > 0                       # caffe_lite ms
        assert cells[2] == "—" or float(cells[2]) > 0    # numpy only (2 threads, batch 2)
        if importlib.util.find_spec("cv2"):
            assert float(cells[4]) > 0                   # OpenCV ms
            assert float(cells[9]) < 1e-5, row           # deviation from OpenCV's output
            assert re.fullmatch(r"\d+\.\d\dx", cells[6]), row
        assert re.search(r"(quiet|contended) \(\d+\.\d\d\)", cells[-1]), row
