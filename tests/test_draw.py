"""caffe.draw and ``caffe-lite draw``: layers are boxes with their key
parameters, blobs are ovals, edges carry output counts; phase filtering;
pictures through graphviz, and the FCN-8s and DeconvNet zoo nets drawn as
acyclic graphs (in-place layers do not fold back onto their blob)."""
import shutil

import pytest
from conftest import zoo_file

import caffe_lite as caffe
from caffe_lite import layers as L
from caffe_lite import params as P
from caffe_lite.cli import main as cli_main
from caffe_lite.errors import CaffeLiteError

pydot = pytest.importorskip("pydot", reason="pydot (the 'draw' extra) missing")
from caffe_lite import draw  # noqa: E402

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="graphviz's dot program is not installed")


def small_net():
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=8, source="db", backend=P.Data.LMDB, ntop=2,
                             include=dict(phase=caffe.TRAIN))
    n.conv1 = L.Convolution(n.data, num_output=20, kernel_size=5, stride=2, pad=1,
                            group=2, param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.AVE, kernel_size=3, stride=2)
    n.fc = L.InnerProduct(n.pool1, num_output=10)
    n.loss = L.SoftmaxWithLoss(n.fc, n.label, include=dict(phase=caffe.TRAIN))
    n.prob = L.Softmax(n.fc, exclude=dict(phase=caffe.TRAIN))
    net = n.to_proto()
    net.name = "small"
    return net


def _nodes(graph):
    return {n.get_name().strip('"'): n for n in graph.get_nodes()}


def _edges(graph):
    return [(e.get_source().strip('"'), e.get_destination().strip('"'),
             (e.get_label() or "").strip('"')) for e in graph.get_edges()]


def test_graph_layers_blobs_and_edges():
    graph = draw.get_pydot_graph(small_net(), "LR", display_lrm=True)
    nodes = _nodes(graph)
    conv = nodes["conv1_Convolution"]
    assert conv.get_shape() == "box" and conv.get("fillcolor").strip('"') == "#FF5050"
    label = conv.get_label().strip('"')
    assert label.split("\\n") == ["conv1", "(Convolution)", "kernel size: 5", "stride: 2",
                                  "pad: 1", "group: 2", "lr mult: 1.0, 2.0"]
    assert "(Pooling AVE)" in nodes["pool1_Pooling"].get_label()
    assert nodes["relu1_ReLU"].get("fillcolor").strip('"') == "#90EE90"
    assert nodes["conv1_blob"].get_shape() == "ellipse"
    edges = _edges(graph)
    assert ("conv1_Convolution", "conv1_blob", "20") in edges
    assert ("data_Data", "data_blob", "Batch 8") in edges
    # in place: relu1 reads conv1 and writes a second oval of it
    assert ("conv1_blob", "relu1_ReLU", "") in edges
    assert ("relu1_ReLU", "conv1_blob_2", "") in edges
    assert ("conv1_blob_2", "pool1_Pooling", "") in edges
    assert nodes["conv1_blob_2"].get_label().strip('"') == "conv1"


def test_phase_filter_and_vertical_labels():
    train = _nodes(draw.get_pydot_graph(small_net(), "TB", phase=caffe.TRAIN))
    test = _nodes(draw.get_pydot_graph(small_net(), "TB", phase=caffe.TEST))
    both = _nodes(draw.get_pydot_graph(small_net(), "TB"))
    assert "loss_SoftmaxWithLoss" in train and "prob_Softmax" not in train
    assert "prob_Softmax" in test and "data_Data" not in test
    assert {"loss_SoftmaxWithLoss", "prob_Softmax", "data_Data"} <= set(both)
    assert train["fc_InnerProduct"].get_label().strip('"') == "fc (InnerProduct)"


def test_dot_source_needs_no_graphviz(tmp_path):
    draw.draw_net_to_file(small_net(), str(tmp_path / "net.dot"))
    text = (tmp_path / "net.dot").read_text()
    assert text.startswith("digraph small {") and "rankdir=LR" in text


@needs_dot
def test_png_and_svg(tmp_path):
    draw.draw_net_to_file(small_net(), str(tmp_path / "net.png"), "TB")
    assert (tmp_path / "net.png").read_bytes().startswith(b"\x89PNG")
    svg = draw.draw_net(small_net(), "LR", ext="svg").decode()
    assert "<svg" in svg and "conv1" in svg
    with pytest.raises(CaffeLiteError, match="cannot draw to a '.xyz' file"):
        draw.draw_net(small_net(), "LR", ext="xyz")


def test_missing_dot_program_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CaffeLiteError, match="graphviz's 'dot' program"):
        draw.draw_net_to_file(small_net(), str(tmp_path / "net.png"))


def _assert_acyclic(graph):
    succ = {}
    for src, dst, _ in _edges(graph):
        succ.setdefault(src, []).append(dst)
    state = {}
    for start in succ:
        stack = [(start, iter(succ.get(start, ())))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                raise AssertionError(f"cycle through {child}")
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(succ.get(child, ()))))


@pytest.mark.parametrize("path", ["fcn/voc-fcn8s/deploy.prototxt",
                                  "deconvnet/DeconvNet_DeconvNet_inference_deploy.prototxt"])
def test_zoo_nets_draw_readably(path, tmp_path):
    from caffe_lite.formats import read_net_param
    source = zoo_file(path)
    net = read_net_param(str(source))
    graph = draw.get_pydot_graph(net, "TB")
    _assert_acyclic(graph)
    nodes = _nodes(graph)
    for layer in net.layer:
        assert f"{layer.name}_{layer.type}" in nodes
    if shutil.which("dot"):
        out = tmp_path / "net.svg"
        assert cli_main(["draw", str(source), str(out), "--rankdir", "TB"]) == 0
        svg = out.read_text()
        assert svg.count('class="node"') == len(nodes)


def test_cli_phase_option(tmp_path):
    (tmp_path / "net.prototxt").write_text(str(small_net()))
    out = tmp_path / "net.dot"
    assert cli_main(["draw", str(tmp_path / "net.prototxt"), str(out),
                     "--phase", "TEST", "--rankdir", "BT"]) == 0
    text = out.read_text()
    assert "prob_Softmax" in text and "loss_SoftmaxWithLoss" not in text
    assert "rankdir=BT" in text


def test_v1_net_parameter_is_upgraded_for_drawing():
    from google.protobuf import text_format

    from caffe_lite.proto import caffe_pb2
    net = text_format.Parse(zoo_file("vgg16/VGG_ILSVRC_16_layers_deploy.prototxt").read_text(),
                            caffe_pb2.NetParameter())
    assert len(net.layers) and not len(net.layer)         # pycaffe would draw nothing
    nodes = _nodes(draw.get_pydot_graph(net, "LR"))
    assert {"conv1_1_Convolution", "fc8_InnerProduct", "prob_Softmax"} <= set(nodes)
