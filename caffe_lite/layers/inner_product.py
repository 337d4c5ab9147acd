"""InnerProduct: a fully connected layer over the axes from ``axis`` on.

inner_product_param fields read: num_output, bias_term, weight_filler, bias_filler,
axis (default 1), transpose.
Shapes: bottom (*lead, *rest) with M = prod(lead), K = prod(rest) -> top (*lead, N).
Weights (N, K), or (K, N) with transpose; bias (N,).
y = x W^T + b (transpose: y = x W + b).
"""
import numpy as np

from ..fillers import fill
from ..ops import threads
from .base import Layer, register_layer


@register_layer("InnerProduct")
class InnerProductLayer(Layer):
    exact_num_bottom = 1
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.inner_product_param
        self.num_output, self.bias_term, self.transpose = p.num_output, p.bias_term, p.transpose
        if self.num_output <= 0:
            raise self.error("num_output must be > 0")
        self.axis = bottom[0].canonical_axis(p.axis)
        self.K = bottom[0].count_range(self.axis)
        w_shape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        self.blobs = [self.make_blob(w_shape)]
        fill(self.blobs[0], p.weight_filler)
        if self.bias_term:
            self.blobs.append(self.make_blob((self.num_output,)))
            fill(self.blobs[1], p.bias_filler)
        self.param_propagate_down = [True] * len(self.blobs)

    def reshape(self, bottom, top):
        axis = bottom[0].canonical_axis(self.param.inner_product_param.axis)
        K = bottom[0].count_range(axis)
        if K != self.K:
            raise self.error(f"input of shape {bottom[0].shape} has {K} values per item "
                             f"from axis {axis}; the weights were made for {self.K}",
                             blob=self.param.bottom[0] if self.param.bottom else None)
        self.M = bottom[0].count_range(0, axis)
        top[0].reshape(bottom[0].shape[:axis] + (self.num_output,))

    def weight_nk(self, w):
        """The weights as (N, K), whichever way they are stored."""
        return w.T if self.transpose else w

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.M, self.K)
        y = top[0].data.reshape(self.M, self.num_output)
        w = self.weight_nk(self.blobs[0].data)                           # (N, K)
        if self.M <= FEW_ROWS:
            yt = np.empty((self.num_output, self.M), y.dtype)
            threads.matmul(w, x.T, out=yt)                               # (N, M)
            y[...] = yt.T
        else:
            threads.matmul(x, w.T, out=y)                                # (M, N)
        if self.bias_term:
            y += self.blobs[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(self.M, self.num_output)                # (M, N)
        if self.param_propagate_down[0]:                                 # diffs accumulate
            x = bottom[0].data.reshape(self.M, self.K)
            if self.transpose:
                accumulate_product(x.T, dy, self.blobs[0].diff)          # (K, N)
            else:
                accumulate_product(dy.T, x, self.blobs[0].diff)          # (N, K)
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff[...] += dy.sum(axis=0)
        if propagate_down[0]:
            np.matmul(dy, self.weight_nk(self.blobs[0].data),
                      out=bottom[0].diff.reshape(self.M, self.K))        # (M, K)


#: up to this many rows (images), y^T = W x^T runs faster than y = x W^T: OpenBLAS
#: handles the long weights side better as the left operand (fc6 of CaffeNet at
#: batch 8: 16.6 ms vs 22.6; VGG16's: 39 vs 57; at 256 rows, 12.3 vs 11.7)
FEW_ROWS = 64

#: rows of a weight gradient computed per block: a block stays in cache while it is
#: added, and no temporary as large as the weights is made (VGG16's fc6: 411 MB)
PRODUCT_BLOCK_BYTES = 1 << 22


def accumulate_product(a, b, out):
    """out += a @ b, a block of rows at a time (each value rounds as a @ b then +=)."""
    rows = max(1, PRODUCT_BLOCK_BYTES // max(1, out.shape[1] * out.itemsize))
    block = np.empty((min(rows, out.shape[0]), out.shape[1]), out.dtype)
    for start in range(0, out.shape[0], rows):
        part = slice(start, start + rows)
        product = block[:out[part].shape[0]]
        np.matmul(a[part], b, out=product)
        out[part] += product
