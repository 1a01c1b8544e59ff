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


def assert_same_detections(name: str, boxes, scores, classes, ref_boxes, ref_scores, ref_classes, conf: float) -> int:
    """Same classes, boxes within 1 px, scores within 1e-3, one to one; returns the number matched.

    A detection may lack a partner only when its score is within the score tolerance of `conf`, where the
    other side's rounding may put it below the threshold.
    """
    boxes, ref_boxes = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(ref_boxes, np.float64).reshape(-1, 4)
    scores, ref_scores = np.asarray(scores, np.float64), np.asarray(ref_scores, np.float64)
    classes, ref_classes = np.asarray(classes).astype(int), np.asarray(ref_classes).astype(int)
    unmatched = set(range(len(ref_scores)))
    matched = 0
    for i in np.argsort(-scores, kind="stable"):
        partners = [j for j in unmatched if ref_classes[j] == classes[i]
                    and np.abs(ref_boxes[j] - boxes[i]).max() <= BOX_TOLERANCE_PX
                    and abs(ref_scores[j] - scores[i]) <= SCORE_TOLERANCE]
        if partners:
            unmatched.remove(min(partners, key=lambda j: np.abs(ref_boxes[j] - boxes[i]).max()))
            matched += 1
        else:
            assert scores[i] <= conf + SCORE_TOLERANCE, (
                f"{name}: detection {classes[i]} {scores[i]:.4f} {boxes[i].round(2)} has no counterpart within 1 px / 1e-3 "
                f"among {list(zip(ref_classes, ref_scores.round(4), ref_boxes.round(2)))}")
    for j in unmatched:
        assert ref_scores[j] <= conf + SCORE_TOLERANCE, (
            f"{name}: reference detection {ref_classes[j]} {ref_scores[j]:.4f} {ref_boxes[j].round(2)} is missing")
    return matched
