"""Shape and routing layers (Flatten, Reshape, Concat, Slice, Tile, Silence,
Parameter, BatchReindex, Filter, Embed): naive references, float64 gradient
checks, Caffe's memory sharing and clear errors."""
import numpy as np
import pytest
from layer_case import LayerCase, forward, proto, rand, setup_layer
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


def text(kind, params="", bottoms=("x",), tops=("y",)):
    return proto(kind, params, name="l", bottoms=bottoms, tops=tops)


def rand32(*shape, seed=0):
    return rand(*shape, seed=seed).astype(np.float32)


# ==== Flatten / Reshape =========================================================

@pytest.mark.parametrize("shape, axis, end", [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 2, -1),
                                              ((2, 3, 4, 5), 1, 2), ((2, 3, 4, 5), -3, -2),
                                              ((6,), 0, -1)])
def test_flatten_shares_memory(shape, axis, end):
    case = LayerCase(text("Flatten", f"flatten_param {{ axis: {axis} end_axis: {end} }}"),
                     [shape], forward_rtol=0, forward_atol=0,
                     reference=lambda x: x.reshape(ref_flatten_shape(shape, axis, end)))
    case.check_forward()
    layer, bottom, top = case.setup(np.float32)
    layer.run_forward(bottom, top)
    top[0].diff[...] = rand(*top[0].shape, seed=1)     # backward is free: shared diff
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff.reshape(-1), top[0].diff.reshape(-1))


@pytest.mark.parametrize("shape, dims, axis, num_axes", [
    ((2, 3, 4, 5), (0, -1, 10), 0, -1), ((2, 6, 4), (2, 3), 1, 1),
    ((2, 3, 4), (1,), -1, 0), ((2, 3, 4), (-1,), 0, -1), ((4, 1, 6), (0, 1), 1, 0),
    ((2, 3, 4, 5), (3, -1), 1, 2)])
def test_reshape_against_reference(shape, dims, axis, num_axes):
    d = " ".join(f"dim: {v}" for v in dims)
    LayerCase(text("Reshape", f"reshape_param {{ shape {{ {d} }} axis: {axis} "
                              f"num_axes: {num_axes} }}"), [shape], forward_rtol=0,
              forward_atol=0,
              reference=lambda x: x.reshape(ref_reshape_shape(shape, dims, axis, num_axes))
              ).check_forward()


def test_reshape_and_flatten_gradients():
    LayerCase(text("Reshape", "reshape_param { shape { dim: 0 dim: -1 } }"),
              [(2, 3, 2)]).check_gradient()
    LayerCase(text("Flatten"), [(2, 3, 2)]).check_gradient()


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
    case = LayerCase(text("Concat", params, [f"x{i}" for i in range(len(shapes))]), shapes,
                     forward_rtol=0, forward_atol=0, reference=lambda *xs: ref_concat(xs, axis))
    (y,) = case.check_forward()
    dy = rand32(*y.shape, seed=1)
    _, dxs, _ = case.run([dy])
    points = list(np.cumsum([s[axis] for s in shapes])[:-1])
    for dx, expect in zip(dxs, ref_slice(dy, axis, points)):
        np.testing.assert_array_equal(dx, expect)


def test_concat_gradient_and_errors():
    LayerCase(text("Concat", "", ("a", "b")), [(2, 2, 3), (2, 1, 3)]).check_gradient()
    with pytest.raises(LayerError, match="must match except at axis 1"):
        forward(text("Concat", "", ("a", "b")), [rand32(2, 2, 3), rand32(2, 2, 4)])
    with pytest.raises(LayerError, match="not both"):
        forward(text("Concat", "concat_param { axis: 1 concat_dim: 1 }", ("a", "b")),
                [rand32(2, 2), rand32(2, 2)])


@pytest.mark.parametrize("shape, params, num_tops, axis, points", [
    ((2, 7, 3), "slice_param { slice_point: 2 slice_point: 5 }", 3, 1, [2, 5]),
    ((2, 6, 3), "", 3, 1, None),
    ((4, 3), "slice_param { axis: 0 slice_point: 1 }", 2, 0, [1]),
    ((2, 3, 4), "slice_param { axis: -1 }", 2, 2, None),
    ((2, 4, 3), "slice_param { slice_dim: 1 slice_point: 3 }", 2, 1, [3])])
def test_slice_against_reference(shape, params, num_tops, axis, points):
    case = LayerCase(text("Slice", params, tops=[f"y{i}" for i in range(num_tops)]), [shape],
                     forward_rtol=0, forward_atol=0,
                     reference=lambda x: ref_slice(x, axis, points, num_tops))
    ys = case.check_forward()
    assert len(ys) == num_tops
    dys = [rand32(*y.shape, seed=i + 1) for i, y in enumerate(ys)]
    _, (dx,), _ = case.run(dys)
    np.testing.assert_array_equal(dx, ref_concat(dys, axis))


def test_slice_gradient_and_errors():
    LayerCase(text("Slice", "slice_param { slice_point: 1 }", tops=("a", "b")),
              [(2, 3, 2)]).check_gradient()
    with pytest.raises(LayerError, match="evenly divide"):
        forward(text("Slice", "", tops=("a", "b")), [rand32(2, 3)])
    with pytest.raises(LayerError, match="one fewer point"):
        forward(text("Slice", "slice_param { slice_point: 1 }", tops=("a", "b", "c")),
                [rand32(2, 3)])
    with pytest.raises(LayerError, match="increase strictly"):
        forward(text("Slice", "slice_param { slice_point: 2 slice_point: 1 }",
                     tops=("a", "b", "c")), [rand(2, 4)])


def test_single_bottom_concat_and_single_top_slice_share_memory():
    x = rand32(2, 3)
    for kind in ("Concat", "Slice"):
        layer, bottom, top = setup_layer(text(kind), [x], dtype=np.float32)
        layer.run_forward(bottom, top)
        np.testing.assert_array_equal(top[0].data, x)
        assert np.shares_memory(top[0].data, bottom[0].data)


# ==== Tile ===============================================================================

@pytest.mark.parametrize("shape, axis, tiles", [((2, 3, 2), 1, 3), ((2, 3, 2), 2, 2),
                                                ((3, 2), 0, 2), ((2, 3), -1, 4)])
def test_tile_against_reference(shape, axis, tiles):
    case = LayerCase(text("Tile", f"tile_param {{ axis: {axis} tiles: {tiles} }}"), [shape],
                     forward_rtol=0, forward_atol=0,
                     reference=lambda x: ref_tile(x, axis % len(shape), tiles))
    (y,) = case.check_forward()
    dy = rand32(*y.shape, seed=1)
    _, (dx,), _ = case.run([dy])
    np.testing.assert_allclose(dx, ref_tile_backward(dy, shape, axis % len(shape), tiles),
                               rtol=1e-6, atol=1e-6)


def test_tile_gradient_and_errors():
    LayerCase(text("Tile", "tile_param { axis: 1 tiles: 3 }"), [(2, 2, 3)]).check_gradient()
    with pytest.raises(LayerError, match="tiles"):
        forward(text("Tile", "tile_param { axis: 1 }"), [rand(2, 2)])


# ==== Silence / Parameter =================================================================

def test_silence_zeroes_bottom_diffs():
    layer, bottom, top = setup_layer(text("Silence", "", ("a", "b"), ()),
                                     [rand32(2, 3), rand32(4)], num_top=0)
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
    layer.blobs[0].data[...] = rand32(2, 3)
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data)
    top[0].diff[...] = 3                          # the consumer's gradient is the param's
    np.testing.assert_array_equal(layer.blobs[0].diff, 3)
    LayerCase(text("Parameter", "parameter_param { shape { dim: 3 } }", ()), [],
              params=[rand(3, seed=1)]).check_gradient()


# ==== BatchReindex / Filter ==================================================================

def test_batch_reindex_against_reference():
    x, index = rand32(4, 2, 3), np.array([3, 0, 3, 1, 3], np.float32)
    case = LayerCase(text("BatchReindex", "", ("x", "i")), [x, index], forward_rtol=0,
                     forward_atol=0, reference=ref_batch_reindex)
    (y,) = case.check_forward()
    dy = rand32(*y.shape, seed=1)
    _, (dx, _), _ = case.run([dy], propagate_down=[True, False])
    np.testing.assert_allclose(dx, ref_batch_reindex_backward(dy, index, x.shape), rtol=1e-6)
    assert not case.layer.allow_force_backward(1) and case.layer.allow_force_backward(0)
    LayerCase(text("BatchReindex", "", ("x", "i")), [rand(3, 2), [2, 2, 0]],
              check_bottoms=[0]).check_gradient()
    with pytest.raises(LayerError, match=r"index 4 is out of range \[0, 4\)"):
        forward(text("BatchReindex", "", ("x", "i")), [x, [0, 4]])


def test_filter_against_reference():
    x, sel = rand32(5, 3, 2), np.array([0, 1, 1, 0, 2], np.float32)
    case = LayerCase(text("Filter", "", ("x", "y", "s"), ("fx", "fy")), [x, (5, 4), sel],
                     forward_rtol=0, forward_atol=0,
                     reference=lambda x, y, sel: ref_filter([x, y], sel))
    _, _, top = case.setup(np.float32)
    assert top[0].shape == (5, 3, 2)            # Caffe's first reshape keeps all items
    ys = case.check_forward()
    dys = [rand32(*y.shape, seed=i + 1) for i, y in enumerate(ys)]
    layer, bottom, top = case.setup(np.float32)
    layer.run_forward(bottom, top)
    for t, dy in zip(top, dys):
        t.diff[...] = dy
    bottom[0].diff[...] = 9
    layer.backward(top, [True, True, False], bottom)
    expect = np.zeros(x.shape)
    expect[[1, 2, 4]] = dys[0]
    np.testing.assert_array_equal(bottom[0].diff, expect)
    assert not layer.allow_force_backward(2)
    LayerCase(text("Filter", "", ("x", "s"), ("f",)), [rand(4, 2), [1, 0, 0, 1]],
              check_bottoms=[0]).check_gradient()
    with pytest.raises(LayerError, match="selector"):
        forward(text("Filter", "", ("x", "s"), ("f",)), [x, np.ones((5, 2))])


# ==== Embed ==================================================================================

def test_embed_against_reference_and_gradient():
    ep = ('embed_param { num_output: 3 input_dim: 5 weight_filler { type: "gaussian" } '
          'bias_filler { type: "gaussian" } }')
    index = np.array([[4, 0, 2], [2, 2, 1]], np.float32)
    case = LayerCase(text("Embed", ep), [index], check_bottoms=[], forward_rtol=1e-6,
                     params=[rand(5, 3), rand(3, seed=1)], reference=ref_embed)
    case.check_forward()
    case.check_gradient()
    layer, _, _ = setup_layer(text("Embed", ep), [index])
    assert not layer.allow_force_backward(0)
    for bad in (5, -1, 1.5):
        with pytest.raises(LayerError, match="not an integer in"):
            forward(text("Embed", ep), [np.array([bad], np.float32)])
