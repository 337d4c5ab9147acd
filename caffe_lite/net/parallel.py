"""Batch-parallel inference: a TEST net's forward over a batch of N >= 2 runs as
one slice of the batch per thread, each thread with BLAS on one thread of its own.

numpy runs everything but BLAS on one core, so on a 2-core machine a forward
spends much of its time (im2col, pooling, LRN, ReLU, BatchNorm, Scale...) with
one core idle, and BLAS's own 2 threads do small GEMMs no faster than one. A
slice of the batch per thread keeps every core busy with no lock between them.

Each thread runs a *shadow* of the net: the same layers, built from the same
NetParameter, whose parameters share the net's memory and whose blobs are views
of the net's blobs (rows n0..n1 of the batch axis, which are contiguous). The
outputs land in the net's own blobs, so pycaffe's readers see what a serial
forward gives: the same layers on the same values, image by image.

It applies to the run of layers after the data layers whose forward treats the
images of a batch independently (the types below, with their axis parameters
past the batch axis), whose blobs have the batch on their first axis and are no
loss; the rest of the net (a classifier head, SSD's detection output, losses)
runs serially after it (see parallel_segment). The shadows hold those layers'
forward state (pooling masks, kept inputs), so a backward after a parallel
forward first runs the forward again on the net itself, from the segment's first
layer on (Net.backward does that). A lean net stays
serial: its blobs share memory, and another thread's slice of one blob may lie
in this thread's slice of another.

The threads and BLAS's thread count are ops/threads.py's: without the extra
``fast`` (threadpoolctl), or with BLAS on one thread, the forward stays serial.
"""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from ..blob import Blob
from ..ops import threads
from ..proto import caffe_pb2
from .lean import share_workspaces
from .running import reshape_layers, run_forward

if TYPE_CHECKING:
    from .graph import NetGraph

# -- which layers treat the images of a batch independently -------------------

def _axis_past_batch(axis: int) -> bool:
    return axis != 0          # negative axes count from the end: never the batch


def _always(lp: Any) -> bool:
    return True


#: layer type -> whether this layer's forward keeps the images apart (TEST phase)
BATCH_SEPARABLE: dict[str, Callable[[Any], bool]] = {
    **{t: _always for t in (
        "Input", "Convolution", "Deconvolution", "ConvolutionDepthwise", "DepthwiseConvolution",
        "Pooling", "LRN", "Split", "Eltwise", "Dropout", "Silence",
        "ReLU", "PReLU", "Sigmoid", "TanH", "ELU", "BNLL", "AbsVal", "Power", "Exp",
        "Log", "Threshold", "Clip", "ReLU6", "Swish", "Mish", "Normalize",
        "Upsample", "Interp", "Unpooling", "ShuffleChannel", "Im2col")},
    "BatchNorm": lambda lp: not (lp.batch_norm_param.HasField("use_global_stats")
                                 and not lp.batch_norm_param.use_global_stats),
    "Scale": lambda lp: _axis_past_batch(lp.scale_param.axis),
    "Bias": lambda lp: _axis_past_batch(lp.bias_param.axis),
    "InnerProduct": lambda lp: _axis_past_batch(lp.inner_product_param.axis),
    "Softmax": lambda lp: _axis_past_batch(lp.softmax_param.axis),
    "Concat": lambda lp: (_axis_past_batch(lp.concat_param.axis)
                          and not lp.concat_param.HasField("concat_dim")),
    "Slice": lambda lp: (_axis_past_batch(lp.slice_param.axis)
                         and not lp.slice_param.HasField("slice_dim")),
    "Flatten": lambda lp: _axis_past_batch(lp.flatten_param.axis),
    "Crop": lambda lp: _axis_past_batch(lp.crop_param.axis),
    "Permute": lambda lp: not lp.permute_param.order or lp.permute_param.order[0] == 0,
}


def parallel_segment(graph: NetGraph) -> tuple[int, int]:
    """(start, stop): the layers [start, stop) of a TEST net that can run one slice
    of the batch per thread. The layers before start make data (no bottoms) and run
    first, serially; from stop on (the first layer that mixes the images, or the
    first InnerProduct with more weights than inputs: a classifier head that each
    thread would read all of, for a few rows) the net runs serially again."""
    layers = graph.layers
    if graph.param.state.phase != caffe_pb2.TEST:
        return 0, 0
    start = 0
    while start < len(layers) and not graph.bottom_vecs[start]:
        start += 1
    named = {id(blob) for blob in graph.blobs.values()}
    stop = start
    while stop < len(layers):
        layer, bottoms, tops = layers[stop], graph.bottom_vecs[stop], graph.top_vecs[stop]
        rule = BATCH_SEPARABLE.get(layer.param.type)
        if (rule is None or not rule(layer.param) or any(layer.loss_weights)
                or any(id(blob) not in named for blob in tops)
                or (layer.param.type == "InnerProduct"
                    and layer.blobs[0].count > bottoms[0].count)):
            break
        stop += 1
    return start, stop


def segment_blobs(graph: NetGraph, start: int, stop: int) -> list[str]:
    """The names of the blobs the layers [start, stop) read or write."""
    ids = {id(blob) for vecs in (graph.bottom_vecs[start:stop], graph.top_vecs[start:stop])
           for blobs in vecs for blob in blobs}
    return [name for name, blob in graph.blobs.items() if id(blob) in ids]


#: fewer blob values than this in all and the threads' start-up costs more than
#: they save (LeNet at batch 64, 0.3 M values: 3 ms serial, 6 ms split; SqueezeNet
#: at batch 2, 10 M values: about even; at batch 4, 54 ms split vs 78 ms serial)
MIN_VALUES = 2_000_000


def batch_to_split(graph: NetGraph, names: list[str]) -> int:
    """The batch these blobs have on their first axis, if it is worth splitting; else 0."""
    blobs = [graph.blobs[name] for name in names]
    if not blobs or not all(blob.shape for blob in blobs):
        return 0
    batch = blobs[0].shape[0]
    if batch < 2 or any(blob.shape[0] != batch for blob in blobs):
        return 0
    return batch if sum(blob.count for blob in blobs) >= MIN_VALUES else 0


# -- the shadows ----------------------------------------------------------------

class BatchParallel:
    """A net's parallel segment and its shadows, one per thread, made on first use."""

    def __init__(self, graph: NetGraph, build: Callable[[], NetGraph]) -> None:
        self.graph = graph
        self.build = build
        self.segment = parallel_segment(graph)
        self.shadows: list[NetGraph] = []

    def forward_all(self) -> tuple[float, bool] | None:
        """The whole forward: the data layers, the segment one slice per thread if
        its batch splits (else serially), the rest; (loss, whether the segment ran
        in the shadows), or None with nothing run where the net has no segment."""
        start, stop = self.segment
        if stop == start:
            return None
        graph, last = self.graph, len(self.graph.layers) - 1
        loss = run_forward(graph, 0, start - 1)                # the data layers
        first = graph.bottom_vecs[start]
        if first and first[0].shape and first[0].shape[0] < 2:  # one image: nothing to split
            return loss + run_forward(graph, start, last), False
        reshape_layers(graph, start, stop - 1)
        names = segment_blobs(graph, start, stop)
        batch = batch_to_split(graph, names)
        if not batch:
            return loss + run_forward(graph, start, last), False
        with threads.pinned():      # no BLAS thread of its own spinning beside the workers
            loss += self.forward(self.slices(batch), names,
                                 lambda shadow: run_forward(shadow, start, stop - 1))
            return loss + run_forward(graph, stop, last), True

    def slices(self, batch: int) -> list[tuple[int, int]]:
        return [(part.start, part.stop) for part in threads.split(batch, threads.threads())]

    def forward(self, slices: list[tuple[int, int]], names: list[str],
                run: Callable[[NetGraph], float]) -> float:
        """Point each shadow at its slice of the named blobs and run them together."""
        while len(self.shadows) < len(slices):
            self.shadows.append(self._shadow())
        for shadow, (n0, n1) in zip(self.shadows, slices):
            _share_params(shadow, self.graph)
            for name in names:
                _view_rows(shadow.blobs[name], self.graph.blobs[name], n0, n1)
        shadows = self.shadows[:len(slices)]
        return sum(threads.run_parts([partial(run, shadow) for shadow in shadows]))

    def _shadow(self) -> NetGraph:
        shadow = self.build()
        share_workspaces(shadow)            # layers run one at a time in a shadow
        for layer in shadow.layers:
            layer.forward_only = True       # backward re-runs the forward on the net
        return shadow


def _share_params(shadow: NetGraph, graph: NetGraph) -> None:
    for layer, main in zip(shadow.layers, graph.layers):
        for blob, param in zip(layer.blobs, main.blobs):
            if blob.shape != param.shape:
                blob.reshape(param.shape)
            if not blob.shares_data_with(param):
                blob.share_data(param)


def _view_rows(shadow: Blob, blob: Blob, n0: int, n1: int) -> None:
    """Make ``shadow`` rows n0..n1 of ``blob`` (a view of its memory)."""
    per_row = blob.count // blob.shape[0]
    shadow.reshape((n1 - n0,) + blob.shape[1:])
    shadow.use_memory(blob.data.reshape(-1)[n0 * per_row:n1 * per_row])
