"""mAP on a dataset's validation split by ultralytics' own validator: of an exported ONNX (ONNX Runtime, CPU) or a .pt."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dattn.runtime.heads import HEADS, Head


def validation_map(model_path: Path, data_yaml: Path, imgsz: int, batch: int, head: Head = HEADS["anchors"]) -> tuple[float, float]:
    """(mAP50-95, mAP50), in points (0-100), of an .onnx or a .pt (recipe checkpoints included); an RT-DETR `head`
    is validated by ultralytics' RT-DETR validator.

    rect=False: every image letterboxed to the square `imgsz`, as a static export sees it, so that a .pt and its
    export are measured on the same inputs (ultralytics would pad a .pt's batches to other sizes).
    """
    from ultralytics import RTDETR, YOLO

    from dattn.ultralytics.quiet import ultralytics_quiet

    # The validator's own progress and tables would drown dattn's report.
    with tempfile.TemporaryDirectory(prefix="dattn-val-") as project, ultralytics_quiet():
        model = RTDETR(str(model_path)) if head.stretched else YOLO(str(model_path), task="detect")
        branch = {"nms": False} if head.name == "topk" else {}  # how ultralytics selects the one-to-one branch
        metrics = model.val(data=str(data_yaml), imgsz=imgsz, batch=batch, rect=False, device="cpu", plots=False,
                            verbose=False, project=project, name="val", save_json=False, **branch)
    return 100 * float(metrics.box.map), 100 * float(metrics.box.map50)
