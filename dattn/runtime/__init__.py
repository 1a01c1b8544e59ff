"""Runtimes that run exported models: the ONNX Runtime reference op for the plugin node."""
