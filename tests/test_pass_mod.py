"""decompose_mod: Mod as Div, Mul and Sub, the floor remainder (and C's fmod) for every sign, ints and floats."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from dattn.exporting.passes import decompose_mod

TYPES = {np.int64: TensorProto.INT64, np.int32: TensorProto.INT32, np.float32: TensorProto.FLOAT}


def _mod_model(dtype, fmod: int, opset: int) -> onnx.ModelProto:
    kind = TYPES[dtype]
    node = helper.make_node("Mod", ["a", "b"], ["r"], name="m", fmod=fmod)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, kind, [None]) for n in "ab"],
                              [helper.make_tensor_value_info("r", kind, [None])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(model, a, b):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a, "b": b})[0]


@pytest.mark.parametrize("dtype, fmod", [(np.int64, 0), (np.int32, 0), (np.int64, 1), (np.int32, 1), (np.float32, 1)])
@pytest.mark.parametrize("opset", [11, 13, 17])
def test_the_rewrite_computes_what_mod_computes(dtype, fmod, opset):
    a = np.array([7, -7, 7, -7, 0, 6, -6, 599, 1, 13], dtype)
    b = np.array([3, 3, -3, -3, 5, 3, 3, 80, 80, 1], dtype)
    if dtype == np.float32:
        a, b = a + np.float32(0.25), b
    model = _mod_model(dtype, fmod, opset)
    rewritten = decompose_mod(model)
    assert "Mod" not in {n.op_type for n in rewritten.graph.node}
    onnx.checker.check_model(rewritten)
    np.testing.assert_array_equal(_run(rewritten, a, b), _run(model, a, b))
    expected = np.fmod(a, b) if fmod else np.mod(a, b)
    np.testing.assert_array_equal(_run(rewritten, a, b), expected)
