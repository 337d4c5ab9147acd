"""Net surgery as FCN's surgery.py does it: fill deconvolution weights with a
bilinear interpolation kernel."""
import numpy as np


def upsample_filt(size):
    """A 2-D bilinear kernel of the given size."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def interp(net, layers):
    """Set the named (per-channel, grouped) deconvolutions to bilinear upsampling."""
    for l in layers:
        m, k, h, w = net.params[l][0].data.shape
        if k != 1 and m != k:
            raise ValueError('input + output channels need to be the same or |output| == 1')
        if h != w:
            raise ValueError('filters need to be square')
        filt = upsample_filt(h)
        net.params[l][0].data[range(m), range(k) if k == m else 0, :, :] = filt
