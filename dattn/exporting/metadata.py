"""ONNX `metadata_props` that ultralytics' ONNX backend reads, plus dattn's own keys.

Ultralytics parses `stride`/`batch`/`channels` with int() and `imgsz`/`names`/`args` with
ast.literal_eval, so values are written as Python literals.
"""

from __future__ import annotations

from datetime import datetime

import onnx


def ultralytics_metadata(model, head, imgsz: tuple[int, int], batch: int, dynamic: bool, opset: int,
                         precision: str = "fp32") -> dict[str, str]:
    """The keys ultralytics' exporter writes, for a loaded ultralytics `model` and its exported `head` (HeadInfo)."""
    import ultralytics

    yaml = getattr(model, "yaml", {}) or {}
    return {
        "description": f"dattn export of {yaml.get('yaml_file', 'a YOLO model')}",
        "author": "dattn",
        "date": datetime.now().astimezone().isoformat(),
        "version": ultralytics.__version__,
        "license": "AGPL-3.0 License",
        "stride": str(int(max(model.stride))),
        "task": head.task,
        "head": head.module,
        "batch": str(batch),
        "imgsz": str(list(imgsz)),
        "names": str(dict(model.names)),
        "args": str({"batch": batch, "imgsz": list(imgsz), "dynamic": dynamic, "half": precision == "fp16",
                     "int8": precision == "int8", "nms": False, "opset": opset}),
        "channels": str(yaml.get("channels", 3)),
        "end2end": str(head.end2end),
    }


def dattn_metadata(head, grid_sample: str, opset: int, target: str, precision: str = "fp32") -> dict[str, str]:
    from dattn import __version__
    from dattn.runtime.heads import METADATA_KEY

    return {"dattn_version": __version__, METADATA_KEY: head.name, "dattn_grid_sample": grid_sample,
            "dattn_opset": str(opset), "dattn_target": target, "dattn_precision": precision}


def with_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> onnx.ModelProto:
    """A copy of `model` whose metadata_props are `metadata` (existing keys replaced)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.metadata_props[:]
    for key, value in metadata.items():
        out.metadata_props.add(key=key, value=value)
    return out
