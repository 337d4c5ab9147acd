"""``caffe-lite time``: Caffe's ``caffe time`` (per-layer forward/backward ms)."""
import time

from ._caffe_flags import add_caffe_flags, apply_fast, note_gpu, stages

HELP = "benchmark a model: average forward and backward time per layer"


def add_arguments(parser):
    add_caffe_flags(parser, required=("model",))
    parser.add_argument("--quiet", action="store_true",
                        help="no line per iteration")


def _backward(net, i):
    """Layer i's backward called directly, as Caffe's ``time`` does, so a deploy
    net (no loss, nothing needs backward) is timed too."""
    layer = net.layers[i]
    if layer.has_backward:
        layer.backward(net.top_vecs[i], net.bottom_need_backward[i], net.bottom_vecs[i])


def time_layers(net, iterations, progress=None):
    """(forward ms per layer, backward ms per layer, ms per whole pass), averaged.

    Like Caffe's ``time``: one untimed pass first, then each layer's forward in
    order and each layer's backward in reverse; ``progress(it, ms)`` after each."""
    net.forward_range()
    net.backward_range()
    n = len(net.layers)
    fwd, bwd = [0.0] * n, [0.0] * n
    clock = time.perf_counter
    start = clock()
    for it in range(iterations):
        begin = clock()
        for i in range(n):
            t = clock()
            net.forward_range(i, i)
            fwd[i] += clock() - t
        for i in reversed(range(n)):
            t = clock()
            _backward(net, i)
            bwd[i] += clock() - t
        if progress:
            progress(it + 1, (clock() - begin) * 1000.0)
    total = clock() - start
    k = 1000.0 / max(iterations, 1)
    return [f * k for f in fwd], [b * k for b in bwd], total * k


def run(args):
    from ..net.net import Net
    note_gpu(args)
    apply_fast(args)
    net = Net(args.model, args.phase or "TRAIN", level=args.level, stages=stages(args),
              weights=args.weights, allow_python_layers=args.allow_python_layers)
    print(f"Testing for {args.iterations} iterations.")

    def progress(it, ms):
        if not args.quiet:
            print(f"Iteration: {it} forward-backward time: {ms:.5g} ms.", flush=True)
    fwd, bwd, per_pass = time_layers(net, args.iterations, progress)
    print("Average time per layer: ")
    for name, f, b in zip(net._layer_names, fwd, bwd):
        print(f"{name:>10}\tforward: {f:.5g} ms.")
        print(f"{name:>10}\tbackward: {b:.5g} ms.")
    print(f"Average Forward pass: {sum(fwd):.5g} ms.")
    print(f"Average Backward pass: {sum(bwd):.5g} ms.")
    print(f"Average Forward-Backward: {per_pass:.5g} ms.")
    print(f"Total Time: {per_pass * args.iterations:.5g} ms.")
    return 0
