"""Solver: pycaffe's training surface (net, test_nets, iter, step, solve,
restore, snapshot, add_callback) over Caffe's order of operations.

One iteration (Caffe's Solver::Step + SGDSolver::ApplyUpdate): clear param
diffs; test when due; on_start callbacks; iter_size forward-backward passes;
on_gradients_ready callbacks; rate from the lr policy; clip the global gradient
norm; per param: scale by 1/iter_size, add weight decay (L2 or L1), turn the
gradient into the update (the rule); subtract the updates; iter += 1; then a
snapshot when due or asked for by a signal.

Started by ``mpiexec -n N``, the solver is one of N data-parallel ranks
(distributed/parallel.py): right after the forward-backward passes the gradients
and the loss are averaged over the ranks; rank 0 alone tests, reports and
writes snapshots.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ..blob import Blob
from ..distributed.parallel import join_if_launched
from ..net.net import Net
from ..rng import set_random_seed
from . import config, health, nets, snapshots, testing
from .lr_policies import learning_rate
from .report import Reporter, SilentReporter
from .signals import NONE, SNAPSHOT, STOP, SignalActions
from .updates import rule_class

f32 = np.float32

#: a callback: called with no arguments
Callback = Callable[[], Any]


class Solver:
    """``Solver(solver_file or SolverParameter)``; the update rule is the
    class's ``type_name`` (SGDSolver, AdamSolver, ...) or else ``param.type``.
    ``source``: the file a SolverParameter came from (for relative paths).
    ``distributed``: None joins the other ranks when started by mpiexec with
    more than one rank; False trains alone regardless."""
    type_name: str | None = None

    def __init__(self, solver: str | os.PathLike[str] | Any, *, source: str | None = None,
                 allow_python_layers: bool | None = None,
                 continue_on_nan: bool = False,
                 distributed: bool | None = None) -> None:
        param, self.source = config.load_param(solver, source)
        self._base_dir = (os.path.dirname(os.path.abspath(self.source))
                          if self.source else None)
        self.param = param
        self.type = self.type_name or param.type
        rule = rule_class(self.type)
        config.check_param(param, rule, self.source)
        self.parallel = join_if_launched(distributed)
        seed = param.random_seed
        if self.parallel is not None:
            seed = self.parallel.common_seed(seed)
        if seed >= 0:
            set_random_seed(seed)
        self.net: Net = nets.build_train_net(param, self._base_dir, self.source,
                                        allow_python_layers)
        self.test_nets: list[Net] = nets.build_test_nets(param, self._base_dir, self.source,
                                              allow_python_layers)
        nets.load_weights([self.net] + self.test_nets, param, self._base_dir,
                          self.source)
        self.reporter = Reporter()
        if self.parallel is not None:
            self.parallel.attach(self.net.learnable_params)      # rank 0's weights
            set_random_seed(seed + self.parallel.rank)           # own dropout masks
            if self.parallel.rank != 0:
                self.reporter = SilentReporter()
        self.iter = 0
        self.current_step = 0
        self._rule = rule(param, [b.shape for b in self.net.learnable_params])
        self._callbacks: list[Tuple[Optional[Callback], Optional[Callback]]] = []
        self._action_function: Callable[[], str] | None = None
        self.requested_early_exit = False
        self.smoothed_loss = 0.0
        self._losses: list[np.float32] = []    # the window of average_loss losses
        self.test_results: list[dict[str, np.ndarray]] = []   # per test net: {output: mean values}
        self.test_results_iter: int | None = None              # the iteration they are from
        # Caffe goes on through a NaN loss; by default we stop there and say where
        self.continue_on_nan = continue_on_nan

    # -- pycaffe surface -------------------------------------------------------
    @property
    def history(self) -> list[np.ndarray]:
        """History arrays in Caffe's order (first blob of every param, then the
        second for AdaDelta / Adam)."""
        return self._rule.history

    @property
    def lr(self) -> float:
        """pycaffe's SGDSolver.lr: the rate for the current iteration (like
        Caffe's GetLearningRate, reading it advances a multistep counter)."""
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        return float(rate)

    def add_callback(self, on_start: Any,
                     on_gradients_ready: Callback | None = None) -> None:
        """Two callables, or one object with on_start / on_gradients_ready."""
        if on_gradients_ready is None and hasattr(on_start, "on_gradients_ready"):
            on_start, on_gradients_ready = (on_start.on_start,
                                            on_start.on_gradients_ready)
        self._callbacks.append((on_start, on_gradients_ready))

    def set_action_function(self, function: Callable[[], str] | None) -> None:
        """function() -> 'none' | 'stop' | 'snapshot', asked after each iteration."""
        self._action_function = function

    def share_weights(self, net: Net) -> None:
        net.share_with(self.net)

    # -- training ------------------------------------------------------------------
    def step(self, iters: int) -> None:
        """Run ``iters`` iterations (see the module docstring for one iteration).
        A non-finite loss or output raises NonFiniteError naming the first layer
        that produced one, unless ``continue_on_nan``; numpy's floating-point
        warnings are silenced, since this check reports what they would."""
        with np.errstate(all="ignore"):
            self._step(iters)

    def _step(self, iters: int) -> None:
        p = self.param
        stop_iter = self.iter + int(iters)
        self._losses, self.smoothed_loss = [], 0.0
        start_iter = self.iter
        last_display = time.perf_counter()
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            tested = bool(p.test_interval and self.iter % p.test_interval == 0 and (
                self.iter > 0 or p.test_initialization))
            if tested:
                self.test_all()
                if self.requested_early_exit:
                    break
            for on_start, _ in self._callbacks:
                if on_start:
                    on_start()
            loss = f32(0)
            for _ in range(p.iter_size):
                loss += f32(self.net.forward_backward())
            loss /= f32(p.iter_size)
            if self.parallel is not None:       # rank 0 may have tested: no time limit
                local = self._action_function() if self._action_function else NONE
                loss = self.parallel.exchange(self.net.learnable_params, loss, local,
                                              self.iter, patient=tested)
            if not health.outputs_finite(self.net, float(loss)):
                self._non_finite(float(loss))
            self._update_smoothed_loss(loss, start_iter)
            for _, on_ready in self._callbacks:
                if on_ready:
                    on_ready()
            display = p.display and self.iter % p.display == 0
            rate = self.apply_update()
            if display:
                now = time.perf_counter()
                self.reporter.train(self.iter - 1, self.smoothed_loss, rate,
                                    testing.outputs(self.net), now - last_display)
                last_display = now
            request = self._requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0) or request == SNAPSHOT:
                self.snapshot()
            if request == STOP:
                self.requested_early_exit = True
                break

    def _non_finite(self, loss: float) -> None:
        message = health.describe(self.net, self.iter, loss)
        if not self.continue_on_nan:
            raise health.NonFiniteError(
                message + ". Training stopped (continue_on_nan=True, or "
                "--continue_on_nan, goes on as Caffe does)", file=self.source)
        self.reporter.message("Warning: " + message)

    def apply_update(self) -> float:
        """Caffe's ApplyUpdate; returns the learning rate it used."""
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        params = self.net.learnable_params
        self._clip_gradients(params)
        p = self.param
        for i, blob in enumerate(params):
            diff = blob.diff
            if p.iter_size > 1:
                diff *= f32(1) / f32(p.iter_size)
            decay = f32(p.weight_decay) * f32(self.net.params_weight_decay[i])
            if decay:                                   # diff += decay * (w or sign w)
                scratch = self._rule.temp[i]
                if p.regularization_type == "L1":
                    np.sign(blob.data, out=scratch)
                    scratch *= decay
                else:
                    np.multiply(blob.data, decay, out=scratch)
                diff += scratch
            local_rate = rate * f32(self.net.params_lr[i])
            self._rule.compute(i, diff, local_rate, self.iter)
        for blob in params:
            data = blob.data
            data -= blob.diff
        self.iter += 1
        return float(rate)

    def _clip_gradients(self, params: list[Blob]) -> None:
        clip = f32(self.param.clip_gradients)
        if clip < 0:
            return
        sumsq = f32(0)
        for blob in params:
            d = blob.diff.ravel()
            sumsq += f32(np.dot(d, d))
        norm = f32(np.sqrt(sumsq))
        if norm > clip:
            scale = clip / norm
            self.reporter.message(f"Gradient clipping: scaling down gradients (L2 "
                                  f"norm {norm:g} > {clip:g}) by scale factor {scale:g}")
            for blob in params:
                blob.diff[...] *= scale

    def _update_smoothed_loss(self, loss: np.float32, start_iter: int) -> None:
        """Running mean of the last average_loss losses (Caffe's float arithmetic)."""
        n = self.param.average_loss
        if len(self._losses) < n:
            self._losses.append(loss)
            size = len(self._losses)
            self.smoothed_loss = float((f32(self.smoothed_loss) * f32(size - 1) + loss)
                                       / f32(size))
        else:
            idx = (self.iter - start_iter) % n
            self.smoothed_loss = float(f32(self.smoothed_loss) +
                                       (loss - self._losses[idx]) / f32(n))
            self._losses[idx] = loss

    def _requested_action(self) -> str:
        if self.parallel is not None:            # what the ranks agreed on
            return self.parallel.requested_action()
        return self._action_function() if self._action_function else NONE

    def solve(self, resume_file: str | os.PathLike[str] | None = None, *,
              sigint_effect: str | None = None, sighup_effect: str | None = None) -> None:
        """Train to max_iter (resuming from a .solverstate when given), then
        snapshot unless snapshot_after_train is false. With sigint_effect /
        sighup_effect ('stop', 'snapshot', 'none') those signals act as in
        Caffe's ``caffe train``; otherwise Ctrl-C raises KeyboardInterrupt."""
        self.requested_early_exit = False
        if resume_file:
            self.restore(resume_file)
        if sigint_effect is None and sighup_effect is None:
            self._solve()
            return
        actions = SignalActions(sigint_effect or STOP, sighup_effect or SNAPSHOT)
        previous = self._action_function
        self._action_function = actions.requested_action
        try:
            with actions.installed():
                self._solve()
        finally:
            self._action_function = previous

    def _solve(self) -> None:
        p = self.param
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            self.reporter.message("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            # a forward only, to show the loss of the final weights
            loss = f32(self.net.forward_range())
            self._update_smoothed_loss(loss, start_iter)
            self.reporter.message(f"Iteration {self.iter}, loss = {self.smoothed_loss:g}")
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        self.reporter.message("Optimization Done.")

    # -- testing and snapshots ---------------------------------------------------
    def test_all(self) -> list[dict[str, np.ndarray]]:
        """Run every test net (stops early when a STOP action arrives); under
        data-parallel training on rank 0 alone."""
        if self.parallel is not None and self.parallel.rank != 0:
            return []
        return testing.run_all(self)

    def test(self, net_id: int = 0) -> dict[str, np.ndarray]:
        """Mean of each test-net output over test_iter batches ({name: array})."""
        return testing.run_test(self, net_id)

    def snapshot(self) -> tuple[str, str]:
        """Write <prefix>_iter_N.caffemodel(.h5) and .solverstate(.h5), each
        atomically; returns both paths. Under data-parallel training every rank
        calls it at once: the ranks' weights are checked to be identical, then
        rank 0 alone writes."""
        if self.parallel is not None:
            self.parallel.check_identical(
                [b.data for b in self.net.learnable_params] + self.history, self.iter)
            if self.parallel.rank != 0:
                return snapshots.snapshot_paths(self)
        return snapshots.take_snapshot(self)

    def restore(self, state_file: str | os.PathLike[str]) -> None:
        """Continue from a .solverstate(.h5), ours or Caffe's."""
        snapshots.restore_snapshot(self, state_file)
