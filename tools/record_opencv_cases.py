#!/usr/bin/env python
"""Record golden outputs of small synthetic SSD heads from OpenCV's dnn module (an
independent implementation of the SSD fork's layers), in the layout of the Caffe
conformance cases, so tests/test_opencv_cases.py replays them where cv2 is absent.

    python tools/record_opencv_cases.py [--out tests/data/opencv]

Each case directory gets net.prototxt, weights.caffemodel (seeded), case.json and
io.npz (input/<blob>, blob/<blob> for the output of every non-Input layer as OpenCV
reports it). OpenCV pads DetectionOutput with zero rows up to keep_top_k and orders the
kept rows by score; the recorded rows are the real ones (score > 0) in the fork's order
(image, then label, then descending score), which is what caffe_lite must produce.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import caffe_lite as caffe  # noqa: E402
from caffe_lite.formats import read_net_param  # noqa: E402

HEAD = """name: "{name}"
layer {{ name: "data" type: "Input" top: "data"
  input_param {{ shape {{ dim: 2 dim: 3 dim: 16 dim: 16 }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 stride: 2 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "relu1" }}
layer {{ name: "norm1" type: "Normalize" bottom: "relu1" top: "norm1"
  norm_param {{ across_spatial: false channel_shared: false }} }}
layer {{ name: "pool1" type: "Pooling" bottom: "relu1" top: "pool1"
  pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 }} }}
layer {{ name: "norm2" type: "Normalize" bottom: "conv2" top: "norm2"
  norm_param {{ across_spatial: true channel_shared: true }} }}
{heads}
layer {{ name: "mbox_loc" type: "Concat" bottom: "loc1_flat" bottom: "loc2_flat"
  top: "mbox_loc" concat_param {{ axis: 1 }} }}
layer {{ name: "mbox_conf" type: "Concat" bottom: "conf1_flat" bottom: "conf2_flat"
  top: "mbox_conf" concat_param {{ axis: 1 }} }}
layer {{ name: "mbox_priorbox" type: "Concat" bottom: "prior1" bottom: "prior2"
  top: "mbox_priorbox" concat_param {{ axis: 2 }} }}
layer {{ name: "conf_reshape" type: "Reshape" bottom: "mbox_conf" top: "conf_rs"
  reshape_param {{ shape {{ dim: 0 dim: -1 dim: {classes} }} }} }}
layer {{ name: "conf_softmax" type: "Softmax" bottom: "conf_rs" top: "conf_sm"
  softmax_param {{ axis: 2 }} }}
layer {{ name: "conf_flatten" type: "Flatten" bottom: "conf_sm" top: "conf_sm_flat" }}
layer {{ name: "detection_out" type: "DetectionOutput" bottom: "mbox_loc"
  bottom: "conf_sm_flat" bottom: "mbox_priorbox" top: "detection_out"
  detection_output_param {{ num_classes: {classes} {detection} }} }}
"""

BRANCH = """layer {{ name: "{kind}{i}" type: "Convolution" bottom: "norm{i}" top: "{kind}{i}"
  convolution_param {{ num_output: {out} kernel_size: 3 pad: 1 }} }}
layer {{ name: "{kind}{i}_perm" type: "Permute" bottom: "{kind}{i}" top: "{kind}{i}_perm"
  permute_param {{ order: 0 order: 2 order: 3 order: 1 }} }}
layer {{ name: "{kind}{i}_flat" type: "Flatten" bottom: "{kind}{i}_perm"
  top: "{kind}{i}_flat" }}
"""

PRIOR = """layer {{ name: "prior{i}" type: "PriorBox" bottom: "norm{i}" bottom: "data"
  top: "prior{i}" prior_box_param {{ {params} }} }}
"""

# clip is always given: the fork's default is false, OpenCV's copy of the schema says true
PRIORS = {1: ("min_size: 4 max_size: 8 aspect_ratio: 2 flip: true clip: false "
              "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2", 4),
          2: ("min_size: 8 max_size: 14 aspect_ratio: 2 aspect_ratio: 3 flip: true "
              "clip: true variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2", 6)}

CASES = {
    "ssd_head_center_size": dict(
        classes=3, shared=True, seed=11,
        detection="share_location: true background_label_id: 0 code_type: CENTER_SIZE "
                  "confidence_threshold: 0.2 keep_top_k: 20 "
                  "nms_param { nms_threshold: 0.45 top_k: 30 }",
        description="Synthetic SSD head (conv, ReLU, Normalize per position with per-"
                    "channel scale and across the sample with a shared scale, Permute, "
                    "Flatten, PriorBox with max size, flip and clip, Concat, Reshape, "
                    "Softmax, DetectionOutput CENTER_SIZE with nms top_k and keep_top_k), "
                    "batch 2."),
    "ssd_head_corner_per_class": dict(
        classes=4, shared=False, seed=12,
        detection="share_location: false background_label_id: 0 code_type: CORNER "
                  "confidence_threshold: 0.15 keep_top_k: 12 "
                  "nms_param { nms_threshold: 0.3 }",
        description="The same head with per-class locations (share_location false), "
                    "CORNER (OpenCV does not know CORNER_SIZE), keep_top_k cutting across "
                    "classes, batch 2."),
}


def prototxt(name, classes, shared, detection):
    heads = ""
    for i, (params, priors) in PRIORS.items():
        heads += BRANCH.format(kind="loc", i=i, out=priors * 4 * (1 if shared else classes))
        heads += BRANCH.format(kind="conf", i=i, out=priors * classes)
        heads += PRIOR.format(i=i, params=params)
    return HEAD.format(name=name, heads=heads, classes=classes, detection=detection)


def seeded_weights(model, path, seed):
    """He-normal convolutions, small biases, Normalize scales around 10 and 20; the
    confidence heads scaled up so that scores spread over (0, 1)."""
    net = caffe.Net(str(model), caffe.TEST)
    r = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        if name.startswith("norm"):
            blobs[0].data[...] = r.uniform(8, 12, blobs[0].shape) * (2 if name == "norm2"
                                                                     else 1)
            continue
        w = blobs[0]
        w.data[...] = r.normal(0, np.sqrt(2.0 / np.prod(w.shape[1:])), w.shape)
        w.data[...] *= 0.4 if name.startswith("conf") else 0.1 if name.startswith("loc") \
            else 1
        blobs[1].data[...] = r.uniform(-0.1, 0.1, blobs[1].shape)
    net.save(str(path))


def fork_order(rows):
    """OpenCV's DetectionOutput rows -> the fork's: padding dropped, by image, label,
    descending score."""
    rows = rows.reshape(-1, 7)
    rows = rows[rows[:, 2] > 0]
    return rows[np.lexsort((-rows[:, 2], rows[:, 1], rows[:, 0]))][None, None]


def record(case_dir, name, spec):
    import cv2
    case_dir.mkdir(parents=True, exist_ok=True)
    model, weights = case_dir / "net.prototxt", case_dir / "weights.caffemodel"
    model.write_text(prototxt(name, spec["classes"], spec["shared"], spec["detection"]))
    seeded_weights(model, weights, spec["seed"])
    param = read_net_param(str(model))
    x = np.random.default_rng(spec["seed"]).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    layers = [lp for lp in param.layer if lp.type != "Input"]
    cv_net = cv2.dnn.readNetFromCaffe(str(model), str(weights))
    cv_net.setInput(x)
    outs = cv_net.forward([lp.name for lp in layers])
    arrays = {"input/data": x}
    for lp, out in zip(layers, outs):
        arrays["blob/" + lp.top[0]] = (fork_order(out) if lp.type == "DetectionOutput"
                                       else out).astype(np.float32)
    detections = arrays["blob/detection_out"]
    if len(detections[0, 0]) < 2 or len(np.unique(detections[0, 0, :, 2])) < \
            len(detections[0, 0]):
        raise SystemExit(f"{name}: too few detections or tied scores; change the seed")
    np.savez_compressed(case_dir / "io.npz", **arrays)
    meta = {"set": "opencv", "group": "opencv", "case": name, "phase": "TEST",
            "inputs": ["data"], "input_shapes": {"data": list(x.shape)},
            "force_backward": False, "backward": False,
            "description": spec["description"] + " Recorded from OpenCV dnn; detection "
            "rows in the fork's order (OpenCV's zero padding dropped).",
            "recorded_with": f"opencv-python-headless {cv2.__version__}",
            "rtol": 1e-4, "atol": 1e-5, "seed": spec["seed"],
            "layer_types": sorted({lp.type for lp in param.layer}),
            "outputs": ["detection_out"], "detections": int(len(detections[0, 0])),
            "has_weights": True}
    (case_dir / "case.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{name}: {len(detections[0, 0])} detections, {len(arrays) - 1} blobs")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "opencv"))
    args = parser.parse_args()
    for name, spec in CASES.items():
        record(Path(args.out) / name, name, spec)


if __name__ == "__main__":
    main()
