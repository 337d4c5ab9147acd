"""Solvers on a tiny quadratic net against the loop references in ref_solvers.py:
every update rule and lr policy, regularization, clipping, iter_size; plus test
nets, callbacks, smoothed loss, solve() and the pycaffe surface."""
import numpy as np
import pytest
from ref_solvers import RefSolver, ref_rate
from solver_testnet import initial_params, solver_param, targets

import caffe_lite as caffe
from caffe_lite.errors import SolverError
from caffe_lite.solver.lr_policies import learning_rate

CONFIGS = {
    "sgd_momentum_l2": 'type: "SGD" momentum: 0.9 weight_decay: 0.01',
    "sgd_l1_step": 'type: "SGD" momentum: 0.5 weight_decay: 0.02 '
                   'regularization_type: "L1" lr_policy: "step" gamma: 0.5 stepsize: 3',
    "sgd_clip_iter_size": 'type: "SGD" momentum: 0.9 clip_gradients: 0.5 iter_size: 2',
    "nesterov_exp": 'type: "Nesterov" momentum: 0.8 weight_decay: 0.001 '
                    'lr_policy: "exp" gamma: 0.9',
    "adagrad_inv": 'type: "AdaGrad" base_lr: 0.3 lr_policy: "inv" gamma: 0.1 power: 0.75',
    "rmsprop_sigmoid": 'type: "RMSProp" rms_decay: 0.9 lr_policy: "sigmoid" '
                       'gamma: 0.5 stepsize: 4 base_lr: 0.05',
    "adadelta_multistep": 'type: "AdaDelta" momentum: 0.95 delta: 1e-6 base_lr: 1 '
                          'lr_policy: "multistep" gamma: 0.5 stepvalue: 2 stepvalue: 5',
    "adam_poly": 'type: "Adam" momentum: 0.9 momentum2: 0.999 base_lr: 0.05 '
                 'lr_policy: "poly" power: 1.5 max_iter: 12 weight_decay: 0.01',
}


def ref_config(param):
    keys = ("type", "base_lr", "lr_policy", "gamma", "power", "stepsize", "max_iter",
            "momentum", "momentum2", "delta", "rms_decay", "weight_decay",
            "regularization_type", "clip_gradients", "iter_size")
    cfg = {k: getattr(param, k) for k in keys}
    cfg["stepvalue"] = list(param.stepvalue)
    return cfg


def quadratic_grads(params, it):
    t = [float(x) for x in targets(it)]
    return [[w - x for w, x in zip(params[0], t[:12])],
            [b - x for b, x in zip(params[1], t[12:])]]


def train(solver, iters):
    for _ in range(iters):
        solver.net.blobs["t"].data[...] = targets(solver.iter)
        solver.step(1)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_update_rules_match_reference(name):
    param = solver_param(CONFIGS[name])
    solver = caffe.get_solver(param)
    assert type(solver).__name__ == param.type + "Solver"
    ref = RefSolver(ref_config(param), [p.ravel() for p in initial_params()],
                    lr_mults=[1, 2], decay_mults=[1, 0])
    for it in range(8):
        train(solver, 1)
        ref.step(quadratic_grads)
        for k, blob in enumerate(solver.net.learnable_params):
            np.testing.assert_allclose(blob.data.ravel(), ref.params[k], rtol=2e-4,
                                       atol=2e-6, err_msg=f"{name} param {k} iter {it}")
    for k, h in enumerate(solver.history):
        np.testing.assert_allclose(h.ravel(), ref.history[k], rtol=2e-4, atol=1e-6,
                                   err_msg=f"{name} history {k}")
    assert solver.current_step == ref.current_step


@pytest.mark.parametrize("text", [
    'lr_policy: "fixed"', 'lr_policy: "step" gamma: 0.3 stepsize: 4',
    'lr_policy: "exp" gamma: 0.97', 'lr_policy: "inv" gamma: 0.01 power: 0.75',
    'lr_policy: "multistep" gamma: 0.1 stepvalue: 3 stepvalue: 7 stepvalue: 8',
    'lr_policy: "poly" power: 2 max_iter: 30', 'lr_policy: "sigmoid" gamma: 0.2 stepsize: 9'])
def test_lr_policies_match_formulas(text):
    param = solver_param(text + " base_lr: 0.01")
    cfg = ref_config(param)
    step = ref_step = 0
    for it in range(25):
        rate, step = learning_rate(param, it, step)
        expected, ref_step = ref_rate(cfg, it, ref_step)
        assert rate.dtype == np.float32
        assert rate == pytest.approx(expected, rel=1e-6), it
        assert step == ref_step


def test_lr_mult_zero_freezes_and_decay_mult_scales():
    param = solver_param('type: "SGD" weight_decay: 0.5', lr_mults=(0, 1),
                         decay_mults=(1, 3))
    solver = caffe.get_solver(param)
    ref = RefSolver(ref_config(param), [p.ravel() for p in initial_params()],
                    lr_mults=[0, 1], decay_mults=[1, 3])
    w0 = solver.net.learnable_params[0].data.copy()
    train(solver, 3)
    for _ in range(3):
        ref.step(quadratic_grads)
    np.testing.assert_array_equal(solver.net.learnable_params[0].data, w0)
    np.testing.assert_allclose(solver.net.learnable_params[1].data, ref.params[1],
                               rtol=1e-5)


def test_callbacks_run_in_order_around_the_gradients():
    solver = caffe.get_solver(solver_param('type: "SGD"'))
    seen = []
    solver.add_callback(lambda: seen.append(("start", solver.iter)),
                        lambda: seen.append(("ready", solver.iter, float(
                            np.abs(solver.net.learnable_params[0].diff).sum()) > 0)))
    solver.step(2)
    assert seen == [("start", 0), ("ready", 0, True), ("start", 1), ("ready", 1, True)]


def test_smoothed_loss_averages_the_last_average_loss_losses():
    solver = caffe.get_solver(solver_param('type: "SGD" average_loss: 3'))
    losses = []
    for _ in range(6):
        solver.net.blobs["t"].data[...] = targets(solver.iter)
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    # step(1) restarts the window each call, as Caffe's Step does
    assert solver.smoothed_loss == pytest.approx(losses[-1], rel=1e-6)
    solver.step(4)        # inputs unchanged: compare with a fresh mean
    assert np.isfinite(solver.smoothed_loss)


def test_test_nets_interval_initialization_and_loss():
    param = solver_param('type: "SGD" test_interval: 3 test_compute_loss: true',
                         with_test=True)
    solver = caffe.get_solver(param)
    assert len(solver.test_nets) == 1
    calls = []
    original = solver.test

    def spy(net_id=0):
        calls.append(solver.iter)
        return original(net_id)
    solver.test = spy
    solver.step(7)
    assert calls == [0, 3, 6]
    # the test net shares the train net's weights
    np.testing.assert_array_equal(solver.test_nets[0].params["quad"][0].data,
                                  solver.net.params["quad"][0].data)
    scores = solver.test_nets and solver.test(0)
    assert set(scores) == {"loss"}
    param.test_initialization = False
    solver2 = caffe.get_solver(param)
    calls.clear()
    solver2.test = lambda net_id=0: calls.append(solver2.iter) or {}
    solver2.step(4)
    assert calls == [3]


def test_solve_runs_to_max_iter_and_snapshots_after_training(tmp_path):
    param = solver_param(f'type: "Adam" momentum: 0.9 max_iter: 5 display: 2 '
                         f'snapshot_prefix: "{tmp_path}/quad"')
    solver = caffe.get_solver(param)
    events = []
    solver.reporter.train = lambda it, loss, lr, outputs, s: events.append((it, lr))
    solver.solve()
    assert solver.iter == 5
    assert [e[0] for e in events] == [0, 2, 4]
    assert (tmp_path / "quad_iter_5.caffemodel").exists()
    assert (tmp_path / "quad_iter_5.solverstate").exists()


def test_sgd_solver_class_forces_its_rule():
    solver = caffe.SGDSolver(solver_param('type: "Adam"'))
    assert solver.type == "SGD" and len(solver.history) == 2
    assert len(caffe.AdamSolver(solver_param()).history) == 4


def test_lr_property_reads_like_pycaffe():
    solver = caffe.get_solver(solver_param('lr_policy: "step" gamma: 0.5 stepsize: 2'))
    assert solver.lr == pytest.approx(0.1)
    solver.step(2)
    assert solver.lr == pytest.approx(0.05)


@pytest.mark.parametrize("text, message", [
    ('type: "Adamax"', "unknown solver type 'Adamax'"),
    ('lr_policy: "cosine"', "unknown lr_policy 'cosine'"),
    ('type: "AdaGrad" momentum: 0.9', "momentum cannot be used with AdaGrad"),
    ('type: "RMSProp" momentum: 0.5', "momentum cannot be used with RMSProp"),
    ('lr_policy: "step"', "stepsize > 0"),
    ('regularization_type: "L3"', "regularization_type"),
    ('snapshot: 10 snapshot_prefix: "/nonexistent-dir-xyz/snap"', "does not exist"),
    ('snapshot_prefix: "/nonexistent-dir-xyz/snap"', "directory '/nonexistent-dir-xyz'"),
])
def test_bad_solver_definitions_raise_clear_errors(text, message):
    with pytest.raises(SolverError, match=message):
        caffe.get_solver(solver_param(text))


def test_missing_net_file_is_a_clear_error(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "no_such_net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\n')
    with pytest.raises(SolverError, match="net file 'no_such_net.prototxt' does not "
                                          "exist") as info:
        caffe.get_solver(str(path))
    assert str(path) in str(info.value)
    with pytest.raises(SolverError, match="solver file does not exist"):
        caffe.get_solver(str(tmp_path / "missing_solver.prototxt"))


def test_net_path_resolves_next_to_the_solver_file(tmp_path, monkeypatch):
    from solver_testnet import net_text
    (tmp_path / "net.prototxt").write_text(net_text())
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nbase_lr: 0.1\nlr_policy: "fixed"\ntype: "Nesterov"\n')
    monkeypatch.chdir("/")
    solver = caffe.get_solver(str(tmp_path / "solver.prototxt"))
    assert isinstance(solver, caffe.NesterovSolver)
    # snapshot_prefix defaults to the solver file's path without extension
    assert solver.param.snapshot_prefix == str(tmp_path / "solver")
