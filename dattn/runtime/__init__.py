"""Run exported models without torch or ultralytics: numpy pre- and post-processing and runners.

    from dattn.runtime import Detector
    detector = Detector("best.onnx")            # or best.engine (TensorRT)
    found = detector.predict("bus.jpg")         # boxes (xyxy, image pixels), scores, class_ids, class_names

Everything here is Python 3.6 compatible and imports only numpy, OpenCV, and onnxruntime or tensorrt when used:
it travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend.
"""

from dattn.runtime.detector import Detector, Prediction

__all__ = ["Detector", "Prediction"]
