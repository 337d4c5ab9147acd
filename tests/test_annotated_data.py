"""AnnotatedData (SSD fork) on small LMDBs written here: records and boxes pass
through unchanged without augmentation; with expansion, batch sampling, resizing,
cropping and mirroring the boxes still frame the object they were drawn around;
the sample constraints against the fork's loop (ref_annotated.py); the HSV
distortions against OpenCV."""
import numpy as np
import pytest
from ref_annotated import ref_satisfies

import caffe_lite as caffe
from caffe_lite.data.annotated import batch_samples, make_annotated, satisfies
from caffe_lite.data.db import RecordWriter
from caffe_lite.data.distort import bgr_to_hsv, distort, hsv_to_bgr, resize_nearest
from caffe_lite.errors import LayerError
from caffe_lite.formats import parse_net_param
from caffe_lite.proto import caffe_pb2

pytest.importorskip("lmdb")


def write_db(path, records):
    """records: (image (H, W, C) uint8, rows (label, xmin, ymin, xmax, ymax, difficult)
    or None for a record without annotation type, encoded bytes or None)."""
    with RecordWriter(path, "lmdb") as db:
        for i, (image, rows, encoded) in enumerate(records):
            record = make_annotated(image, rows if rows is not None else [], encoded)
            if rows is None:
                record.ClearField("type")
                record.datum.label = 10 + i
            db.put(f"{i:08d}", record.SerializeToString())
    return str(path)


def annotated_net(source, batch=2, transform="", samplers="", phase=caffe.TRAIN, tops=2):
    top = "top: 'data' top: 'label'" if tops == 2 else "top: 'data'"
    return caffe.Net(parse_net_param(
        f"layer {{ name: 'd' type: 'AnnotatedData' {top} transform_param {{ {transform} }} "
        f"data_param {{ source: '{source}' batch_size: {batch} backend: LMDB }} "
        f"annotated_data_param {{ {samplers} }} }}"), phase)


def random_images(n, h=6, w=8, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3)).astype(np.uint8)


def test_records_and_boxes_pass_through(tmp_path):
    images = random_images(3)
    boxes = [[(1, 0.1, 0.2, 0.5, 0.6, 0), (2, 0.5, 0.5, 0.9, 1.0, 1), (1, 0, 0, 1, 1, 0)],
             [], [(2, 0.25, 0.25, 0.75, 0.75, 0)]]
    source = write_db(tmp_path / "db", [(im, b, None) for im, b in zip(images, boxes)])
    net = annotated_net(source, batch=2, transform="mean_value: 100 scale: 0.5")
    assert net.blobs["label"].data.shape == (1, 1, 3, 8)      # the first record's boxes
    seen = []
    for _ in range(3):                                         # 6 records: wraps twice
        net.forward()
        seen.append((net.blobs["data"].data.copy(), net.blobs["label"].data.copy()))
    order = [0, 1, 2, 0, 1, 2]
    for k, (data, label) in enumerate(seen):
        for item in range(2):
            i = order[2 * k + item]
            expected = (images[i].transpose(2, 0, 1).astype(np.float32) - 100) * 0.5
            np.testing.assert_array_equal(data[item], expected)
        rows = []
        for item in range(2):
            i = order[2 * k + item]
            per_label = sorted(boxes[i], key=lambda b: b[0])   # groups by label
            instance = {}
            for b in per_label:
                instance[b[0]] = instance.get(b[0], -1) + 1
                rows.append((item, b[0], instance[b[0]]) + tuple(b[1:]))
        np.testing.assert_allclose(label[0, 0], np.array(rows, np.float32), atol=1e-7)


def test_batch_without_boxes_gives_one_row_of_minus_one(tmp_path):
    source = write_db(tmp_path / "db", [(random_images(1)[0], [], None)])
    net = annotated_net(source, batch=2)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, -np.ones((1, 1, 1, 8)))


def test_records_without_annotation_type_give_datum_labels(tmp_path):
    source = write_db(tmp_path / "db", [(im, None, None) for im in random_images(3)])
    net = annotated_net(source, batch=2)
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, [10, 11])


def test_encoded_records(tmp_path):
    pytest.importorskip("PIL")
    from io import BytesIO

    from PIL import Image
    image = random_images(1)[0]
    out = BytesIO()
    Image.fromarray(image[:, :, ::-1]).save(out, format="PNG")
    source = write_db(tmp_path / "db", [(image, [(1, 0, 0, 1, 1, 0)], out.getvalue())])
    net = annotated_net(source, batch=1)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data[0], image.transpose(2, 0, 1))


def white_box_records(n, size=40, seed=5):
    """Black images with one white rectangle each, its box the annotation."""
    r = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        image = np.zeros((size, size, 3), np.uint8)
        x0, y0 = r.integers(0, size - 12, 2)
        x1, y1 = x0 + r.integers(8, 12), y0 + r.integers(6, 12)
        image[y0:y1, x0:x1] = 255
        records.append((image, [(1, x0 / size, y0 / size, x1 / size, y1 / size, 0)], None))
    return records


SAMPLERS = """batch_sampler { sampler { min_scale: 0.4 max_scale: 1 min_aspect_ratio: 0.5
              max_aspect_ratio: 2 } sample_constraint { min_object_coverage: 0.3 }
              max_sample: 1 max_trials: 50 }"""


@pytest.mark.parametrize("transform, samplers", [
    ("mirror: true", ""),
    ("resize_param { height: 60 width: 48 interp_mode: NEAREST } "
     "expand_param { prob: 1 max_expand_ratio: 2.5 }", ""),
    ("resize_param { height: 32 width: 32 interp_mode: NEAREST } mirror: true", SAMPLERS),
    ("resize_param { height: 36 width: 36 interp_mode: NEAREST } crop_size: 30 mirror: true "
     "expand_param { prob: 0.7 max_expand_ratio: 2 }", SAMPLERS),
])
def test_boxes_follow_the_image(tmp_path, transform, samplers):
    """Wherever the augmentation puts the white rectangle, its label box is the
    white pixels' bounding box, to within the rounding: as in the fork, a sampled
    crop starts at a whole pixel while the boxes are projected onto the exact
    sample, which the resize then magnifies (up to ~3 px here)."""
    source = write_db(tmp_path / "db", white_box_records(6))
    caffe.set_random_seed(11)
    net = annotated_net(source, batch=3, transform=transform, samplers=samplers)
    checked = 0
    for _ in range(8):
        net.forward()
        data, label = net.blobs["data"].data, net.blobs["label"].data[0, 0]
        H, W = data.shape[2:]
        for row in label:
            if row[0] < 0 or min((row[5] - row[3]) * W, (row[6] - row[4]) * H) < 4:
                continue                              # slivers that rounding may drop
            ys, xs = np.nonzero(data[int(row[0]), 0] > 127)
            found = np.array([xs.min() / W, ys.min() / H, (xs.max() + 1) / W,
                              (ys.max() + 1) / H])
            tolerance = 4.5 if samplers else 1.5
            np.testing.assert_allclose(row[3:7], found, atol=tolerance / min(H, W))
            checked += 1
    assert checked >= 10


def box(r, lo=0.0, hi=1.0):
    x0, y0 = r.uniform(lo, hi - 0.1, 2)
    return np.array([x0, y0, x0 + r.uniform(0.05, hi - x0), y0 + r.uniform(0.05, hi - y0)],
                    np.float32)


@pytest.mark.parametrize("seed", range(40))
def test_sample_constraint_against_the_fork_loop(seed):
    r = np.random.default_rng(seed)
    limits = {}
    for kind in ("jaccard_overlap", "sample_coverage", "object_coverage"):
        if r.random() < 0.5:
            limits["min_" + kind] = round(float(r.uniform(0, 0.6)), 2)
        if r.random() < 0.3:
            limits["max_" + kind] = round(float(r.uniform(0.3, 1)), 2)
    constraint = caffe_pb2.SampleConstraint(**limits)
    sample = box(r)
    objects = np.array([box(r) for _ in range(int(r.integers(1, 4)))], np.float32)
    assert satisfies(sample, objects, constraint) == ref_satisfies(
        sample.astype(float), objects.astype(float), limits)


def test_batch_samples_respect_the_sampler():
    rng = np.random.default_rng(0)
    boxes = np.array([[1, 0, 0.2, 0.2, 0.6, 0.6, 0]], np.float32)
    bs = caffe_pb2.BatchSampler(max_trials=30)
    bs.sampler.min_scale, bs.sampler.max_scale = 0.3, 0.8
    bs.sampler.min_aspect_ratio, bs.sampler.max_aspect_ratio = 0.5, 2
    found = batch_samples(boxes, [bs], rng)
    assert len(found) == 30                                    # no constraint: all trials
    for b in found:
        w, h = b[2] - b[0], b[3] - b[1]
        assert 0.3 - 1e-6 <= np.sqrt(w * h) <= 0.8 + 1e-6
        assert 0.5 - 1e-5 <= w / h <= 2 + 1e-5
        assert b.min() >= 0 and b.max() <= 1 + 1e-6
    bs.max_sample = 4
    assert len(batch_samples(boxes, [bs], rng)) == 4
    bs.sample_constraint.min_jaccard_overlap = 1.1           # impossible
    assert batch_samples(boxes, [bs, bs], rng) == []
    bs.use_original_image = False
    bs.ClearField("sample_constraint")
    assert batch_samples(boxes, [bs], rng) == []


def test_hsv_and_nearest_resize_against_opencv():
    cv2 = pytest.importorskip("cv2")
    r = np.random.default_rng(0)
    image = r.integers(0, 256, (32, 40, 3)).astype(np.uint8)
    np.testing.assert_array_equal(bgr_to_hsv(image), cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    hsv = image.copy()
    hsv[..., 0] %= 180
    # the fork's OpenCV (2.4/3.x) rounds the float result; OpenCV 4 truncates it
    diff = hsv_to_bgr(hsv).astype(int) - cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    assert diff.min() >= 0 and diff.max() <= 1
    np.testing.assert_array_equal(resize_nearest(image, 13, 57),
                                  cv2.resize(image, (57, 13), interpolation=cv2.INTER_NEAREST))


def test_brightness_contrast_and_channel_order():
    image = np.random.default_rng(1).integers(40, 200, (8, 8, 3)).astype(np.uint8)
    p = caffe_pb2.DistortionParameter(brightness_prob=1, brightness_delta=30)
    shifts = set()
    for seed in range(5):
        out = distort(image, p, np.random.default_rng(seed)).astype(int) - image
        assert len(np.unique(out)) == 1 and abs(out.flat[0]) <= 30     # one shift for all
        shifts.add(out.flat[0])
    assert len(shifts) > 1
    p = caffe_pb2.DistortionParameter(contrast_prob=1, contrast_lower=0.5, contrast_upper=0.9)
    out = distort(image, p, np.random.default_rng(0)).astype(float)
    factor = out.sum() / image.astype(float).sum()
    assert 0.5 - 0.02 <= factor <= 0.9 + 0.02
    np.testing.assert_allclose(out, np.rint(image * factor), atol=1.01)
    p = caffe_pb2.DistortionParameter(random_order_prob=1)
    out = distort(image, p, np.random.default_rng(3))
    assert sorted(out.reshape(-1, 3).T.tolist()) == sorted(image.reshape(-1, 3).T.tolist())


def test_full_augmentation_runs(tmp_path):
    """The zoo's MobileNet-SSD training transform on small images."""
    source = write_db(tmp_path / "db", white_box_records(4))
    transform = """mirror: true mean_value: 127.5 scale: 0.007843
      resize_param { resize_mode: WARP height: 24 width: 24 interp_mode: LINEAR
                     interp_mode: AREA interp_mode: NEAREST }
      emit_constraint { emit_type: CENTER }
      distort_param { brightness_prob: 0.5 brightness_delta: 32 contrast_prob: 0.5
        contrast_lower: 0.5 contrast_upper: 1.5 hue_prob: 0.5 hue_delta: 18
        saturation_prob: 0.5 saturation_lower: 0.5 saturation_upper: 1.5 }
      expand_param { prob: 0.5 max_expand_ratio: 4 }"""
    with pytest.warns(UserWarning, match="AREA resized as LINEAR"):
        net = annotated_net(source, batch=4, transform=transform,
                            samplers="batch_sampler { max_sample: 1 max_trials: 1 } " + SAMPLERS)
    for _ in range(3):
        net.forward()
        assert net.blobs["data"].data.shape == (4, 3, 24, 24)
        assert np.all(np.abs(net.blobs["data"].data) <= 1.001)
        rows = net.blobs["label"].data[0, 0]
        assert rows.shape[1] == 8 and (rows[0, 0] == -1 or rows[:, 3:7].min() >= 0)


@pytest.mark.parametrize("transform, samplers, message", [
    ("resize_param { resize_mode: FIT_SMALL_SIZE height: 4 width: 4 }", "", "WARP"),
    ("crop_h: 4 crop_w: 4", "", "crop_size"),
    ("expand_param { max_expand_ratio: 1 }", "", "max_expand_ratio"),
    ("distort_param { contrast_prob: 1 contrast_lower: 2 contrast_upper: 1 }", "", "contrast"),
    ("", "batch_sampler { sampler { min_scale: 0 } }", "min_scale"),
])
def test_errors(tmp_path, transform, samplers, message):
    source = write_db(tmp_path / "db", white_box_records(1))
    with pytest.raises(LayerError, match=message):
        annotated_net(source, transform=transform, samplers=samplers)


def test_missing_database_and_wrong_records(tmp_path):
    with pytest.raises(LayerError, match="does not exist"):
        annotated_net(str(tmp_path / "nothing"))
    with RecordWriter(tmp_path / "floats", "lmdb") as db:
        record = caffe_pb2.AnnotatedDatum()
        record.datum.channels, record.datum.height, record.datum.width = 1, 1, 2
        record.datum.float_data.extend([0.5, 1.5])
        db.put("0", record.SerializeToString())
    with pytest.raises(LayerError, match="float data"):
        annotated_net(str(tmp_path / "floats"))
    with RecordWriter(tmp_path / "junk", "lmdb") as db:
        db.put("0", b"\xff\xff\xff")
    with pytest.raises(LayerError, match="AnnotatedDatum"):
        annotated_net(str(tmp_path / "junk"))
