"""MultiBoxLoss against a naive loop reference (tests/ref_multibox.py) and a float64
gradient check of the loc and conf predictions; the conformance cases pin the
other modes."""
import numpy as np
import pytest
import ref_multibox as ref
from layer_case import TRAIN, LayerCase, assert_registered, forward, proto

from caffe_lite.errors import LayerError

assert_registered(["MultiBoxLoss"])


def inputs(num=2, classes=3, seed=5):
    r = np.random.default_rng(seed)
    centres = [(x, y) for y in (0.2, 0.5, 0.8) for x in (0.2, 0.5, 0.8)]
    priors = [(cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
              for cx, cy in centres for s in (0.3, 0.5)]
    num_priors = len(priors)
    prior = np.concatenate([np.ravel(priors), np.tile([0.1, 0.1, 0.2, 0.2], num_priors)])
    gt = []
    for i in range(num):
        for k in r.choice(num_priors, 2, replace=False):
            box = np.array(priors[k]) + r.uniform(-0.04, 0.04, 4)
            gt.append([i, r.integers(1, classes), 0, *box, 0])
    loc = 0.5 * r.standard_normal((num, num_priors * 4))
    conf = r.standard_normal((num, num_priors * classes))
    return [loc, conf, prior.reshape(1, 2, -1), np.array(gt).reshape(1, 1, -1, 8)]


def check_against_reference(params, **reference):
    """The layer with ``params`` (num_classes 3, VALID normalization) against the naive
    reference with ``reference``'s options: forward, and gradients into loc and conf."""
    text = proto("MultiBoxLoss", f"multibox_loss_param {{ num_classes: 3 code_type: "
                 f"CENTER_SIZE {params} }} loss_param {{ normalization: VALID }}",
                 bottoms=("loc", "conf", "prior", "gt"))
    case = LayerCase(text, inputs(), phase=TRAIN, check_bottoms=[0, 1],
                     reference=lambda *b: np.array(ref.multibox_loss(
                         *b, num_classes=3, **reference)),
                     forward_rtol=1e-4, kink=None)
    case.check_forward()
    case.check_gradient()


@pytest.mark.parametrize("match", ["PER_PREDICTION", "BIPARTITE"])
def test_multibox_loss_matches_naive_reference_and_gradients(match):
    check_against_reference(f"match_type: {match} neg_pos_ratio: 3",
                            bipartite_only=match == "BIPARTITE")


@pytest.mark.parametrize("label, message", [(0, "background label 0"), (3, "outside the 3")])
def test_multibox_loss_rejects_labels_it_cannot_score(label, message):
    bottoms = inputs()
    bottoms[3][0, 0, 0, 1] = label
    text = proto("MultiBoxLoss", "multibox_loss_param { num_classes: 3 }",
                 bottoms=("loc", "conf", "prior", "gt"))
    with pytest.raises(LayerError, match=message):
        forward(text, bottoms, phase=TRAIN)


@pytest.mark.parametrize("sample_size", [5, 12, 100])
def test_hard_example_mining_matches_naive_reference_and_gradients(sample_size):
    """HARD_EXAMPLE keeps the sample_size priors of highest conf + loc loss: with 5
    of 18 some matched priors stop being positives, with 100 every prior counts."""
    check_against_reference(f"mining_type: HARD_EXAMPLE sample_size: {sample_size}",
                            mining="HARD_EXAMPLE", sample_size=sample_size)


def test_mining_with_nms_param_is_refused():
    text = proto("MultiBoxLoss", "multibox_loss_param { num_classes: 3 "
                 "nms_param { nms_threshold: 0.5 } }", bottoms=("loc", "conf", "prior", "gt"))
    with pytest.raises(LayerError, match="nms_param"):
        forward(text, inputs(), phase=TRAIN)
