"""The ONNX Runtime runner's detections match ultralytics' `YOLO("best.pt").predict` on the recipe-trained checkpoint.

Which ultralytics call gives the network input the ONNX gets: ultralytics' predictor letterboxes a .pt with
`auto=True` ("minimum rectangle": padding only up to the next multiple of the stride) because predict sets
rect=True, but a static ONNX to the full export size. So for static exports we compare with
`YOLO("best.pt").predict(..., rect=False)`, which letterboxes to the full size exactly as the ONNX needs, and for
the dynamic export with the default `rect=True`, which is what dattn (like ultralytics' ONNX backend) does for a
dynamic model. Comparing with the .pt, not with `YOLO("best.onnx")`, checks the export and the runtime together
against the model the user trained.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_python
from runtime_models import (assert_same_detections, exported_onnx, sample_images, strip_images,
                            validation_images)

from dattn.errors import ConfigError, ModelFileError

CONF = 0.1  # low enough that the photographs give detections too (the detector learnt shapes, not people)

# (export name, export options, Detector imgsz, ultralytics imgsz, ultralytics rect)
CASES = {
    "static-160": (dict(imgsz=160), None, 160, False),
    "static-160x224": (dict(imgsz=(160, 224)), None, (160, 224), False),
    "dynamic-192-at-256": (dict(imgsz=192, dynamic=True), 256, 256, True),
}


@pytest.fixture(scope="module")
def images(recipe_run, tmp_path_factory):
    return sample_images() + validation_images(recipe_run) + strip_images(recipe_run, tmp_path_factory.mktemp("strips"))


@pytest.fixture(scope="module")
def pt_model(recipe_weights):
    import dattn  # noqa: F401  (registers DAttention, so the recipe checkpoint loads)
    from ultralytics import YOLO

    return YOLO(str(recipe_weights))


@pytest.mark.parametrize("case", list(CASES))
def test_detections_match_ultralytics(case, recipe_weights, tmp_path_factory, images, pt_model):
    from dattn.runtime import Detector

    options, imgsz, ul_imgsz, rect = CASES[case]
    detector = Detector(exported_onnx(tmp_path_factory, recipe_weights, case, **options), imgsz=imgsz, conf=CONF)
    matched = 0
    for image in images:
        ours = detector.predict(str(image))
        theirs = pt_model.predict(str(image), imgsz=ul_imgsz, rect=rect, conf=CONF, verbose=False)[0].boxes
        matched += assert_same_detections(f"{case} {image.name}", ours.boxes, ours.scores, ours.class_ids,
                                          theirs.xyxy.numpy(), theirs.conf.numpy(), theirs.cls.numpy(), CONF)
        assert ours.class_names == [detector.names[int(c)] for c in ours.class_ids]
    assert matched >= 2 * len(images), f"{case}: only {matched} detections compared: the comparison says little"


def test_metadata_and_provider_are_read_from_the_file(recipe_weights, tmp_path_factory):
    from dattn.runtime import Detector

    static = Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160x224", imgsz=(160, 224)))
    assert static.names == {0: "box", 1: "disc"}
    assert (static.info.imgsz, static.info.stride, static.info.dynamic, static.info.batch) == ((160, 224), 32, False, 1)
    assert static.description.startswith("ONNX Runtime ") and "CPUExecutionProvider" in static.description
    dynamic = Detector(exported_onnx(tmp_path_factory, recipe_weights, "dynamic-192-at-256", imgsz=192, dynamic=True))
    assert (dynamic.info.imgsz, dynamic.info.dynamic, dynamic.info.batch) == ((192, 192), True, None)


def test_dynamic_model_gets_the_minimum_rectangle(recipe_weights, tmp_path_factory, images):
    """bus.jpg (1080x810) at 256: scaled to 256x192, already a multiple of 32, so no padding at all."""
    from dattn.runtime import Detector

    detector = Detector(exported_onnx(tmp_path_factory, recipe_weights, "dynamic-192-at-256", imgsz=192, dynamic=True),
                        imgsz=256)
    import cv2

    batch, (letterbox,) = detector.preprocess([cv2.imread(str(sample_images()[0]))])
    assert batch.shape == (1, 3, 256, 192)
    assert (letterbox.top, letterbox.bottom, letterbox.left, letterbox.right) == (0, 0, 0, 0)


def test_static_model_refuses_another_size(recipe_weights, tmp_path_factory):
    from dattn.runtime import Detector

    with pytest.raises(ConfigError, match="160x160 images only"):
        Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160), imgsz=320)


def test_batch_of_images_equals_one_by_one(recipe_weights, tmp_path_factory, images):
    """A static batch-2 export: images are run two at a time (the last batch filled up) with the same results."""
    import cv2

    from dattn.runtime import Detector

    single = Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160), conf=CONF)
    double = Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160-b2", imgsz=160, batch=2), conf=CONF)
    assert double.batch == 2
    arrays = [cv2.imread(str(p)) for p in images[:5]]  # odd: the last batch holds one real image
    for a, b in zip(double.predict_batch(arrays), [single.predict(x) for x in arrays]):
        assert_same_detections("batch", a.boxes, a.scores, a.class_ids, b.boxes, b.scores, b.class_ids, CONF)
        assert len(a.scores) == len(b.scores)


def test_plugin_graph_runs_with_the_reference_op(recipe_weights, tmp_path_factory, recipe_run):
    pytest.importorskip("onnxruntime_extensions", reason="the plugin reference op needs onnxruntime-extensions")
    from dattn.runtime import Detector

    native = Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160))
    plugin = Detector(exported_onnx(tmp_path_factory, recipe_weights, "plugin-160", imgsz=160, target="trt8.2",
                                        grid_sample="plugin"))
    for image in validation_images(recipe_run, 3):
        a, b = plugin.predict(str(image)), native.predict(str(image))
        assert_same_detections(image.name, a.boxes, a.scores, a.class_ids, b.boxes, b.scores, b.class_ids, 0.25)


def test_importing_and_predicting_loads_neither_torch_nor_ultralytics(recipe_weights, tmp_path_factory, recipe_run):
    model = exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160)
    image = validation_images(recipe_run, 1)[0]
    code = (f"import sys\nfrom dattn.runtime import Detector\nfound = Detector({str(model)!r}).predict({str(image)!r})\n"
            "assert len(found.scores) > 0, found\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'ultralytics', 'onnx')))")
    assert run_python(code).stdout.strip() == "[]"


@pytest.mark.parametrize("content, message", [
    (b"", "not a model ONNX Runtime can load"),
    (b"this is a text file, not a model\n", "not a model ONNX Runtime can load"),
])
def test_unloadable_onnx_is_one_clear_error(tmp_path, content, message):
    from dattn.runtime import Detector

    path = tmp_path / "best.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message) as error:
        Detector(path)
    assert "\n" not in str(error.value)


def test_truncated_onnx_is_one_clear_error(recipe_weights, tmp_path_factory, tmp_path):
    from dattn.runtime import Detector

    whole = exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160).read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelFileError, match="truncated, or another kind of file") as error:
        Detector(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name, message", [
    ("best.pt", "is a PyTorch checkpoint; export it first"),
    ("best.tflite", "unknown model kind"),
    ("missing.onnx", "does not exist"),
])
def test_wrong_model_files(tmp_path, name, message):
    from dattn.runtime import Detector

    if name != "missing.onnx":
        (tmp_path / name).write_bytes(b"PK\x03\x04 something")
    with pytest.raises(ModelFileError, match=message):
        Detector(tmp_path / name)


def test_device_choice():
    from dattn.runtime.onnxruntime_runner import choose_providers

    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(available, "cpu") == ["CPUExecutionProvider"]
    assert choose_providers(available, None) == [("TensorrtExecutionProvider", {"device_id": 0}),
                                                 ("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    assert choose_providers(available, "cuda:1")[1] == ("CUDAExecutionProvider", {"device_id": 1})
    assert choose_providers(["CPUExecutionProvider"], None) == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match="no GPU execution provider"):
        choose_providers(["CPUExecutionProvider"], "cuda")
    with pytest.raises(ConfigError, match="--device must be"):
        choose_providers(available, "gpu0")


def test_outputs_are_those_of_the_session(recipe_weights, tmp_path_factory):
    """The runner hands ONNX Runtime's output through untouched (decode works on exactly what the model gives)."""
    import onnxruntime

    from dattn.runtime.onnxruntime_runner import OnnxRuntimeRunner

    path = exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160)
    batch = np.random.default_rng(0).random((1, 3, 160, 160), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(OnnxRuntimeRunner(path, device="cpu")(batch), session.run(None, {"images": batch})[0])
