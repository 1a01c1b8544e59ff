"""mAP on a dataset's validation split by ultralytics' own validator: of an exported ONNX (ONNX Runtime, CPU) or a .pt."""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path


def validation_map(model_path: Path, data_yaml: Path, imgsz: int, batch: int) -> tuple[float, float]:
    """(mAP50-95, mAP50), in points (0-100), of an .onnx or a .pt (recipe checkpoints included).

    rect=False: every image letterboxed to the square `imgsz`, as a static export sees it, so that a .pt and its
    export are measured on the same inputs (ultralytics would pad a .pt's batches to other sizes).
    """
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # the validator's own progress and tables would drown dattn's report
    try:
        with tempfile.TemporaryDirectory(prefix="dattn-val-") as project, contextlib.redirect_stdout(io.StringIO()):
            metrics = YOLO(str(model_path), task="detect").val(
                data=str(data_yaml), imgsz=imgsz, batch=batch, rect=False, device="cpu", plots=False, verbose=False,
                project=project, name="val", save_json=False)
    finally:
        LOGGER.setLevel(level)
    return 100 * float(metrics.box.map), 100 * float(metrics.box.map50)
