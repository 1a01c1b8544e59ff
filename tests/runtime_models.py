"""Exports, images and a detection comparator shared by the runtime, predict and bundle tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCORE_TOLERANCE = 1e-3  # absolute
BOX_TOLERANCE_PX = 1.0  # in original-image pixels


def exported_onnx(tmp_path_factory, weights: Path, name: str, **options) -> Path:
    """`dattn.export(weights, **options)` written once per test session (the runtime test files share them)."""
    folder = tmp_path_factory.getbasetemp() / "runtime-exports"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.onnx"
    if not path.is_file():
        import dattn

        dattn.export(weights, output=path, verify=False, **options)
    return path


def letterboxed(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(3, H, W) float32 network input of an image file, letterboxed as ultralytics' YOLO predictor does."""
    from dattn.runtime.heads import HEADS, network_input
    from dattn.runtime.preprocess import read_image

    return network_input(HEADS["anchors"], read_image(path), size)


def sample_images() -> list[Path]:
    """ultralytics' bus.jpg (810x1080) and zidane.jpg (1280x720)."""
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    return [assets / "bus.jpg", assets / "zidane.jpg"]


def validation_images(recipe_run: Path, count: int = 6) -> list[Path]:
    """The first generated validation images (160x160 shapes the recipe detector learnt)."""
    return sorted((recipe_run / "data" / "images" / "val").glob("*.png"))[:count]


def strip_images(recipe_run: Path, folder: Path) -> list[Path]:
    """A 3:1 panorama and a 1:3 column of validation images: aspect ratios far from any model's."""
    import cv2

    tiles = [cv2.imread(str(p)) for p in validation_images(recipe_run, 3)]
    wide, tall = folder / "wide_3to1.png", folder / "tall_1to3.png"
    cv2.imwrite(str(wide), np.concatenate(tiles, axis=1))
    cv2.imwrite(str(tall), np.concatenate(tiles, axis=0))
    return [wide, tall]


def assert_same_detections(name: str, boxes, scores, classes, ref_boxes, ref_scores, ref_classes, conf: float,
                           nms: bool = True) -> int:
    """Same classes, boxes within 1 px, scores within 1e-3, one to one, judged by the export's own comparator
    (dattn.exporting.verify.compare_detections); returns the number matched.

    A detection may lack a partner only where its score is within the score tolerance of `conf` (the other side's
    rounding may put it below the threshold) or, after NMS, beside a box it may have suppressed.
    """
    from dattn.exporting.verify import Tolerance, compare_detections
    from dattn.runtime.postprocess import Detections

    def detections(b, s, c):
        return Detections(np.asarray(b, np.float32).reshape(-1, 4), np.asarray(s, np.float32), np.asarray(c).astype(np.int64))

    result = compare_detections(detections(ref_boxes, ref_scores, ref_classes), detections(boxes, scores, classes), conf,
                                Tolerance(box_fraction=0.0, score=SCORE_TOLERANCE), nms)
    assert (result.missing, result.extra, result.other_class) == (0, 0, 0), (name, result)
    assert result.box_error_px <= BOX_TOLERANCE_PX and result.score_error <= SCORE_TOLERANCE, (name, result)
    return result.matched


def ultralytics_detections(model, image: Path, size: int, conf: float, nms: bool | None = None):
    """(boxes, scores, class ids) of ultralytics' own predict at a static export's full size: `model` is a YOLO or an
    RTDETR; nms=False selects YOLO26's one-to-one branch, True its one-to-many one (None: ultralytics' default)."""
    from ultralytics import RTDETR

    options = {} if isinstance(model, RTDETR) else {"rect": False, **({} if nms is None else {"nms": nms})}
    boxes = model.predict(str(image), imgsz=size, conf=conf, verbose=False, **options)[0].boxes
    return boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.cls.numpy().astype(np.int64)
