"""DeconvNet's WindowSegData against a plain-loop reference: windows cut out of
image/label pairs (padded where they leave the image: image 0, label
ignore_label), optionally resized, then the usual crop/mirror/mean; label_type
IMAGE and NONE; the data_dim top; list and file errors naming file and line."""
import numpy as np
import pytest
from test_seg_data import Image, data_layer, read_bgr, run_layer, write_dataset

from caffe_lite.errors import LayerError

assert Image is not None


def ref_window(image, label, corners, fill):
    """image (C, H, W), label (1, H, W) -> the inclusive window, padded by loops."""
    x1, y1, x2, y2 = corners
    C, H, W = image.shape
    out_i = np.zeros((C, y2 - y1 + 1, x2 - x1 + 1))
    out_l = np.full((1, y2 - y1 + 1, x2 - x1 + 1), float(fill))
    for y in range(y1, y2 + 1):
        for x in range(x1, x2 + 1):
            if 0 <= y < H and 0 <= x < W:
                out_i[:, y - y1, x - x1] = image[:, y, x]
                out_l[:, y - y1, x - x1] = label[:, y, x]
    return out_i, out_l


WINDOWS = [(2, 3, 11, 14), (-3, -2, 6, 9), (25, 15, 34, 26), (1, 1, 10, 12)]   # 10 x 12


def window_list(tmp_path, windows=WINDOWS, label=True):
    listing = write_dataset(tmp_path, count=len(windows), size=(24, 32))
    lines = listing.read_text().split("\n")
    out = []
    for line, w in zip(lines, windows):
        image, seg = line.split()
        out.append(" ".join([image] + ([seg] if label else []) + [str(v) for v in w]))
    listing.write_text("\n".join(out) + "\n")
    return listing


def test_windows_against_loops(tmp_path):
    listing = window_list(tmp_path)
    param = (f'image_data_param {{ source: "{listing}" root_folder: "{tmp_path}" '
             f'batch_size: 2 label_type: PIXEL ignore_label: 255 new_height: 0 }}')
    text = data_layer("WindowSegData", param, "mean_value: 10 mean_value: 20 mean_value: 30",
                      tops=("data", "label", "dim"))
    for first in (0, 2):
        layer, bottom, top = run_layer(text)             # has run the first batch
        if first:
            layer.run_forward(bottom, top)
        for item in range(2):
            k = first + item
            image = read_bgr(tmp_path / "img" / f"{k}.png")
            label = np.asarray(Image.open(tmp_path / "lab" / f"{k}.png"))[None].astype(float)
            want_i, want_l = ref_window(image, label, WINDOWS[k], 255)
            want_i -= np.array([10, 20, 30])[:, None, None]
            np.testing.assert_array_equal(top[0].data[item], want_i)
            np.testing.assert_array_equal(top[1].data[item], want_l)
            np.testing.assert_array_equal(top[2].data[item, 0, 0],
                                          np.minimum((24, 32), want_i.shape[1:]))


def test_windows_resized_and_cropped(tmp_path):
    """Each window resized to 16 x 20 (image bilinear, label nearest: source index
    floor(i * in / out)), then centre-cropped to 12 x 12 (TEST phase)."""
    from caffe_lite.data.image import resize_linear
    listing = window_list(tmp_path)
    param = (f'image_data_param {{ source: "{listing}" root_folder: "{tmp_path}" '
             f'batch_size: 4 label_type: PIXEL new_height: 16 new_width: 20 }}')
    layer, bottom, top = run_layer(data_layer("WindowSegData", param, "crop_size: 12"))
    assert top[0].data.shape == (4, 3, 12, 12) and top[1].data.shape == (4, 1, 12, 12)
    for k, corners in enumerate(WINDOWS):
        image = read_bgr(tmp_path / "img" / f"{k}.png")
        label = np.asarray(Image.open(tmp_path / "lab" / f"{k}.png"))[None].astype(float)
        win_i, win_l = ref_window(image, label, corners, 255)
        rows = [i * win_l.shape[1] // 16 for i in range(16)]
        cols = [j * win_l.shape[2] // 20 for j in range(20)]
        resized_l = np.array([[win_l[0, r, c] for c in cols] for r in rows])
        resized_i = resize_linear(win_i.transpose(1, 2, 0).astype(np.uint8), 16, 20)
        np.testing.assert_array_equal(top[1].data[k, 0], resized_l[2:14, 4:16])
        np.testing.assert_array_equal(top[0].data[k], resized_i.transpose(2, 0, 1)[:, 2:14, 4:16])


@pytest.mark.parametrize("label_type, value", [("IMAGE", 3), ("NONE", 255)])
def test_label_types_without_label_images(tmp_path, label_type, value):
    listing = window_list(tmp_path, WINDOWS[:1], label=False)
    if label_type == "IMAGE":
        lines = listing.read_text().split()
        listing.write_text(" ".join(lines[:1] + ["3"] + lines[1:]) + "\n")
    param = (f'image_data_param {{ source: "{listing}" root_folder: "{tmp_path}" '
             f'batch_size: 1 label_type: {label_type} }}')
    layer, bottom, top = run_layer(data_layer("WindowSegData", param))
    assert top[1].data.shape == (1, 1, 12, 10)
    assert np.all(top[1].data == value)


def test_errors_name_file_and_line(tmp_path):
    listing = window_list(tmp_path, WINDOWS[:2])
    text = listing.read_text().split("\n")
    listing.write_text(text[0] + "\n/img/0.png /lab/0.png 1 2 3\n")
    param = (f'image_data_param {{ source: "{listing}" root_folder: "{tmp_path}" '
             f'batch_size: 1 label_type: PIXEL }}')
    with pytest.raises(LayerError, match=r"list.txt:2: expected"):
        run_layer(data_layer("WindowSegData", param))
    listing.write_text("/img/9.png /lab/0.png 1 2 3 4\n")
    with pytest.raises(LayerError, match=r"list.txt:1: .*9.png"):
        run_layer(data_layer("WindowSegData", param))
    listing.write_text("/img/0.png /lab/0.png 5 2 3 4\n")
    with pytest.raises(LayerError, match="x2 < x1"):
        run_layer(data_layer("WindowSegData", param))


@pytest.mark.parametrize("name", ["003_make_bn_layer_testable_DeconvNet_inference_test",
                                  "003_make_bn_layer_testable_DeconvNet_make_bn_layer_testable"])
def test_zoo_deconvnet_window_reader(zoo_path, tmp_path, name):
    """The zoo's stage-2 DeconvNet data layer as written (V1 WINDOW_SEG_DATA, label
    PIXEL, windows resized to 224 or 250, crop 224, mirror, mean) on windows here."""
    import caffe_lite
    from caffe_lite.formats import parse_net_param
    param = parse_net_param(zoo_path(f"deconvnet/{name}.prototxt").read_text(), name)
    reader = param.layer[0]
    assert reader.type == "WindowSegData"
    listing = window_list(tmp_path)
    reader.image_data_param.source = str(listing)
    reader.image_data_param.root_folder = str(tmp_path)
    reader.image_data_param.batch_size = 2
    del param.layer[1:]
    caffe_lite.set_random_seed(1)
    net = caffe_lite.Net(param, caffe_lite.TEST)
    net.forward()
    assert net.blobs["data"].shape == (2, 3, 224, 224)
    labels = net.blobs["seg-label"].data
    assert labels.shape == (2, 1, 224, 224) and set(np.unique(labels)) <= {0, 1, 2, 3, 255}
