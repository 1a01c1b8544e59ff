"""`Detector(path).predict(image)`: an exported model (ONNX or TensorRT engine) from image to detections.

The runner is picked from the file: `.onnx` runs in ONNX Runtime, `.engine` / `.plan` / `.trt` in TensorRT.
Images are letterboxed as ultralytics' predictor does it: to the full model size for a static model, to the
smallest multiple of the stride that holds the image ("minimum rectangle") for a dynamic one.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import collections
import os

import numpy as np

from dattn.errors import ConfigError, ModelFileError
from dattn.runtime.heads import check_output_shape, decode, fit_image
from dattn.runtime.metadata import class_name, size_pair
from dattn.runtime.postprocess import check_thresholds, nms_opencv
from dattn.runtime.preprocess import as_bgr_image, read_image, to_network_input

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ONNX_SUFFIXES = (".onnx",)
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")

Prediction = collections.namedtuple("Prediction", ["boxes", "scores", "class_ids", "class_names"])
Prediction.__doc__ = ("One image's detections in its own pixels: boxes (n, 4) xyxy float32, scores (n,) float32, "
                      "class_ids (n,) int64, class_names (list of n str).")


def open_runner(path, device=None, threads=None, plugin_library=None, metadata=None):
    """The runner for `path`, chosen by its suffix: OnnxRuntimeRunner or TensorRTRunner.

    metadata: for a raw TensorRT plan (names, stride, imgsz, ...); files with their own metadata ignore it.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise ModelFileError("{}: {}".format(path, "is a folder, not a model file" if os.path.isdir(path) else "does not exist"))
    suffix = os.path.splitext(path)[1].lower()
    if suffix in ONNX_SUFFIXES:
        from dattn.runtime.onnxruntime_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, device=device, threads=threads)
    if suffix in ENGINE_SUFFIXES:
        from dattn.runtime.onnxruntime_runner import parse_device
        from dattn.runtime.tensorrt_runner import TensorRTRunner

        kind, index = parse_device(device)
        if kind == "cpu":
            raise ConfigError("{}: a TensorRT engine runs on a GPU only; run the ONNX for --device cpu".format(path))
        return TensorRTRunner(path, device=index, plugin_library=plugin_library, metadata=metadata)
    if suffix in _CHECKPOINT_SUFFIXES:
        raise ModelFileError("{}: is a PyTorch checkpoint; export it first: dattn-export --weights {} (ONNX) or "
                             "--format engine".format(path, path))
    raise ModelFileError("{}: unknown model kind '{}': pass an exported .onnx or a TensorRT .engine".format(path, suffix))


class Detector(object):
    """An exported YOLO detector. `predict(image)` takes a path or a BGR uint8 array (as cv2.imread gives).

    imgsz: for a dynamic model, the largest input side(s) to letterbox to (default: the export size); a static
    model takes only its own size. conf, iou, max_det: as ultralytics' predict. nms: nms_opencv or nms_numpy.
    metadata: class names etc. for a raw TensorRT plan (trtexec writes those), as a dict.
    """

    def __init__(self, path, imgsz=None, conf=0.25, iou=0.7, max_det=300, device=None, threads=None,
                 plugin_library=None, nms=nms_opencv, metadata=None, runner=None):
        check_thresholds(conf, iou)
        if int(max_det) < 1:
            raise ValueError("max_det must be at least 1, got {}".format(max_det))
        self.runner = runner if runner is not None else open_runner(path, device, threads, plugin_library, metadata)
        self.info = self.runner.info
        self.names = self.info.names
        self.conf, self.iou, self.max_det, self.nms = float(conf), float(iou), int(max_det), nms
        self.imgsz = self.info.imgsz if imgsz is None else size_pair(imgsz)
        if not self.info.dynamic and self.imgsz != self.info.imgsz:
            raise ConfigError("{}: the model takes {}x{} images only (exported without --dynamic), not --imgsz {}x{}"
                              .format(path, self.info.imgsz[0], self.info.imgsz[1], self.imgsz[0], self.imgsz[1]))
        if any(s < self.info.stride or s % self.info.stride for s in self.imgsz):
            raise ConfigError("--imgsz must be a positive multiple of the model's stride {}, got {}x{}"
                              .format(self.info.stride, self.imgsz[0], self.imgsz[1]))
        self.head = self.info.head
        check_output_shape(self.head, self.runner.output_shape, len(self.names) or None, str(path))
        # A static batch larger than one is filled up with copies of the last image.
        self.batch = self.info.batch or 1

    @property
    def description(self):
        return self.runner.description

    def preprocess(self, images):
        """(network input (N, 3, H, W) float32, where each image went: a Letterbox or Stretch per image) for BGR
        uint8 images, fitted as the model's head expects (dattn.runtime.heads.fit_image).

        Images of different shapes in one call are letterboxed to the full size (as ultralytics does).
        """
        same_shape = len(set(image.shape for image in images)) == 1
        fits = [fit_image(self.head, image.shape, self.imgsz, auto=self.info.dynamic and same_shape,
                          stride=self.info.stride) for image in images]
        fitted = [fit.apply(image) for fit, image in zip(fits, images)]
        if self.info.batch:
            fitted += [fitted[-1]] * (self.info.batch - len(fitted))
        return to_network_input(fitted), fits

    def infer(self, batch):
        """The raw output for a network input, laid out as the model's head writes it."""
        return self.runner(batch)

    def postprocess(self, output, fits):
        """A Prediction per image, boxes in the original image's pixels."""
        found = decode(self.head, output[:len(fits)], fits[0].input_shape, self.conf, self.iou, self.max_det, self.nms,
                       len(self.names) or None)
        return [Prediction(fit.boxes_to_image(d.boxes), d.scores, d.class_ids,
                           [class_name(self.names, c) for c in d.class_ids])
                for fit, d in zip(fits, found)]

    def predict_batch(self, images):
        """A Prediction per image (BGR uint8 arrays), at most `self.batch` images per network run.

        Grayscale uint8 (H, W) or (H, W, 1) arrays are converted; other arrays raise ConfigError (a ValueError).
        """
        images = [as_bgr_image(image) for image in images]
        predictions = []
        for start in range(0, len(images), self.batch):
            chunk = images[start:start + self.batch]
            batch, letterboxes = self.preprocess(chunk)
            predictions += self.postprocess(self.infer(batch), letterboxes)
        return predictions

    def predict(self, image):
        """The Prediction for one image: a path or a BGR uint8 array (H, W, 3) (see predict_batch for others)."""
        if not isinstance(image, np.ndarray):
            image = read_image(image)
        return self.predict_batch([image])[0]
