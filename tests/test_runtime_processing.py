"""dattn.runtime's letterbox, box scaling and decode + NMS against ultralytics' own functions, piece by piece.

Letterbox: ultralytics' LetterBox (full size and minimum rectangle) on many image shapes, pixel for pixel.
Boxes: ultralytics' scale_boxes (separate x/y gains from the rounded resized size) and clip.
NMS: ultralytics' non_max_suppression on raw outputs of the recipe detector and on crowded synthetic ones;
OpenCV's NMSBoxes (with the class-offset trick) and the numpy loop keep the same detections.
"""

from __future__ import annotations

import numpy as np
import pytest
from runtime_models import exported_onnx, sample_images, validation_images

from dattn.runtime.postprocess import check_thresholds, decode_anchors, nms_numpy, nms_opencv
from dattn.runtime.preprocess import Letterbox, jpeg_is_truncated, read_image, to_network_input

SHAPES = [(1080, 810), (720, 1280), (160, 160), (161, 479), (37, 1000), (1000, 37), (1, 3000), (333, 333), (500, 75)]
SIZES = [(160, 160), (160, 224), (640, 640), (256, 192)]


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize("auto", [False, True])
@pytest.mark.parametrize("size", SIZES)
def test_letterbox_is_ultralytics_letterbox(size, auto):
    from ultralytics.data.augment import LetterBox

    for shape in SHAPES:
        image = _image(shape)
        ours = Letterbox(image.shape, size, auto=auto, stride=32)
        expected = LetterBox(size, auto=auto, stride=32)(image=image)
        np.testing.assert_array_equal(ours.apply(image), expected, err_msg=f"{shape} -> {size} auto={auto}")
        assert ours.input_shape == expected.shape[:2]
        if auto:
            assert all(s % 32 == 0 for s in ours.input_shape) or min(shape) < 32


def test_network_input_is_ultralytics_preprocess():
    """RGB, NCHW, float32 in [0, 1], bit for bit (ultralytics divides by 255 in float32 too)."""
    import torch

    images = [_image((160, 224), seed) for seed in range(2)]
    expected = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).flip(1).float().div_(255).numpy()
    np.testing.assert_array_equal(to_network_input(images), expected)


@pytest.mark.parametrize("auto", [False, True])
def test_boxes_to_image_is_ultralytics_scale_boxes(auto):
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(1)
    for size in SIZES:
        for shape in SHAPES:
            box = Letterbox(shape, size, auto=auto)
            xy = rng.uniform(-20, max(box.input_shape) + 20, (50, 2, 2))
            boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1).astype(np.float32)
            expected = scale_boxes(box.input_shape, boxes.copy(), shape)  # clips as well
            np.testing.assert_allclose(box.boxes_to_image(boxes), expected, atol=1e-3, err_msg=f"{shape} {size}")


@pytest.fixture(scope="module")
def raw_outputs(recipe_weights, recipe_run, tmp_path_factory):
    """The recipe detector's raw outputs (1, 6, anchors) on photographs and validation images, via ONNX Runtime."""
    from dattn.runtime import Detector

    detector = Detector(exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160))
    return [detector.infer(detector.preprocess([read_image(p)])[0])
            for p in sample_images() + validation_images(recipe_run)]


def _crowded_output(seed, classes=3, anchors=2000):
    """Many overlapping boxes of several classes, scores spread over (0, 1): NMS with plenty to do."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(20, 300, (anchors, 2))
    sizes = rng.uniform(5, 80, (anchors, 2))
    scores = rng.uniform(0, 1, (classes, anchors)) ** 3
    return np.concatenate([centres.T, sizes.T, scores])[None].astype(np.float32)


def _ultralytics_nms(output, conf, iou, max_det=300):
    import torch
    from ultralytics.utils.nms import non_max_suppression

    found = non_max_suppression(torch.from_numpy(output), conf, iou, max_det=max_det)[0].numpy()
    return found[:, :4], found[:, 4], found[:, 5].astype(np.int64)


@pytest.mark.parametrize("nms", [nms_opencv, nms_numpy], ids=["opencv", "numpy"])
@pytest.mark.parametrize("conf, iou", [(0.25, 0.7), (0.05, 0.45), (0.01, 0.7)])
def test_decode_is_ultralytics_nms_on_the_detector(raw_outputs, nms, conf, iou):
    compared = 0
    for output in raw_outputs:
        (ours,) = decode_anchors(output, conf, iou, nms=nms)
        boxes, scores, classes = _ultralytics_nms(output, conf, iou)
        np.testing.assert_array_equal(ours.class_ids, classes)
        np.testing.assert_allclose(ours.scores, scores, atol=1e-6)
        np.testing.assert_allclose(ours.boxes, boxes, atol=1e-4)
        compared += len(scores)
    assert compared >= len(raw_outputs)  # not a vacuous comparison


@pytest.mark.parametrize("seed", range(3))
def test_opencv_and_numpy_nms_keep_the_same_crowded_detections(seed):
    output = _crowded_output(seed)
    for conf, iou, max_det in ((0.01, 0.7, 300), (0.1, 0.45, 300), (0.001, 0.5, 50)):
        (a,), (b,) = decode_anchors(output, conf, iou, max_det, nms=nms_opencv), decode_anchors(output, conf, iou, max_det, nms=nms_numpy)
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        boxes, scores, classes = _ultralytics_nms(output, conf, iou, max_det)
        np.testing.assert_array_equal(a.class_ids, classes)
        np.testing.assert_allclose(a.boxes, boxes, atol=1e-4)
        assert len(a.scores) == min(max_det, len(a.scores)) and len(a.scores) > 10


def test_classes_never_suppress_each_other():
    """Two identical boxes of different classes both survive; of the same class, only the better one."""
    box = [100.0, 100.0, 50.0, 50.0]
    output = np.array([box + [0.9, 0.0], box + [0.0, 0.8], box + [0.7, 0.0]], dtype=np.float32).T[None]
    for nms in (nms_opencv, nms_numpy):
        (found,) = decode_anchors(output, 0.25, 0.7, nms=nms)
        assert found.class_ids.tolist() == [0, 1] and np.allclose(found.scores, [0.9, 0.8])


def test_empty_output_gives_no_detections():
    output = np.zeros((2, 6, 100), dtype=np.float32)
    for nms in (nms_opencv, nms_numpy):
        found = decode_anchors(output, 0.25, 0.7, nms=nms)
        assert len(found) == 2 and all(len(d.scores) == 0 and d.boxes.shape == (0, 4) for d in found)


@pytest.mark.parametrize("conf, iou", [(-0.1, 0.7), (1.0, 0.7), (float("nan"), 0.7), (0.25, 0.0), (0.25, 1.5),
                                       (0.25, float("nan"))])
def test_bad_thresholds_are_refused(conf, iou):
    with pytest.raises(ValueError, match="must be in"):
        check_thresholds(conf, iou)


def test_unreadable_image_names_the_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(IOError, match="notes.jpg: not a readable image"):
        read_image(path)


def _jpeg(seed=0) -> bytes:
    import cv2

    return cv2.imencode(".jpg", _image((120, 160), seed))[1].tobytes()


def _with_exif_thumbnail(jpeg: bytes) -> bytes:
    """An APP1 segment holding a whole small JPEG (as an EXIF thumbnail does) right after the start marker."""
    thumbnail = _jpeg(seed=1)
    payload = b"Exif\x00\x00" + thumbnail
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


@pytest.mark.parametrize("make, truncated", [
    (lambda: _jpeg(), False),
    (lambda: _jpeg() + bytes(64), False),  # zero padding after the end marker
    (lambda: _jpeg() + bytes(range(256)) * 40, False),  # data appended after the image (as motion photos do)
    (lambda: _with_exif_thumbnail(_jpeg()), False),
    (lambda: _jpeg()[:-2], True),
    (lambda: _jpeg()[: len(_jpeg()) // 2], True),
    (lambda: _with_exif_thumbnail(_jpeg())[:-200], True),  # the thumbnail's end marker does not count
], ids=["whole", "zero padding", "appended data", "exif thumbnail", "no end marker", "half", "cut, with thumbnail"])
def test_truncated_jpeg_is_recognised(tmp_path, make, truncated):
    import cv2

    path = tmp_path / "x.jpg"
    path.write_bytes(make())
    assert cv2.imread(str(path)) is not None  # OpenCV decodes every one of them
    assert jpeg_is_truncated(path) is truncated


def test_truncation_check_reads_only_jpegs(tmp_path):
    import cv2

    path = tmp_path / "x.png"
    path.write_bytes(cv2.imencode(".png", _image((40, 40)))[1].tobytes()[:-30])
    assert jpeg_is_truncated(path) is False  # not a JPEG: left to OpenCV
