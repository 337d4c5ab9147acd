"""Training: the Solver and its parts (lr policies, update rules, snapshot
files, signals, progress reports). The public names live in caffe_lite.solvers."""
