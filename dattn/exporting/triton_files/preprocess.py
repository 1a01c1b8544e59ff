"""Triton python backend, first step of the ensemble: images in, network input out (fitted as `dattn predict` fits
them: letterboxed, or stretched for an RT-DETR head).

Each request carries either IMAGE_BYTES (encoded images: JPEG, PNG, ...) or IMAGE (decoded uint8 arrays, BGR as
OpenCV reads them, all of one size), one image per batch row. Out: NETWORK_INPUT, the letterboxed float32 RGB
tensor, and ORIGINAL_SHAPE (height, width) of each image, which post-processing needs to map boxes back.
The fitting is dattn.runtime's, shipped beside this file (./dattn); no dattn install is needed.
Python 3.6 compatible.
"""

import ast
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from dattn.runtime.heads import fit_image, head_named
from dattn.runtime.preprocess import to_network_input


def decode_image(data, index):
    """BGR uint8 (H, W, 3) from encoded bytes; ValueError naming the batch row when they are not an image."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR) if len(data) else None
    if image is None:
        raise ValueError("IMAGE_BYTES[{}]: not a decodable image ({} bytes)".format(index, len(data)))
    return image


def images_of(request):
    """The request's images as a list of BGR uint8 arrays; ValueError for requests that cannot be served."""
    encoded = pb_utils.get_input_tensor_by_name(request, "IMAGE_BYTES")
    decoded = pb_utils.get_input_tensor_by_name(request, "IMAGE")
    if (encoded is None) == (decoded is None):
        raise ValueError("send exactly one of IMAGE_BYTES (encoded images) and IMAGE (uint8 arrays)")
    if encoded is not None:
        rows = encoded.as_numpy().reshape(-1)
        images = [decode_image(bytes(row), i) for i, row in enumerate(rows)]
    else:
        images = list(decoded.as_numpy())
    if not images:
        raise ValueError("empty batch: send at least one image")
    return images


class TritonPythonModel(object):
    def initialize(self, args):
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.size = tuple(ast.literal_eval(parameters["imgsz"]["string_value"]))
        self.head = head_named(parameters.get("head", {}).get("string_value", "anchors"), "config.pbtxt")

    def execute(self, requests):
        return [self.respond(request) for request in requests]

    def respond(self, request):
        try:
            images = images_of(request)
        except ValueError as error:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error)))
        boxes = [fit_image(self.head, image.shape[:2], self.size) for image in images]
        network_input = to_network_input([box.apply(image) for box, image in zip(boxes, images)])
        shapes = np.array([box.shape for box in boxes], dtype=np.int64)
        return pb_utils.InferenceResponse([pb_utils.Tensor("NETWORK_INPUT", network_input),
                                           pb_utils.Tensor("ORIGINAL_SHAPE", shapes)])
