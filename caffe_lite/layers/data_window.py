"""WindowData (R-CNN style): batches of image windows warped to crop_size x
crop_size, a fg_fraction of them sampled from foreground windows (overlap >=
fg_threshold, their class label) and the rest from background windows
(overlap < bg_threshold, label 0). Windows are drawn at random with replacement.

The window file (window_data_param.source) repeats:
    # image_index / image_path / channels / height / width / num_windows /
    num_windows lines of "class_index overlap x1 y1 x2 y2"  (inclusive pixels)
Fields read: source, root_folder, batch_size, fg_threshold, bg_threshold,
fg_fraction, context_pad, crop_mode ("warp" or "square"), cache_images, and
scale (window_data_param's own; transform_param.scale is not used, as in Caffe);
transform_param crop_size (required), mirror, mean_file / mean_value.
A window grown by context_pad (and squared) that leaves the image is clipped,
warped with the same scale, and placed at its offset in a zero-filled crop.
"""
import numpy as np

from ..data.files import find_file
from ..data.image import COLOR, decode_image, resize_linear
from ..data.transform import read_mean
from ..errors import CaffeLiteError
from .base import register_layer
from .data import DataLayer, layer_rng

F32 = np.float32


def _round(value):
    """C's round(): halves away from zero."""
    return int(np.sign(value) * np.floor(abs(float(value)) + 0.5))


@register_layer("WindowData")
class WindowDataLayer(DataLayer):
    exact_num_top = 2

    def layer_setup(self, bottom, top):
        p, tp = self.param.window_data_param, self.param.transform_param
        self.batch_size, self.crop, self.mirror = p.batch_size, tp.crop_size, tp.mirror
        if self.crop <= 0 or self.batch_size <= 0:
            raise self.error("WindowData needs transform_param.crop_size and "
                             "window_data_param.batch_size > 0")
        self.scale, self.context_pad = F32(p.scale), p.context_pad
        self.square = p.crop_mode == "square"
        self.fg_fraction = p.fg_fraction
        self.source = find_file(p.source, self.net_file)
        self.images, fg, bg = self.read_windows(p)
        if not fg or not bg:
            raise self.error(f"the window file {self.source} needs foreground and "
                             f"background windows (got {len(fg)} and {len(bg)})")
        self.fg, self.bg = fg, bg
        self.cache = ([self.read_bytes(path) for path, _ in self.images]
                      if p.cache_images else None)
        channels = list(self.images.values())[-1][1][0]     # Caffe: the last image's
        self.mean = self.mean_values = None
        if tp.HasField("mean_file"):
            self.mean = read_mean(find_file(tp.mean_file, self.net_file), self.error)
        elif len(tp.mean_value):
            if len(tp.mean_value) not in (1, channels):
                raise self.error(f"give one mean_value or one per channel ({channels})")
            self.mean_values = np.broadcast_to(np.array(tp.mean_value, F32), (channels,))
        self.rng = layer_rng(per_rank=True)
        top[0].reshape(self.batch_size, channels, self.crop, self.crop)
        top[1].reshape(self.batch_size)

    def read_windows(self, p):
        tokens = self.read_text(self.source, "window file").split()
        if not tokens:
            raise self.error(f"the window file {self.source} is empty")
        images, fg, bg, pos = {}, [], [], 0
        try:
            while pos < len(tokens):
                if tokens[pos] != "#":
                    raise ValueError(f"expected '#', found '{tokens[pos]}'")
                index, path = int(tokens[pos + 1]), p.root_folder + tokens[pos + 2]
                size = tuple(int(v) for v in tokens[pos + 3:pos + 6])
                count, pos = int(tokens[pos + 6]), pos + 7
                images[index] = (path, size)
                for _ in range(count):
                    label, overlap = int(tokens[pos]), float(tokens[pos + 1])
                    box = [int(v) for v in tokens[pos + 2:pos + 6]]
                    pos += 6
                    if overlap >= F32(p.fg_threshold):
                        if label <= 0:
                            raise ValueError("a foreground window needs a label > 0")
                        fg.append((index, label, *box))
                    elif overlap < F32(p.bg_threshold):
                        bg.append((index, 0, *box))
        except (ValueError, IndexError) as exc:
            raise self.error(f"bad window file {self.source}: {exc}") from None
        return images, fg, bg

    def read_bytes(self, path):
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise self.error(f"cannot read image {path}: {exc.strerror or exc}") from None

    def forward(self, bottom, top):
        B, C = self.batch_size, top[0].shape[1]
        data = np.zeros((B, C, self.crop, self.crop), F32)
        labels = np.zeros(B, F32)
        num_fg = int(F32(B) * F32(self.fg_fraction))
        pools = [self.bg] * (B - num_fg) + [self.fg] * num_fg
        for item, pool in enumerate(pools):
            index, label, *box = pool[self.rng.integers(len(pool))]
            flip = bool(self.mirror and self.rng.integers(2))
            path, _ = self.images[index]
            raw = self.cache[index] if self.cache else self.read_bytes(path)
            try:
                image = decode_image(raw, COLOR, name=path)
            except CaffeLiteError as exc:
                raise self.error(exc.message + f" ({path})") from None
            self.place(data[item], image, box, flip)
            labels[item] = label
        top[0].data[...] = data
        top[1].data[...] = labels

    def place(self, out, image, box, flip):
        """Warp one window into out (C, crop, crop), as Caffe's load_batch."""
        x1, y1, x2, y2 = box
        crop, pad_w, pad_h = self.crop, 0, 0
        height, width = crop, crop
        if self.context_pad > 0 or self.square:
            context = F32(crop) / F32(crop - 2 * self.context_pad)
            half_h, half_w = F32((y2 - y1 + 1) / 2.0), F32((x2 - x1 + 1) / 2.0)
            cx, cy = F32(x1) + half_w, F32(y1) + half_h
            if self.square:
                half_h = half_w = max(half_h, half_w)
            x1, x2 = _round(cx - half_w * context), _round(cx + half_w * context)
            y1, y2 = _round(cy - half_h * context), _round(cy + half_h * context)
            full_h, full_w = y2 - y1 + 1, x2 - x1 + 1
            px1, py1 = max(0, -x1), max(0, -y1)
            px2 = max(0, x2 - image.shape[1] + 1)
            py2 = max(0, y2 - image.shape[0] + 1)
            x1, x2, y1, y2 = x1 + px1, x2 - px2, y1 + py1, y2 - py2
            sx, sy = F32(crop) / F32(full_w), F32(crop) / F32(full_h)
            width, height = _round(F32(x2 - x1 + 1) * sx), _round(F32(y2 - y1 + 1) * sy)
            pad_h = _round(F32(py1) * sy)
            pad_w = _round(F32(px2 if flip else px1) * sx)
            height, width = min(height, crop - pad_h), min(width, crop - pad_w)
        if height <= 0 or width <= 0 or x2 < x1 or y2 < y1:
            return
        window = resize_linear(image[y1:y2 + 1, x1:x2 + 1], height, width)
        if flip:
            window = window[:, ::-1]
        pixels = window.transpose(2, 0, 1).astype(F32)                 # (C, h, w)
        if self.mean is not None:
            off = (self.mean.shape[2] - crop) // 2
            pixels -= self.mean[:, off + pad_h:off + pad_h + height,
                                off + pad_w:off + pad_w + width]
        elif self.mean_values is not None:
            pixels -= self.mean_values[:, None, None]
        out[:, pad_h:pad_h + height, pad_w:pad_w + width] = pixels * self.scale
