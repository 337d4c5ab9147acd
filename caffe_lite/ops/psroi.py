"""Position-sensitive ROI average pooling (R-FCN): every output bin (ph, pw) of
class channel k averages its own input channel (k G + ph) G + pw over the bin.

Bins are summed through a float64 integral image, and the gradient is spread
through a float64 difference image, so neither loops over pixels or ROIs.
"""
import numpy as np

from .roi import c_round


def psroi_bins(rois, spatial_scale, group_size, height, width):
    """rois (R, 5) [batch, x1, y1, x2, y2] -> (batch (R,), hstart, hend, wstart,
    wend (R, G, G) ints), in the rois' dtype arithmetic as the fork computes them
    (ends inclusive in image pixels, clipped to the map)."""
    dtype = rois.dtype.type
    scale = dtype(spatial_scale)
    batch = rois[:, 0].astype(np.int64)
    x1, y1, x2, y2 = (c_round(rois[:, k]).astype(rois.dtype) for k in range(1, 5))
    start_w, start_h = x1 * scale, y1 * scale                    # (R,)
    end_w, end_h = (x2 + dtype(1)) * scale, (y2 + dtype(1)) * scale
    bin_h = np.maximum(end_h - start_h, dtype(0.1)) / dtype(group_size)
    bin_w = np.maximum(end_w - start_w, dtype(0.1)) / dtype(group_size)
    g = np.arange(group_size, dtype=rois.dtype)
    hs = np.floor(g[None, :] * bin_h[:, None] + start_h[:, None])          # (R, G)
    he = np.ceil((g[None, :] + 1) * bin_h[:, None] + start_h[:, None])
    ws = np.floor(g[None, :] * bin_w[:, None] + start_w[:, None])
    we = np.ceil((g[None, :] + 1) * bin_w[:, None] + start_w[:, None])
    hs, he = (np.clip(v, 0, height).astype(np.int64) for v in (hs, he))
    ws, we = (np.clip(v, 0, width).astype(np.int64) for v in (ws, we))
    G = group_size
    return (batch, np.broadcast_to(hs[:, :, None], (len(rois), G, G)),
            np.broadcast_to(he[:, :, None], (len(rois), G, G)),
            np.broadcast_to(ws[:, None, :], (len(rois), G, G)),
            np.broadcast_to(we[:, None, :], (len(rois), G, G)))


def _bin_channels(output_dim, group_size):
    """(K, G, G) input channel of each output channel k and bin (ph, pw)."""
    G = group_size
    return (np.arange(output_dim)[:, None, None] * G + np.arange(G)[:, None]) * G \
        + np.arange(G)


def psroi_forward(x, rois, spatial_scale, output_dim, group_size):
    """x (N, K G G, H, W), rois (R, 5) -> (R, K, G, G): bin averages, 0 for empty bins."""
    N, C, H, W = x.shape
    batch, hs, he, ws, we = psroi_bins(rois, spatial_scale, group_size, H, W)
    integral = np.zeros((N, C, H + 1, W + 1))
    integral[:, :, 1:, 1:] = x.astype(np.float64).cumsum(2).cumsum(3)
    chan = _bin_channels(output_dim, group_size)[None]          # (1, K, G, G)
    n = batch[:, None, None, None]
    hs, he, ws, we = (v[:, None] for v in (hs, he, ws, we))     # (R, 1, G, G)
    total = (integral[n, chan, he, we] - integral[n, chan, hs, we]
             - integral[n, chan, he, ws] + integral[n, chan, hs, ws])
    area = (he - hs) * (we - ws)
    return np.where(area > 0, total / np.maximum(area, 1), 0).astype(x.dtype)


def psroi_backward(dy, rois, x_shape, spatial_scale, group_size):
    """dy (R, K, G, G) -> dx (N, K G G, H, W): each bin's dy / area over its pixels."""
    N, C, H, W = x_shape
    R, K = dy.shape[:2]
    batch, hs, he, ws, we = psroi_bins(rois, spatial_scale, group_size, H, W)
    hs, he, ws, we = (np.broadcast_to(v[:, None], dy.shape) for v in (hs, he, ws, we))
    area = (he - hs) * (we - ws)
    share = np.where(area > 0, dy / np.maximum(area, 1), 0.0)
    n = np.broadcast_to(batch[:, None, None, None], dy.shape)
    chan = np.broadcast_to(_bin_channels(K, group_size)[None], dy.shape)
    edges = np.zeros((N, C, H + 1, W + 1))                       # difference image
    for h, w, sign in ((hs, ws, 1), (hs, we, -1), (he, ws, -1), (he, we, 1)):
        np.add.at(edges, (n, chan, h, w), sign * share)
    return edges.cumsum(2).cumsum(3)[:, :, :H, :W].astype(dy.dtype)
