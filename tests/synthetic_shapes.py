"""Synthetic segmentation data for the example nets in models/: random filled discs
and squares on noise, with their per-pixel class masks.

Classes: 0 background, 1 disc, 2 square (later shapes paint over earlier ones).
Both shapes draw their colour from the same distribution, so telling a disc from a
square needs the shape, while finding the foreground needs only the local colour:
a net that merely learns foreground vs background already beats the majority-class
rate, one that learns the outlines does better.

    images, labels = make_shapes(16, size=32, seed=0)
    images: (N, 3, S, S) float32, zero-mean noise plus shapes in [0.5, 1.0]
    labels: (N, 1, S, S) float32 in {0, 1, 2} (SoftmaxWithLoss's label layout)
"""
import numpy as np

BACKGROUND, DISC, SQUARE = 0, 1, 2
NUM_CLASSES = 3
CLASS_NAMES = ("background", "disc", "square")


def make_shapes(num, size=32, seed=0, max_shapes=3, noise=0.25):
    """``num`` images with 1..max_shapes shapes each, radius / half-side between
    size/6 and size/3; numpy-vectorised over images and pixels."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)      # (S, S) pixel centres
    images = rng.normal(0.0, noise, (num, 3, size, size)).astype(np.float32)
    labels = np.zeros((num, 1, size, size), np.float32)
    present = np.arange(max_shapes) < rng.integers(1, max_shapes + 1, (num, 1))
    lo, hi = size / 6.0, size / 3.0
    for slot in range(max_shapes):                   # (N,) parameters of this slot
        kind = rng.integers(DISC, SQUARE + 1, num)
        radius = rng.uniform(lo, hi, num).astype(np.float32)
        cy, cx = rng.uniform(0, size - 1, (2, num)).astype(np.float32)
        colour = rng.uniform(0.5, 1.0, (num, 3)).astype(np.float32)
        dy = ys[None] - cy[:, None, None]                        # (N, S, S)
        dx = xs[None] - cx[:, None, None]
        r = radius[:, None, None]
        disc = dy * dy + dx * dx <= r * r
        square = (np.abs(dy) <= r) & (np.abs(dx) <= r)
        inside = np.where((kind == DISC)[:, None, None], disc, square)
        inside &= present[:, slot][:, None, None]                # (N, S, S)
        labels[:, 0] = np.where(inside, kind[:, None, None], labels[:, 0])
        shaded = colour[:, :, None, None] + rng.normal(
            0.0, noise / 2, (num, 3, size, size)).astype(np.float32)
        images = np.where(inside[:, None], shaded, images)
    return images.astype(np.float32), labels


def majority_fraction(labels):
    """Chance level for pixel accuracy: the share of the most frequent class."""
    counts = np.bincount(labels.astype(np.int64).ravel(), minlength=NUM_CLASSES)
    return counts.max() / counts.sum()


def pixel_accuracy(scores, labels):
    """scores (N, K, H, W), labels (N, 1, H, W): share of pixels whose arg-max class
    is the label."""
    return float(np.mean(scores.argmax(axis=1) == labels[:, 0].astype(np.int64)))


# -- detection: boxes around the shapes -----------------------------------------

def make_detection_shapes(num, size=48, seed=0, max_shapes=2, noise=30):
    """``num`` uint8 BGR images (N, S, S, 3) with 1..max_shapes shapes that do not
    overlap (side between size/5 and size/2.5), and per image a float32 (k, 5)
    array of (class, xmin, ymin, xmax, ymax), normalized to the image. Classes as
    above (1 disc, 2 square); colours from one distribution, on noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    images = np.clip(rng.normal(96, noise, (num, size, size, 3)), 0, 255)
    boxes = []
    for n in range(num):
        placed = []
        for _ in range(int(rng.integers(1, max_shapes + 1))):
            for _ in range(20):                       # a free place, else give up
                r = rng.uniform(size / 10, size / 5)
                cy, cx = rng.uniform(r, size - r, 2)
                box = (cx - r, cy - r, cx + r, cy + r)
                if all(box[0] >= b[3] or box[2] <= b[1] or box[1] >= b[4]
                       or box[3] <= b[2] for b in placed):
                    break
            else:
                continue
            kind = int(rng.integers(DISC, SQUARE + 1))
            if kind == DISC:
                inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r
            else:
                inside = (np.abs(ys - cy) <= r) & (np.abs(xs - cx) <= r)
            colour = rng.uniform(160, 255, 3)
            images[n][inside] = np.clip(colour + rng.normal(0, noise / 2, (inside.sum(), 3)),
                                        0, 255)
            placed.append((kind,) + box)
        boxes.append(np.array(placed, np.float32).reshape(-1, 5) / np.array(
            [1, size, size, size, size], np.float32))
    return images.astype(np.uint8), boxes
