"""Data layers fed from memory: DummyData, MemoryData, and what every data layer
shares (DataLayer, layer_rng; files are found by data/files.py). They have no bottoms and no backward;
the HDF5 ones are in data_hdf5.py, databases and images in data_db.py.

Every layer that reads a source item by item passes its endless item stream
through ``DataLayer.own``, the one place where data-parallel training gives each
rank its share (data/shard.py).

File names in layer params are read as Caffe reads them, relative to the
current directory; a name that does not exist there is looked up next to the
net's prototxt (and an HDF5 list's entries next to the list file).
"""

import itertools

import numpy as np

from ..data.db import RecordReader
from ..data.files import find_file
from ..data.image import COLOR, GRAY, UNCHANGED
from ..data.shard import own_items
from ..data.shard import rank as shard_rank
from ..data.shard import size as shard_size
from ..errors import CaffeLiteError
from ..fillers import fill
from ..proto import caffe_pb2
from ..rng import get_rng
from .base import Layer, register_layer


def layer_rng(per_rank=False):
    """A data layer's own generator, seeded from the global one (set_random_seed),
    as Caffe seeds each layer's RNG from its global one. Under data-parallel
    training every rank draws the same seed; ``per_rank`` generators (random
    sampling, crops, mirrors) then differ between ranks, the others (the
    shuffled order of a source, which the ranks share out) do not."""
    seed = int(get_rng().integers(2 ** 63))
    if per_rank and shard_size() > 1:
        return np.random.default_rng([seed, shard_rank()])
    return np.random.default_rng(seed)


class DataLayer(Layer):
    """Common ground of the data layers: no bottoms, no backward, tops sized in
    setup (or by forward), so reshape has nothing to do."""
    exact_num_bottom = 0
    has_backward = False

    def reshape(self, bottom, top):
        pass

    def own(self, stream):
        """The items of the endless ``stream`` (the source in Caffe's order) that
        this rank reads: under data-parallel training the train net's rank r of
        N takes items r, r + N, ...; a test net (run by rank 0 alone) takes all."""
        return own_items(stream, sharded=self.phase == caffe_pb2.TRAIN)

    def open_database(self):
        """Open data_param's LMDB/LevelDB (self.source, self.db) and this rank's
        endless record stream (self.records); return the image decode mode that
        transform_param's force_color / force_gray ask for."""
        p, tp = self.param.data_param, self.param.transform_param
        self.source = find_file(p.source, self.net_file)
        if tp.force_color and tp.force_gray:
            raise self.error("transform_param cannot set both force_color and force_gray")
        try:
            self.db = RecordReader(self.source, p.backend)
        except CaffeLiteError as exc:
            raise self.error(exc.message + f": {self.source}") from None
        if len(self.db) == 0:
            raise self.error(f"the database {self.source} holds no records")
        self.records = self.own(self.all_records())
        return COLOR if tp.force_color else GRAY if tp.force_gray else UNCHANGED

    def all_records(self):
        """(key, value) of the layer's database ``self.db`` (``self.source``) in
        key order, from the first again after the last."""
        while True:
            empty = True
            for record in self.db.records():
                empty = False
                yield record
            if empty:
                raise self.error(f"the database {self.source} holds no records")

    def top_name(self, i):
        tops = self.param.top
        return tops[i] if i < len(tops) else f"top[{i}]"

    def read_text(self, path, what):
        """The text of a file the params name (``what`` says which in errors)."""
        try:
            with open(path) as handle:
                return handle.read()
        except OSError as exc:
            raise self.error(f"cannot read the {what} {path}: "
                             f"{exc.strerror or exc}") from None


@register_layer("DummyData")
class DummyDataLayer(DataLayer):
    """Tops filled by data_filler (one for all tops, or one per top; default
    constant 0), shaped by ``shape`` or the legacy num/channels/height/width.
    Constant fillers fill once at setup, others refill on every forward."""
    min_top = 1

    def layer_setup(self, bottom, top):
        p = self.param.dummy_data_param
        n = len(top)
        if len(p.data_filler) not in (0, 1, n):
            raise self.error(f"give 0, 1 or {n} (one per top) data_filler, got "
                             f"{len(p.data_filler)}")
        legacy = [p.num, p.channels, p.height, p.width]
        if any(len(d) for d in legacy):
            if len(p.shape):
                raise self.error("give either shape or num/channels/height/width")
            for name, dims in zip(("num", "channels", "height", "width"), legacy):
                if len(dims) not in (1, n):
                    raise self.error(f"give '{name}' once or once per top ({n}), "
                                     f"got {len(dims)}")
            shapes = [[d[0] if len(d) == 1 else d[i] for d in legacy] for i in range(n)]
        else:
            if len(p.shape) not in (1, n):
                raise self.error(f"give 'shape' once or once per top ({n}), got "
                                 f"{len(p.shape)}")
            shapes = [list(p.shape[0 if len(p.shape) == 1 else i].dim) for i in range(n)]
        fillers = list(p.data_filler) or [caffe_pb2.FillerParameter(type="constant")]
        self.fillers = [fillers[0 if len(fillers) == 1 else i] for i in range(n)]
        self.refill = [f.type != "constant" for f in self.fillers]
        for blob, shape, filler in zip(top, shapes, self.fillers):
            blob.reshape(shape)
            fill(blob, filler)

    def forward(self, bottom, top):
        for blob, filler, refill in zip(top, self.fillers, self.refill):
            if refill:
                fill(blob, filler)


@register_layer("MemoryData")
class MemoryDataLayer(DataLayer):
    """Serves batches from arrays given with ``reset(data, labels)``
    (``Net.set_input_arrays``): data (M, C, H, W), labels (M,) or (M, 1, 1, 1),
    M a multiple of batch_size; each forward takes the next batch, wrapping
    (a rank of data-parallel training takes its share of the rows).
    memory_data_param fields read: batch_size, channels, height, width. As in
    Caffe, forward shapes the label top (B, 1, 1, 1) and no transform is applied."""
    exact_num_top = 2

    def layer_setup(self, bottom, top):
        p = self.param.memory_data_param
        self.batch_size, self.channels = p.batch_size, p.channels
        self.height, self.width = p.height, p.width
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error("memory_data_param needs positive batch_size, channels, "
                             "height and width")
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size)
        self.data = self.labels = None
        self.rows = iter(())

    def reset(self, data, labels):
        """Use these arrays from the first batch on (float32 arrays are used
        without a copy, so later changes to them are seen, as in Caffe)."""
        data = np.ascontiguousarray(data, dtype=self.dtype)
        labels = np.ascontiguousarray(labels, dtype=self.dtype)
        item = (self.channels, self.height, self.width)
        if data.ndim != 4 or data.shape[1:] != item:
            raise self.error(f"data array must be (M, {', '.join(map(str, item))}), "
                             f"got {data.shape}", blob=self.top_name(0))
        if labels.size != len(labels) or len(labels) != len(data):
            raise self.error(f"labels must hold one value per data item ({len(data)}), "
                             f"got shape {labels.shape}", blob=self.top_name(1))
        if len(data) == 0 or len(data) % self.batch_size:
            raise self.error(f"the number of items ({len(data)}) must be a positive "
                             f"multiple of batch_size {self.batch_size}")
        self.data, self.labels = data, labels.reshape(-1)
        self.rows = self.own(itertools.cycle(range(len(data))))

    def forward(self, bottom, top):
        if self.data is None:
            raise self.error("MemoryData has no arrays yet: call "
                             "net.set_input_arrays(data, labels) first")
        B = self.batch_size
        top[0].reshape(B, self.channels, self.height, self.width)
        top[1].reshape(B, 1, 1, 1)
        rows = np.fromiter(itertools.islice(self.rows, B), np.intp, B)
        if (np.diff(rows) == 1).all():           # one slice: a view, no gather
            rows = slice(int(rows[0]), int(rows[-1]) + 1)
        top[0].data[...] = self.data[rows]
        top[1].data.reshape(-1)[...] = self.labels[rows]
