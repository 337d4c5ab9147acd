"""Scoring the test nets during training (Caffe's Solver::Test): the mean of
every output scalar over test_iter forward passes, with the train net's weights."""
import numpy as np

f32 = np.float32


def outputs(net):
    """{output blob name: its values, flattened (a copy)}."""
    return {name: net.blobs[name].data.ravel().copy() for name in net.outputs}


def run_test(solver, net_id):
    net = solver.test_nets[net_id]
    net.share_with(solver.net)
    iters = solver.param.test_iter[net_id]
    compute_loss = solver.param.test_compute_loss
    total, loss = None, f32(0)
    for _ in range(iters):
        if solver._handle_requests():
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
