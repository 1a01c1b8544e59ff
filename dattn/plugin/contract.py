"""The contract of the ONNX node that `--grid-sample plugin` writes and the TensorRT plugin serves, stated once.

The exporter's pass, the ONNX Runtime reference op and the library loader read it from here; the C++ plugin's
constants (dattn/plugin/trt_gridsample/gridSamplePluginCommon.h) are checked against it by the tests.
"""

# Op type == TensorRT plugin creator name. Never "GridSample": TensorRT's built-in importer would win.
OP_TYPE = "DAttnGridSample"
# TensorRT >= 10.10 takes the node's domain as the plugin namespace; 8.x reads the plugin_namespace attribute.
DOMAIN = "dattn"
PLUGIN_NAMESPACE = DOMAIN
PLUGIN_VERSION = "1"
# The node's attributes: align_corners is the plugin's one field; the two strings are read by TensorRT 8.x's parser.
ALIGN_CORNERS = "align_corners"
INPUTS = ("X", "grid")  # X (N, C, H, W), grid (N, Ho, Wo, 2) in (x, y) order
OUTPUTS = ("Y",)  # Y (N, C, Ho, Wo)
DTYPES = ("float32", "float16")  # X, grid and Y share one

LIBRARY_NAME = "libdattn_trt_plugins.so"
LIBRARY_ENV = "DATTN_TRT_PLUGIN"  # a built library to use instead of searching
