"""Layer implementations, one module per family of ideas; each registers its types
with ``base.register_layer``, and base.py holds the one registry.

Importing this package imports every module in it, so the registry is full as
soon as any ``caffe_lite.layers.*`` module has been imported (Python runs this
file first). base.py imports nothing from the package, so there is no cycle, and
adding a layer family needs no edit here.

- `base`: the Layer contract and the registry (`register_layer`, `layer_class`,
  `layer_types`, re-exported here).
- `core`: the net's plumbing: Input, Split, Silence, Parameter.
- `shape`: Flatten, Reshape, Tile, Permute, and the AxisMixin axis checks.
  `concat_slice`: Concat, Slice. `batch_selection`: BatchReindex, Filter.
- `neuron`: the NeuronLayer base, AbsVal, Threshold, Exp, Log, Power, Dropout.
  `activation`: ReLU, PReLU, Clip, Sigmoid, TanH, BNLL, ELU, Swish.
- `conv`: Convolution, Deconvolution, Im2col. `inner_product`, `embed`.
- `pooling`: Pooling, SPP. `upsample`: Unpooling, Upsample, Interp. `crop`.
- `normalization`: LRN, MVN, BatchNorm, Normalize (SSD). `bn`: BN (the fork's batch
  norm). `detection`: PriorBox, DetectionOutput (SSD).
  `scale_bias`: Scale, Bias.
- `eltwise`, `reduction` (Reduction, ArgMax), `softmax`.
- `loss`: the LossLayer base and its label/normalisation rules.
  `likelihood_loss`: SoftmaxWithLoss, InfogainLoss, MultinomialLogisticLoss,
  SigmoidCrossEntropyLoss. `distance_loss`: EuclideanLoss, HingeLoss,
  ContrastiveLoss. `accuracy`.
- `recurrent`: RNN, LSTM, LSTMUnit. `python_layer`: Python.
- `rcnn`: ROIPooling, SmoothL1Loss, Proposal (the Faster R-CNN fork).
  `multibox_loss`: MultiBoxLoss, `detection_eval`: DetectionEvaluate (the SSD fork).
- `yolo`: Reorg, Region. `seg_metrics`: SegAccuracy, EltwiseAccuracy. The forks'
  small layers sit with their family: ReLU6/Mish in `activation`, ShuffleChannel in
  `shape`, Axpy in `scale_bias`, ConvolutionDepthwise in `conv`, PSROIPooling in `pooling`.
- the `data*` modules: the data layers.
  `data_seg`: the segmentation forks' DenseImageData and ImageSegData.
  `data_annotated`: SSD's AnnotatedData. `mat_io`: DeepLab's MatWrite, MatRead.
"""
import importlib
import pkgutil

from .base import Layer, layer_class, layer_types, register_layer

__all__ = ["Layer", "layer_class", "layer_types", "register_layer"]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module
