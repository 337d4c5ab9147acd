"""Layers the net itself relies on: Input (the net's inputs) and Split (one blob
fed to several consumers)."""
import numpy as np

from .base import Layer, register_layer


@register_layer("Input")
class InputLayer(Layer):
    """Tops shaped by ``input_param.shape`` (one shape for all, or one per top);
    the caller fills them before forward."""
    exact_num_bottom = 0
    min_top = 1
    has_backward = False

    def layer_setup(self, bottom, top):
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            raise self.error(f"input_param has {len(shapes)} shapes for {len(top)} "
                             f"tops: give one shape, or one per top")
        for i, blob in enumerate(top):
            if shapes:
                blob.reshape(list(shapes[0 if len(shapes) == 1 else i].dim))

    def reshape(self, bottom, top):
        pass                       # the caller reshapes inputs

    def forward(self, bottom, top):
        pass


@register_layer("Split")
class SplitLayer(Layer):
    """Copies its bottom to every top; backward sums the tops' diffs."""
    exact_num_bottom = 1
    min_top = 1

    def reshape(self, bottom, top):
        for blob in top:
            if blob is bottom[0]:
                raise self.error("Split cannot run in place", blob=self.param.top[0])
            blob.reshape(bottom[0].shape)

    def forward(self, bottom, top):
        for blob in top:
            blob.data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            np.copyto(diff, top[0].diff)
            for blob in top[1:]:           # same order of additions as Caffe
                diff += blob.diff
