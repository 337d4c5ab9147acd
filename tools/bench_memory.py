"""Memory of building and running nets, against OpenCV dnn. A script, not a test.

    python tools/bench_memory.py [--batch 8] [--repeat 1] [--dir /tmp] [--weights W]

- Build time of a net whose parameters fill 80% of the memory limit, next to a
  small one: building takes time per layer, not per byte (fillers run when a
  param is first read, memory is taken lazily).
- VGG16 inference at --batch (default 8), each run in a fresh process on a warm
  page cache: peak resident memory (Linux VmHWM) of caffe_lite keeping every blob
  (the default), caffe_lite with ``lean=True``, and OpenCV dnn
  (opencv-python-headless, when installed) on the same prototxt and caffemodel.
  "net" is the peak above the process's resident memory after its imports, so the
  libraries' own code does not count; "process" is the whole peak.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from bench_formats import memory_status, vgg16_prototxt  # noqa: E402

BIG_NET = """layer {{ name: "data" type: "Input" top: "x"
        input_param {{ shape {{ dim: 1 dim: {inputs} }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param {{ num_output: {outputs} weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "y" top: "z"
        inner_product_param {{ num_output: 10 weight_filler {{ type: "gaussian" }} }} }}
"""


def bench_build():
    import caffe_lite as caffe
    from caffe_lite.blob import memory_limit
    from caffe_lite.formats import parse_net_param
    # weights of inputs x outputs float32, data + diff: about 80% of the limit
    outputs = 4096
    inputs = max(1, int(0.8 * memory_limit() / (2 * 4 * outputs)))
    rows = []
    for label, n_in in (("small", 64), ("big", inputs)):
        param = parse_net_param(BIG_NET.format(inputs=n_in, outputs=outputs))
        start = time.perf_counter()
        net = caffe.Net(param, caffe.TEST)
        seconds = time.perf_counter() - start
        rows.append((label, 2 * net.params["ip1"][0].data_for_overwrite().nbytes, seconds))
        del net
    print(f"Net build (memory limit {memory_limit() / 1e9:.1f} GB):")
    for label, nbytes, seconds in rows:
        print(f"  {label:5s} net, {nbytes / 1e9:7.3f} GB of params (data + diff): "
              f"built in {seconds * 1e3:7.1f} ms")


def child(mode, prototxt, weights, batch):
    """In a fresh process: load, run one forward at the batch; print the figures."""
    rng = np.random.default_rng(0)
    data = rng.uniform(-50, 50, (batch, 3, 224, 224)).astype(np.float32)
    if mode == "opencv":
        import cv2
        cv2.setNumThreads(int(os.environ.get("OPENCV_THREADS", 2)))
        base, _ = memory_status()
        net = cv2.dnn.readNetFromCaffe(prototxt, weights)
        net.setInput(data)
        run = net.forward
    else:
        import caffe_lite as caffe
        base, _ = memory_status()
        net = caffe.Net(prototxt, caffe.TEST, weights=weights, lean=mode == "lean")
        net.blobs["data"].reshape(data.shape)
        net.reshape()
        net.blobs["data"].data[...] = data

        def run():
            return next(iter(net.forward().values()))
    loaded, _ = memory_status()
    start = time.perf_counter()
    out = np.array(run())
    seconds = time.perf_counter() - start
    _, peak = memory_status()
    print(json.dumps({"base": base, "loaded": loaded, "peak": peak, "seconds": seconds,
                      "out": out.reshape(batch, -1)[:, :5].tolist()}))


def bench_inference(tmp, batch, repeat, weights):
    import caffe_lite as caffe
    prototxt = vgg16_prototxt(tmp)
    if weights is None:
        net = caffe.Net(prototxt, caffe.TEST)
        for layer in net.layers:                         # the xavier scale keeps
            for i, blob in enumerate(layer.blobs):       # activations in range
                fan_in = blob.count // blob.shape[0] if i == 0 else 1
                blob.data[...] = np.random.default_rng(len(layer.name)).uniform(
                    -1, 1, blob.shape) * (np.sqrt(3 / fan_in) if i == 0 else 0.01)
        weights = os.path.join(tmp, "vgg16.caffemodel")
        net.save(weights)
        del net
    with open(weights, "rb") as handle:                  # warm the page cache
        while handle.read(1 << 24):
            pass
    modes = ["default", "lean"]
    try:
        import cv2  # noqa: F401
        modes.append("opencv")
    except ImportError:
        print("OpenCV dnn: not installed (pip install 'opencv-python-headless<5')")
    results = {mode: [] for mode in modes}
    for _ in range(repeat):
        for mode in modes:                               # interleaved
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                                  mode, prototxt, weights, str(batch)],
                                 check=True, capture_output=True, text=True).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(f"VGG16 224^2 batch {batch} inference, peak resident memory, median of "
          f"{repeat} fresh processes each:")
    for mode in modes:
        runs = results[mode]
        net_mb = np.median([r["peak"] - r["base"] for r in runs]) / 1e6
        proc_mb = np.median([r["peak"] for r in runs]) / 1e6
        loaded = np.median([r["loaded"] - r["base"] for r in runs]) / 1e6
        seconds = np.median([r["seconds"] for r in runs])
        label = {"default": "caffe_lite (all blobs kept)", "lean": "caffe_lite lean=True",
                 "opencv": "OpenCV dnn"}[mode]
        print(f"  {label:28s} net {net_mb:7.0f} MB (after loading {loaded:5.0f} MB)  "
              f"process {proc_mb:7.0f} MB  forward {seconds:6.2f} s")
    reference = np.array(results["default"][0]["out"])
    for mode in modes[1:]:
        got = np.array(results[mode][0]["out"])
        deviation = np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30)
        print(f"  {mode} output vs caffe_lite default: max relative deviation "
              f"{deviation:.1e}")


def main():
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--weights", default=None,
                        help="a VGG16 caffemodel (default: random weights, made here)")
    args = parser.parse_args()
    bench_build()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_inference(tmp, args.batch, args.repeat, args.weights)


if __name__ == "__main__":
    main()
