#!/usr/bin/env python
"""LeNet training-step benchmark (Caffe's MNIST LeNet, batch 64, 28x28, SGD with
momentum and weight decay): median ms per solver step, and how much of it is
spent outside the layers' forward/backward (net bookkeeping + the update rule).

    python tools/bench_train.py [--iters 50] [--batch 64] [--solver-type SGD]

Layer time is measured inside the same steps by wrapping every layer's forward
and backward, so the split is not skewed by separate runs.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import caffe_lite as caffe  # noqa: E402
from caffe_lite.proto import caffe_pb2  # noqa: E402

LENET = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: %(n)d dim: 1 dim: 28 dim: 28 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: %(n)d } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 stride: 1
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 50 kernel_size: 5 stride: 1
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 500
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 10
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def make_solver(batch, solver_type):
    param = caffe_pb2.SolverParameter()
    text_format.Parse(LENET % {"n": batch}, param.net_param)
    param.type = solver_type
    param.base_lr = 0.01
    param.lr_policy = "inv"
    param.gamma, param.power = 1e-4, 0.75
    if solver_type not in ("AdaGrad", "RMSProp"):
        param.momentum = 0.9
    param.weight_decay = 5e-4
    param.max_iter = 10 ** 6
    param.random_seed = 1
    return caffe.get_solver(param)


def instrument(net):
    """Wrap each layer's forward/backward to add its time to a shared counter."""
    spent = [0.0]
    clock = time.perf_counter
    for layer in net.layers:
        def timed(fn):
            def run(*args):
                t = clock()
                try:
                    return fn(*args)
                finally:
                    spent[0] += clock() - t
            return run
        layer.forward = timed(layer.forward)
        layer.backward = timed(layer.backward)
    return spent


def bench(batch=64, iters=50, warmup=5, solver_type="SGD"):
    solver = make_solver(batch, solver_type)
    rng = np.random.default_rng(0)
    net = solver.net
    net.blobs["data"].data[...] = rng.uniform(0, 1, net.blobs["data"].shape)
    net.blobs["label"].data[...] = rng.integers(0, 10, batch)
    solver.step(warmup)
    spent = instrument(net)
    update = [0.0]
    apply_update = solver.apply_update

    def timed_update():
        t = time.perf_counter()
        try:
            return apply_update()
        finally:
            update[0] += time.perf_counter() - t
    solver.apply_update = timed_update
    steps, layers, updates = [], [], []
    for _ in range(iters):
        spent[0] = update[0] = 0.0
        t = time.perf_counter()
        solver.step(1)
        steps.append(time.perf_counter() - t)
        layers.append(spent[0])
        updates.append(update[0])
    step = statistics.median(steps) * 1e3
    layer = statistics.median(layers) * 1e3
    upd = statistics.median(updates) * 1e3
    return {"step_ms": step, "layers_ms": layer, "update_ms": upd,
            "outside_fraction": 1 - layer / step}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--solver-type", default="SGD")
    args = parser.parse_args()
    r = bench(args.batch, args.iters, solver_type=args.solver_type)
    print(f"LeNet train step, batch {args.batch}, {args.solver_type}: "
          f"{r['step_ms']:.2f} ms median over {args.iters} steps")
    print(f"  inside layer forward/backward: {r['layers_ms']:.2f} ms")
    print(f"  update rule (apply_update):    {r['update_ms']:.2f} ms")
    print(f"  outside the layers:            {r['step_ms'] - r['layers_ms']:.2f} ms "
          f"({100 * r['outside_fraction']:.1f}% of the step)")


if __name__ == "__main__":
    main()
