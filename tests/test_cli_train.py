"""The train / test / time / classify subcommands, run in-process through
cli.main, on the tiny quadratic net (and on models/lenet when its data layer
exists, marked slow)."""
import os
import re

import numpy as np
import pytest
from conftest import ROOT
from layer_case import assert_registered
from solver_testnet import net_text

import caffe_lite as caffe
from caffe_lite import cli

SOLVER = """net: "net.prototxt"
type: "SGD"
base_lr: 0.1
momentum: 0.5
lr_policy: "fixed"
display: 2
max_iter: %d
snapshot_prefix: "%s/quad"
"""


@pytest.fixture
def solver_file(tmp_path):
    (tmp_path / "net.prototxt").write_text(net_text())
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVER % (6, tmp_path))
    return path


def test_train_logs_plain_lines_and_writes_weights(solver_file, tmp_path, capsys):
    assert cli.main(["train", "--solver", str(solver_file)]) == 0
    out, err = capsys.readouterr()
    iters = [int(m) for m in re.findall(r"^Iteration (\d+), loss = [\d.e+-]+, lr = 0.1, "
                                        r"elapsed [\d.]+ s$", err, re.M)]
    assert iters == [0, 2, 4]
    assert "Trained quadratic for 6 iterations" in out
    assert f"Weights: {tmp_path}/quad_iter_6.caffemodel" in out
    assert (tmp_path / "quad_iter_6.solverstate").exists()


def test_caffe_single_dash_flags_quiet_and_resume(solver_file, tmp_path, capsys):
    assert cli.main(["train", "-solver", str(solver_file), "-quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "6 iterations" in out
    solver_file.write_text(SOLVER % (9, tmp_path))
    assert cli.main(["train", "-solver", str(solver_file), "-quiet",
                     "-snapshot", str(tmp_path / "quad_iter_6.solverstate")]) == 0
    assert (tmp_path / "quad_iter_9.caffemodel").exists()


def test_finetune_from_weights(solver_file, tmp_path, capsys):
    cli.main(["train", "--solver", str(solver_file), "--quiet"])
    trained = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST,
                        weights=str(tmp_path / "quad_iter_6.caffemodel"))
    solver_file.write_text(SOLVER.replace("base_lr: 0.1", "base_lr: 0") % (1, tmp_path))
    assert cli.main(["train", "--solver", str(solver_file), "--quiet",
                     "--weights", str(tmp_path / "quad_iter_6.caffemodel")]) == 0
    tuned = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST,
                      weights=str(tmp_path / "quad_iter_1.caffemodel"))
    np.testing.assert_array_equal(tuned.params["quad"][0].data,
                                  trained.params["quad"][0].data)


def test_train_errors(solver_file, tmp_path, capsys):
    assert cli.main(["train", "--solver", str(solver_file), "--weights", "a",
                     "--snapshot", "b"]) == 1           # not both, as Caffe
    assert "not both" in capsys.readouterr().err
    assert cli.main(["train", "--solver", str(tmp_path / "nope.prototxt")]) == 1
    assert "solver file does not exist" in capsys.readouterr().err
    solver_file.write_text(SOLVER.replace("SGD", "Lion") % (2, tmp_path))
    assert cli.main(["train", "--solver", str(solver_file)]) == 1
    assert "unknown solver type 'Lion'" in capsys.readouterr().err


def test_plot_writes_a_png_or_names_the_extra(solver_file, tmp_path, capsys):
    png = tmp_path / "curve.png"
    code = cli.main(["train", "--solver", str(solver_file), "--quiet",
                     "--plot", str(png)])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert code == 1
        assert "caffe-lite[plot]" in capsys.readouterr().err
        return
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_test_command_prints_means(solver_file, tmp_path, capsys):
    cli.main(["train", "--solver", str(solver_file), "--quiet"])
    capsys.readouterr()
    assert cli.main(["test", "--model", str(tmp_path / "net.prototxt"), "--weights",
                     str(tmp_path / "quad_iter_6.caffemodel"), "--iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^Batch \d, loss = ", out, re.M)) == 3
    assert re.search(r"^loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)$", out, re.M)


def test_time_command_prints_caffes_table(solver_file, tmp_path, capsys):
    assert cli.main(["time", "-model", str(tmp_path / "net.prototxt"),
                     "-iterations", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^ +quad\tforward: [\d.e+-]+ ms\.$", out, re.M)
    assert re.search(r"^ +quad\tbackward: [\d.e+-]+ ms\.$", out, re.M)
    assert "Average Forward-Backward:" in out




@pytest.mark.slow
def test_lenet_example_trains_to_97_percent(tmp_path, capsys, monkeypatch):
    assert_registered(["HDF5Data"], "(models/lenet reads its digits with it)")
    pytest.importorskip("h5py")
    monkeypatch.chdir(ROOT)
    solver = ROOT / "models" / "lenet" / "solver.prototxt"
    text = solver.read_text().replace('snapshot_prefix: "models/lenet/lenet"',
                                      f'snapshot_prefix: "{tmp_path}/lenet"')
    (tmp_path / "solver.prototxt").write_text(text)
    assert cli.main(["train", "--solver", str(tmp_path / "solver.prototxt"),
                     "--quiet"]) == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"accuracy = ([\d.]+)", out).group(1))
    assert accuracy >= 0.97
    weights = re.search(r"Weights: (\S+)", out).group(1)
    for digit in ("0", "3", "7"):             # the README's classify command
        assert cli.main(["classify", f"models/lenet/examples/digit_{digit}.pgm",
                         "--center-only", "--invert", "--raw-scale", "1", "--model",
                         "models/lenet/deploy.prototxt", "--weights", weights]) == 0
        scores = capsys.readouterr().out.split("Scores from 'prob'")[1]
        assert scores.splitlines()[1].split()[1] == digit
    assert os.path.exists(weights)
