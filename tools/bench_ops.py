"""Time the caffe_lite.ops kernels (medians, ms). A script, not a test.

    python tools/bench_ops.py [--repeat 15]

Convolutions run with a Workspace and out= as a layer would (steady state, no fresh
temporaries). Threads are whatever numpy's BLAS uses (set OPENBLAS_NUM_THREADS to pin).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from caffe_lite.ops.conv_gemm import conv_backward, conv_forward, deconv_forward  # noqa: E402
from caffe_lite.ops.geometry import Workspace  # noqa: E402
from caffe_lite.ops.im2col import im2col  # noqa: E402
from caffe_lite.ops.lrn import lrn_across_forward  # noqa: E402
from caffe_lite.ops.max_pool import max_pool_backward, max_pool_forward  # noqa: E402
from caffe_lite.ops.pooling import ave_pool_forward, pool_out_size  # noqa: E402


def median_ms(fn, repeat):
    fn()                                                           # warm up (allocations, BLAS threads)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def bench_conv(label, N, C, H, W, Cout, k, pad, repeat, rng):
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((Cout, C, k, k), dtype=np.float32)
    b = rng.standard_normal(Cout, dtype=np.float32)
    ws = Workspace()
    y = conv_forward(x, w, b, 1, pad, workspace=ws)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = np.empty_like(x)
    cols = ws.get("cols", (N, C * k * k, y.shape[2] * y.shape[3]), np.float32)
    wm = w.reshape(Cout, -1)
    gflop = 2 * N * Cout * C * k * k * y.shape[2] * y.shape[3] / 1e9
    t_im2col = median_ms(lambda: im2col(x, k, 1, pad, 1, out=cols), repeat)
    t_gemm = median_ms(lambda: np.matmul(wm, cols, out=y.reshape(N, Cout, -1)), repeat)
    t_fwd = median_ms(lambda: conv_forward(x, w, b, 1, pad, out=y, workspace=ws), repeat)
    t_bwd = median_ms(lambda: conv_backward(x, w, dy, 1, pad, dx_out=dx, workspace=ws), repeat)
    print(f"{label:34s} im2col {t_im2col:7.2f}  gemm {t_gemm:7.2f}  forward {t_fwd:7.2f}"
          f" ({gflop / t_fwd * 1e3:5.1f} GFLOP/s)  backward {t_bwd:7.2f}")


def bench_deconv(label, N, C, H, k, s, p, group, repeat, rng):
    """Upsampling deconvolution C -> C as in FCN (group 1: the generic GEMM + col2im path)."""
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)
    w = rng.standard_normal((C, C // group, k, k), dtype=np.float32)
    ws = Workspace()
    y = deconv_forward(x, w, None, s, p, group=group, workspace=ws)
    t = median_ms(lambda: deconv_forward(x, w, None, s, p, group=group, out=y, workspace=ws), repeat)
    print(f"{label:34s} forward {t:7.2f}   -> {y.shape}")


def bench_pool(label, N, C, H, k, s, repeat, rng, p=0):
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)
    o = pool_out_size(H, k, s, p)
    y = np.empty((N, C, o, o), np.float32)
    mask = np.empty_like(y)
    t_max = median_ms(lambda: max_pool_forward(x, k, s, p, (o, o), out=y), repeat)
    t_mask = median_ms(lambda: max_pool_forward(x, k, s, p, (o, o), True, out=y, mask_out=mask), repeat)
    dx = np.empty_like(x)
    t_back = median_ms(lambda: max_pool_backward(y, mask, x.shape, out=dx), repeat)
    t_ave = median_ms(lambda: ave_pool_forward(x, k, s, p, (o, o), out=y), repeat)
    print(f"{label:34s} max {t_max:6.2f}  max+mask {t_mask:6.2f}  max backward {t_back:6.2f}"
          f"  ave {t_ave:6.2f}")


def bench_lrn(label, N, C, H, repeat, rng):
    """ACROSS_CHANNELS, local_size 5, alpha 1e-4, beta 0.75 (CaffeNet, GoogLeNet)."""
    x = np.maximum(rng.standard_normal((N, C, H, H), dtype=np.float32), 0) * 10
    y, scale = np.empty_like(x), np.empty_like(x)
    t = median_ms(lambda: lrn_across_forward(x, 5, np.float32(1e-4), np.float32(0.75),
                                             np.float32(1), y, scale), repeat)
    print(f"{label:34s} forward {t:7.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, medians of {args.repeat} (ms)")
    bench_conv("conv 3x3 64->64 224x224 b1", 1, 64, 224, 224, 64, 3, 1, args.repeat, rng)
    bench_conv("conv 3x3 512->512 28x28 b1", 1, 512, 28, 28, 512, 3, 1, args.repeat, rng)
    bench_conv("conv 3x3 64->64 224x224 b8", 8, 64, 224, 224, 64, 3, 1, max(3, args.repeat // 3), rng)
    bench_pool("pool 2x2 s2 64x224x224 b1", 1, 64, 224, 2, 2, args.repeat, rng)
    bench_pool("pool 3x3 s2 96x55x55 b1", 1, 96, 55, 3, 2, args.repeat, rng)
    bench_pool("pool 3x3 s2 64x112x112 b8", 8, 64, 112, 3, 2, max(3, args.repeat // 3), rng)
    bench_pool("pool 3x3 s1 p1 480x28x28 b8", 8, 480, 28, 3, 1, max(3, args.repeat // 3), rng,
               p=1)
    bench_lrn("LRN across 192x56x56 b8", 8, 192, 56, max(3, args.repeat // 3), rng)
    bench_lrn("LRN across 96x27x27 b1", 1, 96, 27, args.repeat, rng)
    bench_deconv("deconv k64 s32 21ch 16x16 (FCN-32s)", 1, 21, 16, 64, 32, 0, 1, args.repeat, rng)
    bench_deconv("deconv k4 s2 21ch 34x34 (FCN 2x)", 1, 21, 34, 4, 2, 0, 1, args.repeat, rng)
    bench_deconv("deconv k4 s2 21ch 34x34 group 21", 1, 21, 34, 4, 2, 0, 21, args.repeat, rng)


if __name__ == "__main__":
    main()
