"""``caffe-lite time``: Caffe's ``caffe time`` (per-layer forward/backward ms)."""
import time

HELP = "benchmark a model: average forward and backward time per layer"


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="the net definition (.prototxt)")
    parser.add_argument("--iterations", type=int, default=50,
                        help="number of forward-backward passes (default 50)")
    parser.add_argument("--phase", default="TRAIN", choices=("TRAIN", "TEST"),
                        help="network phase (default TRAIN, as in Caffe)")
    parser.add_argument("--level", type=int, default=0, help="network level")
    parser.add_argument("--stage", default="", help="network stages, comma-separated")
    parser.add_argument("--allow_python_layers", action="store_true", default=None,
                        help="run Python layers the prototxt names (executes their code)")


def time_layers(net, iterations):
    """(forward ms per layer, backward ms per layer, ms per whole pass), averaged.

    Like Caffe's ``time``: one untimed pass first, then each layer's forward in
    order and each backward in reverse (layers that need no backward are skipped)."""
    net.forward_range()
    net.backward_range()
    n = len(net.layers)
    fwd, bwd = [0.0] * n, [0.0] * n
    clock = time.perf_counter
    start = clock()
    for _ in range(iterations):
        for i in range(n):
            t = clock()
            net.forward_range(i, i)
            fwd[i] += clock() - t
        for i in reversed(range(n)):
            t = clock()
            net.backward_range(i, i)
            bwd[i] += clock() - t
    total = clock() - start
    k = 1000.0 / max(iterations, 1)
    return [f * k for f in fwd], [b * k for b in bwd], total * k


def run(args):
    from ..net.net import Net
    stages = [s for s in args.stage.split(",") if s]
    net = Net(args.model, args.phase, level=args.level, stages=stages,
              allow_python_layers=args.allow_python_layers)
    print(f"Testing for {args.iterations} iterations.")
    fwd, bwd, per_pass = time_layers(net, args.iterations)
    print("Average time per layer: ")
    for name, f, b in zip(net._layer_names, fwd, bwd):
        print(f"{name:>10}\tforward: {f:.5g} ms.")
        print(f"{name:>10}\tbackward: {b:.5g} ms.")
    print(f"Average Forward pass: {sum(fwd):.5g} ms.")
    print(f"Average Backward pass: {sum(bwd):.5g} ms.")
    print(f"Average Forward-Backward: {per_pass:.5g} ms.")
    print(f"Total Time: {per_pass * args.iterations:.5g} ms.")
    return 0
