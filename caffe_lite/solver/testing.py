"""Scoring the test nets during training (Caffe's Solver::TestAll and Test): the
mean of every output scalar over test_iter forward passes, with the train net's
weights. Between test batches the pending signal actions are served, as in Caffe's
test loop; a STOP ends testing. With eval_type "detection" (the SSD fork) every
output is DetectionEvaluate's marks, and the score is their mAP (ap_version);
with "segmentation" (ParseNet's fork) every output is ParseEvaluate's per-label
counts, summed and scored as pixel accuracy, label accuracy and IoU."""
import numpy as np

from ..errors import SolverError
from ..ops.detection_eval import AP_VERSIONS, mean_average_precision
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


def check_eval_type(param, source=None):
    """eval_type and ap_version as the fork's solver accepts them."""
    if param.eval_type not in ("classification", "detection", "segmentation"):
        raise SolverError(f"unknown eval_type '{param.eval_type}' (classification, "
                          f"detection or segmentation)", file=source)
    if param.eval_type == "detection" and param.ap_version not in AP_VERSIONS:
        raise SolverError(f"unknown ap_version '{param.ap_version}' "
                          f"({', '.join(AP_VERSIONS)})", file=source)


def run_test(solver, net_id):
    if solver.param.eval_type == "detection":
        return run_detection_test(solver, net_id)
    if solver.param.eval_type == "segmentation":
        return run_segmentation_test(solver, net_id)
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


def _gather_outputs(solver, net_id, width, eval_type, expected):
    """Run test net ``net_id`` for its test_iter batches: ({output: [a copy of each
    batch's array]}, mean loss or None), or None when a stop request interrupts.
    Every output's last axis must be ``width`` (the evaluation layer's format)."""
    net = solver.test_nets[net_id]
    net.share_with(solver.net)
    iters = solver.param.test_iter[net_id]
    outputs = {name: [] for name in net.outputs}
    loss = f32(0)
    for _ in range(iters):
        if handle_requests(solver):
            solver.reporter.message("Test interrupted.")
            return None
        loss += f32(net.forward_range())
        for name in net.outputs:
            data = net.blobs[name].data
            if data.shape[-1] != width:
                raise SolverError(f"eval_type {eval_type}: test net output '{name}' must "
                                  f"be {expected}, got {data.shape}")
            outputs[name].append(data.copy())
    mean_loss = float(loss / f32(iters)) if solver.param.test_compute_loss else None
    return outputs, mean_loss


def run_detection_test(solver, net_id):
    """The fork's TestDetection: each output's (1, 1, K, 5) marks gathered over
    test_iter batches, scored as {output: [mAP]} (per-class AP in the log with
    show_per_class_result)."""
    gathered = _gather_outputs(solver, net_id, 5, "detection",
                               "DetectionEvaluate's (1, 1, K, 5)")
    if gathered is None:
        return {}
    outputs, mean_loss = gathered
    marks = {name: [b.reshape(-1, 5) for b in batches] for name, batches in outputs.items()}
    scores = {}
    for name, results in marks.items():
        try:
            mean_ap, aps = mean_average_precision(results, solver.param.ap_version)
        except ValueError as exc:
            raise SolverError(f"test net output '{name}': {exc}") from None
        scores[name] = np.array([mean_ap], f32)
        if solver.param.show_per_class_result:
            for label, ap in sorted(aps.items()):
                solver.reporter.message(f"class{label}: {float(ap):.6g}")
    solver.reporter.test(solver.iter, net_id, scores, mean_loss)
    return scores


SEGMENTATION_SCORES = ("per_pixel_acc", "per_label_acc", "iou_acc", "weighted_iou_acc")


def segmentation_scores(stats):
    """ParseNet's solver scores from summed (L, 3) counts (right, labelled,
    predicted), in float32 and in the fork's order: pixel accuracy; mean accuracy
    over the labels present; IoU summed over the labels labelled or predicted but
    divided, as in the fork, by the number of labels present; IoU weighted by
    pixels. None when no pixel is labelled."""
    stats = np.asarray(stats, f32).reshape(-1, 3)
    right_total = total = f32(0)
    for right, labelled, _ in stats:
        right_total, total = f32(right_total + right), f32(total + labelled)
    if not total > 0:
        return None
    label_acc = iou_acc = weighted = f32(0)
    valid = 0
    for right, labelled, predicted in stats:
        if labelled != 0:
            label_acc = f32(label_acc + f32(right / labelled))
            valid += 1
        if labelled + predicted != 0:
            iou = f32(right / f32(f32(labelled + predicted) - right))
            iou_acc = f32(iou_acc + iou)
            weighted = f32(weighted + f32(f32(iou * labelled) / total))
    return (f32(right_total / total), f32(label_acc / f32(valid)),
            f32(iou_acc / f32(valid)), weighted)


def run_segmentation_test(solver, net_id):
    """The fork's TestSegmentation: each output's counts summed over test_iter
    batches; {'<output> <score>': [value]} for the four scores."""
    gathered = _gather_outputs(solver, net_id, 3, "segmentation",
                               "ParseEvaluate's (1, L, 1, 3)")
    if gathered is None:
        return {}
    outputs, mean_loss = gathered
    sums = {}
    for name, batches in outputs.items():
        for batch in batches:                           # float32 sums, in order
            sums[name] = sums.get(name, 0) + batch.astype(f32)
    scores = {}
    for name, stats in sums.items():
        values = segmentation_scores(stats)
        if values is None:
            solver.reporter.message(f"Test net output {name}: no valid labels!")
            continue
        for what, value in zip(SEGMENTATION_SCORES, values):
            scores[f"{name} {what}"] = np.array([value], f32)
    solver.reporter.test(solver.iter, net_id, scores, mean_loss)
    return scores
