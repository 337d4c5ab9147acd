"""Eltwise: element-wise PROD, SUM (with a coefficient per bottom) or MAX of
equally shaped bottoms."""
import numpy as np

from ..proto import caffe_pb2
from .base import Layer, register_layer

_OP = caffe_pb2.EltwiseParameter


def select(cond, a, b, out):
    """out = a where cond else b, bit for bit. Branch-free on the bits: numpy's
    masked copies and np.where run ~5x slower on random masks."""
    ints = np.dtype(f"i{out.dtype.itemsize}")
    keep_a = np.negative(cond, dtype=ints)                  # all ones where cond
    b_bits, out_bits = b.view(ints), out.view(ints)
    a_bits = np.bitwise_xor(a.view(ints), b_bits)
    a_bits &= keep_a
    np.bitwise_xor(a_bits, b_bits, out=out_bits)


@register_layer("Eltwise")
class EltwiseLayer(Layer):
    """eltwise_param: operation (SUM), coeff (one per bottom, SUM only),
    stable_prod_grad (true). k bottoms of one shape -> one top of that shape.

    MAX keeps Caffe's tie rule: bottom 0 wins over bottom 1 only if strictly
    greater, and each later bottom replaces the winner only if strictly greater;
    the winner takes the whole gradient.
    """
    min_bottom = 2
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        ep = self.param.eltwise_param
        self.op = ep.operation
        if ep.coeff and len(ep.coeff) != len(bottom):
            raise self.error(f"{len(ep.coeff)} coeff value(s) for {len(bottom)} "
                             f"bottoms: give one per bottom or none")
        if ep.coeff and self.op != _OP.SUM:
            raise self.error("coeff is only allowed with operation SUM")
        self.coeffs = list(ep.coeff) or [1.0] * len(bottom)
        self.stable_prod_grad = ep.stable_prod_grad
        self.mask = None

    def reshape(self, bottom, top):
        for i, b in enumerate(bottom[1:], 1):
            if b.shape != bottom[0].shape:
                raise self.error(f"bottom shapes differ: {bottom[0].shape} (bottom 0) vs "
                                 f"{b.shape} (bottom {i})",
                                 blob=self.param.bottom[i] if self.param.bottom else None)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        y = top[0].data
        if self.op == _OP.PROD:
            np.multiply(bottom[0].data, bottom[1].data, out=y)
            for b in bottom[2:]:
                y *= b.data
        elif self.op == _OP.SUM:
            terms = [b.data if c == 1 else b.data * y.dtype.type(c)
                     for b, c in zip(bottom, self.coeffs)]
            np.add(terms[0], terms[1], out=y)    # one pass; the same sums as Caffe's
            for term in terms[2:]:
                y += term
        else:
            a, b = bottom[0].data, bottom[1].data
            first = a > b
            select(first, a, b, out=y)
            mask = np.logical_not(first).astype(np.int8 if len(bottom) < 128 else np.int32)
            for k, blob in enumerate(bottom[2:], 2):
                better = blob.data > y
                select(better, blob.data, y, out=y)
                select(better, np.full_like(mask, k), mask, out=mask)
            self.mask = mask

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff
        for i, b in enumerate(bottom):
            if not propagate_down[i]:
                continue
            dx = b.diff
            if self.op == _OP.PROD:
                if self.stable_prod_grad:       # product of the other bottoms
                    others = [o.data for j, o in enumerate(bottom) if j != i]
                    np.copyto(dx, others[0])
                    for o in others[1:]:
                        dx *= o
                else:
                    np.divide(top[0].data, b.data, out=dx)
                dx *= dy
            elif self.op == _OP.SUM:
                c = self.coeffs[i]
                if c == 1:
                    np.copyto(dx, dy)
                else:
                    np.multiply(dy, dx.dtype.type(c), out=dx)
            else:
                select(self.mask == i, dy, np.zeros_like(dy), out=dx)
