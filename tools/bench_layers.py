"""caffe_lite alone: forward of whole nets and of single convolution layers, the
caffemodel load, FCN's bilinear upscore (medians, ms). The side-by-side comparison
with OpenCV dnn and PyTorch is tools/bench.py, which reuses the net builders here.

    python tools/bench_layers.py [--quick] [--only NAME ...]

Self-contained: every net is generated here as prototxt text with random weights
(xavier fillers, so activations stay in range and no denormals slow things down).
A benchmark whose layer types are not registered yet is skipped with a message.
The machine is shared and noisy: compare numbers taken in one run, not across runs.
Threads are whatever numpy's BLAS uses (set OPENBLAS_NUM_THREADS to pin them).
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import caffe_lite as caffe  # noqa: E402
from caffe_lite.layers.base import layer_types  # noqa: E402
from caffe_lite.ops import deconv_fast  # noqa: E402
from caffe_lite.ops.conv_gemm import deconv_forward  # noqa: E402
from caffe_lite.ops.geometry import Workspace  # noqa: E402

FILLERS = 'weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.01 }'
LRN = "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }"


# ==== prototxt builders =======================================================

class Proto:
    """Accumulates layers as prototxt text; records the layer types used."""

    def __init__(self, name, input_shape):
        self.types = {"Input"}
        dims = " ".join(f"dim: {d}" for d in input_shape)
        self.text = [f'name: "{name}"',
                     f'layer {{ name: "data" type: "Input" top: "data" '
                     f'input_param {{ shape {{ {dims} }} }} }}']

    def layer(self, kind, name, bottoms, tops, params=""):
        self.types.add(kind)
        b = " ".join(f'bottom: "{x}"' for x in bottoms)
        t = " ".join(f'top: "{x}"' for x in tops)
        self.text.append(f'layer {{ name: "{name}" type: "{kind}" {b} {t} {params} }}')
        return tops[0]

    def conv(self, name, bottom, n, k, pad=0, stride=1, group=1, kind="Convolution",
             bias=True, relu=True):
        extra = "" if bias else " bias_term: false"
        top = self.layer(kind, name, [bottom], [name],
                         f"convolution_param {{ num_output: {n} kernel_size: {k} pad: {pad} "
                         f"stride: {stride} group: {group}{extra} {FILLERS} }}")
        if relu:
            self.layer("ReLU", f"relu_{name}", [top], [top])
        return top

    def pool(self, name, bottom, k, s, mask=False, method="MAX"):
        tops = [name, name + "_mask"] if mask else [name]
        return self.layer("Pooling", name, [bottom], tops,
                          f"pooling_param {{ pool: {method} kernel_size: {k} stride: {s} }}")

    def fc(self, name, bottom, n, relu=True, dropout=True):
        top = self.layer("InnerProduct", name, [bottom], [name],
                         f"inner_product_param {{ num_output: {n} {FILLERS} }}")
        if relu:
            self.layer("ReLU", f"relu_{name}", [top], [top])
        if dropout:
            self.layer("Dropout", f"drop_{name}", [top], [top],
                       "dropout_param { dropout_ratio: 0.5 }")
        return top

    def __str__(self):
        return "\n".join(self.text) + "\n"


def caffenet(batch):
    p = Proto("CaffeNet", (batch, 3, 227, 227))
    x = p.conv("conv1", "data", 96, 11, stride=4)
    x = p.pool("pool1", x, 3, 2)
    x = p.layer("LRN", "norm1", [x], ["norm1"], LRN)
    x = p.conv("conv2", x, 256, 5, pad=2, group=2)
    x = p.pool("pool2", x, 3, 2)
    x = p.layer("LRN", "norm2", [x], ["norm2"], LRN)
    x = p.conv("conv3", x, 384, 3, pad=1)
    x = p.conv("conv4", x, 384, 3, pad=1, group=2)
    x = p.conv("conv5", x, 256, 3, pad=1, group=2)
    x = p.pool("pool5", x, 3, 2)
    x = p.fc("fc6", x, 4096)
    x = p.fc("fc7", x, 4096)
    x = p.fc("fc8", x, 1000, relu=False, dropout=False)
    p.layer("Softmax", "prob", [x], ["prob"])
    return p


VGG_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


def vgg_body(p, x, pad1=1, masks=False):
    """The 13 convolutions and 5 poolings of VGG16; returns the pool5 blob."""
    for b, (n, reps) in enumerate(VGG_BLOCKS, 1):
        for r in range(1, reps + 1):
            x = p.conv(f"conv{b}_{r}", x, n, 3, pad=pad1 if (b, r) == (1, 1) else 1)
        x = p.pool(f"pool{b}", x, 2, 2, mask=masks)
    return x


def vgg16(batch):
    p = Proto("VGG16", (batch, 3, 224, 224))
    x = vgg_body(p, "data")
    x = p.fc("fc6", x, 4096)
    x = p.fc("fc7", x, 4096)
    x = p.fc("fc8", x, 1000, relu=False, dropout=False)
    p.layer("Softmax", "prob", [x], ["prob"])
    return p


def fcn8s(size=500, classes=21):
    """voc-fcn8s: VGG16 with pad 100, fully convolutional, three bilinear upscores."""
    p = Proto("FCN-8s", (1, 3, size, size))
    vgg_body(p, "data", pad1=100)
    x = p.conv("fc6", "pool5", 4096, 7)
    x = p.conv("fc7", x, 4096, 1)
    score = p.conv("score_fr", x, classes, 1, relu=False)

    def upscore(name, bottom, k, s):
        return p.conv(name, bottom, classes, k, stride=s, kind="Deconvolution", bias=False,
                      relu=False)

    def fuse(name, up, pool, offset):
        s = p.conv(f"score_{pool}", pool, classes, 1, relu=False)
        c = p.layer("Crop", f"score_{pool}c", [s, up], [f"score_{pool}c"],
                    f"crop_param {{ axis: 2 offset: {offset} }}")
        return p.layer("Eltwise", name, [up, c], [name], "eltwise_param { operation: SUM }")

    x = fuse("fuse_pool4", upscore("upscore2", score, 4, 2), "pool4", 5)
    x = fuse("fuse_pool3", upscore("upscore_pool4", x, 4, 2), "pool3", 9)
    x = upscore("upscore8", x, 16, 8)
    p.layer("Crop", "score", [x, "data"], ["score"], "crop_param { axis: 2 offset: 31 }")
    return p


def mobilenet_v1(batch, size=224, classes=1000):
    """MobileNet v1 (1.0, 224) as its Caffe ports write it: bias-free convolutions, each
    followed by BatchNorm + Scale + ReLU; depthwise 3x3 as Convolution with group = C."""
    p = Proto("MobileNet-v1", (batch, 3, size, size))

    def unit(name, x, n, k, stride=1, group=1):
        x = p.conv(name, x, n, k, pad=k // 2, stride=stride, group=group, bias=False,
                   relu=False)
        p.layer("BatchNorm", f"{name}/bn", [x], [x], "batch_norm_param { eps: 1e-5 }")
        p.layer("Scale", f"{name}/scale", [x], [x], "scale_param { bias_term: true }")
        p.layer("ReLU", f"{name}/relu", [x], [x])
        return x

    x = unit("conv1", "data", 32, 3, stride=2)
    channels = 32
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
        [(1024, 2), (1024, 1)]
    for i, (n, stride) in enumerate(plan, 2):
        x = unit(f"conv{i}_dw", x, channels, 3, stride=stride, group=channels)
        x = unit(f"conv{i}_pw", x, n, 1)
        channels = n
    x = p.layer("Pooling", "pool6", [x], ["pool6"], "pooling_param { pool: AVE global_pooling: true }")
    x = p.conv("fc7", x, classes, 1, relu=False)
    p.layer("Softmax", "prob", [x], ["prob"])
    return p


def deconvnet(size=224, classes=21):
    """DeconvNet's shape without BN: VGG16 encoder with pooling masks, fc6/fc7 as
    convolutions, then a mirrored decoder of unpooling + 3x3 deconvolutions."""
    p = Proto("DeconvNet", (1, 3, size, size))
    x = vgg_body(p, "data", masks=True)
    x = p.conv("fc6", x, 4096, 7)
    x = p.conv("fc7", x, 4096, 1)
    x = p.conv("fc6-deconv", x, 512, 7, kind="Deconvolution")
    side = size // 32
    for b, (n, reps) in reversed(list(enumerate(VGG_BLOCKS, 1))):
        side *= 2
        x = p.layer("Unpooling", f"unpool{b}", [x, f"pool{b}_mask"], [f"unpool{b}"],
                    f"unpooling_param {{ unpool: MAX kernel_size: 2 stride: 2 "
                    f"unpool_size: {side} }}")
        outs = [n] * (reps - 1) + [VGG_BLOCKS[b - 2][0] if b > 1 else n]
        for r, m in enumerate(outs, 1):
            x = p.conv(f"deconv{b}_{r}", x, m, 3, pad=1, kind="Deconvolution")
    p.conv("seg-score", x, classes, 1, kind="Deconvolution", relu=False)
    return p


# ==== timing ====================================================================

def median_ms(fn, repeat):
    fn()                                                       # warm up: buffers, BLAS threads
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)), 1e3 * float(np.min(times))


def missing(proto):
    return sorted(proto.types - set(layer_types()))


def build(proto, tmp):
    path = os.path.join(tmp, "net.prototxt")
    with open(path, "w") as handle:
        handle.write(str(proto))
    return caffe.Net(path, caffe.TEST)


def bilinear_surgery(net):
    """FCN's surgery: each upscore channel reads only its own channel, bilinearly."""
    for layer in net.layers:
        if layer.type == "Deconvolution" and layer.name.startswith("upscore"):
            w = layer.blobs[0].data
            k = w.shape[-1]
            f = (k + 1) // 2
            center = f - 1 if k % 2 else f - 0.5
            og = np.ogrid[:k, :k]
            kernel = (1 - abs(og[0] - center) / f) * (1 - abs(og[1] - center) / f)
            w[...] = 0
            w[range(w.shape[0]), range(w.shape[1])] = kernel


def bench_net(label, proto, repeat, tmp, surgery=None):
    gone = missing(proto)
    if gone:
        print(f"{label:34s} skipped: layer types not implemented yet: {', '.join(gone)}")
        return
    net = build(proto, tmp)
    if surgery:
        surgery(net)
    net.blobs["data"].data[...] = np.random.default_rng(0).uniform(
        -50, 50, net.blobs["data"].shape)
    med, best = median_ms(net.forward, repeat)
    print(f"{label:34s} {med:9.1f} ms  (min {best:.1f}, {repeat} runs)", flush=True)
    return net


def bench_conv_layers(repeat, tmp):
    """Single Convolution layers (Input + Convolution nets), forward only."""
    cases = [("VGG16 conv1_1 3->64 224^2", 1, 3, 224, 64, 3, 1, 1, 1),
             ("VGG16 conv1_2 64->64 224^2", 1, 64, 224, 64, 3, 1, 1, 1),
             ("VGG16 conv2_2 128->128 112^2", 1, 128, 112, 128, 3, 1, 1, 1),
             ("VGG16 conv3_2 256->256 56^2", 1, 256, 56, 256, 3, 1, 1, 1),
             ("VGG16 conv4_1 256->512 28^2", 1, 256, 28, 512, 3, 1, 1, 1),
             ("VGG16 conv5_1 512->512 14^2", 1, 512, 14, 512, 3, 1, 1, 1),
             ("CaffeNet conv1 3->96 k11 s4", 1, 3, 227, 96, 11, 4, 0, 1),
             ("CaffeNet conv2 96->256 k5 g2", 1, 96, 27, 256, 5, 1, 2, 2),
             ("VGG16 conv1_2 b8", 8, 64, 224, 64, 3, 1, 1, 1)]
    for label, N, C, H, n, k, s, pad, g in cases:
        p = Proto("conv", (N, C, H, H))
        p.conv("conv", "data", n, k, pad=pad, stride=s, group=g, relu=False)
        net = build(p, tmp)
        net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal((N, C, H, H))
        med, best = median_ms(net.forward, max(1, repeat // N))
        out = net.blobs["conv"].shape
        gflop = 2 * N * n * (C // g) * k * k * out[2] * out[3] / 1e9
        print(f"  {label:32s} {med:8.2f} ms  (min {best:.2f}; {gflop / best * 1e3:5.0f} GFLOP/s)",
              flush=True)


def bench_weights_io(tmp, repeat):
    proto = caffenet(1)
    if missing(proto):
        print(f"caffemodel load: skipped (missing {', '.join(missing(proto))})")
        return
    from caffe_lite.formats import read_weights, write_weights
    net = build(proto, tmp)
    path = os.path.join(tmp, "caffenet.caffemodel")
    write_weights(path, net.name, [(lp, [b.data for b in layer.blobs])
                                   for lp, layer in zip(net.param.layer, net.layers)])
    mb = os.path.getsize(path) / 2**20
    read, _ = median_ms(lambda: read_weights(path), repeat)
    copy, _ = median_ms(lambda: net.copy_from(path), repeat)
    print(f"caffemodel load ({mb:.0f} MB CaffeNet)    read_weights {read:.0f} ms "
          f"({mb / read * 1e3:.0f} MB/s), Net.copy_from {copy:.0f} ms ({mb / copy * 1e3:.0f} MB/s)")


def bench_bilinear(repeat):
    """FCN-32s's upscore (k64 s32, 21 channels, 16x16 in): separable path vs generic."""
    rng = np.random.default_rng(0)
    C, H, k, s = 21, 16, 64, 32
    x = rng.standard_normal((1, C, H, H), dtype=np.float32)
    f = (k + 1) // 2
    taps = 1 - np.abs(np.arange(k) - (f - 0.5)) / f
    kernel = np.outer(taps, taps).astype(np.float32)
    grouped = np.broadcast_to(kernel, (C, 1, k, k)).copy()
    full = np.zeros((C, C, k, k), np.float32)
    full[range(C), range(C)] = kernel
    ws = Workspace()
    t_group, _ = median_ms(lambda: deconv_forward(x, grouped, None, s, group=C, workspace=ws),
                           repeat)
    t_full, _ = median_ms(lambda: deconv_forward(x, full, None, s, workspace=ws), repeat)
    det = deconv_fast.BilinearDetector()
    out = (H - 1) * s + k
    plan = det.plan(full, 1, (H, H), (out, out), (s, s), (0, 0), (1, 1))
    y = np.empty((1, C, out, out), np.float32)
    t_fast, _ = median_ms(lambda: deconv_fast.separable_deconv(x, plan, out=y), repeat)
    t_check, _ = median_ms(lambda: det.plan(full, 1, (H, H), (out, out), (s, s), (0, 0), (1, 1)),
                           repeat)
    print(f"bilinear upscore k64 s32 21x16^2     separable {t_fast:.2f} ms (+ weight check "
          f"{t_check:.2f} ms); generic grouped {t_group:.2f} ms ({t_group / t_fast:.0f}x), "
          f"generic full weight {t_full:.2f} ms ({t_full / t_fast:.0f}x)")


BENCHES = ["conv", "caffenet", "vgg16", "weights", "fcn8s", "deconvnet", "bilinear",
           "lenet_train"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--only", nargs="+", choices=BENCHES, help="run only these")
    args = ap.parse_args(argv)
    want = set(args.only or BENCHES)
    r = 3 if args.quick else 10
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        if "conv" in want:
            print("Convolution layers alone (batch 1 unless said):")
            bench_conv_layers(r, tmp)
        if "caffenet" in want:
            bench_net("CaffeNet 227^2 batch 1", caffenet(1), r, tmp)
            bench_net("CaffeNet 227^2 batch 8", caffenet(8), max(2, r // 2), tmp)
        if "vgg16" in want:
            bench_net("VGG16 224^2 batch 1", vgg16(1), max(2, r // 2), tmp)
            bench_net("VGG16 224^2 batch 8", vgg16(8), 1 if args.quick else 3, tmp)
        if "weights" in want:
            bench_weights_io(tmp, max(2, r // 2))
        if "fcn8s" in want:
            bench_net("FCN-8s 500^2 batch 1", fcn8s(), 1 if args.quick else 3, tmp,
                      surgery=bilinear_surgery)
        if "deconvnet" in want:
            bench_net("DeconvNet-shaped 224^2 batch 1", deconvnet(), 1 if args.quick else 3, tmp)
        if "bilinear" in want:
            bench_bilinear(r)
        if "lenet_train" in want:
            bench_lenet_train(20 if args.quick else 50)


def bench_lenet_train(iters):
    """The LeNet training step of tools/bench_train.py (batch 64, SGD)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_train import bench
    r = bench(64, iters)
    print(f"LeNet 28^2 train step batch 64 (SGD): {r['step_ms']:.2f} ms; layers "
          f"{r['layers_ms']:.2f} ms, update {r['update_ms']:.2f} ms, outside the "
          f"layers {100 * r['outside_fraction']:.1f}% of the step")


if __name__ == "__main__":
    main()
