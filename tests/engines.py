"""Engine files for the tests, built by the exporter's own builder (TensorRT for RTX here, TensorRT on a GPU box)."""

from pathlib import Path

import onnx

from dattn.exporting.tensorrt import build_serialized_engine, engine_file, engine_metadata


def build_engine_file(onnx_path: Path, engine_path: Path, module_name: str = "tensorrt", raw: bool = False) -> Path:
    """`engine_path` with ultralytics' header (or the bare plan) for the ONNX at `onnx_path`, as dattn-export writes it."""
    plan = build_serialized_engine(Path(onnx_path), module_name=module_name)
    metadata = engine_metadata(onnx.load(str(onnx_path), load_external_data=False))
    Path(engine_path).write_bytes(engine_file(plan, metadata, raw))
    return Path(engine_path)
