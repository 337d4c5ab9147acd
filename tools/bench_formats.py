"""Write and read a large synthetic caffemodel; print MB/s. A script, not a test.

    python tools/bench_formats.py [--mb 200] [--repeat 3] [--dir /tmp] [--vgg16]

The net looks like a VGG-ish stack (a few big fc layers plus many convs), so both
per-layer overhead and raw float throughput show. Medians over --repeat runs; the
file is written to --dir (default: the system temp dir) and removed afterwards.

--vgg16 measures what issue 12 asks of weights: a VGG16 caffemodel (553 MB of
random weights) copied into a built Net with ``copy_from`` and written back with
``save``, each in a fresh child process on a warm page cache, with the peak
resident memory the call takes beyond what the process held before it (the
net's parameters already resident): Linux's VmHWM, reset just before the call.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from caffe_lite.formats import read_weights, write_weights  # noqa: E402
from caffe_lite.proto import caffe_pb2  # noqa: E402


def synthetic_layers(total_mb):
    """(LayerParameter, [weight, bias]) pairs holding about total_mb of float32."""
    rng = np.random.RandomState(0)
    layers, remaining = [], int(total_mb * 2**20 // 4)
    for i in range(40):                                  # 40 3x3 convs, 64..512 channels
        c = 64 << min(i // 10, 3)
        layers.append(("Convolution", (c, c, 3, 3)))
        remaining -= c * c * 9 + c
    fc = max(remaining // 3, 1)
    side = int(np.sqrt(fc))
    layers += [("InnerProduct", (side, side))] * 3
    out = []
    for i, (kind, shape) in enumerate(layers):
        param = caffe_pb2.LayerParameter(name=f"{kind.lower()}{i}", type=kind,
                                         bottom=[f"b{i}"], top=[f"b{i + 1}"])
        weight = rng.standard_normal(shape).astype(np.float32)
        out.append((param, [weight, np.zeros(shape[0], np.float32)]))
    return out


ZOO_VGG16 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                         "shared", "zoo", "vgg16", "VGG_ILSVRC_16_layers_deploy.prototxt")


def vgg16_prototxt(tmp):
    """The zoo's VGG16 deploy file, or the same net from tools/bench.py."""
    if os.path.exists(ZOO_VGG16):
        return os.path.abspath(ZOO_VGG16)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench import vgg16
    path = os.path.join(tmp, "vgg16.prototxt")
    with open(path, "w") as handle:
        handle.write(str(vgg16(1)))
    return path


def memory_status():
    """(VmRSS, VmHWM) of this process in bytes (Linux)."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def measure(fn):
    """(seconds, peak resident bytes above the resident set before) of fn()."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")                 # reset VmHWM to the current VmRSS
    before, _ = memory_status()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    _, peak = memory_status()
    return seconds, peak - before


def child(prototxt, weights, out):
    """In a fresh process: build, make the params resident, then time copy_from
    and save; print the figures and per-blob sums as JSON."""
    import caffe_lite as caffe
    net = caffe.Net(prototxt, caffe.TEST)
    params = [blob for layer in net.layers for blob in layer.blobs]
    for blob in params:
        blob.data[...] = 0                # resident, as after an eager fill
    load_s, load_extra = measure(lambda: net.copy_from(weights))
    sums = [float(blob.data.sum(dtype=np.float64)) for blob in params]
    fsync_s, fsync = [], os.fsync

    def timed_fsync(fd):                  # the disk's share of save, reported apart
        start = time.perf_counter()
        fsync(fd)
        fsync_s.append(time.perf_counter() - start)
    os.fsync = timed_fsync
    os.sync()                             # earlier runs' dirty pages would throttle this one
    save_s, save_extra = measure(lambda: net.save(out))
    os.fsync = fsync

    def raw_write():                      # the disk's own speed: the same bytes, plain
        with open(out + ".raw", "wb") as handle:
            for blob in params:
                handle.write(blob.data.reshape(-1).view(np.uint8))
            handle.flush()
            os.fsync(handle.fileno())
    os.sync()
    raw_s, _ = measure(raw_write)
    os.unlink(out + ".raw")
    print(json.dumps({"raw_s": raw_s,"load_s": load_s, "load_extra": load_extra, "save_s": save_s,
                      "save_extra": save_extra, "sums": sums, "fsync_s": sum(fsync_s),
                      "write_s": save_s - sum(fsync_s),
                      "param_bytes": sum(blob.data.nbytes for blob in params)}))


def bench_vgg16(tmp, repeat):
    import caffe_lite as caffe
    prototxt = vgg16_prototxt(tmp)
    net = caffe.Net(prototxt, caffe.TEST)
    rng = np.random.default_rng(0)
    for layer in net.layers:
        for blob in layer.blobs:
            blob.data[...] = rng.standard_normal(blob.shape, np.float32)
    weights = os.path.join(tmp, "vgg16.caffemodel")
    net.save(weights)
    sums = [float(b.data.sum(dtype=np.float64)) for layer in net.layers for b in layer.blobs]
    del net
    size = os.path.getsize(weights)
    with open(weights, "rb") as handle:           # warm the page cache
        while handle.read(1 << 24):
            pass
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                              prototxt, weights, os.path.join(tmp, "saved.caffemodel")],
                             check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        if not np.allclose(runs[-1]["sums"], sums, rtol=1e-6, atol=1e-3):
            raise SystemExit("copy_from loaded different numbers from the ones saved")
    with open(os.path.join(tmp, "saved.caffemodel"), "rb") as a, open(weights, "rb") as b:
        if a.read() != b.read():
            raise SystemExit("save wrote a file different from the one loaded")

    def median(key):
        return float(np.median([run[key] for run in runs]))
    print(f"VGG16 caffemodel {size / 1e6:.0f} MB into a built Net, median of {repeat} "
          f"fresh processes (page cache warm):")
    print(f"  copy_from {median('load_s'):6.2f} s  {size / median('load_s') / 1e6:6.0f} MB/s"
          f"   peak memory beyond the params {median('load_extra') / 1e6:6.0f} MB "
          f"({median('load_extra') / size:.2f}x the file)")
    print(f"  save      {median('save_s'):6.2f} s  {size / median('save_s') / 1e6:6.0f} MB/s"
          f"   peak memory beyond the params {median('save_extra') / 1e6:6.0f} MB "
          f"({median('save_extra') / size:.2f}x the file)")
    print(f"            of which fsync (the disk) {median('fsync_s'):.2f} s; writing "
          f"{median('write_s'):.2f} s; the same bytes written plainly (f.write of each "
          f"array, fsync) {median('raw_s'):.2f} s")


def main():
    if sys.argv[1:2] == ["--child"]:
        return child(*sys.argv[2:5])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--vgg16", action="store_true",
                        help="only the VGG16 copy_from / save measurement")
    args = parser.parse_args()
    if args.vgg16:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            bench_vgg16(tmp, args.repeat)
        return
    layers = synthetic_layers(args.mb)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "bench.caffemodel")
        write_times, read_times = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            write_weights(path, "bench", layers)
            write_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            loaded = read_weights(path)
            read_times.append(time.perf_counter() - start)
        size_mb = os.path.getsize(path) / 2**20
        for (_, arrays), saved in zip(layers, loaded):       # sanity: same numbers
            assert all(np.array_equal(a, b.data) for a, b in zip(arrays, saved.blobs))
    write_s, read_s = np.median(write_times), np.median(read_times)
    print(f"file: {size_mb:.1f} MiB, {len(layers)} layers, median of {args.repeat}")
    print(f"write_weights: {write_s * 1e3:8.1f} ms  {size_mb / write_s:8.0f} MiB/s "
          f"(includes fsync)")
    print(f"read_weights:  {read_s * 1e3:8.1f} ms  {size_mb / read_s:8.0f} MiB/s")


if __name__ == "__main__":
    main()
