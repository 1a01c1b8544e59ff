"""torch -> ONNX export, the ONNX passes, verification against PyTorch and the TensorRT build."""
