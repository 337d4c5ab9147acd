"""Shape and routing layers (Flatten, Reshape, Concat, Slice, Tile, Silence,
Parameter, BatchReindex, Filter, Embed): naive references, float64 gradient
checks, Caffe's memory sharing and clear errors."""
import numpy as np
import pytest
from gradcheck import check_gradient, forward, setup_layer
from ref_shape import (
    ref_batch_reindex,
    ref_batch_reindex_backward,
    ref_concat,
    ref_embed,
    ref_filter,
    ref_flatten_shape,
    ref_reshape_shape,
    ref_slice,
    ref_tile,
    ref_tile_backward,
)

from caffe_lite.errors import LayerError

rng = np.random.default_rng(7)


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def text(kind, params="", bottoms=("x",), tops=("y",)):
    b = " ".join(f'bottom: "{n}"' for n in bottoms)
    t = " ".join(f'top: "{n}"' for n in tops)
    return f'name: "l" type: "{kind}" {b} {t} {params}'


# ==== Flatten / Reshape =========================================================

@pytest.mark.parametrize("shape, axis, end", [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 2, -1),
                                              ((2, 3, 4, 5), 1, 2), ((2, 3, 4, 5), -3, -2),
                                              ((6,), 0, -1)])
def test_flatten_shares_memory(shape, axis, end):
    x = rand(*shape)
    layer, bottom, top = setup_layer(
        text("Flatten", f"flatten_param {{ axis: {axis} end_axis: {end} }}"), [x],
        dtype=np.float32)
    layer.run_forward(bottom, top)
    assert top[0].shape == ref_flatten_shape(shape, axis, end)
    np.testing.assert_array_equal(top[0].data.reshape(-1), x.reshape(-1))
    top[0].diff[...] = rand(*top[0].shape)        # backward is free: shared diff
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff.reshape(-1), top[0].diff.reshape(-1))


@pytest.mark.parametrize("shape, dims, axis, num_axes", [
    ((2, 3, 4, 5), (0, -1, 10), 0, -1), ((2, 6, 4), (2, 3), 1, 1),
    ((2, 3, 4), (1,), -1, 0), ((2, 3, 4), (-1,), 0, -1), ((4, 1, 6), (0, 1), 1, 0),
    ((2, 3, 4, 5), (3, -1), 1, 2)])
def test_reshape_against_reference(shape, dims, axis, num_axes):
    d = " ".join(f"dim: {v}" for v in dims)
    x = rand(*shape)
    y, = forward(text("Reshape", f"reshape_param {{ shape {{ {d} }} axis: {axis} "
                                 f"num_axes: {num_axes} }}"), [x])
    assert y.shape == ref_reshape_shape(shape, dims, axis, num_axes)
    np.testing.assert_array_equal(y.reshape(-1), x.reshape(-1))


def test_reshape_and_flatten_gradients():
    check_gradient(text("Reshape", "reshape_param { shape { dim: 0 dim: -1 } }"),
                   [rng.standard_normal((2, 3, 2))])
    check_gradient(text("Flatten"), [rng.standard_normal((2, 3, 2))])


@pytest.mark.parametrize("params, shape, match", [
    ("shape { dim: -1 dim: -1 }", (2, 3), "more than one -1"),
    ("shape { dim: 5 dim: -1 }", (2, 3), "divisible"),
    ("shape { dim: 0 dim: 0 dim: 0 }", (2, 3), "no axis"),
    ("shape { dim: 7 }", (2, 3), "elements"),
    ("shape { dim: 2 } axis: 5", (2, 3), "out of range")])
def test_reshape_errors(params, shape, match):
    with pytest.raises(LayerError, match=match):
        forward(text("Reshape", f"reshape_param {{ {params} }}"), [rand(*shape)])


# ==== Concat / Slice =====================================================================

@pytest.mark.parametrize("shapes, params, axis", [
    ([(2, 3, 4), (2, 1, 4), (2, 2, 4)], "", 1),
    ([(1, 3, 2), (2, 3, 2)], "concat_param { axis: 0 }", 0),
    ([(2, 3, 1), (2, 3, 4)], "concat_param { axis: -1 }", 2),
    ([(2, 3, 4), (2, 2, 4)], "concat_param { concat_dim: 1 }", 1)])
def test_concat_against_reference(shapes, params, axis):
    xs = [rand(*s) for s in shapes]
    names = [f"x{i}" for i in range(len(xs))]
    layer, bottom, top = setup_layer(text("Concat", params, names), xs, dtype=np.float32)
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, ref_concat(xs, axis))
    dy = rand(*top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True] * len(xs), bottom)
    points = list(np.cumsum([s[axis] for s in shapes])[:-1])
    for b, expect in zip(bottom, ref_slice(dy, axis, points)):
        np.testing.assert_array_equal(b.diff, expect)


def test_concat_gradient_and_errors():
    check_gradient(text("Concat", "", ("a", "b")),
                   [rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 1, 3))])
    with pytest.raises(LayerError, match="must match except at axis 1"):
        forward(text("Concat", "", ("a", "b")), [rand(2, 2, 3), rand(2, 2, 4)])
    with pytest.raises(LayerError, match="not both"):
        forward(text("Concat", "concat_param { axis: 1 concat_dim: 1 }", ("a", "b")),
                [rand(2, 2), rand(2, 2)])


@pytest.mark.parametrize("shape, params, num_tops, axis, points", [
    ((2, 7, 3), "slice_param { slice_point: 2 slice_point: 5 }", 3, 1, [2, 5]),
    ((2, 6, 3), "", 3, 1, None),
    ((4, 3), "slice_param { axis: 0 slice_point: 1 }", 2, 0, [1]),
    ((2, 3, 4), "slice_param { axis: -1 }", 2, 2, None),
    ((2, 4, 3), "slice_param { slice_dim: 1 slice_point: 3 }", 2, 1, [3])])
def test_slice_against_reference(shape, params, num_tops, axis, points):
    x = rand(*shape)
    tops = [f"y{i}" for i in range(num_tops)]
    layer, bottom, top = setup_layer(text("Slice", params, tops=tops), [x],
                                     dtype=np.float32)
    layer.run_forward(bottom, top)
    for t, expect in zip(top, ref_slice(x, axis, points, num_tops)):
        np.testing.assert_array_equal(t.data, expect)
    dys = [rand(*t.shape) for t in top]
    for t, dy in zip(top, dys):
        t.diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, ref_concat(dys, axis))


def test_slice_gradient_and_errors():
    check_gradient(text("Slice", "slice_param { slice_point: 1 }", tops=("a", "b")),
                   [rng.standard_normal((2, 3, 2))])
    with pytest.raises(LayerError, match="evenly divide"):
        forward(text("Slice", "", tops=("a", "b")), [rand(2, 3)])
    with pytest.raises(LayerError, match="one fewer point"):
        forward(text("Slice", "slice_param { slice_point: 1 }", tops=("a", "b", "c")),
                [rand(2, 3)])
    with pytest.raises(LayerError, match="increase strictly"):
        forward(text("Slice", "slice_param { slice_point: 2 slice_point: 1 }",
                     tops=("a", "b", "c")), [rand(2, 4)])


def test_single_bottom_concat_and_single_top_slice_share_memory():
    x = rand(2, 3)
    for kind in ("Concat", "Slice"):
        layer, bottom, top = setup_layer(text(kind), [x], dtype=np.float32)
        layer.run_forward(bottom, top)
        np.testing.assert_array_equal(top[0].data, x)
        assert np.shares_memory(top[0].data, bottom[0].data)


# ==== Tile ===============================================================================

@pytest.mark.parametrize("shape, axis, tiles", [((2, 3, 2), 1, 3), ((2, 3, 2), 2, 2),
                                                ((3, 2), 0, 2), ((2, 3), -1, 4)])
def test_tile_against_reference(shape, axis, tiles):
    x = rand(*shape)
    layer, bottom, top = setup_layer(
        text("Tile", f"tile_param {{ axis: {axis} tiles: {tiles} }}"), [x], dtype=np.float32)
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, ref_tile(x, axis % len(shape), tiles))
    dy = rand(*top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff,
                               ref_tile_backward(dy, shape, axis % len(shape), tiles),
                               rtol=1e-6, atol=1e-6)


def test_tile_gradient_and_errors():
    check_gradient(text("Tile", "tile_param { axis: 1 tiles: 3 }"),
                   [rng.standard_normal((2, 2, 3))])
    with pytest.raises(LayerError, match="tiles"):
        forward(text("Tile", "tile_param { axis: 1 }"), [rand(2, 2)])


# ==== Silence / Parameter =================================================================

def test_silence_zeroes_bottom_diffs():
    layer, bottom, top = setup_layer(text("Silence", "", ("a", "b"), ()),
                                     [rand(2, 3), rand(4)], num_top=0)
    layer.run_forward(bottom, top)
    for b in bottom:
        b.diff[...] = 5
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff.any() and (bottom[1].diff == 5).all()


def test_parameter_exposes_its_blob():
    layer, bottom, top = setup_layer(
        text("Parameter", "parameter_param { shape { dim: 2 dim: 3 } }", ()), [],
        dtype=np.float32)
    assert top[0].shape == (2, 3) and not layer.blobs[0].data.any()
    layer.blobs[0].data[...] = rand(2, 3)
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data)
    top[0].diff[...] = 3                          # the consumer's gradient is the param's
    np.testing.assert_array_equal(layer.blobs[0].diff, 3)
    check_gradient(text("Parameter", "parameter_param { shape { dim: 3 } }", ()), [],
                   params=[rng.standard_normal(3)])


# ==== BatchReindex / Filter ==================================================================

def test_batch_reindex_against_reference():
    x, index = rand(4, 2, 3), np.array([3, 0, 3, 1, 3], np.float32)
    layer, bottom, top = setup_layer(text("BatchReindex", "", ("x", "i")), [x, index],
                                     dtype=np.float32)
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, ref_batch_reindex(x, index))
    dy = rand(*top[0].shape)
    top[0].diff[...] = dy
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, ref_batch_reindex_backward(dy, index, x.shape),
                               rtol=1e-6)
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)
    check_gradient(text("BatchReindex", "", ("x", "i")),
                   [rng.standard_normal((3, 2)), [2, 2, 0]], check_bottoms=[0])
    with pytest.raises(LayerError, match=r"index 4 is out of range \[0, 4\)"):
        forward(text("BatchReindex", "", ("x", "i")), [x, [0, 4]])


def test_filter_against_reference():
    x, y, sel = rand(5, 3, 2), rand(5, 4), np.array([0, 1, 1, 0, 2], np.float32)
    layer, bottom, top = setup_layer(text("Filter", "", ("x", "y", "s"), ("fx", "fy")),
                                     [x, y, sel], dtype=np.float32)
    assert top[0].shape == (5, 3, 2)            # Caffe's first reshape keeps all items
    layer.run_forward(bottom, top)
    for t, expect in zip(top, ref_filter([x, y], sel)):
        np.testing.assert_array_equal(t.data, expect)
    dys = [rand(*t.shape) for t in top]
    for t, dy in zip(top, dys):
        t.diff[...] = dy
    bottom[0].diff[...] = 9
    layer.backward(top, [True, True, False], bottom)
    expect = np.zeros(x.shape)
    expect[[1, 2, 4]] = dys[0]
    np.testing.assert_array_equal(bottom[0].diff, expect)
    assert not layer.allow_force_backward(2)
    check_gradient(text("Filter", "", ("x", "s"), ("f",)),
                   [rng.standard_normal((4, 2)), [1, 0, 0, 1]], check_bottoms=[0])
    with pytest.raises(LayerError, match="selector"):
        forward(text("Filter", "", ("x", "s"), ("f",)), [x, np.ones((5, 2))])


# ==== Embed ==================================================================================

def test_embed_against_reference_and_gradient():
    ep = ('embed_param { num_output: 3 input_dim: 5 weight_filler { type: "gaussian" } '
          'bias_filler { type: "gaussian" } }')
    index = np.array([[4, 0, 2], [2, 2, 1]], np.float32)
    w, b = rand(5, 3), rand(3)
    y, = forward(text("Embed", ep), [index], params=[w, b])
    np.testing.assert_allclose(y, ref_embed(index, w, b), rtol=1e-6)
    check_gradient(text("Embed", ep), [index], check_bottoms=[],
                   params=[rng.standard_normal((5, 3)), rng.standard_normal(3)])
    layer, _, _ = setup_layer(text("Embed", ep), [index])
    assert not layer.allow_force_backward(0)
    for bad in (5, -1, 1.5):
        with pytest.raises(LayerError, match="not an integer in"):
            forward(text("Embed", ep), [np.array([bad], np.float32)])
