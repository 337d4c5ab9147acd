"""Slow, independent references for the pycaffe scripting surface (caffe.io,
Classifier, summary MACs), written from pycaffe's definitions with plain loops.
They never call the code they check."""
import numpy as np


def preprocess(image, transpose, channel_swap, raw_scale, mean, input_scale):
    """pycaffe's preprocess without the resize, one element at a time (float32)."""
    image = np.asarray(image, np.float32)
    moved = np.empty(tuple(image.shape[a] for a in transpose), np.float32)
    for index in np.ndindex(*image.shape):
        moved[tuple(index[a] for a in transpose)] = image[index]
    out = np.empty_like(moved)
    for c in range(out.shape[0]):
        src = channel_swap[c]
        for y in range(out.shape[1]):
            for x in range(out.shape[2]):
                v = np.float32(moved[src, y, x]) * np.float32(raw_scale)
                m = mean[c] if np.ndim(mean) == 1 else mean[c, y, x]
                v = np.float32(v - np.float32(m))
                out[c, y, x] = np.float32(v * np.float32(input_scale))
    return out


def oversample(images, crop_dims):
    """Ten crops per image: corners (TL, TR, BL, BR), centre, then the same
    five mirrored left-right; the centre starts at int(H/2 - ch/2)."""
    ch, cw = crop_dims
    crops = []
    for im in images:
        h, w = im.shape[:2]
        boxes = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw),
                 (int(h / 2.0 - ch / 2.0), int(w / 2.0 - cw / 2.0))]
        mine = []
        for y0, x0 in boxes:
            crop = np.empty((ch, cw, im.shape[2]), np.float32)
            for y in range(ch):
                for x in range(cw):
                    crop[y, x] = im[y0 + y, x0 + x]
            mine.append(crop)
        for crop in list(mine):
            mirrored = np.empty_like(crop)
            for x in range(cw):
                mirrored[:, x] = crop[:, cw - 1 - x]
            mine.append(mirrored)
        crops.extend(mine)
    return np.array(crops)


def conv_out(size, kernel, stride=1, pad=0):
    return (size + 2 * pad - kernel) // stride + 1


def pool_out(size, kernel, stride, pad=0):
    """Caffe's pooling size: ceil division, pulled back inside the padded input."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out
