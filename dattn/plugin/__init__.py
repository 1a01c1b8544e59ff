"""The DAttnGridSample TensorRT plugin: its node contract, building and locating the library, loading it into
TensorRT, and a reference implementation that runs plugin graphs in ONNX Runtime."""
