"""ONNX graph rewrites, each a pure function ModelProto -> ModelProto."""

from dattn.exporting.passes.dtype_check import assert_no_float64, find_float64
from dattn.exporting.passes.einsum import decompose_einsum
from dattn.exporting.passes.float16 import convert_to_float16, float32_compute, sampling_coordinate_nodes
from dattn.exporting.passes.grid_sample_gather import grid_sample_to_gather
from dattn.exporting.passes.grid_sample_plugin import grid_sample_to_plugin
from dattn.exporting.passes.layer_norm import decompose_layer_norm
from dattn.exporting.passes.mod import decompose_mod
from dattn.exporting.passes.opset_downgrade import downgrade_opset

__all__ = ["assert_no_float64", "convert_to_float16", "decompose_einsum", "decompose_layer_norm", "decompose_mod", "downgrade_opset",
           "find_float64", "float32_compute", "grid_sample_to_gather", "grid_sample_to_plugin", "sampling_coordinate_nodes"]
