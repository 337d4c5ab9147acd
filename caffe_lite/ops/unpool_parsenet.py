"""ParseNet's UnPooling windows (weiliu89/caffe branch fcn): input cell (h, w)
owns the output window starting at (h * stride - pad, w * stride - pad) of the
kernel's size. FIXED puts x at the window's (clamped) middle cell; REP spreads x
over the window's cells inside the output, each cell dividing what it gets by the
number of windows covering it; DIV does the same with x first divided by the
window's area (clipped at the far edge only, as the fork). float32 operations in
the fork's order, one window at a time (inputs are small: ParseNet unpools a
global pooling)."""
import numpy as np


def windows(in_hw, kernel, stride, pad, out_hw):
    """Per input cell (raster order): (row0, row1, col0, col1) of its window inside
    the output, and its area for DIV."""
    out = []
    for h in range(in_hw[0]):
        for w in range(in_hw[1]):
            r0, c0 = h * stride[0] - pad[0], w * stride[1] - pad[1]
            r1 = min(r0 + kernel[0], out_hw[0] + pad[0])
            c1 = min(c0 + kernel[1], out_hw[1] + pad[1])
            area = (r1 - r0) * (c1 - c0)
            out.append((max(r0, 0), min(r1, out_hw[0]), max(c0, 0), min(c1, out_hw[1]),
                        area))
    return out


def coverage(in_hw, kernel, stride, pad, out_hw):
    """(OH, OW) int: how many windows cover each output cell."""
    count = np.zeros(out_hw, np.int64)
    for h in range(in_hw[0]):
        for w in range(in_hw[1]):
            r0, c0 = h * stride[0] - pad[0], w * stride[1] - pad[1]
            count[max(r0, 0):min(r0 + kernel[0], out_hw[0]),
                  max(c0, 0):min(c0 + kernel[1], out_hw[1])] += 1
    return count


def middles(in_hw, kernel, stride, pad, out_hw):
    """FIXED: each input cell's (row, col) in the output."""
    cells = []
    for h in range(in_hw[0]):
        for w in range(in_hw[1]):
            r0, c0 = h * stride[0] - pad[0], w * stride[1] - pad[1]
            r = (2 * r0 + kernel[0] - 1) // 2
            c = (2 * c0 + kernel[1] - 1) // 2
            cells.append((min(max(r, 0), out_hw[0] - 1), min(max(c, 0), out_hw[1] - 1)))
    return cells


def unpool_forward(x, method, kernel, stride, pad, out_hw):
    """x (N, C, H, W) -> (N, C, OH, OW); method 'FIXED', 'DIV' or 'REP'."""
    N, C, H, W = x.shape
    top = np.zeros((N, C) + tuple(out_hw), x.dtype)
    t = x.dtype.type
    if method == "FIXED":
        for k, (r, c) in enumerate(middles((H, W), kernel, stride, pad, out_hw)):
            top[:, :, r, c] = x[:, :, k // W, k % W]
        return top
    count = coverage((H, W), kernel, stride, pad, out_hw)
    for k, (r0, r1, c0, c1, area) in enumerate(windows((H, W), kernel, stride, pad, out_hw)):
        value = x[:, :, k // W, k % W]
        if method == "DIV":
            value = value / t(area)
        top[:, :, r0:r1, c0:c1] += value[:, :, None, None] / count[r0:r1, c0:c1].astype(x.dtype)
    return top


def unpool_backward(dy, method, kernel, stride, pad, in_hw):
    """The fork's gradient with respect to x (N, C, H, W) for top diff dy."""
    N, C = dy.shape[:2]
    out_hw = dy.shape[2:]
    dx = np.zeros((N, C) + tuple(in_hw), dy.dtype)
    t = dy.dtype.type
    H, W = in_hw
    if method == "FIXED":
        owner = {}                   # a cell written twice belongs to the last writer
        for k, cell in enumerate(middles(in_hw, kernel, stride, pad, out_hw)):
            owner[cell] = k
        for (r, c), k in owner.items():
            dx[:, :, k // W, k % W] = dy[:, :, r, c]
        return dx
    count = coverage(in_hw, kernel, stride, pad, out_hw)
    for k, (r0, r1, c0, c1, area) in enumerate(windows(in_hw, kernel, stride, pad, out_hw)):
        total = np.zeros((N, C), dy.dtype)
        for r in range(r0, r1):                          # the fork's summation order
            for c in range(c0, c1):
                g = dy[:, :, r, c]
                if method == "DIV":
                    g = g / t(area)
                total += g / t(count[r, c])
        dx[:, :, k // W, k % W] = total
    return dx
