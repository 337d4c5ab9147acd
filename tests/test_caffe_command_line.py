"""Caffe's ``caffe`` command line: every flag with its spelling on train, test
and time, -gpu on the CPU, device_query, time on a deploy net, and the final
test figures of train coming from the final weights."""
import re

import pytest
from solver_testnet import net_text

from caffe_lite import cli

SOLVER = """net: "net.prototxt"
type: "SGD"
base_lr: 0.1
lr_policy: "fixed"
max_iter: 5
snapshot_prefix: "%s/quad"
"""

DEPLOY = """name: "deploy"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "prob" type: "Softmax" bottom: "conv" top: "prob" }
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "net.prototxt").write_text(net_text())
    (tmp_path / "solver.prototxt").write_text(SOLVER % tmp_path)
    (tmp_path / "deploy.prototxt").write_text(DEPLOY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


CAFFE_FLAGS = ["-gpu", "all", "-level", "0", "-stage", "", "-iterations", "2",
               "-phase", "TRAIN", "-sigint_effect", "stop", "-sighup_effect", "snapshot"]


def test_train_takes_every_caffe_flag_and_says_gpu_is_cpu(workdir, capsys):
    assert cli.main(["train", "-solver", "solver.prototxt", "-model", "net.prototxt",
                     "--quiet"] + CAFFE_FLAGS) == 0
    out, err = capsys.readouterr()
    assert err.count("runs on the CPU") == 1 and "-gpu all is ignored" in err
    assert "for 5 iterations" in out


def test_train_splits_comma_separated_weights(workdir, capsys):
    cli.main(["train", "-solver", "solver.prototxt", "-quiet"])
    first = workdir / "quad_iter_5.caffemodel"
    second = workdir / "copy.caffemodel"
    second.write_bytes(first.read_bytes())
    assert cli.main(["train", "-solver", "solver.prototxt", "-quiet",
                     "-weights", f"{first},{second}"]) == 0


def test_snapshot_and_weights_together_is_refused(workdir, capsys):
    assert cli.main(["train", "-solver", "solver.prototxt", "-weights", "a.caffemodel",
                     "-snapshot", "b.solverstate"]) == 1
    assert "not both" in capsys.readouterr().err


def test_test_and_time_take_every_caffe_flag(workdir, capsys):
    cli.main(["train", "-solver", "solver.prototxt", "-quiet"])
    capsys.readouterr()
    assert cli.main(["test", "-model", "net.prototxt", "-weights", "quad_iter_5.caffemodel",
                     "-solver", "solver.prototxt", "-quiet"] + CAFFE_FLAGS) == 0
    assert cli.main(["time", "-model", "net.prototxt", "-weights",
                     "quad_iter_5.caffemodel", "-solver", "x"] + CAFFE_FLAGS) == 0
    out = capsys.readouterr().out
    assert "Average Forward-Backward" in out


def test_time_times_backward_of_a_deploy_net_with_progress(workdir, capsys):
    assert cli.main(["time", "-model", "deploy.prototxt", "-iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r"^Iteration: \d forward-backward time: [\d.e+-]+ ms\.$",
                          out, re.M)) == 3
    conv_backward = float(re.search(r"^ +conv\tbackward: ([\d.e+-]+) ms\.$", out,
                                    re.M).group(1))
    assert conv_backward > 0                # Caffe calls each layer's Backward


def test_device_query_names_the_cpu_and_blas(capsys):
    for spelling in ("device_query", "device-query"):
        assert cli.main([spelling]) == 0
        out = capsys.readouterr().out
        assert re.search(r"^Device: +CPU", out, re.M)
        assert re.search(r"^BLAS: +\S+", out, re.M)
        assert re.search(r"^BLAS threads: +\S+", out, re.M)


def test_final_test_figures_come_from_the_final_weights(workdir, capsys):
    # test every 2 iterations, max_iter 5: Caffe's last test was at iteration 4
    text = net_text()
    (workdir / "solver.prototxt").write_text(
        (SOLVER % workdir).replace('net: "net.prototxt"',
                                   'net: "net.prototxt"\ntest_iter: 1\ntest_interval: 2'))
    (workdir / "net.prototxt").write_text(text)
    assert cli.main(["train", "-solver", "solver.prototxt", "-quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Test net #0 \(iteration 5\): ", out, re.M), out


def test_plot_without_matplotlib_fails_before_training(workdir, capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import fails
    assert cli.main(["train", "-solver", "solver.prototxt", "--plot", "c.png"]) == 1
    assert "pip install 'caffe-lite[plot]'" in capsys.readouterr().err
    assert not (workdir / "quad_iter_5.caffemodel").exists()
