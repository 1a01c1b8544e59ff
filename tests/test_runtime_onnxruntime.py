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

import re

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


# ---- what Detector.predict accepts ------------------------------------------------------------------


@pytest.fixture(scope="module")
def static_detector(recipe_weights, tmp_path_factory):
    from dattn.runtime import Detector

    return Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160), conf=CONF)


def _same(a, b):
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.class_names == b.class_names


def test_grayscale_and_strided_arrays_are_converted(static_detector, recipe_run):
    """(H, W) and (H, W, 1) uint8 give the detections of the same image as BGR; a reversed view those of a copy."""
    import cv2

    found = 0
    for path in validation_images(recipe_run, 4):
        gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        expected = static_detector.predict(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
        _same(static_detector.predict(gray), expected)
        _same(static_detector.predict(gray[..., None]), expected)
        found += len(expected.scores)
        rgb = cv2.imread(str(path))[..., ::-1].copy()
        _same(static_detector.predict(rgb[..., ::-1]), static_detector.predict(np.ascontiguousarray(rgb[..., ::-1])))
    assert found >= 4


NOT_IMAGES = {
    "float in [0, 1]": (lambda bgr: bgr.astype(np.float32) / 255, "got dtype float32; scale to 0-255"),
    "uint16": (lambda bgr: bgr.astype(np.uint16) * 257, "got dtype uint16"),
    "bool": (lambda bgr: bgr > 127, "got dtype bool"),
    "channels first": (lambda bgr: np.ascontiguousarray(bgr.transpose(2, 0, 1)),
                       "got shape (3, 160, 160); for channels first use"),
    "four channels": (lambda bgr: np.dstack([bgr, bgr[..., :1]]), "got shape (160, 160, 4)"),
    "empty": (lambda bgr: bgr[:0], "got shape (0, 160, 3)"),
    "1-D": (lambda bgr: bgr.reshape(-1), "got shape (76800,)"),
    "batch": (lambda bgr: bgr[None], "got shape (1, 160, 160, 3)"),
}


@pytest.mark.parametrize("make, got", list(NOT_IMAGES.values()), ids=list(NOT_IMAGES))
def test_arrays_that_are_not_images_are_refused(static_detector, recipe_run, make, got):
    import cv2

    from dattn.runtime.preprocess import as_bgr_image

    image = make(cv2.imread(str(validation_images(recipe_run, 1)[0])))
    with pytest.raises(ConfigError, match="^expected a BGR uint8 image \\(H, W, 3\\) as cv2.imread gives, or grayscale "
                                          "\\(H, W\\) uint8, " + re.escape(got)) as error:
        static_detector.predict(image)
    assert "\n" not in str(error.value)
    with pytest.raises(ConfigError):
        as_bgr_image(image)


@pytest.mark.parametrize("imgsz", [0, -32, 16, (160, 0)])
def test_dynamic_model_refuses_sizes_below_its_stride(recipe_weights, tmp_path_factory, imgsz):
    from dattn.runtime import Detector

    path = exported_onnx(tmp_path_factory, recipe_weights, "dynamic-192-at-256", imgsz=192, dynamic=True)
    with pytest.raises(ConfigError, match="--imgsz must be a positive multiple of the model's stride 32"):
        Detector(path, imgsz=imgsz)


# ---- metadata: every value checked ------------------------------------------------------------------


def _with_metadata(source, tmp_path, **changes):
    import onnx

    model = onnx.load(str(source))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    path = tmp_path / "crafted.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("key, value, expected", [
    ("stride", "0", "a positive integer such as 32"),
    ("stride", "-32", "a positive integer such as 32"),
    ("stride", "1e400", "a positive integer such as 32"),
    ("stride", "True", "a positive integer such as 32"),
    ("imgsz", "[0, 0]", "[H, W] in multiples of the stride 32"),
    ("imgsz", "[160, 160, 160]", "[H, W] in multiples of the stride 32"),
    ("imgsz", "[100, 100]", "[H, W] in multiples of the stride 32"),
    ("imgsz", "[320, 320]", "the graph's fixed input size 160x160"),
    ("names", "{'box': 0}", "a mapping of integer class ids to names"),
    ("names", "[" * 10_000, "a mapping of class ids to names"),
])
def test_crafted_onnx_metadata_is_one_clear_error(recipe_weights, tmp_path_factory, tmp_path, key, value, expected):
    from dattn.runtime import Detector

    path = _with_metadata(exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160), tmp_path, **{key: value})
    with pytest.raises(ModelFileError, match=f"metadata '{key}' is .*, expected {re.escape(expected)}") as error:
        Detector(path)
    assert "\n" not in str(error.value) and len(str(error.value)) < 300


def test_model_info_names_the_file_and_key():
    from dattn.runtime.metadata import model_info

    with pytest.raises(ModelFileError, match="^m.engine: metadata 'stride' is 0, expected a positive integer"):
        model_info({"stride": 0}, (1, 3, 64, 64), source="m.engine")
    with pytest.raises(ModelFileError, match="^m.engine: metadata 'imgsz' is \\[64, 64\\], expected the graph's fixed "
                                             "input size 32x32"):
        model_info({"imgsz": [64, 64]}, (1, 3, 32, 32), source="m.engine")
    # Both ways metadata is written: ONNX literals and JSON values; a dynamic graph takes the metadata's size.
    assert model_info({"names": "{0: 'a'}", "stride": "32", "imgsz": "[64, 96]"}, (1, 3, 64, 96))[:5] == (
        {0: "a"}, 32, (64, 96), False, 1)
    assert model_info({"names": {"0": "a"}, "stride": 64, "imgsz": [128]}, (None, 3, None, None))[:5] == (
        {0: "a"}, 64, (128, 128), True, None)
    assert model_info({}, (2, 3, 96, 64))[:5] == ({}, 32, (96, 64), False, 2)


def _tiny_model(kind: str, path):
    """An ONNX that is not a detector: two inputs added, an identity over an image, or a uint8 image input."""
    import onnx
    from onnx import TensorProto, helper

    float_image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    if kind == "add":
        inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in "ab"]
        nodes, output = [helper.make_node("Add", ["a", "b"], ["y"])], helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    elif kind == "identity":
        inputs, nodes = [float_image], [helper.make_node("Identity", ["images"], ["y"])]
        output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])
    else:
        inputs = [helper.make_tensor_value_info("images", TensorProto.UINT8, [1, 3, 32, 32])]
        nodes = [helper.make_node("Cast", ["images"], ["y"], to=TensorProto.FLOAT)]
        output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])
    model = helper.make_model(helper.make_graph(nodes, kind, inputs, [output]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kind, message", [("add", "not a detector: a detector takes one float32 (N, 3, H, W) image"),
                                           ("uint8", "not a detector: a detector takes one float32 (N, 3, H, W) image"),
                                           ("identity", "its output has shape 1x3x32x32, but a YOLO")])
def test_an_onnx_that_is_not_a_detector_is_refused_in_one_line(kind, message, tmp_path):
    from dattn.runtime import Detector

    path = _tiny_model(kind, tmp_path / f"{kind}.onnx")
    with pytest.raises(ModelFileError, match=re.escape(message)) as error:
        Detector(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    result = run_python(["-m", "dattn.cli", "predict", "--model", str(path), "--source", str(sample_images()[0])],
                        check=False, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr
