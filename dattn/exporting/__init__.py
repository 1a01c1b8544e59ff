"""Checkpoint -> deployable ONNX, TensorRT engine, Jetson bundle or Triton repository, verified.

`dattn.export(...)` (dattn.exporting.api.export) runs it; the modules here are its steps.
"""
