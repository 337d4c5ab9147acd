"""Scoring the test nets during training (Caffe's Solver::TestAll and Test): the
mean of every output scalar over test_iter forward passes, with the train net's
weights. Between test batches the pending signal actions are served, as in Caffe's
test loop; a STOP ends testing."""
import numpy as np

from .signals import NONE, SNAPSHOT, STOP

f32 = np.float32


def outputs(net):
    """{output blob name: its values, flattened (a copy)}."""
    return {name: net.blobs[name].data.ravel().copy() for name in net.outputs}


def run_all(solver):
    """Every test net in turn into solver.test_results (stops at a STOP action)."""
    solver.test_results = []
    solver.test_results_iter = solver.iter
    for net_id in range(len(solver.test_nets)):
        if solver.requested_early_exit:
            break
        solver.test_results.append(solver.test(net_id))
    return solver.test_results


def handle_requests(solver):
    """Caffe's test loop: serve every pending action; True to stop testing.
    Under data-parallel training rank 0 tests alone, so the ranks' agreed
    actions wait for the next iteration."""
    if getattr(solver, "parallel", None) is not None:
        return solver.requested_early_exit
    request = solver._requested_action()
    while request != NONE:
        if request == SNAPSHOT:
            solver.snapshot()
        elif request == STOP:
            solver.requested_early_exit = True
        request = solver._requested_action()
    return solver.requested_early_exit


def run_test(solver, net_id):
    net = solver.test_nets[net_id]
    net.share_with(solver.net)
    iters = solver.param.test_iter[net_id]
    compute_loss = solver.param.test_compute_loss
    total, loss = None, f32(0)
    for _ in range(iters):
        if handle_requests(solver):
            solver.reporter.message("Test interrupted.")
            return {}
        batch_loss = f32(net.forward_range())
        if compute_loss:
            loss += batch_loss
        scores = outputs(net)
        if total is None:
            total = {k: v.astype(f32) for k, v in scores.items()}
        else:
            for k, v in scores.items():
                total[k] += v                      # float sums, as Caffe's
    means = {k: v / f32(iters) for k, v in (total or {}).items()}
    mean_loss = float(loss / f32(iters)) if compute_loss else None
    solver.reporter.test(solver.iter, net_id, means, mean_loss)
    return means
