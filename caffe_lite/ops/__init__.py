"""Pure numpy kernels: arrays and ints in, arrays out (no Blob, no proto).

- `im2col`: conv/deconv output sizes, im2col / col2im, and the convolution GEMMs
  (`conv_forward`, `conv_backward`, `deconv_forward`, `deconv_backward`).
- `pooling`: Caffe's pooling output size, window bounds, MAX and AVE pooling.
- `deconv_fast`: exact detection of FCN's frozen bilinear deconvolution weights and
  the separable U x V^T path that replaces the generic deconvolution for them.

Vocabulary: N batch, C channels, G groups, K = prod(kernel), L = prod(output spatial).
Every kernel takes per-axis parameters as an int (same for every spatial axis) or a
tuple with one value per spatial axis, and works for any number of spatial axes.
"""
