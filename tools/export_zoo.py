"""Export the zoo's models to ONNX and verify each in onnxruntime (issue 15).

    python tools/export_zoo.py [--only NAME ...] [--keep DIR] [--list]

Models with a caffemodel use their real weights; deploy prototxts without one get
seeded random weights (caffe_lite.onnx.seeded_weights). Train/test prototxts
(the ResNet-cifar nets) are turned into deploy nets here: the data layer becomes
an Input of one 3x32x32 image, Accuracy goes, SoftmaxWithLoss becomes Softmax.
yufacedetectnet is exported without DetectionOutput (NMS has no faithful ONNX
mapping); its outputs are then the box predictions, scores and priors.
Prints a table: model, ONNX nodes, max relative difference, seconds (build the
net + export + verify; the machine is shared, so the times are rough).
Reads ../shared/zoo beside the repository; a missing file is reported, not fatal.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import caffe_lite as caffe  # noqa: E402
from caffe_lite.errors import CaffeLiteError  # noqa: E402
from caffe_lite.formats import read_net_param  # noqa: E402
from caffe_lite.net.passes import filter_by_state  # noqa: E402
from caffe_lite.net.summary import data_layers_as_inputs  # noqa: E402
from caffe_lite.onnx import export, seeded_weights  # noqa: E402
from caffe_lite.proto import caffe_pb2  # noqa: E402

ZOO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "zoo")

# name, prototxt, caffemodel (None: seeded random weights)
MODELS = [
    ("LeNet", "lenet_mnist/lenet.prototxt", "lenet_mnist/lenet_iter_10000.caffemodel"),
    ("cifar10_quick", "bvlc_examples/cifar10/cifar10_quick.prototxt",
     "cifar10_quick/cifar10_quick_iter_5000.caffemodel"),
    ("MTCNN P-Net", "mtcnn_kpzhang93/det1.prototxt", "mtcnn_kpzhang93/det1.caffemodel"),
    ("MTCNN R-Net", "mtcnn_kpzhang93/det2.prototxt", "mtcnn_kpzhang93/det2.caffemodel"),
    ("MTCNN O-Net", "mtcnn_kpzhang93/det3.prototxt", "mtcnn_kpzhang93/det3.caffemodel"),
    ("MTCNN L-Net", "mtcnn_kpzhang93/det4.prototxt", "mtcnn_kpzhang93/det4.caffemodel"),
    ("MTCNN 12net", "mtcnn_congweilin/12net_12net.prototxt",
     "mtcnn_congweilin/12net_12net-cls-only.caffemodel"),
    ("MTCNN 24net", "mtcnn_congweilin/24net_24net.prototxt",
     "mtcnn_congweilin/24net_24net-only-cls.caffemodel"),
    ("MTCNN 48net", "mtcnn_congweilin/48net_48net.prototxt",
     "mtcnn_congweilin/48net_48net-only-cls.caffemodel"),
    ("FSRCNN", "fsrcnn/FSRCNN_mat.prototxt", "fsrcnn/snapshot_iter_2546000.caffemodel"),
    ("ESPCN", "espcn/ESPCN_mat.prototxt", "espcn/espcn_iter_5303500.caffemodel"),
    ("ResNet-20 cifar", "resnet20_cifar10/res20_cifar_train_test.prototxt",
     "resnet20_cifar10/cifar10_res20_iter_64000.caffemodel"),
    ("ResNet-56 cifar", "resnet56_cifar10/res56_cifar_train_test.prototxt",
     "resnet56_cifar10/ResNet_56.caffemodel"),
    ("PlainNet-20 cifar", "plainnet20_cifar10/plain20_cifar_train_test.prototxt",
     "plainnet20_cifar10/PlainNet_20.caffemodel"),
    ("yufacedetectnet v1", "yufacedetectnet/yufacedetectnet-open-v1.prototxt",
     "yufacedetectnet/yufacedetectnet-open-v1.caffemodel"),
    ("yufacedetectnet v2", "yufacedetectnet/yufacedetectnet-open-v2.prototxt",
     "yufacedetectnet/yufacedetectnet-open-v2.caffemodel"),
    ("CaffeNet", "bvlc_reference_caffenet/deploy.prototxt", None),
    ("VGG16", "vgg16/VGG_ILSVRC_16_layers_deploy.prototxt", None),
    ("GoogLeNet", "bvlc_googlenet/deploy.prototxt", None),
    ("ResNet-50", "resnet/ResNet-50-deploy.prototxt", None),
    ("SqueezeNet 1.0", "squeezenet/v1.0/deploy.prototxt", None),
    ("SqueezeNet 1.1", "squeezenet/v1.1/deploy.prototxt", None),
    ("FCN-8s", "fcn/voc-fcn8s/deploy.prototxt", None),
    ("SegNet", "segnet/Example_Models_segnet_pascal.prototxt", None),
    ("DeconvNet", "deconvnet/DeconvNet_DeconvNet_inference_deploy.prototxt", None),
    ("ENet", "enet/enet_deploy_final.prototxt", None),
    ("PSPNet-50", "pspnet/pspnet50_ADE20K_473.prototxt", None),
]


def deploy_param(path):
    """The TEST net of ``path`` as a deploy net: Input layers, no label, no losses."""
    param = filter_by_state(read_net_param(path), caffe_pb2.NetState(phase=caffe_pb2.TEST))
    labels = set()
    for lp in param.layer:
        if lp.type in ("Data", "ImageData", "HDF5Data") and len(lp.top) > 1:
            labels.update(lp.top[1:])
    data_layers_as_inputs(param)
    kept = []
    for lp in param.layer:
        if lp.type == "Input":
            del lp.top[1:]
            del lp.input_param.shape[:]
            lp.input_param.shape.add().dim.extend([1, 3, 32, 32])
        elif lp.type == "Accuracy":
            continue
        elif lp.type == "SoftmaxWithLoss":
            lp.type, lp.top[0] = "Softmax", "prob"
            del lp.bottom[1:]
            lp.ClearField("loss_weight")
            lp.ClearField("loss_param")
        elif labels & set(lp.bottom):
            raise CaffeLiteError(f"layer '{lp.name}' reads the label", file=path)
        kept.append(lp)
    del param.layer[:]
    param.layer.extend(kept)
    return param


def without_detection_output(path):
    param = read_net_param(path)
    kept = [lp for lp in param.layer if lp.type != "DetectionOutput"]
    del param.layer[:]
    param.layer.extend(kept)
    return param


def build(proto, weights):
    path = os.path.join(ZOO, proto)
    if "train_test" in proto:
        source = deploy_param(path)
    elif "yufacedetectnet" in proto:
        source = without_detection_output(path)
    else:
        source = path
    net = caffe.Net(source, caffe.TEST,
                    weights=os.path.join(ZOO, weights) if weights else None)
    if weights is None:
        seeded_weights(net, seed=0)
    return net


def run(names, keep):
    rows = []
    out_dir = keep or tempfile.mkdtemp(prefix="export_zoo_")
    print("| model | weights | input | ONNX nodes | max rel diff | seconds |")
    print("|---|---|---|---:|---:|---:|")
    for name, proto, weights in MODELS:
        if names and name not in names:
            continue
        missing = [f for f in (proto, weights) if f and not os.path.exists(
            os.path.join(ZOO, f))]
        if missing:
            print(f"| {name} | missing {', '.join(missing)} | | | | |")
            continue
        start = time.perf_counter()
        target = os.path.join(out_dir, name.replace(" ", "_") + ".onnx")
        try:
            net = build(proto, weights)
            result = export(net, target)
            import onnx
            nodes = len(onnx.load(target, load_external_data=False).graph.node)
            shape = "x".join(str(d) for d in net.blobs[net.inputs[0]].shape)
            cells = (f"{nodes} | {result.max_rel:.1e}"
                     f"{'' if result.ok else ' FAILED'}")
        except CaffeLiteError as exc:
            shape, cells = "", f"error: {exc} |"
        seconds = time.perf_counter() - start
        print(f"| {name} | {'real' if weights else 'seeded random'} | {shape} | {cells} "
              f"| {seconds:.1f} |", flush=True)
        rows.append(name)
        if not keep and os.path.exists(target):
            os.remove(target)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="model names (see --list)")
    parser.add_argument("--keep", help="write the .onnx files into this directory")
    parser.add_argument("--list", action="store_true", help="list the models and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, proto, weights in MODELS:
            print(f"{name:<20} {proto}  {weights or '(seeded random weights)'}")
        return 0
    run(set(args.only or ()), args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
