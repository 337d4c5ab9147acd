#!/usr/bin/env python
"""Build the synthetic detection data, train models/ssd_tiny on it and report its
test mAP, in one command (from anywhere):

    python tools/train_ssd_tiny.py

Steps: tools/make_ssd_shapes.py writes the LMDBs into models/ssd_tiny/data (once;
--rebuild writes them anew); the solver of models/ssd_tiny/solver.prototxt trains
train_val.prototxt's TRAIN net; the TEST net (DetectionOutput, then
DetectionEvaluate against the test boxes) is scored as the SSD fork's solver does
(eval_type "detection"): the mAP over the classes disc and square, before
training (what untrained weights score) and after. Nothing is written besides
the data (no snapshots).
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "ssd_tiny")
sys.path.insert(0, ROOT)


def solver_param(data_dir, max_iter=None, test_batches=None):
    """models/ssd_tiny/solver.prototxt with its net inlined and the AnnotatedData
    sources in ``data_dir``; no snapshots; scored once, after the last iteration."""
    from caffe_lite.formats import read_net_param, read_solver_param
    from caffe_lite.proto import caffe_pb2
    param = read_solver_param(os.path.join(MODEL, "solver.prototxt"))
    net = read_net_param(os.path.join(MODEL, "train_val.prototxt"))
    for layer in net.layer:
        if layer.type == "AnnotatedData":
            split = "test" if layer.include[0].phase == caffe_pb2.TEST else "train"
            layer.data_param.source = os.path.join(data_dir, f"{split}_lmdb")
            layer.annotated_data_param.label_map_file = os.path.join(data_dir,
                                                                     "labelmap.prototxt")
    param.ClearField("net")
    param.net_param.CopyFrom(net)
    if max_iter is not None:
        param.stepsize = max(1, param.stepsize * max_iter // param.max_iter)
        param.max_iter = max_iter
    if test_batches is not None:
        param.test_iter[:] = [test_batches]
    param.test_interval = param.max_iter
    param.snapshot = 0
    param.snapshot_after_train = False
    return param


def train(param, seed=1701, log=print):
    """(mAP before training, mAP after, the solver) for a solver param."""
    import caffe_lite as caffe
    caffe.set_random_seed(seed)
    solver = caffe.get_solver(param)
    (name,) = solver.test_nets[0].outputs
    before = float(solver.test(0)[name][0])
    start = time.perf_counter()
    solver.solve()
    seconds = time.perf_counter() - start
    after = float(solver.test_results[0][name][0])
    log(f"test mAP ({param.ap_version}) untrained {before:.3f}, after {solver.iter} "
        f"iterations {after:.3f} ({seconds:.0f} s of training)")
    return before, after, solver


def main(argv=None):
    # The tiny net's matrix products are too small to gain from BLAS threads, which
    # only contend for the cores (measured: 27 s of CPU with one thread, 166 s with
    # OpenBLAS's default, same result). Set before numpy loads; your setting wins.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=os.path.join(MODEL, "data"))
    parser.add_argument("--rebuild", action="store_true", help="write the data anew")
    parser.add_argument("--max-iter", type=int, help="iterations (solver.prototxt's)")
    parser.add_argument("--seed", type=int, default=1701)
    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.rebuild or not os.path.isdir(os.path.join(args.data, "test_lmdb")):
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        import make_ssd_shapes
        make_ssd_shapes.main(["--out", args.data])
    train(solver_param(args.data, args.max_iter), seed=args.seed)


if __name__ == "__main__":
    main()
