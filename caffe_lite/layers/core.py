"""The net's plumbing, layers that move blobs without transforming them: Input
(the net's inputs), Split (one blob fed to several consumers), Silence (consumes
blobs nobody else reads) and Parameter (a learnable blob exposed as a top)."""
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
    """Every top shares its bottom's data, as in Caffe (no copy: an in-place layer on
    one top changes them all, exactly what Caffe shows); backward sums the tops' diffs."""
    exact_num_bottom = 1
    min_top = 1

    def reshape(self, bottom, top):
        for blob in top:
            if blob is bottom[0]:
                raise self.error("Split cannot run in place", blob=self.param.top[0])
            blob.reshape(bottom[0].shape)
            blob.share_data(bottom[0])

    def forward(self, bottom, top):
        for blob in top:                   # only a top given other memory since reshape
            if not blob.shares_data_with(bottom[0]):
                blob.data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff
            np.copyto(diff, top[0].diff)
            for blob in top[1:]:           # same order of additions as Caffe
                diff += blob.diff


@register_layer("Silence")
class SilenceLayer(Layer):
    """Consumes blobs nobody else uses (no tops); backward gives them zero diffs."""
    min_bottom = 1
    exact_num_top = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for b, down in zip(bottom, propagate_down):
            if down:
                b.diff[...] = 0


@register_layer("Parameter")
class ParameterLayer(Layer):
    """A learnable blob (parameter_param shape, zeros until weights load) exposed
    as the top. The top shares the blob's data and diff, so the consumer's gradient
    lands in the param diff directly, as in Caffe."""
    exact_num_bottom = 0
    exact_num_top = 1

    def layer_setup(self, bottom, top):
        self.dtype = top[0].dtype
        shape = [int(d) for d in self.param.parameter_param.shape.dim]
        if any(d < 0 for d in shape):
            raise self.error(f"parameter_param shape {shape} has a negative dim")
        self.blobs = [self.make_blob(shape)]

    def reshape(self, bottom, top):
        top[0].reshape(self.blobs[0].shape)

    def forward(self, bottom, top):
        # share again each pass: the net may swap in a shared param blob
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])

    def backward(self, top, propagate_down, bottom):
        pass
