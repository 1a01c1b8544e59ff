"""The contract of the ONNX node that `--grid-sample plugin` writes and the TensorRT plugin serves.

One place for the names, so the exporter, the ONNX Runtime reference op and the C++ plugin agree.
"""

# Op type == TensorRT plugin creator name. Never "GridSample": TensorRT's built-in importer would win.
OP_TYPE = "DAttnGridSample"
# TensorRT >= 10.10 takes the node's domain as the plugin namespace; 8.x reads the plugin_namespace attribute.
DOMAIN = "dattn"
PLUGIN_NAMESPACE = DOMAIN
PLUGIN_VERSION = "1"
