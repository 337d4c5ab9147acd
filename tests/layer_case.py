"""The one test base for layers: Caffe's GradientChecker and Chainer's FunctionTestCase
in a single small class.

    case = LayerCase(proto("ReLU"), [(2, 3, 4)], reference=ref.relu_array, kink=0)
    case.check_forward()        # float32 layer vs the naive float64 reference
    case.check_gradient()       # float64 backward vs central differences

Why one helper: every layer test used to rebuild its own prototxt/random/run code, so
each file checked a little differently. Here a layer is built from prototxt text only
through the registry (an unknown type fails, never skips), inputs come from one seeded
generator, and the gradient check covers every bottom and every parameter element.

The gradient objective is sum_i <top_i, R_i> with seeded R_i in [-1, 1), so backward with
top diffs R_i is the analytic gradient. It runs in float64 so a tight tolerance is honest.
As in Caffe's GradientChecker, a numerical point is skipped when the perturbed element
lies within ``kink_range`` of a ``kink`` (ReLU's 0, Clip's bounds): central differences
are meaningless across a corner, while the tests of the conventions at the corner pin
the analytic value there.
"""
import numpy as np
from google.protobuf import text_format

import caffe_lite
from caffe_lite.blob import Blob
from caffe_lite.layers.base import layer_class, layer_types
from caffe_lite.proto import caffe_pb2

TEST, TRAIN = caffe_pb2.TEST, caffe_pb2.TRAIN


def proto(layer_type, params="", *, name="L", bottoms=("x",), tops=("y",)):
    """LayerParameter text; ``params`` is the rest, e.g. 'relu_param { negative_slope: 0.1 }'."""
    blobs = [f'bottom: "{b}"' for b in bottoms] + [f'top: "{t}"' for t in tops]
    return f'name: "{name}" type: "{layer_type}" {" ".join(blobs)} {params}'


def rand(*shape, seed=0, low=None, high=None):
    """Seeded float64 inputs: standard normal, or uniform in [low, high)."""
    r = np.random.default_rng(seed)
    return r.standard_normal(shape) if low is None else r.uniform(low, high, shape)


def assert_registered(types, why=""):
    """Fail, naming them, when layer types are missing from the registry. A test that
    needs a layer must never skip for its absence: a broken registry would pass."""
    missing = sorted(set(types) - set(layer_types()))
    assert not missing, f"layer types missing from the registry: {missing} {why}".rstrip()


def layer_param(text, phase=TEST):
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    if not param.HasField("phase"):
        param.phase = phase
    return param


def make_layer(text, phase=TEST):
    """Only through the registry: a missing type raises, it is never skipped."""
    param = layer_param(text, phase)
    return layer_class(param.type, param.name)(param)


class LayerCase:
    """One layer over seeded inputs.

    bottoms: arrays, or shapes (tuples) filled from default_rng(seed); ``fill=(low, high)``
    makes them uniform. params: values for the layer's blobs after set_up; otherwise the
    fillers run under caffe_lite's RNG, seeded with ``rng_seed`` at every set-up so the
    float32 and float64 runs see the same weights (None: left alone).
    reference(*bottoms, *params), given what the layer saw, returns the expected top or
    a list, one per top (leading tops only). Tolerances: ``forward_rtol/atol`` for
    check_forward, ``rtol/atol`` (scaled as Caffe's) for check_gradient.
    """

    def __init__(self, text, bottoms, *, reference=None, params=None, phase=TEST, seed=0,
                 rng_seed=0, fill=None, num_top=None, check_bottoms=None, check_params=True,
                 kink=None, kink_range=-1.0, step=1e-5, rtol=1e-5, atol=1e-7,
                 forward_rtol=1e-5, forward_atol=1e-6, forward_dtype=np.float32):
        r = np.random.default_rng(seed)
        self.text, self.phase, self.seed, self.rng_seed = text, phase, seed, rng_seed
        self.bottoms = [np.asarray(b) if not isinstance(b, tuple) else
                        (r.standard_normal(b) if fill is None else r.uniform(*fill, b))
                        for b in bottoms]
        self.params, self.reference, self.num_top = params, reference, num_top
        self.check_bottoms = (range(len(self.bottoms)) if check_bottoms is None
                              else check_bottoms)
        self.check_params = check_params
        self.kinks = () if kink is None else np.atleast_1d(kink)
        self.kink_range, self.step, self.rtol, self.atol = kink_range, step, rtol, atol
        self.forward_rtol, self.forward_atol = forward_rtol, forward_atol
        self.forward_dtype = forward_dtype

    def setup(self, dtype=np.float64, in_place=False):
        """Set the layer up over fresh blobs of ``dtype``; returns (layer, bottom, top)."""
        if self.rng_seed is not None:
            caffe_lite.set_random_seed(self.rng_seed)
        layer = make_layer(self.text, self.phase)
        bottom = []
        for a in self.bottoms:
            blob = Blob(a.shape, dtype=dtype)
            blob.data[...] = a
            bottom.append(blob)
        num_top = self.num_top
        if num_top is None:                 # as many as the prototxt names, else the least
            num_top = next(n for n in (len(layer.param.top) or None, layer.exact_num_top,
                                       layer.min_top, 1) if n is not None)
        top = bottom[:1] if in_place else [Blob(dtype=dtype) for _ in range(num_top)]
        layer.set_up(bottom, top)
        for blob, value in zip(layer.blobs, self.params or []):
            blob.data[...] = value
        self.layer = layer                  # the last one set up, for tests that inspect it
        return layer, bottom, top

    def forward_blobs(self, dtype=np.float32, in_place=False):
        """(layer, bottom, top) after one forward pass, for tests that go on by hand."""
        layer, bottom, top = self.setup(dtype, in_place)
        layer.run_forward(bottom, top)
        return layer, bottom, top

    def forward(self, dtype=np.float32):
        """Tops' data (copies) after one forward pass."""
        return [t.data.copy() for t in self.forward_blobs(dtype)[2]]

    def run(self, top_diffs=None, dtype=np.float32, in_place=False, propagate_down=None):
        """Forward, then backward from ``top_diffs`` (default: seeded normal); returns
        (tops, bottom diffs, param diffs), all copies."""
        layer, bottom, top = self.setup(dtype, in_place)
        layer.param_propagate_down = [True] * len(layer.blobs)
        layer.run_forward(bottom, top)
        tops = [t.data.copy() for t in top]
        if top_diffs is None:
            r = np.random.default_rng(self.seed + 1)
            top_diffs = [r.standard_normal(t.shape) for t in top]
        for t, d in zip(top, top_diffs):
            t.diff[...] = np.reshape(d, t.shape)
        if propagate_down is None:
            propagate_down = [True] * len(bottom)
        layer.backward(top, propagate_down, bottom)
        return tops, [b.diff.copy() for b in bottom], [b.diff.copy() for b in layer.blobs]

    def check_forward(self):
        """The layer (float32 unless ``forward_dtype``) against the reference on the same
        inputs as the layer saw; returns the tops for further checks."""
        assert self.reference is not None, "check_forward needs a reference"
        layer, bottom, top = self.setup(self.forward_dtype)
        inputs = [b.data.copy() for b in bottom + list(layer.blobs)]  # before forward moves them
        layer.run_forward(bottom, top)
        expected = self.reference(*inputs)
        if not isinstance(expected, (list, tuple)):
            expected = [expected]
        assert len(expected) <= len(top)
        for i, (t, e) in enumerate(zip(top, expected)):
            assert t.data.shape == np.shape(e), f"top[{i}] shape {t.data.shape} != {np.shape(e)}"
            np.testing.assert_allclose(t.data, e, rtol=self.forward_rtol,
                                       atol=self.forward_atol, err_msg=f"top[{i}]")
        return [t.data.copy() for t in top]

    def check_gradient(self):
        """Raise AssertionError when backward disagrees with central differences."""
        layer, bottom, top = self.setup(np.float64)
        layer.run_forward(bottom, top)
        r = np.random.default_rng(self.seed + 2)
        weights = [r.uniform(-1, 1, t.shape) for t in top]
        checked = list(self.check_bottoms)
        for blob in list(layer.blobs) + bottom:
            blob.diff[...] = 0
        layer.param_propagate_down = [bool(self.check_params)] * len(layer.blobs)
        for t, w in zip(top, weights):      # last: a top may share a bottom's diff
            t.diff[...] = w
        layer.backward(top, [i in checked for i in range(len(bottom))], bottom)
        targets = [(f"bottom[{i}]", bottom[i]) for i in checked]
        if self.check_params:
            targets += [(f"param[{j}]", b) for j, b in enumerate(layer.blobs)]
        analytic = [blob.diff.copy() for _, blob in targets]

        def objective():
            layer.run_forward(bottom, top)
            return sum(float(np.sum(t.data * w)) for t, w in zip(top, weights))

        for (name, blob), grad in zip(targets, analytic):
            flat = blob.data.reshape(-1)
            numeric = np.full(flat.size, np.nan)
            for k in range(flat.size):
                orig = flat[k]
                if any(abs(orig - kink) <= self.kink_range for kink in self.kinks):
                    continue                # Caffe's GradientChecker: skip the corner
                flat[k] = orig + self.step
                plus = objective()
                flat[k] = orig - self.step
                minus = objective()
                flat[k] = orig
                numeric[k] = (plus - minus) / (2 * self.step)
            numeric = numeric.reshape(grad.shape)
            ok = ~np.isnan(numeric)
            assert not ok.size or ok.mean() > 0.5, f"{name}: most points sit on a kink"
            numeric = np.where(ok, numeric, grad)
            scale = max(1.0, np.max(np.abs(numeric)))
            if not np.allclose(grad, numeric, rtol=self.rtol, atol=self.atol * scale + 1e-6):
                worst = tuple(int(i) for i in np.unravel_index(
                    np.argmax(np.abs(grad - numeric)), grad.shape))
                raise AssertionError(
                    f"{layer.type} gradient of {name} differs at {worst}: analytic "
                    f"{grad[worst]:.8g}, numeric {numeric[worst]:.8g}")


# The function forms: one-liners over LayerCase, for tests that need one step only.

def setup_layer(text, bottoms, num_top=None, phase=TEST, dtype=np.float64):
    """(layer, bottom, top) set up over ``bottoms``; caffe_lite's RNG is left alone."""
    return LayerCase(text, bottoms, num_top=num_top, phase=phase, rng_seed=None).setup(dtype)


def forward(text, bottoms, num_top=None, phase=TEST, dtype=np.float32, params=None):
    return LayerCase(text, bottoms, num_top=num_top, phase=phase, params=params,
                     rng_seed=None).forward(dtype)


def check_gradient(text, bottoms, **kw):
    kw.setdefault("rng_seed", None)
    LayerCase(text, bottoms, **kw).check_gradient()
