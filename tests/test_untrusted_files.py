"""Untrusted files: a prototxt's Python layer imports nothing unless allowed, and
summary/draw open none of the files a net's data layers name."""
import sys

import pytest

import caffe_lite as caffe
from caffe_lite import cli
from caffe_lite.errors import UnknownLayerError
from caffe_lite.formats import parse_net_param


def test_a_python_layer_module_is_not_imported_when_not_allowed(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_layer.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "import caffe_lite\nclass Evil(caffe_lite.Layer):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("CAFFE_LITE_ALLOW_PYTHON_LAYERS", raising=False)
    net = parse_net_param('layer { name: "in" type: "Input" top: "x" '
                          'input_param { shape { dim: 1 } } }\n'
                          'layer { name: "evil" type: "Python" bottom: "x" top: "y" '
                          'python_param { module: "evil_layer" layer: "Evil" } }')
    with pytest.raises(UnknownLayerError, match="allow_python_layers"):
        caffe.Net(net, caffe.TEST)
    assert not marker.exists() and "evil_layer" not in sys.modules


def test_summary_of_caffenet_train_val_opens_no_database(zoo_path, tmp_path,
                                                         monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)            # the LMDB and mean paths resolve to nothing
    path = str(zoo_path("bvlc_reference_caffenet/train_val.prototxt"))
    assert cli.main(["summary", path]) == 0
    out = capsys.readouterr().out
    assert "50x3x227x227" in out and "60,965,224 parameters" in out
    assert cli.main(["summary", path, "--phase", "TRAIN"]) == 0
    assert "256x3x227x227" in capsys.readouterr().out


def test_summary_asks_for_shapes_that_only_the_files_know(tmp_path, capsys):
    from conftest import ROOT
    lenet = str(ROOT / "models/lenet/train_val.prototxt")
    assert cli.main(["summary", lenet]) == 1
    assert "--input-shape" in capsys.readouterr().err
    assert cli.main(["summary", lenet, "--input-shape", "5,1,16,16", "5"]) == 0
    assert "5x20x12x12" in capsys.readouterr().out


def test_draw_opens_no_data_file(zoo_path, tmp_path, monkeypatch):
    pytest.importorskip("pydot", reason="pydot (the 'draw' extra) missing")
    monkeypatch.chdir(tmp_path)
    path = str(zoo_path("bvlc_reference_caffenet/train_val.prototxt"))
    assert cli.main(["draw", path, str(tmp_path / "net.dot")]) == 0
    assert (tmp_path / "net.dot").read_text().startswith("digraph")
