"""Train and score the tiny FCN the way FCN's solve.py does, with pycaffe:

    caffe-lite pycaffe solve.py [iterations]      (from this folder)

It writes the nets with NetSpec (net.py), sets the upsampling weights by net
surgery (surgery.py), steps the solver and scores the held-out batch by
per-pixel accuracy and mean IU from a confusion matrix (fast_hist)."""
import sys

import caffe
import net
import numpy as np
import surgery


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


def score(solver, n_cl=3):
    test = solver.test_nets[0]
    test.forward()
    hist = fast_hist(test.blobs['label'].data[:, 0].flatten(),
                     test.blobs['score'].data.argmax(1).flatten(), n_cl)
    acc = np.diag(hist).sum() / hist.sum()
    iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return acc, np.nanmean(iu), test.blobs['label'].data


SOLVER = """train_net: "train.prototxt"
test_net: "val.prototxt"
test_iter: 1
test_interval: 999999
display: 20
average_loss: 20
lr_policy: "fixed"
base_lr: 0.002
type: "Adam"
momentum: 0.9
momentum2: 0.999
max_iter: 100000
weight_decay: 0.0005
snapshot: 0
random_seed: 7
snapshot_prefix: "fcn_pycaffe"
"""


def main(iterations):
    net.make_net()
    with open('solver.prototxt', 'w') as f:
        f.write(SOLVER)
    caffe.set_mode_cpu()
    solver = caffe.get_solver('solver.prototxt')
    interp_layers = [k for k in solver.net.params.keys() if 'up' in k]
    surgery.interp(solver.net, interp_layers)
    for _ in range(iterations // 20):
        solver.step(20)
    acc, mean_iu, label = score(solver)
    chance = (label == 0).mean()
    print('>>> iterations', solver.iter, 'loss', float(solver.net.blobs['loss'].data))
    print('>>> pixel accuracy', round(float(acc), 4), 'chance', round(float(chance), 4))
    print('>>> mean IU', round(float(mean_iu), 4))


if __name__ == '__main__':
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
