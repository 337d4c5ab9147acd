"""Property-based fuzzing, the quick fixed-seed profile CI runs (tools/fuzz.py runs
the long one): every input builds and runs, or raises a CaffeLiteError. No other
exception, and no numpy floating-point warning reaches the user."""
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (the test extra) missing")
import fuzz_strategies as fs  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

import caffe_lite as caffe  # noqa: E402
from caffe_lite.errors import LayerError  # noqa: E402


def quick(examples):
    """The CI profile: fixed seed, no example database, no deadline (the machine is
    shared; hangs are tools/fuzz.py's business)."""
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(autouse=True)
def small_memory_limit():
    caffe.set_memory_limit("256M")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)   # a leaked numpy warning fails
        yield
    caffe.set_memory_limit(None)


@pytest.mark.skipif(not fs.ZOO_TEXTS, reason="../shared/zoo is absent")
@quick(150)
@given(fs.mutated_zoo_text())
def test_mutated_zoo_prototxts_build_and_run_or_raise_caffe_lite_errors(text):
    fs.check_net_text(text)


@quick(150)
@given(fs.catalogue_net())
def test_nets_composed_from_the_catalogue_build_and_run_or_raise(param):
    fs.check_net_param(param)


@pytest.fixture(scope="module")
def small_model():
    folder = fs.scratch_folder()
    proto, data = fs.small_caffemodel(folder)
    return folder, proto, data


def test_corrupted_caffemodels_load_or_raise(small_model):
    folder, proto, data = small_model
    assert fs.check_caffemodel(proto, data, folder) == "ran"      # the uncorrupted file

    @quick(100)
    @given(fs.corrupted_bytes(data))
    def prop(corrupt):
        fs.check_caffemodel(proto, corrupt, folder)
    prop()


@quick(60)
@given(fs.mutated_solver_lines())
def test_mutated_solver_files_step_or_raise(tmp_path_factory, lines):
    fs.check_solver(lines, str(tmp_path_factory.mktemp("solver")))


# -- what the fuzzer found ------------------------------------------------------------
@pytest.mark.parametrize("filler", ["xavier", "msra"])
def test_a_zero_fan_in_fill_is_an_error_not_a_division_by_zero(filler):
    from caffe_lite.blob import Blob
    from caffe_lite.fillers import fill
    from caffe_lite.proto import caffe_pb2
    with pytest.raises(caffe.CaffeLiteError, match="fan-in/fan-out is 0"):
        fill(Blob((4, 0, 3, 3)), caffe_pb2.FillerParameter(type=filler))


SCALAR_LOSS = ('layer { name: "in" type: "Input" top: "data" '
               'input_param { shape { dim: 2 dim: 5 } } }\n'
               'layer { name: "loss" type: "HingeLoss" bottom: "data" bottom: "data" '
               'top: "loss" }\n')


@pytest.mark.parametrize("layer", [
    'type: "BatchNorm" bottom: "loss" top: "out"',
    'type: "Softmax" bottom: "loss" top: "out" softmax_param { axis: 0 }',
    'type: "Flatten" bottom: "loss" top: "out"',
    'type: "DetectionOutput" bottom: "loss" bottom: "loss" bottom: "data" top: "out" '
    'detection_output_param { num_classes: 3 }',
])
def test_a_scalar_bottom_where_axes_are_needed_is_a_layer_error(layer):
    from caffe_lite.formats import parse_net_param
    text = SCALAR_LOSS + f'layer {{ name: "bad" {layer} }}'
    with pytest.raises(LayerError, match="bad"):
        caffe.Net(parse_net_param(text), caffe.TRAIN)


@pytest.mark.parametrize("layer,message", [
    ('type: "PriorBox" bottom: "data" bottom: "data" top: "out" '
     'prior_box_param { min_size: 2 aspect_ratio: -1 }', "aspect_ratio"),
    ('type: "Reorg" bottom: "data" top: "out" reorg_param { stride: 2 }', "channels"),
])
def test_parameters_the_kernels_cannot_take_are_layer_errors(layer, message):
    from caffe_lite.formats import parse_net_param
    text = ('layer { name: "in" type: "Input" top: "data" '
            'input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n'
            f'layer {{ name: "bad" {layer} }}')
    with pytest.raises(LayerError, match=message):
        caffe.Net(parse_net_param(text), caffe.TEST)


def test_batch_reindex_of_a_scalar_is_a_layer_error():
    from caffe_lite.formats import parse_net_param
    text = ('layer { name: "in" type: "Input" top: "label" '
            'input_param { shape { dim: 3 } } }\n'
            'layer { name: "sum" type: "Reduction" bottom: "label" top: "sum" }\n'
            'layer { name: "bad" type: "BatchReindex" bottom: "sum" bottom: "label" '
            'top: "out" }')
    with pytest.raises(LayerError, match="scalar"):
        caffe.Net(parse_net_param(text), caffe.TEST)


@pytest.mark.parametrize("filler,message", [
    ('type: "gaussian" std: -1', "std"), ('type: "uniform" min: 1 max: 0', "min"),
])
def test_filler_settings_numpy_refuses_are_caffe_lite_errors(filler, message):
    from caffe_lite.blob import Blob
    from caffe_lite.fillers import fill
    from caffe_lite.formats.prototxt import parse_text_message
    from caffe_lite.proto import caffe_pb2
    param = parse_text_message(filler, caffe_pb2.FillerParameter())
    with pytest.raises(caffe.CaffeLiteError, match=message):
        fill(Blob((2, 3)), param)
