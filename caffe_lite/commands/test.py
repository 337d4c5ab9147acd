"""``caffe-lite test``: Caffe's ``caffe test`` (score a model over N batches)."""
import numpy as np

from ._caffe_flags import add_caffe_flags, apply_fast, note_gpu, stages

HELP = "score a model: mean of each output over --iterations batches"


def add_arguments(parser):
    add_caffe_flags(parser, required=("model", "weights"))
    parser.add_argument("--quiet", action="store_true",
                        help="print only the means, not every batch")


def run(args):
    from ..net.net import TEST, Net
    note_gpu(args)
    apply_fast(args)
    net = Net(args.model, TEST, level=args.level, stages=stages(args),
              weights=args.weights, allow_python_layers=args.allow_python_layers)
    total, loss = None, 0.0
    for i in range(args.iterations):
        loss += net.forward_range()
        scores = {name: net.blobs[name].data.ravel().astype(np.float64)
                  for name in net.outputs}
        if not args.quiet:
            for name, values in scores.items():
                for value in values:
                    print(f"Batch {i}, {name} = {value:.6g}")
        total = scores if total is None else {k: total[k] + v for k, v in scores.items()}
    n = max(args.iterations, 1)
    print(f"Loss: {loss / n:.6g}")
    for name, values in (total or {}).items():
        weight = net.blob_loss_weights.get(name, 0.0)
        for value in values / n:
            extra = f" (* {weight:g} = {weight * value:.6g} loss)" if weight else ""
            print(f"{name} = {value:.6g}{extra}")
    return 0
