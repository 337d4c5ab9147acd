"""The segmentation forks' data layers (DenseImageData, ImageSegData) and metrics
(SegAccuracy, EltwiseAccuracy) on a tiny synthetic data set the test writes (PNG
images + label PNGs via Pillow, a list file), and the zoo's SegNet and DeconvNet
train prototxts training a few iterations on it."""
import numpy as np
import pytest
from conftest import zoo_file
from layer_case import LayerCase, proto

import caffe_lite
from caffe_lite.errors import LayerError
from caffe_lite.formats import parse_net_param
from caffe_lite.proto import caffe_pb2

Image = pytest.importorskip("PIL.Image", reason="Pillow (the image extra) is not installed")
TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
NUM_CLASSES = 4


def label_of(red):
    """The label map a synthetic image carries: its red channel // 64 (0..3), so a crop
    or mirror that moved the label apart from its image would show."""
    return red // 64


def write_dataset(root, count=4, size=(24, 32), ignore_corner=True, seed=0):
    """count RGB PNGs and their label PNGs under root; returns the list file path."""
    r = np.random.default_rng(seed)
    lines = []
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "lab").mkdir(exist_ok=True)
    for k in range(count):
        rgb = r.integers(0, 256, size + (3,), dtype=np.uint8)
        label = label_of(rgb[..., 0]).astype(np.uint8)
        if ignore_corner:
            label[:2, :2] = 255
        Image.fromarray(rgb).save(root / "img" / f"{k}.png")
        Image.fromarray(label).save(root / "lab" / f"{k}.png")
        lines.append(f"/img/{k}.png /lab/{k}.png")
    listing = root / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def read_bgr(path):
    return np.asarray(Image.open(path))[..., ::-1].transpose(2, 0, 1).astype(np.float32)


def data_layer(type_name, param_block, transform="", tops=("data", "label")):
    top = " ".join(f'top: "{t}"' for t in tops)
    return (f'name: "d" type: "{type_name}" {top} {param_block} '
            f'transform_param {{ {transform} }}')


def run_layer(text, phase=TEST, seed=5):
    caffe_lite.set_random_seed(seed)
    case = LayerCase(text, [], phase=phase, rng_seed=None)
    return case.forward_blobs()


# ==== DenseImageData =========================================================

def test_dense_image_data_reads_pairs_unchanged(tmp_path):
    listing = write_dataset(tmp_path)
    text = data_layer("DenseImageData", f'dense_image_data_param {{ source: "{listing}" '
                      f'root_folder: "{tmp_path}" batch_size: 3 }}')
    _, _, top = run_layer(text)
    data, label = top[0].data, top[1].data
    assert data.shape == (3, 3, 24, 32) and label.shape == (3, 1, 24, 32)
    for k in range(3):
        np.testing.assert_array_equal(data[k], read_bgr(tmp_path / "img" / f"{k}.png"))
        np.testing.assert_array_equal(label[k, 0], np.asarray(Image.open(tmp_path / "lab" /
                                                                         f"{k}.png")))


def test_dense_image_data_crops_and_mirrors_label_with_image(tmp_path):
    listing = write_dataset(tmp_path, ignore_corner=False)
    text = data_layer("DenseImageData", f'dense_image_data_param {{ source: "{listing}" '
                      f'root_folder: "{tmp_path}" batch_size: 4 shuffle: true mirror: true '
                      f'crop_height: 16 crop_width: 20 }}', "mean_value: 10 mean_value: 20 "
                      "mean_value: 30")
    layer, bottom, top = run_layer(text, TRAIN)
    mirrored = set()
    for _ in range(3):
        layer.run_forward(bottom, top)
        data, label = top[0].data, top[1].data
        assert data.shape == (4, 3, 16, 20)
        red = data[:, 2] + 30                               # BGR: channel 2 is red
        np.testing.assert_array_equal(label[:, 0], label_of(red.astype(np.uint8)))
        for k in range(4):                                  # a crop of some listed image
            found = False
            for j in range(4):
                full = read_bgr(tmp_path / "img" / f"{j}.png")[2]
                for flip in (False, True):
                    src = full[:, ::-1] if flip else full
                    hits = np.argwhere(np.all([src[y:y + 16, x:x + 20] == red[k] for y in
                                               range(9) for x in range(13)], axis=(1, 2)))
                    if hits.size:
                        found = True
                        mirrored.add(flip)
            assert found
    assert mirrored == {False, True}


def test_dense_image_data_resizes_labels_by_nearest(tmp_path):
    listing = write_dataset(tmp_path, count=2)
    text = data_layer("DenseImageData", f'dense_image_data_param {{ source: "{listing}" '
                      f'root_folder: "{tmp_path}" batch_size: 2 new_height: 12 new_width: 40 }}')
    _, _, top = run_layer(text)
    assert top[0].shape == (2, 3, 12, 40) and top[1].shape == (2, 1, 12, 40)
    assert set(np.unique(top[1].data)) <= {0, 1, 2, 3, 255}


# ==== ImageSegData ===========================================================

def image_seg(listing, root, extra="", transform="", tops=("data", "label")):
    return data_layer("ImageSegData", f'image_data_param {{ source: "{listing}" root_folder: '
                      f'"{root}" batch_size: 2 label_type: PIXEL {extra} }}', transform, tops)


def test_image_seg_data_pads_a_small_pair_with_mean_and_ignore(tmp_path):
    listing = write_dataset(tmp_path, count=2, size=(10, 12))
    text = image_seg(listing, tmp_path, transform="crop_size: 14 mean_value: 5",
                     tops=("data", "label", "dim"))
    _, _, top = run_layer(text)
    data, label, dim = (t.data for t in top)
    assert data.shape == (2, 3, 14, 14) and label.shape == (2, 1, 14, 14)
    np.testing.assert_array_equal(dim.reshape(2, 2), [[10, 12], [10, 12]])
    # TEST crops at the centre of the padded 14 x 14: offsets 0, the pad at bottom/right
    np.testing.assert_array_equal(data[0, :, :10, :12],
                                  read_bgr(tmp_path / "img" / "0.png") - 5)
    assert not data[:, :, 10:].any() and not data[:, :, :, 12:].any()
    assert (label[:, :, 10:] == 255).all() and (label[:, :, :, 12:] == 255).all()


def test_image_seg_data_missing_file_names_list_and_line(tmp_path):
    listing = write_dataset(tmp_path, count=2)
    listing.write_text(listing.read_text() + "/img/nothere.png /lab/0.png\n")
    text = image_seg(listing, tmp_path).replace("batch_size: 2", "batch_size: 3")
    with pytest.raises(LayerError, match=rf"{listing}:3: .*nothere.png"):
        run_layer(text)


def test_label_size_mismatch_names_both_files(tmp_path):
    listing = write_dataset(tmp_path, count=1)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "lab" / "0.png")
    text = data_layer("DenseImageData", f'dense_image_data_param {{ source: "{listing}" '
                      f'root_folder: "{tmp_path}" batch_size: 1 }}')
    with pytest.raises(LayerError, match=r"lab/0.png is 5x5 but the image .*img/0.png is 32x24"):
        run_layer(text)


def test_list_line_without_label_is_an_error(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.png b.png\nc.png\n")
    with pytest.raises(LayerError, match=rf"{listing}:2: expected"):
        run_layer(image_seg(listing, tmp_path))


# ==== SegAccuracy, EltwiseAccuracy ===========================================

def naive_confusion(scores, labels, ignore):
    C = scores.shape[1]
    m = np.zeros((C, C))
    for n in range(scores.shape[0]):
        for y in range(scores.shape[2]):
            for x in range(scores.shape[3]):
                t = int(labels[n, 0, y, x])
                if t in ignore:
                    continue
                m[t, int(np.argmax(scores[n, :, y, x]))] += 1
    return m


def seg_inputs(seed=0):
    r = np.random.default_rng(seed)
    scores = r.standard_normal((2, NUM_CLASSES, 5, 6))
    labels = r.integers(0, NUM_CLASSES, (2, 1, 5, 6)).astype(np.float64)
    labels[0, 0, :2] = 255
    return scores, labels


def test_seg_accuracy_pixel_class_and_iou():
    scores, labels = seg_inputs()

    def reference(s, lab):
        m = naive_confusion(s, lab, {255})
        iou = [m[c, c] / (m[c].sum() + m[:, c].sum() - m[c, c]) for c in range(NUM_CLASSES)]
        acc = [m[c, c] / m[c].sum() for c in range(NUM_CLASSES)]
        return [np.array([np.trace(m) / m.sum(), np.mean(acc), np.mean(iou)]).reshape(1, 1, 1, 3),
                np.array(iou)]
    text = proto("SegAccuracy", "seg_accuracy_param { ignore_label: 255 }",
                 bottoms=("score", "label"), tops=("acc", "iou"))
    LayerCase(text, [scores, labels], reference=reference).check_forward()


def test_seg_accuracy_accumulates_without_reset():
    scores, labels = seg_inputs(1)
    text = proto("SegAccuracy", "seg_accuracy_param { ignore_label: 255 reset: false }",
                 bottoms=("score", "label"), tops=("acc",))
    layer_, bottom, top = LayerCase(text, [scores, labels]).forward_blobs()
    layer_.run_forward(bottom, top)
    m = naive_confusion(scores, labels, {255})
    np.testing.assert_array_equal(layer_.confusion, 2 * m)


@pytest.mark.parametrize("top_k", [1, 2])
def test_eltwise_accuracy(top_k):
    scores, labels = seg_inputs(2)

    def reference(s, lab):
        hit = total = 0
        for n, y, x in np.ndindex(s.shape[0], s.shape[2], s.shape[3]):
            t = int(lab[n, 0, y, x])
            if t == 255:
                continue
            total += 1
            hit += int(t in np.argsort(-s[n, :, y, x])[:top_k])
        return np.array(hit / total)
    text = proto("EltwiseAccuracy", f"eltwise_accuracy_param {{ ignore_label: 255 "
                 f"top_k: {top_k} }}", bottoms=("score", "label"), tops=("acc",))
    LayerCase(text, [scores, labels], reference=reference).check_forward()


# ==== the zoo's segmentation train nets on the synthetic set =================

def redirect(param, listing, root, batch):
    """Point every data layer at the synthetic list, with a small batch."""
    for lp in param.layer:
        for field in ("dense_image_data_param", "image_data_param"):
            if lp.HasField(field):
                p = getattr(lp, field)
                p.source, p.root_folder, p.batch_size = str(listing), str(root), batch
                if field == "image_data_param":
                    p.ClearField("new_height")
                    p.ClearField("new_width")


def train(param, iters):
    solver = caffe_pb2.SolverParameter(base_lr=1e-4, momentum=0.9, lr_policy="fixed",
                                       max_iter=iters, display=0, snapshot=0,
                                       snapshot_after_train=False, test_initialization=False)
    solver.net_param.CopyFrom(param)
    caffe_lite.set_random_seed(7)
    s = caffe_lite.get_solver(solver)
    losses = []
    for _ in range(iters):
        s.step(1)
        losses.append(float(next(v for k, v in s.net.blobs.items() if "loss" in k).data))
    return s, losses


def test_segnet_basic_trains_on_synthetic_pairs(tmp_path):
    """SegNet-basic as the zoo has it (DenseImageData, LRN, BN, Upsample with
    pad_out_h), images 24 x 32 so pool4 is odd like CamVid's 45 rows; SoftmaxWithLoss
    with its class_weighting for 11 classes, labels 0..3 and 255 (ignored)."""
    text = zoo_file("segnet/Models_segnet_basic_train.prototxt").read_text()
    param = parse_net_param(text, "segnet_basic_train")
    listing = write_dataset(tmp_path)
    redirect(param, listing, tmp_path, 2)
    for lp in param.layer:
        if lp.type == "SoftmaxWithLoss":
            lp.loss_param.ignore_label = 255            # the synthetic set's void
        if lp.type == "Accuracy":
            lp.accuracy_param.ignore_label = 255
    solver, losses = train(param, 3)
    assert solver.net.blobs["data"].shape == (2, 3, 24, 32)
    assert all(np.isfinite(losses))


@pytest.mark.slow
def test_deconvnet_stage1_trains_on_synthetic_pairs(tmp_path):
    """DeconvNet stage 1 (V1 layers: IMAGE_SEG_DATA with crop 224, VGG encoder,
    unpooling/deconvolution decoder, ELTWISE_ACCURACY in TEST): one iteration at
    batch 1 on 230 x 230 pairs. fc6/fc7 (7 x 7 x 4096, 100 M weights each) are cut
    to 64 outputs so the test fits memory; every layer type is the zoo's own."""
    text = zoo_file("deconvnet/001_stage_1_stage_1_train.prototxt").read_text()
    param = parse_net_param(text, "deconvnet_stage1")
    listing = write_dataset(tmp_path, count=2, size=(230, 230))
    redirect(param, listing, tmp_path, 1)
    for lp in param.layer:
        if lp.name in ("fc6", "fc7"):
            lp.convolution_param.num_output = 64
    solver, losses = train(param, 1)
    assert solver.net.blobs["data"].shape == (1, 3, 224, 224)
    assert np.isfinite(losses).all()
