"""Triton python backend, last step of the ensemble: raw detector output in, detections in image pixels out.

The decoding of the model's head (class-aware NMS for an anchor grid) and the inverse of the image fitting are
dattn.runtime's, shipped beside this file (./dattn), so the boxes equal `dattn predict`'s. The head, the class count
and the thresholds come from this model's config parameters (head, classes, conf, iou, max_det).
Out, per image: BOXES (n, 4) xyxy float32 pixels, SCORES (n,), CLASSES (n,) int64, NUM_DETECTIONS; within one
request images are padded to the largest n (padding rows are zero), NUM_DETECTIONS says how many rows are real.
Python 3.6 compatible.
"""

import ast
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from dattn.runtime.heads import decode, fit_image, head_named
from dattn.runtime.postprocess import check_thresholds


def padded(arrays, shape_per_row, dtype):
    """Stack arrays of different lengths into one (len(arrays), longest, *shape_per_row), zero-padded."""
    longest = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), longest) + tuple(shape_per_row), dtype=dtype)
    for row, a in enumerate(arrays):
        out[row, :len(a)] = a
    return out


class TritonPythonModel(object):
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        value = {key: item["string_value"] for key, item in parameters.items()}
        self.size = tuple(ast.literal_eval(value["imgsz"]))
        self.conf, self.iou, self.max_det = float(value["conf"]), float(value["iou"]), int(value["max_det"])
        self.head = head_named(value.get("head", "anchors"), "config.pbtxt")
        self.classes = int(value["classes"]) if value.get("classes") else None
        check_thresholds(self.conf, self.iou)  # a bad edit of config.pbtxt fails the load with the reason

    def execute(self, requests):
        return [self.respond(request) for request in requests]

    def respond(self, request):
        output = pb_utils.get_input_tensor_by_name(request, "NETWORK_OUTPUT").as_numpy()
        shapes = pb_utils.get_input_tensor_by_name(request, "ORIGINAL_SHAPE").as_numpy()
        found = decode(self.head, output, self.size, self.conf, self.iou, self.max_det, classes=self.classes)
        boxes = [fit_image(self.head, shape, self.size).boxes_to_image(d.boxes) for shape, d in zip(shapes, found)]
        return pb_utils.InferenceResponse([
            pb_utils.Tensor("BOXES", padded(boxes, (4,), np.float32)),
            pb_utils.Tensor("SCORES", padded([d.scores for d in found], (), np.float32)),
            pb_utils.Tensor("CLASSES", padded([d.class_ids for d in found], (), np.int64)),
            pb_utils.Tensor("NUM_DETECTIONS", np.array([[len(d.scores)] for d in found], dtype=np.int32)),
        ])
