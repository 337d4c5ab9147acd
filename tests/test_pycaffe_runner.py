"""Unmodified pycaffe programs: ``caffe-lite pycaffe script.py args`` and
``python -m caffe_lite.pycaffe`` make ``import caffe`` give caffe_lite, pass the
script its own arguments untouched, and allow Python layers; a plain import of
caffe_lite does not allow them, and says how to."""
import os
import subprocess
import sys
import textwrap

import pytest

import caffe_lite as caffe
from caffe_lite.errors import UnknownLayerError
from caffe_lite.formats import parse_net_param

SCRIPT = textwrap.dedent('''
    import sys
    import caffe
    import caffe.io
    from caffe import layers as L, params as P
    from caffe.proto import caffe_pb2
    from caffe.coord_map import crop

    class Double(caffe.Layer):
        def setup(self, bottom, top):
            pass
        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)
        def forward(self, bottom, top):
            top[0].data[...] = 2 * bottom[0].data
        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = 2 * top[0].diff

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.out = L.Python(n.data, module="__main__", layer="Double")
    with open("net.prototxt", "w") as f:
        f.write(str(n.to_proto()))
    net = caffe.Net("net.prototxt", caffe.TEST)
    print("out", net.forward(data=[[1.5, 2.0]])["out"].tolist())
    print("argv", sys.argv[1:])
    print("names", caffe.__name__, caffe.io.__name__, caffe_pb2.TEST == caffe.TEST)
''')


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "program.py"
    path.write_text(SCRIPT)
    return path


def _run(args, cwd):
    env = dict(os.environ)
    env.pop("CAFFE_LITE_ALLOW_PYTHON_LAYERS", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("launcher", [["caffe_lite", "pycaffe"], ["caffe_lite.pycaffe"]])
def test_an_unmodified_script_runs_with_its_arguments(launcher, script, tmp_path):
    result = _run(launcher + [str(script), "-solver", "x.prototxt", "--flag"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "out [[3.0, 4.0]]" in lines
    assert "argv ['-solver', 'x.prototxt', '--flag']" in lines
    assert "names caffe_lite caffe_lite.pycaffe.io True" in lines


def test_a_module_runs_with_dash_m(tmp_path):
    (tmp_path / "pycaffe_user.py").write_text(
        "import sys, caffe\nprint('module', sys.argv[1:], caffe.layer_type_list()[:1])\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "caffe_lite", "pycaffe", "-m",
                             "pycaffe_user", "a"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "module ['a'] ['AbsVal']" in result.stdout


def test_the_script_exit_code_is_kept(tmp_path):
    (tmp_path / "fails.py").write_text("import sys\nsys.exit(3)\n")
    assert _run(["caffe_lite", "pycaffe", "fails.py"], tmp_path).returncode == 3


PYTHON_NET = '''
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }
layer { name: "py" type: "Python" bottom: "data" top: "out"
        python_param { module: "no_such_module" layer: "X" } }
'''


def test_python_layers_are_refused_by_default_naming_both_ways(monkeypatch):
    monkeypatch.delenv("CAFFE_LITE_ALLOW_PYTHON_LAYERS", raising=False)
    with pytest.raises(UnknownLayerError) as info:
        caffe.Net(parse_net_param(PYTHON_NET), caffe.TEST)
    message = str(info.value)
    assert "allow_python_layers=True" in message
    assert "CAFFE_LITE_ALLOW_PYTHON_LAYERS=1" in message


def test_the_environment_variable_allows_them(monkeypatch):
    monkeypatch.setenv("CAFFE_LITE_ALLOW_PYTHON_LAYERS", "1")
    with pytest.raises(caffe.CaffeLiteError) as info:      # allowed: now it imports
        caffe.Net(parse_net_param(PYTHON_NET), caffe.TEST)
    assert "no_such_module" in str(info.value)
    assert not isinstance(info.value, UnknownLayerError)
    with pytest.raises(UnknownLayerError):                  # an explicit no wins
        caffe.Net(parse_net_param(PYTHON_NET), caffe.TEST, allow_python_layers=False)


# -- bad input that a new user hit -------------------------------------------------
def test_weights_given_where_the_level_goes_is_explained(tmp_path):
    from conftest import ROOT
    with pytest.raises(caffe.CaffeLiteError, match=r"level \(an int\).*weights="):
        caffe.Net(str(ROOT / "models/lenet/deploy.prototxt"), caffe.TEST, "w.caffemodel")


def test_forward_with_an_unknown_blob_name_names_it_before_running():
    from conftest import ROOT

    from caffe_lite.errors import NetError
    net = caffe.Net(str(ROOT / "models/lenet/deploy.prototxt"), caffe.TEST)
    with pytest.raises(NetError, match=r"no blob named 'nope'.*blobs: data, conv1"):
        net.forward(blobs=["nope"])
    with pytest.raises(NetError, match=r"no blob named 'nope'"):
        net.backward(diffs=["nope"])


def test_a_missing_extra_names_the_file_that_needed_it(monkeypatch, tmp_path):
    from caffe_lite.errors import DependencyError
    from caffe_lite.formats import read_weights
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(DependencyError, match=r"w\.caffemodel\.h5.*caffe-lite\[hdf5\]"):
        read_weights(str(tmp_path / "w.caffemodel.h5"))


def test_an_fcn_style_pycaffe_flow_runs_unmodified(tmp_path):
    """models/fcn_pycaffe: NetSpec with coord_map.crop, bilinear surgery on the
    Deconvolution weights, a Python data layer, solver.step and scoring, written
    for pycaffe and run by the runner; it must learn beyond chance."""
    import re
    import shutil

    from conftest import ROOT
    folder = tmp_path / "fcn"
    shutil.copytree(ROOT / "models" / "fcn_pycaffe", folder)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("CAFFE_LITE_ALLOW_PYTHON_LAYERS", None)
    result = subprocess.run([sys.executable, "-m", "caffe_lite", "pycaffe", "solve.py",
                             "40"], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    accuracy, chance = map(float, re.search(
        r"pixel accuracy ([\d.]+) chance ([\d.]+)", result.stdout).groups())
    assert accuracy > chance + 0.03, result.stdout
    train = (folder / "train.prototxt").read_text()
    # by hand: pad 20 shifts by 19, the pools and fc3 give (x + 19) / 4 - 1.375,
    # the k8 s4 deconvolution 4y + 3.5: x + 17
    assert 'type: "Crop"' in train and "offset: 17" in train


def test_the_notebook_line_installs_caffe(tmp_path):
    code = ("import caffe_lite.pycaffe; caffe_lite.pycaffe.install_as_caffe()\n"
            "import os, caffe, caffe.io\nfrom caffe.proto import caffe_pb2\n"
            "print(caffe.__name__, os.environ['CAFFE_LITE_ALLOW_PYTHON_LAYERS'])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["caffe_lite", "1"]
