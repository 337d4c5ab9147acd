"""``python -m caffe_lite.pycaffe script.py args...``: see runner.py."""
import sys

from .runner import run

sys.exit(run(sys.argv[1:]))
