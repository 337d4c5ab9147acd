"""Write and read a large synthetic caffemodel; print MB/s. A script, not a test.

    python tools/bench_formats.py [--mb 200] [--repeat 3] [--dir /tmp]

The net looks like a VGG-ish stack (a few big fc layers plus many convs), so both
per-layer overhead and raw float throughput show. Medians over --repeat runs; the
file is written to --dir (default: the system temp dir) and removed afterwards.
"""
import argparse
import os
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
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
