"""Upgrades of old net/solver definitions: upstream's test pairs, the zoo's V0/V1
files, the fork spellings, and the `caffe-lite upgrade` command."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, ZOO, zoo_file
from google.protobuf import text_format

from caffe_lite.cli import main as cli_main
from caffe_lite.errors import PrototxtError
from caffe_lite.formats import (
    parse_net_param,
    parse_solver_param,
    read_net_param,
    read_solver_param,
    read_weights,
    upgrade,
    upgrade_net,
)
from caffe_lite.proto import caffe_pb2

TESTS = "bvlc_upgrade_tests"


def _parse(path, message_class=caffe_pb2.NetParameter):
    return text_format.Parse(Path(path).read_text(), message_class())


def _zoo_files(folder):
    found = sorted((ZOO / folder).glob("*.prototxt")) if ZOO.exists() else []
    return [p.name for p in found] or ["<zoo absent>"]


# -- upstream's test_upgrade_proto.cpp pairs ------------------------------------------
@pytest.mark.parametrize("case", ["TestSimple", "TestImageNet", "TestTwoTops"])
def test_padding_layers_fold_into_conv(case):
    net = _parse(zoo_file(f"{TESTS}/PaddingLayerUpgradeTest.{case}.input_proto.prototxt"))
    assert upgrade.upgrade_v0_padding(net)
    expected = f"{TESTS}/PaddingLayerUpgradeTest.{case}.expected_output_proto.prototxt"
    assert net == _parse(zoo_file(expected))


@pytest.mark.parametrize("case", ["TestSimple", "TestImageNet"])
def test_v0_to_v1_and_v2(case):
    source = zoo_file(f"{TESTS}/NetUpgradeTest.{case}.v0_proto.prototxt")
    net = _parse(source)
    assert upgrade.upgrade_v0_to_v1(net)
    assert net == _parse(zoo_file(f"{TESTS}/NetUpgradeTest.{case}.expected_v1_proto.prototxt"))
    assert upgrade.upgrade_v1_to_v2(net)
    v2 = _parse(zoo_file(f"{TESTS}/NetUpgradeTest.{case}.expected_v2_proto.prototxt"))
    assert net == v2
    full = _parse(source)
    assert upgrade_net(full) and full == v2


def test_v0_all_params():
    net = _parse(zoo_file(f"{TESTS}/NetUpgradeTest.TestAllParams.input_proto.prototxt"))
    upgrade.upgrade_v0_to_v1(net)
    assert net == _parse(zoo_file(
        f"{TESTS}/NetUpgradeTest.TestAllParams.expected_output_proto.prototxt"))


@pytest.mark.parametrize("kind", ["SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA",
                                  "ADAM"])
def test_solver_type(kind):
    name = f"{TESTS}/SolverTypeUpgradeTest.TestSimple.{kind}"
    solver = _parse(zoo_file(f"{name}.input_proto.prototxt"), caffe_pb2.SolverParameter)
    assert upgrade.upgrade_solver(solver)
    assert solver == _parse(zoo_file(f"{name}.expected_output_proto.prototxt"),
                            caffe_pb2.SolverParameter)


# -- the zoo's old files load ----------------------------------------------------------
@pytest.mark.parametrize("folder", ["bvlc_v0_format", "bvlc_v1_format"])
def test_old_format_files_load(folder):
    for name in _zoo_files(folder):
        path = zoo_file(f"{folder}/{name}")
        if "solver" in name:
            assert read_solver_param(path).type
            continue
        net = read_net_param(path)
        assert len(net.layer) and not len(net.layers) and not len(net.input)
        assert all(layer.type for layer in net.layer), name


def test_v0_net_inputs_become_input_layer():
    net = read_net_param(zoo_file("bvlc_v0_format/lenet_lenet.prototxt"))
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert list(first.input_param.shape[0].dim) == [64, 1, 28, 28]


@pytest.mark.parametrize("name", ["train.prototxt", "test.prototxt"])
def test_deeplab_v1_hole_and_fork_types(name):
    """A V1 fork file: its ${VAR} placeholders filled in, it loads with dilation."""
    text = re.sub(r"\$\{NUM_LABELS\}", "21", zoo_file(f"deeplab_v1_largefov/{name}").read_text())
    net = parse_net_param(re.sub(r"\$\{\w+\}", "x", text), name)
    assert {"Interp", "ImageSegData"} <= {layer.type for layer in net.layer}
    dilations = [list(l.convolution_param.dilation) for l in net.layer
                 if l.type == "Convolution"]
    assert [2] in dilations and [12] in dilations
    assert not any(l.convolution_param.HasField("hole") for l in net.layer)


# -- fork spellings ----------------------------------------------------------------------
V1_FORK_NET = """
layers { name: "unpool" type: UNPOOLING bottom: "a" bottom: "m" top: "u"
         unpooling_param { unpool: MAX kernel_size: 2 stride: 2 unpool_size: 14 } }
layers { name: "bn" type: BN bottom: "u" top: "b" bn_param { bn_mode: INFERENCE } }
layers { name: "crop" type: CROP bottom: "b" bottom: "a" top: "c" }
layers { name: "interp" type: INTERP bottom: "c" top: "i" interp_param { zoom_factor: 8 } }
layers { name: "conv" type: CONVOLUTION bottom: "i" top: "o"
         convolution_param { num_output: 2 kernel_size: 3 hole: 4 } }
"""


def test_v1_fork_types_and_params_carry_over():
    net = parse_net_param(V1_FORK_NET)
    assert [l.type for l in net.layer] == ["Unpooling", "BN", "GeometricCrop", "Interp",
                                           "Convolution"]
    assert net.layer[0].unpooling_param.unpool_size == 14
    assert net.layer[1].bn_param.bn_mode == caffe_pb2.BNParameter.INFERENCE
    assert net.layer[3].interp_param.zoom_factor == 8
    conv = net.layer[4].convolution_param
    assert list(conv.dilation) == [4] and not conv.HasField("hole")


def test_v1_crop_without_params_is_the_geometric_crop_and_says_so():
    import caffe_lite as caffe
    from caffe_lite.errors import UnknownLayerError
    deploy = ('input: "a" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4\n'
              'layers { name: "crop" type: CROP bottom: "a" bottom: "a" top: "c" }')
    with pytest.raises(UnknownLayerError, match=r"'crop'.*early fork.*crop_param"):
        caffe.Net(parse_net_param(deploy), caffe.TEST)


@pytest.mark.parametrize("ceil_mode, round_mode", [("false", "FLOOR"), ("true", "CEIL")])
def test_pooling_ceil_mode(ceil_mode, round_mode):
    net = parse_net_param(f'layer {{ name: "p" type: "Pooling" bottom: "x" top: "y" '
                          f'pooling_param {{ kernel_size: 2 ceil_mode: {ceil_mode} }} }}')
    pool = net.layer[0].pooling_param
    assert not pool.HasField("ceil_mode")
    assert pool.round_mode == caffe_pb2.PoolingParameter.RoundMode.Value(round_mode)


def test_hole_h_w_and_conflicts():
    net = parse_net_param('layer { name: "c" type: "Convolution" convolution_param { '
                          'num_output: 1 kernel_size: 3 hole_h: 2 hole_w: 3 } }')
    assert list(net.layer[0].convolution_param.dilation) == [2, 3]
    with pytest.raises(PrototxtError, match="hole"):
        parse_net_param('layer { name: "c" type: "Convolution" convolution_param { '
                        'hole: 2 dilation: 2 } }', "x.prototxt")
    with pytest.raises(PrototxtError, match="ceil_mode"):
        parse_net_param('layer { name: "p" type: "Pooling" pooling_param { '
                        'ceil_mode: false round_mode: CEIL } }')


# -- the other steps ----------------------------------------------------------------------
def test_v1_param_specs_and_transform():
    net = parse_net_param("""
        layers { name: "d" type: DATA top: "x"
                 data_param { source: "db" scale: 0.5 mean_file: "m" crop_size: 3 mirror: true } }
        layers { name: "c" type: CONVOLUTION bottom: "x" top: "y" blobs_lr: 1 blobs_lr: 2
                 weight_decay: 1 weight_decay: 0 param: "w" blob_share_mode: PERMISSIVE
                 include { phase: TRAIN } loss_weight: 0.5 }""")
    data, conv = net.layer
    assert data.transform_param.scale == 0.5 and data.transform_param.mirror
    assert data.transform_param.mean_file == "m" and data.transform_param.crop_size == 3
    assert not data.data_param.HasField("scale") and data.data_param.source == "db"
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv.param] == [("w", 1, 1), ("", 2, 0)]
    assert conv.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert conv.include[0].phase == caffe_pb2.TRAIN and list(conv.loss_weight) == [0.5]


def test_input_shape_and_bare_input():
    net = parse_net_param('input: "a" input: "b" input_shape { dim: 1 dim: 2 } '
                          'input_shape { dim: 3 } layer { name: "r" type: "ReLU" }')
    assert [l.name for l in net.layer] == ["input", "r"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 2], [3]]
    bare = parse_net_param('input: "a" layer { name: "r" type: "ReLU" }')
    assert [l.name for l in bare.layer] == ["r"] and not len(bare.input)
    with pytest.raises(PrototxtError, match="input_dim"):
        parse_net_param('input: "a" input_dim: 1 input_dim: 2')


def test_batch_norm_param_specs_zeroed():
    net = parse_net_param('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } '
                          'param { lr_mult: 1 } param { lr_mult: 1 name: "s" } }')
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3
    assert net.layer[0].param[2].name == "s"


def test_changed_flag_and_mixed_formats():
    current = caffe_pb2.NetParameter()
    text_format.Parse('layer { name: "r" type: "ReLU" }', current)
    assert upgrade_net(current) is False
    with pytest.raises(PrototxtError, match="mixes V1") as info:
        parse_net_param('layer { name: "a" } layers { name: "b" type: RELU }', "m.prototxt")
    assert "m.prototxt" in str(info.value)


def test_solver_both_types_is_an_error():
    with pytest.raises(PrototxtError, match="solver_type"):
        parse_solver_param('solver_type: ADAM type: "Adam"', "s.prototxt")


def test_solver_paths_kept_and_snapshot_prefix(tmp_path):
    path = tmp_path / "my_solver.prototxt"
    path.write_text('net: "../nets/x.prototxt" solver_type: NESTEROV')
    solver = read_solver_param(path)
    assert solver.net == "../nets/x.prototxt" and solver.type == "Nesterov"
    assert solver.snapshot_prefix == str(tmp_path / "my_solver")


# -- the command and Caffe-named tools ------------------------------------------------------
def test_upgrade_command_text_and_binary(tmp_path, capsys):
    out = tmp_path / "net.prototxt"
    assert cli_main(["upgrade", str(zoo_file("bvlc_v0_format/lenet_lenet.prototxt")),
                     str(out)]) == 0
    assert read_net_param(out) == read_net_param(zoo_file("bvlc_v0_format/lenet_lenet.prototxt"))
    model = tmp_path / "w.caffemodel"
    assert cli_main(["upgrade", str(zoo_file("cifar10_quick/cifar10_quick_iter_5000.caffemodel")),
                     str(model)]) == 0
    upgraded = caffe_pb2.NetParameter.FromString(model.read_bytes())
    assert len(upgraded.layer) and not len(upgraded.layers)
    assert [l.name for l in read_weights(model)][:2] == ["cifar", "conv1"]
    assert cli_main(["upgrade", str(model), str(tmp_path / "again.caffemodel")]) == 0
    assert "already in the latest format" in capsys.readouterr().err


def test_upgrade_command_reports_problems(tmp_path, capsys):
    source = zoo_file("bvlc_v0_format/pascal-finetuning_pascal_finetune_train.prototxt")
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layers { layer { name: "r" type: "relu" num_output: 3 } }')
    assert cli_main(["upgrade", str(bad), str(tmp_path / "o.prototxt")]) == 1
    assert "num_output" in capsys.readouterr().err
    assert cli_main(["upgrade", str(source), str(tmp_path / "p.prototxt")]) == 0
    solver = tmp_path / "s.prototxt"
    solver.write_text("solver_type: ADAGRAD")
    assert cli_main(["upgrade", "--format", "solver", str(solver), str(solver)]) == 0
    assert 'type: "AdaGrad"' in solver.read_text()


def test_tool_script_runs(tmp_path):
    out = tmp_path / "o.prototxt"
    source = zoo_file("bvlc_v1_format/mnist_lenet.prototxt")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "upgrade_net_proto_text"),
                             str(source), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert read_net_param(out) == read_net_param(source)
