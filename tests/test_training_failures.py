"""No hidden failures in training: a loss that becomes NaN or infinite stops the
run where it happens, naming the first layer whose output went non-finite (or
goes on, as Caffe does, when asked); non-finite weights never replace a finite
snapshot; numpy's warnings do not leak; settings Caffe accepts silently but that
wreck training are refused up front, naming the field."""
import re
import warnings

import numpy as np
import pytest

import caffe_lite as caffe
from caffe_lite import cli
from caffe_lite.errors import SolverError
from caffe_lite.solver.health import NonFiniteError

NET = """name: "diverges"
layer { name: "data" type: "DummyData" top: "x" top: "t"
        dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
                           data_filler { type: "constant" value: 1 }
                           data_filler { type: "constant" value: 0 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "constant" value: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""

SOLVER = """net: "net.prototxt"
base_lr: %s
lr_policy: "fixed"
max_iter: 40
snapshot_prefix: "%s/run"
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "net.prototxt").write_text(NET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def solver_file(folder, lr, extra=""):
    path = folder / "solver.prototxt"
    path.write_text(SOLVER % (lr, folder) + extra)
    return path


def test_a_diverging_run_stops_naming_the_first_non_finite_layer(workdir):
    solver = caffe.get_solver(str(solver_file(workdir, "1e30")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # a leaked RuntimeWarning fails
        with pytest.raises(NonFiniteError) as info:
            solver.step(40)
    message = str(info.value)
    assert re.search(r"Iteration \d+: the loss is (nan|inf)", message), message
    named = re.search(r"first layer whose output is not finite is '(\w+)'", message)[1]
    finite = [np.isfinite(net_top).all() for net_top in
              (solver.net.blobs[t].data for t in ("x", "t", "y", "loss"))]
    producers = {"data": finite[0] and finite[1], "ip": finite[2], "loss": finite[3]}
    order = list(producers)
    assert not producers[named]                                  # it is non-finite
    assert all(producers[layer] for layer in order[:order.index(named)])  # earlier ones are not
    assert solver.iter < 40


def test_continue_on_nan_goes_on_as_caffe_does(workdir):
    solver = caffe.get_solver(str(solver_file(workdir, "1e30")), continue_on_nan=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solver.step(10)
    assert solver.iter == 10


def test_the_command_line_exits_non_zero_and_keeps_the_finite_snapshot(workdir, capsys):
    assert cli.main(["train", "-solver", str(solver_file(workdir, "0.001")), "-quiet"]) == 0
    good = workdir / "run_iter_40.caffemodel"
    before = good.read_bytes()
    capsys.readouterr()
    assert cli.main(["train", "-solver", str(solver_file(workdir, "1e30")), "-quiet"]) == 1
    err = capsys.readouterr().err
    assert "the loss is" in err and "first layer whose output is not finite" in err
    # going on through the NaNs, the final snapshot must not replace the good one
    assert cli.main(["train", "-solver", str(solver_file(workdir, "1e30")), "-quiet",
                     "--continue_on_nan"]) == 0
    assert good.read_bytes() == before
    assert (workdir / "run_iter_40.nonfinite.caffemodel").exists()
    weights = caffe.Net(str(workdir / "net.prototxt"), caffe.TEST, weights=str(good))
    assert np.isfinite(weights.params["ip"][0].data).all()


@pytest.mark.parametrize("lr, extra, field", [
    ("-0.01", "", "base_lr"),
    ("0.01", "momentum: -0.9\n", "momentum"),
    ("0.01", "lr_policy: \"step\"\nstepsize: 5\ngamma: 0\n", "gamma"),
    ("0.01", "lr_policy: \"multistep\"\ngamma: 0.1\nstepvalue: 10\nstepvalue: 5\n",
     "stepvalue"),
])
def test_settings_caffe_accepts_silently_are_refused_naming_the_field(workdir, lr, extra,
                                                                     field):
    text = (SOLVER % (lr, workdir)).replace('lr_policy: "fixed"\n', "") + extra
    if "lr_policy" not in text:
        text += 'lr_policy: "fixed"\n'
    (workdir / "solver.prototxt").write_text(text)
    with pytest.raises(SolverError, match=rf"^.*{field}: .*Caffe accepts") as info:
        caffe.get_solver(str(workdir / "solver.prototxt"))
    assert info.value.file.endswith("solver.prototxt")


def test_the_layer_where_nan_starts_is_named_not_the_loss(workdir):
    net = NET.replace('layer { name: "ip"', 'layer { name: "log" type: "Log" bottom: "x" '
                      'top: "logx" }\nlayer { name: "ip"').replace('bottom: "x" top: "y"',
                                                                  'bottom: "logx" top: "y"')
    net = net.replace("data_filler { type: \"constant\" value: 1 }",
                      "data_filler { type: \"constant\" value: -1 }", 1)
    (workdir / "net.prototxt").write_text(net)
    solver = caffe.get_solver(str(solver_file(workdir, "0.01")))
    with pytest.raises(NonFiniteError, match=r"Iteration 0: the loss is nan; the first "
                                             r"layer whose output is not finite is 'log' "
                                             r"\(Log\), top 'logx'"):
        solver.step(1)
