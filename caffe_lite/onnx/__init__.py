"""Export a net to ONNX, verified: ``export(net, "model.onnx")`` writes the model and
runs it in onnxruntime against caffe_lite's own forward (needs the ``onnx`` extra).

Names survive: graph inputs, outputs and values are Caffe's blob names, nodes are
layer names, initializers ``<layer>.<role>`` (``fc7.weight``).
"""
from .exporter import DEFAULT_OPSET, build_model, export
from .verify import Comparison, Verification, seeded_inputs, seeded_weights, verify

__all__ = ["DEFAULT_OPSET", "Comparison", "Verification", "build_model", "export",
           "seeded_inputs", "seeded_weights", "verify"]
