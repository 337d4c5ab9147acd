"""A trained net over a whole data set: ``run_dataset`` and ``caffe-lite run``.

The inputs (inputs.py) are cut into shards of whole batches; each shard is one
task, run in this process or on Dask workers (dask.distributed, the ``dask``
extra). A task carries the names of its inputs only: every worker process
builds the Net and loads the weights once, on its first task, and keeps them
for the next ones. Outputs come back in input order and are written shard by
shard (shards.py), so an interrupted run resumes. A data set that batches do
not divide is padded as Caffe's data layers read, wrapping around to the first
items; the padding rows are dropped.

Preprocessing is the data layers' transform_param (Caffe's DataTransformer,
TEST phase: centre crop, mean, scale) on images read as cv::imread reads them,
or, from Python, a pycaffe ``Transformer`` on images read as
``caffe.io.load_image`` reads them.
"""
from __future__ import annotations

import os
import sys
import zlib
from dataclasses import dataclass, replace
from typing import Any, Iterator, NamedTuple

import numpy as np
from google.protobuf import text_format

from ..data.files import find_file
from ..data.transform import DataTransformer
from ..errors import CaffeLiteError, DistributedError, require
from ..net.net import TEST, Net
from ..proto import caffe_pb2
from .inputs import Inputs, open_inputs, read_records
from .shards import ShardStore

BATCHES_PER_SHARD = 8
_NETS: dict[tuple[Any, ...], Net] = {}        # per process: built once, reused by tasks


class RunOutputs(NamedTuple):
    keys: list[str]                      # the input keys, in input order
    arrays: dict[str, np.ndarray]        # blob name -> (N, ...) rows in input order


@dataclass
class Job:
    """What every task needs, by name only (no weights, no data)."""
    model: str
    weights: str
    blobs: list[str]
    batch_size: int
    transform: bytes = b""               # a serialized TransformationParameter
    resize: tuple[int, int] = (0, 0)     # new (height, width) of images, (0, 0) none
    transformer: Any = None              # a pycaffe Transformer, instead of transform


def _file_stamp(path: str) -> tuple[str, int, int]:
    stat = os.stat(path)
    return os.path.abspath(path), stat.st_size, stat.st_mtime_ns


def net_for(job: Job) -> Net:
    """This process's Net for the job's model and weights (built on first use)."""
    key = (_file_stamp(job.model), _file_stamp(job.weights))
    if key not in _NETS:
        _NETS.clear()                    # one model at a time per worker
        _NETS[key] = Net(job.model, TEST, weights=job.weights)
    return _NETS[key]


def _input_blob(net: Net, model: str) -> str:
    if not net.inputs:
        raise CaffeLiteError("the net has no input blob (a deploy net starts with an "
                             "Input layer or input: fields)", file=model)
    return net.inputs[0]


def run_shard(job: Job, items: Inputs, keep: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One task: the net's ``job.blobs`` for every item (a whole number of
    batches), the first ``keep`` rows of each."""
    net = net_for(job)
    name = _input_blob(net, job.model)
    _, channels, height, width = net.blobs[name].shape
    data = _preprocess(job, items, name, channels, (height, width), seed)
    if data.shape[1:] != (channels, height, width):
        raise CaffeLiteError(f"preprocessed inputs are {data.shape[1:]}, the net's input "
                             f"'{name}' takes {(channels, height, width)}: set the "
                             f"resize or the crop", file=job.model)
    B = job.batch_size
    if net.blobs[name].shape[0] != B:
        net.blobs[name].reshape(B, channels, height, width)
        net.reshape()
    missing = [b for b in job.blobs if b not in net.blobs]
    if missing:
        raise CaffeLiteError(f"the net has no blob '{missing[0]}'", file=job.model)
    outs: dict[str, list[np.ndarray]] = {b: [] for b in job.blobs}
    for start in range(0, len(data), B):
        net.blobs[name].data[...] = data[start:start + B]
        net.forward()
        for b in job.blobs:
            outs[b].append(net.blobs[b].data.copy())
    return {b: np.concatenate(v)[:keep] for b, v in outs.items()}


def _preprocess(job: Job, items: Inputs, name: str, channels: int,
                size: tuple[int, int], seed: int) -> np.ndarray:
    indices = list(range(len(items)))
    if job.transformer is not None:
        return np.stack([job.transformer.preprocess(name, image)
                         for image in _load_images(items, indices, channels)])
    param = caffe_pb2.TransformationParameter.FromString(job.transform)

    def error(message: str, blob: str | None = None) -> CaffeLiteError:
        return CaffeLiteError("transform_param: " + message, file=job.model, blob=blob)
    mean = find_file(param.mean_file, job.model) if param.HasField("mean_file") else None
    transformer = DataTransformer(param, TEST, error, np.random.default_rng(seed), mean)
    resize = job.resize if job.resize != (0, 0) else (size if not param.crop_size
                                                      else (0, 0))
    records = read_records(items, indices, channels,
                           resize if items.kind in ("list", "folder") else (0, 0))
    shapes = {r.shape for r in records}
    if len(shapes) > 1:
        raise CaffeLiteError(f"the inputs have different sizes {sorted(shapes)}: give a "
                             f"resize", file=items.source)
    return transformer(np.stack(records))


def _load_images(items: Inputs, indices: list[int], channels: int) -> list[np.ndarray]:
    """Images as caffe.io.load_image gives them (H, W, K floats in [0, 1], RGB)."""
    from ..data.image import load_image
    if items.kind in ("list", "folder"):
        return [load_image(items.paths[i], color=channels != 1) for i in indices]
    records = read_records(items, indices, channels)
    return [np.asarray(r, np.float32).transpose(1, 2, 0)[:, :, ::-1] / np.float32(255)
            for r in records]


# -- the whole run --------------------------------------------------------------
def _shards(count: int, batch: int, shard_size: int) -> list[tuple[list[int], int]]:
    """(item indices, rows to keep) per shard; the last is padded to whole
    batches by wrapping to the first items."""
    out = []
    for start in range(0, count, shard_size):
        indices = list(range(start, min(start + shard_size, count)))
        keep = len(indices)
        short = -keep % batch
        indices += [i % count for i in range(short)]
        out.append((indices, keep))
    return out


def _subset(inputs: Inputs, indices: list[int]) -> Inputs:
    return replace(inputs, keys=[inputs.keys[i] for i in indices],
                   paths=[inputs.paths[i] for i in indices] if inputs.paths else [])


def _run_record(job: Job, inputs: Inputs, shard_size: int, text: str) -> dict[str, Any]:
    """What makes two runs the same run (checked before resuming)."""
    keys_crc = zlib.crc32("\n".join(inputs.keys).encode("utf-8", "surrogateescape"))
    return {"model": list(_file_stamp(job.model)), "weights": list(_file_stamp(job.weights)),
            "input": os.path.abspath(inputs.source), "items": len(inputs),
            "keys_crc32": keys_crc, "blobs": job.blobs, "batch_size": job.batch_size,
            "shard_size": shard_size, "transform": text, "resize": list(job.resize),
            "transformer": job.transformer is not None}


def run_dataset(model: str | os.PathLike[str], weights: str | os.PathLike[str],
                inputs: str | os.PathLike[str], *, blobs: str | list[str] = "prob",
                output: str | os.PathLike[str] | None = None,
                batch_size: int | None = None, transform: str | None = None,
                resize: tuple[int, int] | None = None, transformer: Any = None,
                scheduler: str | None = None, workers: int | None = None,
                overwrite: bool = False, shard_size: int | None = None,
                progress: bool | None = None, timeout: float = 30.0) -> RunOutputs | None:
    """Run the deploy net ``model`` with ``weights`` over ``inputs`` (an image
    list, a folder of images, or an LMDB / LevelDB) and collect ``blobs``.

    Returns RunOutputs (keys and arrays in input order) when ``output`` is None;
    otherwise writes ``output`` (.h5 file, or a folder of .npy shards) and
    returns None. ``scheduler``: a Dask scheduler address; ``workers``: start a
    local Dask cluster of that many worker processes; neither: this process.
    ``transform``: transform_param text (e.g. ``"scale: 0.00390625"``);
    ``transformer``: a caffe_lite.io.Transformer instead. ``batch_size``
    defaults to the deploy net's; ``shard_size`` (rows per task and per output
    shard) to 8 batches. ``timeout``: seconds to reach the scheduler."""
    model, weights = os.fspath(model), os.fspath(weights)
    for path, what in ((model, "model"), (weights, "weights")):
        if not os.path.isfile(path):
            raise CaffeLiteError(f"the {what} file does not exist", file=path)
    blob_list = [blobs] if isinstance(blobs, str) else list(blobs)
    if "keys" in blob_list or len(set(blob_list)) != len(blob_list) or not blob_list:
        raise CaffeLiteError(f"blobs must be distinct names other than 'keys', got "
                             f"{blob_list}")
    param = caffe_pb2.TransformationParameter()
    if transform:
        if transformer is not None:
            raise CaffeLiteError("give transform (transform_param) or transformer, "
                                 "not both")
        try:
            text_format.Parse(transform, param)
        except text_format.ParseError as exc:
            raise CaffeLiteError(f"transform is not transform_param text: {exc}") from None
    items = open_inputs(inputs)
    if batch_size is None:
        net = net_for(Job(model, weights, blob_list, 1))
        batch_size = int(net.blobs[_input_blob(net, model)].shape[0])
    if batch_size <= 0:
        raise CaffeLiteError(f"batch size must be positive, got {batch_size}")
    shard_size = shard_size or batch_size * BATCHES_PER_SHARD
    shard_size = -(-shard_size // batch_size) * batch_size          # whole batches
    job = Job(model, weights, blob_list, batch_size, param.SerializeToString(),
              tuple(resize) if resize else (0, 0), transformer)    # type: ignore[arg-type]
    plan = _shards(len(items), batch_size, shard_size)
    store = None
    if output is not None:
        store = ShardStore(output, _run_record(job, items, shard_size, transform or ""),
                           overwrite)
    results: dict[int, dict[str, np.ndarray]] = {}
    written = store.done(len(plan)) if store is not None else set()
    todo = [i for i in range(len(plan)) if i not in written]

    def keep(index: int, arrays: dict[str, np.ndarray]) -> None:
        indices, rows = plan[index]
        if store is not None:
            store.write(index, [items.keys[i] for i in indices[:rows]], arrays)
        else:
            results[index] = arrays

    with _progress(len(plan), len(plan) - len(todo), progress) as bar:
        for index, arrays in _execute(job, items, plan, todo, scheduler, workers, timeout):
            keep(index, arrays)
            bar.update(1)
    if store is not None:
        store.finish(len(plan), blob_list)
        return None
    return RunOutputs(list(items.keys),
                      {b: np.concatenate([results[i][b] for i in range(len(plan))])
                       for b in blob_list})


def _execute(job: Job, items: Inputs, plan: list[tuple[list[int], int]], todo: list[int],
             scheduler: str | None, workers: int | None,
             timeout: float) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(shard index, arrays) as each shard of ``todo`` finishes."""
    if scheduler is None and not workers:
        for index in todo:
            indices, rows = plan[index]
            yield index, run_shard(job, _subset(items, indices), rows, index)
        return
    distributed = require("distributed", "dask", "running on Dask workers")
    client, cluster = _connect(distributed, scheduler, workers, timeout)
    try:
        shared = client.scatter(job, broadcast=True)       # once per worker
        futures = {client.submit(run_shard, shared, _subset(items, plan[i][0]), plan[i][1],
                                 i, pure=False): i for i in todo}
        for future in distributed.as_completed(futures):
            index = futures[future]
            try:
                arrays = future.result()
            except CaffeLiteError:
                raise
            except Exception as exc:         # a worker lost more often than allowed
                raise DistributedError(f"shard {index} failed on the Dask workers: "
                                       f"{type(exc).__name__}: {exc}") from None
            yield index, arrays
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _connect(distributed: Any, scheduler: str | None, workers: int | None,
             timeout: float) -> tuple[Any, Any]:
    if scheduler is not None:
        try:
            return distributed.Client(scheduler, timeout=f"{timeout}s"), None
        except (OSError, TimeoutError) as exc:
            raise DistributedError(f"the Dask scheduler at {scheduler} did not answer "
                                   f"within {timeout:g} s ({type(exc).__name__})") from None
    if workers is None or workers < 1:
        raise CaffeLiteError(f"workers must be at least 1, got {workers}")
    cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None)
    return distributed.Client(cluster), cluster


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def update(self, n: int) -> None:
        pass


def _progress(total: int, done: int, wanted: bool | None) -> Any:
    """A tqdm bar over shards (when tqdm is installed and, unless asked, on a
    terminal); else nothing."""
    if wanted is False or (wanted is None and not sys.stderr.isatty()):
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=done, unit="shard", file=sys.stderr)
