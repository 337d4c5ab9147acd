"""Blobs in MATLAB .mat files, as DeepLab's MatWrite/MatRead keep them (through
scipy, the ``mat`` extra): one single-precision variable 'data' whose MATLAB
dimensions are (width, height, channels, num), column-major, so its memory is the
blob's (N, C, H, W) row-major buffer unchanged. Files are written atomically."""
import numpy as np

from ..errors import CaffeLiteError, require
from ..formats.atomic import atomic_write


def _scipy_io(path):
    return require("scipy.io", "mat", "reading and writing MATLAB .mat files", file=path)


def write_blob_mat(path, array):
    """A blob of up to 4 axes as 'data' (W, H, C, N); missing trailing axes are 1,
    as Caffe's legacy num/channels/height/width."""
    array = np.asarray(array, np.float32)
    if array.ndim > 4:
        raise CaffeLiteError(f"a .mat blob has at most 4 axes, got shape {array.shape}",
                             file=path)
    nchw = array.reshape(array.shape + (1,) * (4 - array.ndim))
    sio = _scipy_io(path)
    with atomic_write(path) as handle:
        sio.savemat(handle, {"data": nchw.transpose(3, 2, 1, 0)}, format="5",
                    do_compression=False)


def read_blob_mat(path):
    """'data' of a .mat file as a (N, C, H, W) float32 array (MATLAB's (W, H, C, N);
    dimensions it dropped are 1). It must be single precision, as the fork's
    float nets require."""
    sio = _scipy_io(path)
    try:
        variables = sio.loadmat(path)
    except FileNotFoundError:
        raise CaffeLiteError("the .mat file does not exist", file=path) from None
    except Exception as exc:                       # scipy raises several kinds
        raise CaffeLiteError(f"cannot read the .mat file: {exc}", file=path) from None
    if "data" not in variables:
        raise CaffeLiteError("the .mat file has no variable 'data'", file=path)
    data = variables["data"]
    if data.dtype != np.float32:
        raise CaffeLiteError(f"'data' must be single precision, got {data.dtype}", file=path)
    if data.ndim > 4:
        raise CaffeLiteError(f"'data' has {data.ndim} dimensions, at most 4 allowed",
                             file=path)
    whcn = data.shape + (1,) * (4 - data.ndim)
    return np.ascontiguousarray(data.reshape(whcn).transpose(3, 2, 1, 0))
