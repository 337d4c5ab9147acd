"""caffe_lite side by side with OpenCV dnn and PyTorch: forward of the zoo's nets at
batch 1 and 8 and two training steps, in one run, as one table (medians, ms).

    python tools/bench.py [--quick] [--only ROW ...] [--threads 2] [--strict] [--markdown]

Each row runs in a fresh process that builds the net once in caffe_lite with random
weights (He-scaled normal; BatchNorm statistics 0/1), saves the caffemodel, loads the
same prototxt + caffemodel into OpenCV dnn (``cv2.dnn.readNetFromCaffe``) and replays
the same graph and weights in PyTorch (tools/bench_peers.py). The frameworks then
take turns, one forward each per round in a new random order (a peer whose threads
still spin after its call slows whoever follows it), so a load spike and a spinning
peer hit all of them alike; the
table has the medians after one warm-up, the ratio caffe_lite / fastest peer, the
largest deviation of caffe_lite's output from OpenCV's (relative to the output's
largest magnitude), and the peak resident memory each framework added while it was
built and ran once. With ``caffe_lite.set_conv_algorithm('winograd')`` available the
row also times that mode and reports its largest deviation from the exact path.
With the extra ``fast`` (threadpoolctl) a batch runs one slice per thread
(caffe_lite/ops/threads.py); the row then also times the numpy-only path, serial
as without the extra.

Load: the row measures the CPU time of other processes while it runs (/proc/stat minus
its own). Above a quarter of a core the row is marked contended; ``--strict`` retries
it twice and then reports it as refused instead. Peers that are not installed
(opencv-python-headless<5, torch) are left out of the row. ``--quick`` runs a tiny net
and a small train step for a smoke test; its timings mean nothing.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from bench_layers import Proto, bilinear_surgery, caffenet, fcn8s, mobilenet_v1, vgg16  # noqa: E402
from bench_peers import (  # noqa: E402
    LoadMeter,
    PeakRSS,
    TorchReplay,
    opencv_forward,
    opencv_net,
    torch_train_step,
)

import caffe_lite as caffe  # noqa: E402
from caffe_lite.ops import jit  # noqa: E402
from caffe_lite.ops import threads as worker_threads  # noqa: E402

ZOO = os.path.join(ROOT, "..", "shared", "zoo")
CONTENDED_CORES = 0.25
FORWARD_GOAL, LENET_GOAL, VGG_TRAIN_GOAL = 0.9, 1.0, 1.2


# ==== the nets ===================================================================

def tiny_net(batch):
    """The --quick net: a few layers of every kind the big rows use."""
    p = Proto("Tiny", (batch, 3, 32, 32))
    x = p.conv("conv1", "data", 16, 3, pad=1)
    x = p.pool("pool1", x, 3, 2)
    a = p.conv("expand1x1", x, 8, 1)
    b = p.conv("dw", x, 16, 3, pad=1, group=16)
    x = p.layer("Concat", "concat", [a, b], ["concat"])
    x = p.fc("fc", x, 10, relu=False, dropout=False)
    p.layer("Softmax", "prob", [x], ["prob"])
    return p


def zoo(*parts):
    return os.path.join(ZOO, *parts)


def zoo_body(path, last, size):
    """A builder of a zoo net cut after layer ``last`` (its backbone: the MobileNet of
    MobileNet-SSD without the detection heads), input (batch, 3, size, size)."""
    def build(batch):
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} (the zoo beside the repo) is absent")
        from google.protobuf import text_format

        from caffe_lite.proto import caffe_pb2
        net = caffe_pb2.NetParameter()
        with open(path) as handle:
            text_format.Parse(handle.read(), net)
        names = [layer.name for layer in net.layer]
        del net.layer[names.index(last) + 1:]
        del net.input_shape[:]
        net.input_shape.add().dim.extend([batch, 3, size, size])
        return net
    return build


# name -> (label, batches, source): source is a Proto builder (batch -> Proto) or a zoo path
FORWARD = {
    "caffenet": ("CaffeNet 227²", (1, 8), caffenet),
    "vgg16": ("VGG16 224²", (1, 8), vgg16),
    "fcn8s": ("FCN-8s 500²", (1,), lambda batch: fcn8s()),
    "googlenet": ("GoogLeNet 224²", (1, 8), zoo("bvlc_googlenet", "deploy.prototxt")),
    "resnet50": ("ResNet-50 224²", (1, 8), zoo("resnet", "ResNet-50-deploy.prototxt")),
    "squeezenet": ("SqueezeNet 1.1 227²", (1, 8), zoo("squeezenet", "v1.1", "deploy.prototxt")),
    "mobilenet": ("MobileNet v1 224² (ours)", (1, 8), mobilenet_v1),
    "mobilenet_ssd": ("MobileNet-SSD body 300² (zoo)", (1, 8),
                      zoo_body(zoo("mobilenet_ssd", "deploy.prototxt"), "conv13/relu", 300)),
}
TRAIN = {
    "lenet_train": ("LeNet train step b64 (SGD)", (64,)),
    "vgg16_train": ("VGG16 train step b8 (SGD)", (8,)),
}
QUICK = {"tiny": ("tiny net 32² (smoke test)", (1, 2), tiny_net)}
QUICK_TRAIN = {"lenet_train": ("LeNet train step b8 (smoke test)", (8,))}


def prototxt_for(source, batch, tmp):
    if isinstance(source, str):
        if not os.path.exists(source):
            raise FileNotFoundError(f"{source} (the zoo beside the repo) is absent")
        return source
    path = os.path.join(tmp, f"net_b{batch}.prototxt")
    with open(path, "w") as handle:
        handle.write(str(source(batch)))
    return path


def randomize(net, rng):
    """He-scaled random weights, biases 0.01, BatchNorm mean 0 / var 1, Scale 1 / 0."""
    for layer in net.layers:
        blobs = layer.blobs
        if layer.type == "BatchNorm":
            blobs[0].data[...], blobs[1].data[...], blobs[2].data[...] = 0, 1, 1
        elif layer.type == "Scale":
            blobs[0].data[...] = 1
            if len(blobs) > 1:
                blobs[1].data[...] = 0.01
        elif blobs:
            w = blobs[0].data
            fan_in = w.size // (w.shape[1] if layer.type == "Deconvolution" else w.shape[0])
            w[...] = rng.standard_normal(w.shape) * np.sqrt(2.0 / max(1, fan_in))
            for b in blobs[1:]:
                b.data[...] = 0.01


def compared_blob(net):
    """The output OpenCV's is compared on: the input of a final Softmax (a saturated
    softmax of random weights would hide differences), else the net's output."""
    output = net.outputs[0]
    for name in reversed(net._layer_names):
        if output in net.top_names[name]:
            layer = net.layer_dict[name]
            return net.bottom_names[name][0] if layer.type == "Softmax" else output
    return output


def producer_layer(net, blob):
    """OpenCV names outputs by layer: the last layer writing ``blob``."""
    for name in reversed(net._layer_names):
        if blob in net.top_names[name]:
            return name
    return blob


# ==== one row, in its own process ====================================================

def median_ms(times):
    return 1e3 * float(np.median(times)) if times else None


def interleave(runners, repeat):
    """One warm-up each, then ``repeat`` rounds in which each framework, in a new
    random order, makes an untimed call and then a timed one; (medians, other cores).
    BENCH_CLOCK=cpu times the process's CPU time instead of the wall clock."""
    clock = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter
    for fn in runners.values():
        fn()
    times = {name: [] for name in runners}
    meter = LoadMeter()
    names = list(runners)
    order = np.random.default_rng(0)
    for _ in range(repeat):
        # A framework's threads keep spinning for a while after its call (OpenBLAS's,
        # OpenCV's, PyTorch's) and slow whatever runs next: the untimed call lets the
        # previous framework's threads settle, so each is timed in its own steady
        # state, as when it runs alone. The order changes each round.
        for name in order.permutation(names):
            fn = runners[name]
            fn()
            start = clock()
            fn()
            times[name].append(clock() - start)
    load = meter.other_cores()
    return {name: median_ms(t) for name, t in times.items()}, load


def relative_deviation(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64).reshape(np.shape(a))
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


PEERS = {"opencv": "cv2", "torch": "torch"}


def peers_available():
    chosen = os.environ.get("BENCH_PEERS")
    wanted = chosen.split(",") if chosen is not None else list(PEERS)
    have = {}
    for peer, module in PEERS.items():
        if peer not in wanted:
            have[module] = False
            continue
        try:
            __import__(module)
            have[module] = True
        except ImportError:
            have[module] = False
    return have


def forward_row(source, batch, repeat, threads, tmp, surgery=None):
    have = peers_available()
    rng = np.random.default_rng(0)
    path = prototxt_for(source, batch, tmp)
    result = {"rss": {}}
    with PeakRSS() as mem:
        net = caffe.Net(path, caffe.TEST)
        data = net.inputs[0]
        if net.blobs[data].shape[0] != batch:
            net.blobs[data].reshape((batch,) + net.blobs[data].shape[1:])
            net.reshape()
        randomize(net, rng)
        if surgery:
            surgery(net)
        x = rng.standard_normal(net.blobs[data].shape).astype(np.float32)
        net.blobs[data].data[...] = x
        net.forward()
    result["rss"]["caffe_lite"] = mem.mib
    output = compared_blob(net)
    exact = net.blobs[output].data.copy()
    runners = {"caffe_lite": net.forward}
    if worker_threads.threads() > 1 or jit.available():     # the extra fast is installed
        def numpy_only():
            worker_threads.enabled = jit.enabled = False     # serial numpy, as without it
            try:
                net.forward()
            finally:
                worker_threads.enabled = jit.enabled = True
        runners["caffe_lite_numpy"] = numpy_only
    if hasattr(caffe, "set_conv_algorithm"):
        def fast():
            caffe.set_conv_algorithm("winograd")
            try:
                net.forward()
            finally:
                caffe.set_conv_algorithm("exact")
        fast()
        result["fast_deviation"] = relative_deviation(net.blobs[output].data, exact)
        runners["caffe_lite_fast"] = fast
    if have["cv2"]:
        model = os.path.join(tmp, "weights.caffemodel")
        net.save(model)
        name = producer_layer(net, output)
        with PeakRSS() as mem:
            cv_net = opencv_net(path, model, threads)
            got = opencv_forward(cv_net, x, name)
        result["rss"]["opencv"] = mem.mib
        result["opencv_deviation"] = relative_deviation(exact, got)
        runners["opencv"] = lambda: opencv_forward(cv_net, x, name)
    if have["torch"]:
        import torch
        torch.set_num_threads(threads)
        with PeakRSS() as mem, torch.inference_mode():
            replay = TorchReplay(net)
            feeds = {data: torch.from_numpy(x)}
            got = replay.forward(feeds)[output]
        result["rss"]["torch"] = mem.mib
        result["torch_deviation"] = relative_deviation(exact, got.numpy())

        def torch_forward():
            with torch.inference_mode():
                replay.forward(feeds)
        runners["torch"] = torch_forward
    result["ms"], result["load"] = interleave(runners, repeat)
    return result


def lenet_solver(batch):
    from bench_train import make_solver
    return make_solver(batch, "SGD")


def vgg16_solver(batch):
    from google.protobuf import text_format

    from caffe_lite.proto import caffe_pb2
    p = vgg16(batch)
    p.text[-1] = p.text[-1].replace('"Softmax"', '"SoftmaxWithLoss"').replace(
        'top: "prob"', 'bottom: "label" top: "loss"')
    p.text.insert(2, f'layer {{ name: "label" type: "Input" top: "label" '
                     f'input_param {{ shape {{ dim: {batch} }} }} }}')
    param = caffe_pb2.SolverParameter()
    text_format.Parse(str(p), param.net_param)
    param.type, param.base_lr, param.lr_policy = "SGD", 1e-4, "fixed"
    param.momentum, param.weight_decay, param.max_iter = 0.9, 5e-4, 10 ** 6
    param.random_seed = 1
    return caffe.get_solver(param)


def train_row(kind, batch, repeat, threads):
    have = peers_available()
    rng = np.random.default_rng(0)
    result = {"rss": {}}
    with PeakRSS() as mem:
        solver = lenet_solver(batch) if kind == "lenet_train" else vgg16_solver(batch)
        net = solver.net
        if kind == "vgg16_train":
            randomize(net, rng)
        net.blobs["data"].data[...] = rng.uniform(0, 1, net.blobs["data"].shape)
        net.blobs["label"].data[...] = rng.integers(0, 10, batch)
        solver.step(1)
    result["rss"]["caffe_lite"] = mem.mib
    runners = {"caffe_lite": lambda: solver.step(1)}
    if have["torch"]:
        import torch
        torch.set_num_threads(threads)
        with PeakRSS() as mem:
            replay = TorchReplay(net, train=True)
            optimizer = torch.optim.SGD(replay.params, lr=solver.param.base_lr,
                                        momentum=0.9, weight_decay=5e-4)
            feeds = {"data": torch.from_numpy(net.blobs["data"].data.copy()),
                     "label": torch.from_numpy(net.blobs["label"].data.copy())}
            torch_train_step(replay, optimizer, feeds, "loss")
        result["rss"]["torch"] = mem.mib
        runners["torch"] = lambda: torch_train_step(replay, optimizer, feeds, "loss")
    result["ms"], result["load"] = interleave(runners, repeat)
    return result


def run_row(args):
    table = {**FORWARD, **QUICK}
    with tempfile.TemporaryDirectory() as tmp:
        if args.row in TRAIN:
            result = train_row(args.row, args.batch, args.repeat, args.threads)
        else:
            _, _, source = table[args.row]
            surgery = bilinear_surgery if args.row == "fcn8s" else None
            result = forward_row(source, args.batch, args.repeat, args.threads, tmp, surgery)
    print("ROW " + json.dumps(result), flush=True)


# ==== the table ====================================================================

def spawn(row, batch, repeat, threads, peers, cpu_time=False):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), BENCH_PEERS=",".join(peers),
               BENCH_CLOCK="cpu" if cpu_time else "wall")
    cmd = [sys.executable, os.path.abspath(__file__), "--row", row, "--batch", str(batch),
           "--repeat", str(repeat), "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def fmt_ms(v):
    return "—" if v is None else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def table_line(label, goal, r):
    if "error" in r:
        return f"| {label} | skipped: {r['error']} |" + " |" * 10
    ms = r["ms"]
    peers = [ms[k] for k in ("opencv", "torch") if ms.get(k) is not None]
    best = min(peers) if peers else None
    ratio = ms["caffe_lite"] / best if best else None
    fast = ms.get("caffe_lite_fast")
    fast_ratio = fast / best if best and fast else None
    met = "—" if ratio is None else ("yes" if min(ratio, fast_ratio or ratio) <= goal else "no")
    if fast_ratio is not None and ratio is not None and ratio > goal >= fast_ratio:
        met = "fast only"
    rss = r["rss"]
    mem = " / ".join("—" if rss.get(k) is None else f"{rss[k]:.0f}"
                     for k in ("caffe_lite", "opencv", "torch"))
    dev = r.get("opencv_deviation")
    fdev = r.get("fast_deviation")
    status = "contended" if r["load"] > CONTENDED_CORES else "quiet"
    cells = [label, fmt_ms(ms["caffe_lite"]), fmt_ms(ms.get("caffe_lite_numpy")),
             fmt_ms(fast), fmt_ms(ms.get("opencv")),
             fmt_ms(ms.get("torch")),
             "—" if ratio is None else f"{ratio:.2f}x",
             "—" if fast_ratio is None else f"{fast_ratio:.2f}x", f"≤{goal} {met}",
             "—" if dev is None else f"{dev:.1e}", "—" if fdev is None else f"{fdev:.1e}",
             mem, f"{status} ({r['load']:.2f})"]
    return "| " + " | ".join(cells) + " |"


HEADER = ("| case | caffe_lite ms | caffe_lite numpy only ms | caffe_lite --fast ms | OpenCV dnn ms "
          "| PyTorch ms | ratio | ratio --fast | goal met | dev. vs OpenCV | --fast dev. "
          "| peak RSS MiB (cl / cv / pt) | other load (cores) |\n|" + "---|" * 13)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tiny net, for a smoke test")
    ap.add_argument("--only", nargs="+", help="rows to run (names: "
                    + ", ".join(list(FORWARD) + list(TRAIN)) + ")")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peers", nargs="*", choices=list(PEERS), default=list(PEERS),
                    help="peers to compare with, when installed (default: all)")
    ap.add_argument("--repeat", type=int, default=None, help="rounds per row")
    ap.add_argument("--strict", action="store_true",
                    help="retry contended rows twice, then refuse to report them")
    ap.add_argument("--cpu-time", action="store_true",
                    help="with --threads 1: time the CPU each framework uses instead of the "
                         "wall clock, for a machine others keep busy (no parallel speedup "
                         "is measured; rows still show the load)")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.row:
        run_row(args)
        return 0
    if args.cpu_time and args.threads != 1:
        ap.error("--cpu-time needs --threads 1 (CPU time over several threads is not "
                 "their wall time)")
    forward, train = (QUICK, QUICK_TRAIN) if args.quick else (FORWARD, TRAIN)
    if args.only:
        unknown = set(args.only) - set(forward) - set(train)
        if unknown:
            ap.error(f"unknown rows {sorted(unknown)}")
        forward = {k: v for k, v in forward.items() if k in args.only}
        train = {k: v for k, v in train.items() if k in args.only}
    os.environ["BENCH_PEERS"] = ",".join(args.peers)
    have = peers_available()
    versions = [f"caffe_lite {caffe.__version__}", f"numpy {np.__version__}"]
    if have["cv2"]:
        import cv2
        versions.append(f"OpenCV {cv2.__version__}")
    if have["torch"]:
        import torch
        versions.append(f"PyTorch {torch.__version__}")
    clock = "CPU time" if args.cpu_time else "wall clock"
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{args.threads} threads each, {clock}; {', '.join(versions)}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print(HEADER, flush=True)
    jobs = [(name, label, b, FORWARD_GOAL) for name, (label, batches, _) in forward.items()
            for b in batches]
    jobs += [(name, label, b, LENET_GOAL if name == "lenet_train" else VGG_TRAIN_GOAL)
             for name, (label, batches) in train.items() for b in batches]
    for name, label, batch, goal in jobs:
        big = batch * (8 if name in ("vgg16", "fcn8s", "vgg16_train") else 1)
        repeat = args.repeat or (2 if args.quick else max(5, 15 // big))
        for _attempt in range(3 if args.strict else 1):
            r = spawn(name, batch, repeat, args.threads, args.peers, args.cpu_time)
            if args.cpu_time:
                break                       # CPU time is what the load cannot inflate much
            if "error" in r or r["load"] <= CONTENDED_CORES:
                break
        refused = args.strict and "error" not in r and r["load"] > CONTENDED_CORES
        row_label = label if name in TRAIN or name in QUICK_TRAIN else f"{label} b{batch}"
        if refused:
            print(f"| {row_label} | refused: other processes used {r['load']:.2f} cores "
                  f"in 3 tries |" + " |" * 10, flush=True)
            continue
        print(table_line(row_label, goal, r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
