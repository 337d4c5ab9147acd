"""What the segmentation forks' data layers share: "image label" list files, the
image/label pair read together (sizes checked), and one crop-and-mirror applied to
both, padding a too-small pair (image with the mean, label with ignore_label);
DeconvNet's windows ("image label x1 y1 x2 y2") cut out of a pair."""
import numpy as np

from ..errors import CaffeLiteError
from .image import read_image, resize_linear, to_chw


def read_pair_list(path, text, error, with_labels=True):
    """'<image> <label>' lines -> [(image, label or None, line number)]; a line
    without its label name (when labels are expected) is an error naming file:line."""
    pairs = []
    for number, line in enumerate(text.split("\n"), 1):
        fields = line.split()
        if not fields:
            continue
        if with_labels and len(fields) < 2:
            raise error(f"{path}:{number}: expected '<image> <label>', got {line.strip()!r}")
        pairs.append((fields[0], fields[1] if with_labels else None, number))
    if not pairs:
        raise error(f"the image list {path} is empty")
    return pairs


def read_window_list(path, text, error, with_labels=True):
    """'<image> [<label>] x1 y1 x2 y2' lines -> [(image, label or None, (x1, y1, x2,
    y2), line number)]; the corners are inclusive pixel coordinates."""
    entries = []
    want = 6 if with_labels else 5
    for number, line in enumerate(text.split("\n"), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) < want:
                raise ValueError
            corners = tuple(int(v) for v in fields[want - 4:want])
        except ValueError:
            form = "<image> <label> x1 y1 x2 y2" if with_labels else "<image> x1 y1 x2 y2"
            raise error(f"{path}:{number}: expected '{form}', got {line.strip()!r}") from None
        if corners[2] < corners[0] or corners[3] < corners[1]:
            raise error(f"{path}:{number}: the window {corners} has x2 < x1 or y2 < y1")
        entries.append((fields[0], fields[1] if with_labels else None, corners, number))
    if not entries:
        raise error(f"the window list {path} is empty")
    return entries


def cut_window(image, label, corners, fill_label, size=(0, 0)):
    """The window [x1, x2] x [y1, y2] of an (H, W, C) image and its (H, W, 1) label,
    where the window leaves the image the image padded with 0 and the label with
    ``fill_label``; then resized to ``size`` when given (image bilinearly as
    OpenCV's INTER_LINEAR, label by nearest neighbour)."""
    x1, y1, x2, y2 = corners
    H, W = image.shape[:2]
    before = (max(0, -y1), max(0, -x1))
    after = (max(0, y2 - H + 1), max(0, x2 - W + 1))
    if any(before) or any(after):
        pads = ((before[0], after[0]), (before[1], after[1]), (0, 0))
        image = np.pad(image, pads)
        label = np.pad(label, pads, constant_values=fill_label)
    rows = slice(y1 + before[0], y2 + before[0] + 1)
    cols = slice(x1 + before[1], x2 + before[1] + 1)
    image, label = image[rows, cols], label[rows, cols]
    if size[0] > 0 and size[1] > 0:
        image = resize_linear(np.ascontiguousarray(image), *size)
        label = nearest_resize(label, *size)
    return image, label


def nearest_resize(label, height, width):
    """A (H, W, 1) label map resized by nearest neighbour (OpenCV's INTER_NEAREST
    index rule, floor(i * H / h)), so no label value is invented."""
    H, W = label.shape[:2]
    rows = np.minimum((np.arange(height) * H) // height, H - 1)
    cols = np.minimum((np.arange(width) * W) // width, W - 1)
    return label[rows][:, cols]


def read_pair(root, entry, list_path, error, size=(0, 0), is_color=True):
    """One (image (C, H, W) uint8, label (1, H, W) uint8 or None) pair; errors name
    the list file and line, and both files when their sizes differ."""
    image_name, label_name, line = entry
    where = f"{list_path}:{line}"
    def read(name, **kw):
        try:
            return read_image(root + name, **kw)
        except CaffeLiteError as exc:
            raise error(f"{where}: {root + name}: {exc.message}") from None

    image = read(image_name, height=size[0], width=size[1], is_color=is_color)
    label = None
    if label_name is not None:
        label = read(label_name, is_color=False)
        if size[0] > 0 and size[1] > 0:
            label = nearest_resize(label, *size)
    if label is not None and label.shape[:2] != image.shape[:2]:
        raise error(f"{where}: the label {root + label_name} is {label.shape[1]}x"
                    f"{label.shape[0]} but the image {root + image_name} is "
                    f"{image.shape[1]}x{image.shape[0]} (width x height)")
    return to_chw(image), None if label is None else to_chw(label)


class PairTransformer:
    """crop (h, w) (0: none), mirror, mean values, scale; offsets random in TRAIN,
    centred in TEST (as Caffe's DataTransformer). The image becomes float32
    (x - mean) * scale; the label is cropped and mirrored alike, values unchanged."""

    def __init__(self, crop, mirror, mean_values, scale, train, rng, ignore_label=255,
                 pad=False):
        self.crop, self.mirror, self.scale = crop, mirror, np.float32(scale)
        self.mean = None if mean_values is None else np.asarray(mean_values, np.float32)
        self.train, self.rng = train, rng
        self.ignore_label, self.pad = ignore_label, pad

    def __call__(self, image, label, error):
        image = image.astype(np.float32)
        C = image.shape[0]
        if self.mean is not None:
            if len(self.mean) not in (1, C):
                raise error(f"give one mean_value or one per channel ({C}), got {len(self.mean)}")
            image = image - np.broadcast_to(self.mean, (C,))[:, None, None]
        ch, cw = self.crop
        if ch and cw:
            H, W = image.shape[1:]
            if self.pad and (H < ch or W < cw):       # pad with the mean: 0 after subtraction
                ph, pw = max(ch - H, 0), max(cw - W, 0)
                image = np.pad(image, ((0, 0), (0, ph), (0, pw)))
                if label is not None:
                    label = np.pad(label, ((0, 0), (0, ph), (0, pw)),
                                   constant_values=self.ignore_label)
                H, W = image.shape[1:]
            if H < ch or W < cw:
                raise error(f"crop {ch}x{cw} does not fit an image of {H}x{W}")
            if self.train:
                top, left = int(self.rng.integers(H - ch + 1)), int(self.rng.integers(W - cw + 1))
            else:
                top, left = (H - ch) // 2, (W - cw) // 2
            image = image[:, top:top + ch, left:left + cw]
            if label is not None:
                label = label[:, top:top + ch, left:left + cw]
        if self.mirror and self.rng.integers(2):
            image = image[:, :, ::-1]
            if label is not None:
                label = label[:, :, ::-1]
        image = image * self.scale
        return image, None if label is None else label.astype(np.float32)
