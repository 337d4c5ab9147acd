#!/usr/bin/env python
"""Data-parallel training over MPI on this machine: scaling from 1 to 2 ranks and
the time of the one gradient allreduce per iteration against the iteration, for
LeNet (MNIST shape, 28x28) and CaffeNet (227x227) at a small batch.

    python tools/bench_distributed.py [--nets lenet,caffenet] [--rounds 2]
        [--iters 20 --caffenet-iters 4] [--batch 16 --caffenet-batch 2]

Each configuration runs in fresh processes, started by this script (``mpiexec
-n 2`` from the ``mpi`` extra for two ranks), every BLAS on one thread unless
said; the configurations are interleaved round by round and the medians kept,
so a busy machine disturbs them alike. "allreduce ms" is the time per
iteration in the gradient allreduce itself, "wait ms" the time a rank waited
for the other to arrive (their load imbalance), "alone ms" the same allreduce
timed on its own with the ranks started together (the transport's cost without
the ranks' skew); "scaling" is images/s against the first line.

  1 rank, batch B        the baseline
  2 ranks, batch B each  data parallel: twice the images per iteration
  1 rank, batch 2B       the same global batch in one process
  1 rank, batch 2B, 2 BLAS threads   what one process gets from both cores
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

LENET = """name: "LeNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: %(n)d dim: 1 dim: 28 dim: 28 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: %(n)d } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 20 kernel_size: 5
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 50 kernel_size: 5
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        inner_product_param { num_output: 500
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 10
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def net_text(name, batch):
    if name == "lenet":
        return LENET % {"n": batch}
    from bench import caffenet  # tools/bench.py's CaffeNet
    text = str(caffenet(batch))
    head, _, _ = text.rpartition('layer { name: "prob"')
    return (head + f'layer {{ name: "label" type: "Input" top: "label" input_param '
            f'{{ shape {{ dim: {batch} }} }} }}\nlayer {{ name: "loss" type: '
            f'"SoftmaxWithLoss" bottom: "fc8" bottom: "label" top: "loss" }}\n')


def worker(name, batch, iters):
    """One training process (one rank under mpiexec); rank 0 prints a JSON line."""
    from google.protobuf import text_format

    import caffe_lite as caffe
    from caffe_lite.proto import caffe_pb2
    param = caffe_pb2.SolverParameter()
    text_format.Parse(net_text(name, batch), param.net_param)
    param.base_lr, param.momentum, param.lr_policy = 0.001, 0.9, "fixed"
    param.max_iter, param.random_seed, param.display = 10 ** 6, 1, 0
    solver = caffe.get_solver(param)
    rng = np.random.default_rng(solver.parallel.rank if solver.parallel else 0)
    net = solver.net
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    classes = net.blobs["ip2" if name == "lenet" else "fc8"].shape[1]
    net.blobs["label"].data[...] = rng.integers(0, classes, batch)
    solver.step(1)                                   # warm-up
    comm = solver.parallel.comm if solver.parallel else None
    before = (comm.arrive_seconds, comm.collective_seconds) if comm else (0.0, 0.0)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        solver.step(1)
        times.append(time.perf_counter() - start)
    alone = 0.0
    if comm:                             # the same allreduce, ranks started together
        buffer, samples = solver.parallel.buffer.copy(), []
        for _ in range(max(3, iters // 2)):
            comm.comm.Barrier()
            start = time.perf_counter()
            comm.comm.Allreduce(comm.MPI.IN_PLACE, buffer)
            samples.append(time.perf_counter() - start)
        alone = statistics.median(samples)
    if solver.parallel is None or solver.parallel.rank == 0:
        wait, reduce = ((comm.arrive_seconds - before[0]) / iters,
                        (comm.collective_seconds - before[1]) / iters) if comm else (0, 0)
        params = sum(b.count for b in net.learnable_params)
        print(json.dumps({"iter_ms": 1000 * statistics.median(times), "params": params,
                          "allreduce_ms": 1000 * reduce, "wait_ms": 1000 * wait,
                          "alone_ms": 1000 * alone}))


CONFIGS = [("1 rank, batch B", 1, 1, 1), ("2 ranks, batch B each", 2, 1, 1),
           ("1 rank, batch 2B", 1, 2, 1), ("1 rank, batch 2B, 2 BLAS threads", 1, 2, 2)]


def run_config(name, batch, iters, ranks, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               "--batch", str(batch), "--iters", str(iters)]
    if ranks > 1:
        command = [shutil.which("mpiexec") or "mpiexec", "-n", str(ranks)] + command
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True,
                         timeout=1800).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nets", default="lenet,caffenet")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--caffenet-iters", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16, help="LeNet batch per rank")
    parser.add_argument("--caffenet-batch", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.batch, args.iters)
        return
    if shutil.which("mpiexec") is None:
        sys.exit("mpiexec not found: pip install 'caffe-lite[mpi]'")
    for name in args.nets.split(","):
        batch = args.batch if name == "lenet" else args.caffenet_batch
        iters = args.iters if name == "lenet" else args.caffenet_iters
        found = {label: [] for label, *_ in CONFIGS}
        for _ in range(args.rounds):                 # interleaved
            for label, ranks, factor, threads in CONFIGS:
                found[label].append(run_config(name, batch * factor, iters, ranks, threads))
        print(f"\n{name}, B = {batch}, median of {args.rounds} runs x {iters} iterations "
              f"({found[CONFIGS[0][0]][0]['params'] / 1e6:.2f} M params)")
        print(f"{'configuration':36s} {'ms/iter':>9s} {'images/s':>9s} "
              f"{'allreduce ms':>13s} {'of iter':>8s} {'wait ms':>8s} {'alone ms':>9s}"
              f"  scaling")
        base = None
        for label, ranks, factor, _ in CONFIGS:
            ms = statistics.median(r["iter_ms"] for r in found[label])
            reduce_ms = statistics.median(r["allreduce_ms"] for r in found[label])
            wait_ms = statistics.median(r["wait_ms"] for r in found[label])
            alone_ms = statistics.median(r["alone_ms"] for r in found[label])
            rate = 1000 * batch * factor * ranks / ms
            base = base or rate
            share = f"{100 * reduce_ms / ms:.0f} %" if ranks > 1 else ""
            print(f"{label:36s} {ms:9.1f} {rate:9.1f} {reduce_ms:13.1f} {share:>8s} "
                  f"{wait_ms:8.1f} {alone_ms:9.2f}  x{rate / base:.2f}")


if __name__ == "__main__":
    main()
