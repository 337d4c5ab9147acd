"""Net summary: per-layer shapes, parameter counts, MACs and memory.

The zoo totals are computed here from the architectures' published layer
lists with the MAC formulas (conv: output count x C_in/group x kh x kw; fc:
inputs x outputs), independently of the summary code, and stated as numbers."""
import pytest
from conftest import zoo_file
from layer_case import assert_registered
from ref_pycaffe import conv_out, pool_out

import caffe_lite as caffe
from caffe_lite.cli import main as cli_main
from caffe_lite.commands.summary import summarize_file


def _need(*types):
    assert_registered(types)


def caffenet_costs():
    """(MACs, params) for one 227x227 image through CaffeNet."""
    macs = params = 0
    size, channels = 227, 3
    # (out channels, kernel, stride, pad, group, pool after)
    for out, k, s, p, g, pool in ((96, 11, 4, 0, 1, True), (256, 5, 1, 2, 2, True),
                                  (384, 3, 1, 1, 1, False), (384, 3, 1, 1, 2, False),
                                  (256, 3, 1, 1, 2, True)):
        size = conv_out(size, k, s, p)
        macs += out * size * size * (channels // g) * k * k
        params += out * (channels // g) * k * k + out
        channels = out
        if pool:
            size = pool_out(size, 3, 2)
    inputs = channels * size * size                    # 256 x 6 x 6
    for out in (4096, 4096, 1000):
        macs += inputs * out
        params += inputs * out + out
        inputs = out
    return macs, params


def vgg16_costs():
    macs = params = 0
    size, channels = 224, 3
    for out, repeat in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(repeat):
            macs += out * size * size * channels * 9
            params += out * channels * 9 + out
            channels = out
        size //= 2
    inputs = channels * size * size                    # 512 x 7 x 7
    for out in (4096, 4096, 1000):
        macs += inputs * out
        params += inputs * out + out
        inputs = out
    return macs, params


def resnet50_costs():
    """Caffe's ResNet-50: convs (only conv1 has a bias), each followed by
    BatchNorm (mean, variance, factor) and Scale (gamma, beta); the stride sits
    on the first 1x1 conv of a stage."""
    macs = params = 0

    def conv(cin, cout, k, out_size, bias=False):
        nonlocal macs, params
        macs += cout * out_size * out_size * cin * k * k
        params += cout * cin * k * k + (2 * cout + 1) + 2 * cout + (cout if bias else 0)

    size = conv_out(224, 7, 2, 3)                      # 112
    conv(3, 64, 7, size, bias=True)
    size = pool_out(size, 3, 2)                        # 56
    channels = 64
    for mid, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            out_size = conv_out(size, 1, s)
            if b == 0:
                conv(channels, 4 * mid, 1, out_size)    # projection shortcut
            conv(channels, mid, 1, out_size)
            conv(mid, mid, 3, out_size)
            conv(mid, 4 * mid, 1, out_size)
            channels, size = 4 * mid, out_size
    macs += channels * 1000
    params += channels * 1000 + 1000
    return macs, params


ZOO = [("bvlc_reference_caffenet/deploy.prototxt", (1, 3, 227, 227), caffenet_costs,
        724_406_816, 60_965_224, ("Convolution", "ReLU", "Pooling", "LRN",
                                  "InnerProduct", "Dropout", "Softmax")),
       pytest.param("vgg16/VGG_ILSVRC_16_layers_deploy.prototxt", (1, 3, 224, 224),
                    vgg16_costs, 15_470_264_320, 138_357_544,
                    ("Convolution", "ReLU", "Pooling", "InnerProduct", "Dropout",
                     "Softmax"), marks=pytest.mark.slow),     # fills 138M weights
       ("resnet/ResNet-50-deploy.prototxt", (1, 3, 224, 224), resnet50_costs,
        3_857_973_248, 25_610_269, ("Convolution", "BatchNorm", "Scale", "ReLU",
                                    "Pooling", "Eltwise", "InnerProduct", "Softmax"))]


@pytest.mark.parametrize("path,shape,costs,macs,params,types", ZOO,
                         ids=["caffenet", "vgg16", "resnet50"])
def test_zoo_totals(path, shape, costs, macs, params, types):
    assert costs() == (macs, params)               # the stated totals are the formula's
    _need(*types)
    summary = summarize_file(zoo_file(path), input_shapes=[shape])
    assert (summary.macs, summary.params) == (macs, params)
    assert summary.layers[-1].top_shapes == [(1, 1000)]


def test_caffenet_batch_from_the_prototxt():
    _need(*ZOO[0][-1])
    summary = summarize_file(zoo_file(ZOO[0][0]))         # deploy batch of 10
    assert summary.macs == 10 * 724_406_816
    conv1 = summary.layers[1]
    assert (conv1.name, conv1.top_shapes, conv1.params) == \
        ("conv1", [(10, 96, 55, 55)], 96 * 3 * 121 + 96)


NET = '''
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 group: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up"
        param { name: "shared" } convolution_param { num_output: 6 kernel_size: 4 stride: 2 group: 2 bias_term: false } }
layer { name: "up2" type: "Deconvolution" bottom: "conv" top: "up2"
        param { name: "shared" } convolution_param { num_output: 6 kernel_size: 4 stride: 2 group: 2 bias_term: false } }
layer { name: "fc" type: "InnerProduct" bottom: "up" top: "fc" inner_product_param { num_output: 5 } }
'''


def test_counts_memory_inplace_splits_and_shared_params(tmp_path):
    _need("Convolution", "ReLU", "Deconvolution", "InnerProduct")
    (tmp_path / "tiny.prototxt").write_text(NET)
    net = caffe.Net(str(tmp_path / "tiny.prototxt"), caffe.TEST)
    summary = net.summary()
    rows = {r.name: r for r in summary.layers}
    assert list(rows) == ["data", "conv", "relu", "up", "up2", "fc"]   # no auto Split
    assert rows["conv"].top_shapes == [(2, 4, 6, 6)]
    assert rows["conv"].macs == 2 * 4 * 6 * 6 * (3 * 3 * 3)
    assert rows["up"].top_shapes == [(2, 6, 14, 14)]
    assert rows["up"].macs == (2 * 4 * 6 * 6) * (6 // 2 * 4 * 4)     # bottom count
    assert rows["up"].params == rows["up2"].params == 4 * 3 * 16
    assert rows["fc"].macs == 2 * (6 * 14 * 14) * 5
    assert rows["relu"].memory_forward == rows["relu"].memory_training == 0
    assert rows["conv"].memory_forward == 2 * 4 * 6 * 6 * 4
    assert rows["conv"].memory_training == 2 * rows["conv"].memory_forward
    assert rows["data"].memory_training == rows["data"].memory_forward == 2 * 3 * 64 * 4
    assert summary.params == (4 * 27 + 4) + 4 * 3 * 16 + (6 * 14 * 14 * 5 + 5)
    assert summary.macs == sum(r.macs for r in summary.layers)
    assert summary.memory_forward == sum(r.memory_forward for r in summary.layers)


def test_cli_prints_table_and_totals(tmp_path, capsys):
    _need("Convolution", "ReLU", "Deconvolution", "InnerProduct")
    (tmp_path / "tiny.prototxt").write_text(NET)
    assert cli_main(["summary", str(tmp_path / "tiny.prototxt"),
                     "--input-shape", "1,3,10,10"]) == 0
    out = capsys.readouterr().out
    assert "1x4x8x8" in out and "total" in out
    macs = 4 * 8 * 8 * 27 + 2 * (4 * 8 * 8) * (3 * 16) + (6 * 18 * 18) * 5
    assert f"{macs:,} multiply-accumulates" in out
    assert cli_main(["summary", str(tmp_path / "tiny.prototxt"),
                     "--input-shape", "1,3,10,10", "2,2"]) == 1
    assert "1 input(s): data" in capsys.readouterr().err


def test_ssd_annotated_data_takes_its_shapes_from_resize_param(zoo_path, capsys):
    from caffe_lite import cli
    path = str(zoo_path("mobilenet_ssd/voc_MobileNetSSD_test.prototxt"))
    assert cli.main(["summary", path]) == 0
    out = capsys.readouterr().out
    assert "8x3x300x300 1x1x1x8" in out           # batch 8, resize 300x300, the boxes
