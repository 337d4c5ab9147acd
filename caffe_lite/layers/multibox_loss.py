"""MultiBoxLoss, SSD's training loss (weiliu89/caffe, branch ssd): match priors to
ground truth, mine hard negatives, and add a localisation loss on the matched
priors to a confidence loss on the matched and mined ones. The box arithmetic is in
ops/box_coding.py.
"""
import numpy as np

from ..ops.box_coding import decode_boxes, encode_boxes, match_boxes
from ..proto import caffe_pb2
from .base import register_layer
from .loss import NORMALIZATION, LossLayer, get_normalizer

MB = caffe_pb2.MultiBoxLossParameter
FLT_MIN = np.float32(np.finfo(np.float32).tiny)


@register_layer("MultiBoxLoss")
class MultiBoxLossLayer(LossLayer):
    """loc (N, P*L*4) (L = 1 if share_location else num_classes), conf (N, P*C),
    prior (1, 2, P*4) (boxes, then variances), gt (1, 1, G, 8) rows (item, label,
    instance, xmin, ymin, xmax, ymax, difficult) -> scalar loss
    loc_weight * Lloc / n + Lconf / n, n from loss_param normalization (VALID: the
    number of matches). multibox_loss_param: num_classes, share_location,
    match_type, overlap_threshold, use_prior_for_matching, background_label_id,
    use_difficult_gt, mining_type (MAX_NEGATIVE, HARD_EXAMPLE with sample_size:
    the sample_size priors of highest conf + loc loss are kept, matched ones stay
    positives, the rest become negatives; NONE), neg_pos_ratio,
    neg_overlap, code_type, encode_variance_in_target, map_object_to_agnostic,
    ignore_cross_boundary_bbox, loc_loss_type (SMOOTH_L1, L2), conf_loss_type
    (SOFTMAX, LOGISTIC), loc_weight. Backward reaches loc and conf only; as in the
    fork, with encode_variance_in_target the loc gradient is not divided by the
    variance the forward divided by."""
    exact_num_bottom = 4

    def layer_setup(self, bottom, top):
        p = self.param.multibox_loss_param
        if not p.HasField("num_classes") or p.num_classes < 1:
            raise self.error("multibox_loss_param needs num_classes")
        self.num_classes = int(p.num_classes)
        self.share_location = p.share_location
        self.loc_classes = 1 if self.share_location else self.num_classes
        self.bipartite_only = p.match_type == MB.BIPARTITE
        self.overlap_threshold = float(p.overlap_threshold)
        self.use_prior_for_matching = p.use_prior_for_matching
        self.background = int(p.background_label_id)
        self.use_difficult_gt = p.use_difficult_gt
        if p.HasField("do_neg_mining"):
            self.mining = MB.MAX_NEGATIVE if p.do_neg_mining else MB.NONE
        else:
            self.mining = p.mining_type
        if self.mining != MB.NONE and p.HasField("nms_param") and \
                p.nms_param.nms_threshold > 0:
            raise self.error("mining with nms_param (NMS over the mined examples) is "
                             "not supported")
        self.sample_size = int(p.sample_size)
        if self.mining == MB.HARD_EXAMPLE and self.sample_size <= 0:
            raise self.error(f"HARD_EXAMPLE mining needs sample_size > 0, got "
                             f"{self.sample_size}")
        if self.mining != MB.NONE and not self.share_location:
            raise self.error("negative mining needs share_location (as in the fork)")
        self.neg_pos_ratio = np.float32(p.neg_pos_ratio)
        self.neg_overlap = np.float32(p.neg_overlap)
        self.code_type = int(p.code_type)
        self.variance_in_target = p.encode_variance_in_target
        self.agnostic = p.map_object_to_agnostic
        self.ignore_cross_boundary = p.ignore_cross_boundary_bbox
        self.loc_l2 = p.loc_loss_type == MB.L2
        self.logistic = p.conf_loss_type == MB.LOGISTIC
        self.loc_weight = np.float32(p.loc_weight)
        lp = self.param.loss_param
        if lp.HasField("normalization") or not lp.HasField("normalize"):
            self.normalization = lp.normalization
        else:
            self.normalization = NORMALIZATION.VALID if lp.normalize else \
                NORMALIZATION.BATCH_SIZE
        pd = list(self.param.propagate_down)
        self.terms = [pd[i] if i < len(pd) else True for i in (0, 1)]

    def allow_force_backward(self, bottom_index):
        return bottom_index < 2

    def reshape(self, bottom, top):
        num_priors = bottom[2].count_range(2) // 4
        if bottom[0].count_range(1) != num_priors * self.loc_classes * 4 or \
                bottom[1].count_range(1) != num_priors * self.num_classes or \
                bottom[0].num != bottom[1].num:
            raise self.error(f"{num_priors} priors need loc (N, {num_priors * self.loc_classes * 4}) "
                             f"and conf (N, {num_priors * self.num_classes}); got "
                             f"{bottom[0].shape} and {bottom[1].shape}")
        top[0].reshape(())

    # -- forward -------------------------------------------------------------
    def _ground_truth(self, gt_blob, num):
        """{image: (boxes (G, 4), labels (G,))}, rows in order."""
        rows = gt_blob.data.reshape(-1, 8)
        out = {}
        for row in rows:
            item = int(row[0])
            if item == -1 or (not self.use_difficult_gt and bool(row[7])):
                continue
            if int(row[1]) == self.background:
                raise self.error(f"ground truth with the background label {self.background}")
            if not 0 <= int(row[1]) < self.num_classes:
                raise self.error(f"ground truth label {int(row[1])} is outside the "
                                 f"{self.num_classes} classes (num_classes)",
                                 blob=self.param.bottom[3])
            out.setdefault(item, []).append(row)
        return {i: (np.array([r[3:7] for r in rs], np.float32),
                    np.array([int(r[1]) for r in rs])) for i, rs in out.items() if i < num}

    def _match(self, gt, priors, variances, loc):
        """{label: (match (P,), overlap (P,))} for one image (labels ascending)."""
        boxes, labels = gt
        out = {}
        if self.use_prior_for_matching:
            match, overlap = match_boxes(boxes, priors, self.bipartite_only,
                                         self.overlap_threshold, self.ignore_cross_boundary)
            if self.share_location:
                return {-1: (match, overlap)}
            for c in range(self.loc_classes):
                if c != self.background:
                    mine = np.where((match > -1) & (labels[np.maximum(match, 0)] == c), match, -1)
                    out[c] = (mine, overlap)
            return out
        for c in range(self.loc_classes):
            label = -1 if self.share_location else c
            if label == self.background:
                continue
            decoded = decode_boxes(priors, variances, loc[:, c], self.code_type,
                                   self.variance_in_target)
            pick = np.ones(len(labels), bool) if label == -1 else labels == label
            match, overlap = match_boxes(boxes[pick], decoded, self.bipartite_only,
                                         self.overlap_threshold, self.ignore_cross_boundary)
            match = np.where(match > -1, np.flatnonzero(pick)[np.maximum(match, 0)], match)
            out[label] = (match, overlap)
        return out

    def _mining_losses(self, conf, labels):
        """Per prior confidence loss for its label (P,), as the fork ranks them."""
        x = conf.astype(np.float64)
        if self.logistic:
            target = np.zeros_like(x)
            target[np.arange(len(x)), labels] = 1
            pos = (x >= 0).astype(np.float64)
            return -np.sum(x * (target - pos) - np.log1p(np.exp(x - 2 * x * pos)), axis=1)
        shifted = np.exp(x - x.max(axis=1, keepdims=True))
        prob = shifted[np.arange(len(x)), labels] / shifted.sum(axis=1)
        return -np.log(np.maximum(prob, float(FLT_MIN)))

    def _prior_loc_losses(self, loc, match, priors, variances, gt_boxes):
        """(P,) localisation loss of each matched prior's prediction, 0 elsewhere
        (HARD_EXAMPLE ranks priors by it plus their confidence loss)."""
        out = np.zeros(len(priors))
        js = np.flatnonzero(match > -1)
        if not len(js):
            return out
        target = encode_boxes(priors[js], variances[js], gt_boxes[match[js]],
                              self.code_type, self.variance_in_target)
        pred = loc[js].astype(np.float64)
        if self.variance_in_target:
            pred, target = pred / variances[js], target / variances[js]
        d = pred - target
        if self.loc_l2:
            out[js] = np.sum(0.5 * d * d, axis=1)
        else:
            out[js] = np.sum(np.where(np.abs(d) < 1, 0.5 * d * d, np.abs(d) - 0.5), axis=1)
        return out

    def forward(self, bottom, top):
        num = bottom[0].num
        prior = bottom[2].data.reshape(2, -1, 4)
        priors, variances = prior[0], prior[1]                 # (P, 4) each
        num_priors = len(priors)
        loc = bottom[0].data.reshape(num, num_priors, self.loc_classes, 4)
        conf = bottom[1].data.reshape(num, num_priors, self.num_classes)
        all_gt = self._ground_truth(bottom[3], num)
        self.matches, self.negatives = [], []
        for i in range(num):
            matches = self._match(all_gt[i], priors, variances, loc[i]) if i in all_gt else {}
            negatives = np.zeros(0, np.int64)
            if self.mining != MB.NONE and matches:
                labels = np.full(num_priors, self.background)
                for match, _ in matches.values():
                    hit = (match > -1) & (labels == self.background)
                    labels[hit] = all_gt[i][1][match[hit]]
                losses = self._mining_losses(conf[i], labels)
                match, overlap = matches[-1]
                if self.mining == MB.MAX_NEGATIVE:
                    eligible = np.flatnonzero((match == -1) & (overlap < self.neg_overlap))
                    count = min(int(np.float32(np.sum(match > -1)) * self.neg_pos_ratio),
                                len(eligible))
                else:                       # HARD_EXAMPLE: every prior, loc loss too
                    losses = losses + self._prior_loc_losses(
                        loc[i, :, 0], match, priors, variances, all_gt[i][0])
                    eligible = np.arange(num_priors)
                    count = min(self.sample_size, num_priors)
                ranked = eligible[np.argsort(-losses[eligible], kind="stable")]
                negatives = np.sort(ranked[:count])
                if self.mining == MB.HARD_EXAMPLE:
                    picked = np.zeros(num_priors, bool)
                    picked[negatives] = True
                    match = np.where((match > -1) & ~picked, -1, match)
                    matches[-1] = (match, overlap)
                    negatives = negatives[match[negatives] == -1]
            self.matches.append(matches)
            self.negatives.append(negatives)
        self.num_matches = sum(int(np.sum(m > -1)) for ms in self.matches
                               for m, _ in ms.values())
        self.normalizer = get_normalizer(self.normalization, num, num_priors,
                                         self.num_matches)
        loc_loss = self._forward_loc(loc, priors, variances, all_gt)
        conf_loss = self._forward_conf(conf, all_gt)
        t = self.dtype.type
        total = t(0)
        if self.terms[0]:
            total += self.loc_weight * loc_loss / t(self.normalizer)
        if self.terms[1]:
            total += conf_loss / t(self.normalizer)
        top[0].data[...] = total

    def _forward_loc(self, loc, priors, variances, all_gt):
        """Loss of the matched priors' predictions vs their encoded ground truth;
        keeps (where, d-slope) for backward."""
        where, preds, targets = [], [], []
        for i, matches in enumerate(self.matches):
            for label, (match, _) in matches.items():
                js = np.flatnonzero(match > -1)
                column = 0 if self.share_location else label
                where += [(i, j, column) for j in js]
                pred = loc[i, js, column]
                target = encode_boxes(priors[js], variances[js], all_gt[i][0][match[js]],
                                      self.code_type, self.variance_in_target)
                if self.variance_in_target:
                    pred = pred / variances[js]
                    target = target / variances[js]
                preds.append(pred)
                targets.append(target)
        self.loc_where = where
        if not where:
            self.loc_slope = None
            return self.dtype.type(0)
        t = self.dtype.type
        d = (np.concatenate(preds) - np.concatenate(targets)).astype(self.dtype)
        if self.loc_l2:
            self.loc_slope = d
            return t(np.dot(d.ravel(), d.ravel())) / t(2)
        absd = np.abs(d)
        inside = absd < 1
        self.loc_slope = np.where(inside, d, np.sign(d)).astype(self.dtype)
        errors = np.where(inside, t(0.5) * d * d, absd - t(0.5))
        return t(np.sum(np.abs(errors)))

    def _forward_conf(self, conf, all_gt):
        """Loss over the matched and mined priors (every prior without mining);
        keeps the rows and the gradient of each row for backward."""
        rows, labels = [], []
        mining = self.mining != MB.NONE
        for i, matches in enumerate(self.matches):
            img_labels = np.full(conf.shape[1], self.background)
            positives = []
            for match, _ in matches.values():
                js = np.flatnonzero(match > -1)
                gt_labels = np.full(len(js), self.background + 1) if self.agnostic else \
                    all_gt[i][1][match[js]]
                img_labels[js] = gt_labels
                positives.append((js, gt_labels))
            if mining:
                if i not in all_gt:
                    continue
                for js, gt_labels in positives:
                    rows += [(i, j) for j in js]
                    labels += list(gt_labels)
                rows += [(i, int(j)) for j in self.negatives[i]]
                labels += [self.background] * len(self.negatives[i])
            else:
                rows += [(i, j) for j in range(conf.shape[1])]
                labels += list(img_labels)
        self.conf_rows = rows
        if not rows:
            self.conf_grad = None
            return self.dtype.type(0)
        t = self.dtype.type
        idx = np.array(rows)
        x = conf[idx[:, 0], idx[:, 1]]                         # (K, C)
        labels = np.array(labels, np.int64)
        target = np.zeros_like(x)
        in_range = (labels >= 0) & (labels < self.num_classes)
        target[np.flatnonzero(in_range), labels[in_range]] = 1
        if self.logistic:
            pos = (x >= 0).astype(self.dtype)
            terms = x * (target - pos) - np.log1p(np.exp(x - 2 * x * pos))
            self.conf_grad = (1 / (1 + np.exp(-x)) - target).astype(self.dtype)
            return t(-np.sum(terms))
        shifted = np.exp(x - x.max(axis=1, keepdims=True))
        prob = shifted / shifted.sum(axis=1, keepdims=True)
        picked = prob[np.arange(len(x)), labels]
        self.conf_grad = prob - target
        return t(-np.sum(np.log(np.maximum(picked, FLT_MIN))))

    # -- backward ------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        for i in (2, 3):
            if propagate_down[i]:
                raise self.error("cannot back-propagate to the prior or ground-truth "
                                 "inputs (as in the fork)", blob=self.param.bottom[i])
        scale = self.loss_scale(top, self.normalizer)
        if propagate_down[0]:
            diff = bottom[0].diff.reshape(bottom[0].num, -1, self.loc_classes, 4)
            diff[...] = 0
            if self.loc_where:
                idx = np.array(self.loc_where)
                diff[idx[:, 0], idx[:, 1], idx[:, 2]] = self.loc_slope * (self.loc_weight * scale)
        if propagate_down[1]:
            diff = bottom[1].diff.reshape(bottom[1].num, -1, self.num_classes)
            diff[...] = 0
            if self.conf_rows:
                idx = np.array(self.conf_rows)
                diff[idx[:, 0], idx[:, 1]] = self.conf_grad * scale
