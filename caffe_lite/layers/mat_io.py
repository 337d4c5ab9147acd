"""DeepLab's MatWrite and MatRead (also in PSPNet's fork): blobs to and from MATLAB
.mat files, one file per blob and image, named
``<prefix><name>_blob_<i>.mat``, where ``<name>`` is the next line of ``source``
(its first word, ``strip`` characters cut from its end) or ``iter_<k>``. The file
format is data/mat.py's; scipy (the ``mat`` extra) is imported when a file is."""
from ..data.files import find_file
from ..data.mat import read_blob_mat, write_blob_mat
from ..errors import CaffeLiteError
from .base import Layer, register_layer


def read_names(layer, source, strip):
    """The fork's name list: the first word of each line, ``strip`` chars cut."""
    if strip < 0:
        raise layer.error(f"strip must not be negative, got {strip}")
    path = find_file(source, layer.net_file)
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise layer.error(f"cannot read the source list {path}: {exc.strerror}") from None
    names = []
    for number, line in enumerate(lines, 1):
        words = line.split()
        word = words[0] if words else ""
        if len(word) <= strip:
            raise layer.error(f"{path}:{number}: '{word}' is not longer than strip "
                              f"({strip})")
        names.append(word[:len(word) - strip])
    return names


@register_layer("MatWrite")
class MatWriteLayer(Layer):
    """Writes every bottom to a .mat file every ``period`` forward passes (the
    k-th pass names its files after the k-th source line, or iter_<k>).
    mat_write_param: prefix, source, strip, period (1). No tops, no backward."""
    min_bottom = 1
    exact_num_top = 0
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.mat_write_param
        self.prefix, self.period = p.prefix, p.period
        if self.period <= 0:
            raise self.error(f"period must be positive, got {self.period}")
        self.names = read_names(self, p.source, p.strip) if p.HasField("source") else None
        self.iter = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        if self.iter % self.period == 0:
            if self.names is not None and self.iter >= len(self.names):
                raise self.error(f"forward pass {self.iter + 1} but the source list "
                                 f"names only {len(self.names)} files")
            name = self.names[self.iter] if self.names is not None else f"iter_{self.iter}"
            for i, blob in enumerate(bottom):
                path = f"{self.prefix}{name}_blob_{i}.mat"
                try:
                    write_blob_mat(path, blob.data)
                except CaffeLiteError as exc:
                    raise self.error(exc.message + f" ({path})",
                                     blob=self.param.bottom[i]) from None
        self.iter += 1


@register_layer("MatRead")
class MatReadLayer(Layer):
    """Reads its tops from .mat files, batch_size files per top and forward pass,
    in source order (wrapping around), or iter_<k> without a source. Every file
    holds one item (num 1) of the first file's shape. mat_read_param: prefix,
    source, strip, batch_size (1)."""
    exact_num_bottom = 0
    min_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        p = self.param.mat_read_param
        self.prefix, self.batch_size = p.prefix, p.batch_size
        if self.batch_size <= 0:
            raise self.error(f"batch_size must be positive, got {self.batch_size}")
        self.names = read_names(self, p.source, p.strip) if p.HasField("source") else None
        if self.names == []:
            raise self.error(f"the source list {p.source} names no file")
        self.iter = 0
        first = self.names[0] if self.names else "iter_0"
        self.item_shapes = []
        for i in range(len(top)):
            item = self._read(f"{self.prefix}{first}_blob_{i}.mat", i)
            self.item_shapes.append(item.shape[1:])
            top[i].reshape((self.batch_size,) + item.shape[1:])

    def _read(self, path, i):
        try:
            item = read_blob_mat(path)
        except CaffeLiteError as exc:
            raise self.error(exc.message + f" ({path})", blob=self.param.top[i]) from None
        if item.shape[0] != 1:
            raise self.error(f"{path} holds {item.shape[0]} items; MatRead reads one per "
                             f"file", blob=self.param.top[i])
        return item

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        for n in range(self.batch_size):
            if self.names is not None and self.iter >= len(self.names):
                self.iter = 0
            name = self.names[self.iter] if self.names is not None else f"iter_{self.iter}"
            for i, blob in enumerate(top):
                path = f"{self.prefix}{name}_blob_{i}.mat"
                item = self._read(path, i)
                if item.shape[1:] != self.item_shapes[i]:
                    raise self.error(f"{path} holds {item.shape[1:]}, the first file "
                                     f"{self.item_shapes[i]}", blob=self.param.top[i])
                blob.data[n] = item[0]
            self.iter += 1
