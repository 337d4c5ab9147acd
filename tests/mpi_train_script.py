"""Run by tests/test_distributed_training.py under ``mpiexec -n 2``: trains the
LeNet solvers given on the command line step by step and saves, per rank, the
loss and every param after each iteration (and what a Python layer saw of
caffe_lite.distributed.rank() / size())."""
import sys

import numpy as np

import caffe_lite as caffe
from caffe_lite import distributed


def main(out_prefix, iters, *solvers):
    record = {}
    for k, path in enumerate(solvers):
        solver = caffe.get_solver(path)
        assert solver.parallel is not None, "not started by mpiexec with 2 ranks"
        for it in range(int(iters)):
            solver.step(1)
            record[f"loss_{k}_{it}"] = np.float32(solver.smoothed_loss)
            for i, blob in enumerate(solver.net.learnable_params):
                record[f"param_{k}_{it}_{i}"] = blob.data.copy()
        record[f"exchange_{k}"] = np.float64(solver.parallel.exchange_seconds)
    record["rank_size"] = np.array([distributed.rank(), distributed.size()])
    np.savez(f"{out_prefix}{distributed.rank()}.npz", **record)


if __name__ == "__main__":
    main(*sys.argv[1:])
