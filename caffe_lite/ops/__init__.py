"""Pure numpy kernels: arrays and ints in, arrays out (no Blob, no proto).

- `geometry`: what the kernels share, under public names: per-axis parameters,
  conv/deconv output sizes, kernel offsets, output checks and `Workspace` buffers.
- `im2col`: im2col / col2im.
- `conv_gemm`: the convolution GEMMs (`conv_forward`, `conv_backward`,
  `deconv_forward`, `deconv_backward`).
- `pooling`: Caffe's pooling output size, window bounds, MAX and AVE pooling, and
  STOCHASTIC pooling (Caffe's GPU kernels; 2-D, no padding).
- `deconv_fast`: exact detection of FCN's frozen bilinear deconvolution weights and
  the separable U x V^T path that replaces the generic deconvolution for them.
- `upsample`: Unpooling / Upsample scatters and Interp's bilinear gathers.
- `boxes`: SSD's prior boxes, box decoding, IoU and NMS.
- `lstm`: the LSTM cell step. `libm`: float32 exp/log/pow/tanh rounded like glibc.
- `lrn`: LRN across channels (Caffe's running channel sum, fused by channel block).
- `threads`: worker threads for independent parts of a computation (slices of a
  batch), BLAS on one thread each; serial without threadpoolctl.

Vocabulary: N batch, C channels, G groups, K = prod(kernel), L = prod(output spatial).
Every kernel takes per-axis parameters as an int (same for every spatial axis) or a
tuple with one value per spatial axis, and works for any number of spatial axes.
"""
