"""AnnotatedData (SSD fork, weiliu89/caffe branch ssd): images with boxes from an
LMDB/LevelDB of AnnotatedDatum records, augmented as the fork's training does.

Per record, in the fork's order: distort_param (data/distort.py), expand_param
(zoom out onto a mean-filled canvas), one crop drawn from what the batch
samplers found (none found: the whole image), resize_param WARP to a fixed size,
then crop_size / mirror / mean / scale (data/transform.py). The boxes follow
every step (data/annotated.py); emit_constraint drops those whose centre (or
overlap) leaves a crop. Records are decoded as OpenCV would (encoded PNG/JPEG or
raw uint8), so unlike the fork raw records can be sampled and resized too.

Tops: data (N, C, H, W); label (1, 1, K, 8) rows (item, group_label,
instance_id, xmin, ymin, xmax, ymax, difficult), one row of -1 when the batch has
no box. Records without an annotation type (and no anno_type) give the Datum's
label (N,) instead, as the fork. label_map_file is accepted and not read (the
fork's layer does not read it either).
"""
import warnings

import numpy as np

from ..data.annotated import (
    batch_samples,
    check_sampler,
    crop_image,
    expand_image,
    label_rows,
    project_boxes,
    read_annotated,
)
from ..data.distort import check_distortion, distort, warp
from ..data.files import find_file
from ..data.transform import DataTransformer
from ..errors import CaffeLiteError
from ..proto import caffe_pb2
from .base import register_layer
from .data import DataLayer, layer_rng

RESIZE = caffe_pb2.ResizeParameter
f32 = np.float32


@register_layer("AnnotatedData")
class AnnotatedDataLayer(DataLayer):
    """data_param: source, backend, batch_size. annotated_data_param:
    batch_sampler (sampler, sample_constraint, max_sample, max_trials,
    use_original_image), anno_type, label_map_file. transform_param: scale,
    mirror, crop_size, mean_file, mean_value, resize_param (WARP, interp_mode
    LINEAR/NEAREST; AREA, CUBIC, LANCZOS4 done as LINEAR with a warning),
    emit_constraint, distort_param, expand_param, force_color/force_gray."""
    min_top = 1
    max_top = 2

    def layer_setup(self, bottom, top):
        p, tp = self.param.data_param, self.param.transform_param
        self.rng = layer_rng(per_rank=True)       # sampling, distortions, mirrors
        self.batch_size = p.batch_size
        if self.batch_size <= 0:
            raise self.error("batch_size must be positive")
        self.check_transform(tp)
        mean = find_file(tp.mean_file, self.net_file) if tp.HasField("mean_file") else None
        self.transformer = DataTransformer(tp, self.phase, self.error, self.rng, mean)
        self.samplers = list(self.param.annotated_data_param.batch_sampler)
        for s in self.samplers:
            message = check_sampler(s.sampler)
            if message:
                raise self.error(f"batch_sampler: {message}")
        self.mode = self.open_database()
        image, boxes, _, typed = self.next_record()
        ap = self.param.annotated_data_param
        self.annotated = typed or ap.HasField("anno_type")
        self.pending = (image, boxes)
        C = image.shape[2]
        H, W = (self.resize.height, self.resize.width) if self.resize else image.shape[:2]
        top[0].reshape((self.batch_size,) + self.transformer.output_shape((C, H, W)))
        if len(top) > 1:
            if self.annotated:
                top[1].reshape(1, 1, max(len(boxes), 1), 8)
            else:
                top[1].reshape(self.batch_size)

    def check_transform(self, tp):
        self.resize = tp.resize_param if tp.HasField("resize_param") else None
        if self.resize is not None:
            if self.resize.resize_mode != RESIZE.WARP:
                raise self.error("resize_param: only resize_mode WARP is supported")
            if self.resize.height <= 0 or self.resize.width <= 0:
                raise self.error("resize_param needs height and width > 0")
            others = [RESIZE.Interp_mode.Name(m) for m in self.resize.interp_mode
                      if m not in (RESIZE.LINEAR, RESIZE.NEAREST)]
            if others:
                warnings.warn(f"{self.param.name}: interp_mode {', '.join(others)} "
                              f"resized as LINEAR", stacklevel=2)
        if tp.crop_h or tp.crop_w:
            raise self.error("crop_h/crop_w are not supported; use crop_size")
        if tp.HasField("noise_param") and tp.noise_param.prob > 0:
            raise self.error("noise_param is not supported")
        self.distortion = tp.distort_param if tp.HasField("distort_param") else None
        if self.distortion is not None:
            message = check_distortion(self.distortion)
            if message:
                raise self.error(f"distort_param: {message}")
        self.expansion = tp.expand_param if tp.HasField("expand_param") else None
        if self.expansion is not None:
            if not self.expansion.max_expand_ratio > 1:
                raise self.error("expand_param: max_expand_ratio must be > 1")
            if tp.HasField("mean_file"):
                raise self.error("expand_param with mean_file is not supported "
                                 "(use mean_value)")
        self.fill = list(tp.mean_value) or [0.0]
        self.emit = tp.emit_constraint if tp.HasField("emit_constraint") else None

    def next_record(self):
        key, value = next(self.records)
        name = f"{self.source} record {key.decode(errors='replace')!r}"
        try:
            image, boxes, label, typed = read_annotated(value, self.mode, name)
        except CaffeLiteError as exc:
            raise self.error(exc.message) from None
        if len(boxes) and not (np.all(np.isfinite(boxes)) and boxes[:, 2:6].min() >= -1
                               and boxes[:, 2:6].max() <= 2):
            raise self.error(f"{name}: boxes must be normalized to the image (0..1)")
        self.label = label
        return image, boxes, label, typed

    def augment(self, image, boxes):
        """Distortion, expansion and batch sampling of one record."""
        rng = self.rng
        if self.distortion is not None:
            image = distort(image, self.distortion, rng)
        if self.expansion is not None:
            e = self.expansion
            if not rng.uniform() > e.prob and abs(e.max_expand_ratio - 1) >= 1e-2:
                ratio = f32(rng.uniform(1, e.max_expand_ratio))
                fill = self.fill if len(self.fill) in (1, image.shape[2]) else [0.0]
                image, canvas = expand_image(image, ratio, fill, rng)
                boxes = project_boxes(boxes, canvas, emit=self.emit)
        if self.samplers:
            found = batch_samples(boxes, self.samplers, rng)
            if found:
                box = found[int(rng.integers(len(found)))]
                image = crop_image(image, box)
                boxes = project_boxes(boxes, np.clip(box, 0, 1), emit=self.emit)
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise self.error("a batch sampler cropped an empty image (sampler scale "
                             "too small for this image)")
        return image, boxes

    def forward(self, bottom, top):
        images, per_item, labels = [], [], []
        for i in range(self.batch_size):
            if i == 0 and self.pending is not None:
                image, boxes = self.pending
                self.pending = None
            else:
                image, boxes, _, _ = self.next_record()
            labels.append(self.label)
            image, boxes = self.augment(image, boxes)
            if self.resize is not None:
                image = warp(image, self.resize.height, self.resize.width,
                             list(self.resize.interp_mode), self.rng)
                boxes = boxes.copy()
                boxes[:, 2:6] = np.clip(boxes[:, 2:6], 0, 1)   # WARP's box policy
            record = image.transpose(2, 0, 1)[None]              # (1, C, H, W)
            H, W = record.shape[2:]
            if i == 0:
                first = record.shape[1:]
            elif record.shape[1:] != first:
                raise self.error(f"record {i} of the batch is {record.shape[1:]} after "
                                 f"sampling, the first {first}: set resize_param to "
                                 f"make them equal")
            h_off, w_off, flip = self.transformer.draw(1, H, W)
            out = self.transformer.apply(record, h_off, w_off, flip)
            h, w = out.shape[2:]
            crop = np.array([w_off[0] / W, h_off[0] / H, (w_off[0] + w) / W,
                             (h_off[0] + h) / H], f32)
            per_item.append(project_boxes(boxes, crop, bool(flip[0]), self.emit))
            images.append(out)
        data = np.concatenate(images)
        top[0].reshape(data.shape)
        top[0].data[...] = data
        if len(top) > 1:
            if self.annotated:
                rows = label_rows(per_item)
                top[1].reshape(rows.shape)
                top[1].data[...] = rows
            else:
                top[1].reshape(self.batch_size)
                top[1].data[...] = labels
