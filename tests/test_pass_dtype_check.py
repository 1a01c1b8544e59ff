"""find_float64 / assert_no_float64 on torch exports with and without float64."""

import io
import warnings

import onnx
import pytest
import torch

from dattn.exporting.passes.dtype_check import assert_no_float64, find_float64


class _Float64Grid(torch.nn.Module):
    """The seed recipe's mistake: a float64 linspace reference grid, cast back at the end."""

    def forward(self, x):
        ref = torch.linspace(0.5, x.shape[-1] - 0.5, x.shape[-1], dtype=torch.float64, device=x.device)
        return (x.double() + ref).float()


class _Float32Grid(torch.nn.Module):
    def forward(self, x):
        ref = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device) + 0.5
        return x + ref


def _export(module, opset=17):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(1, 3, 4, 5),), f, opset_version=opset, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {3: "w"}})
    return onnx.load_from_string(f.getvalue())


def test_finds_float64():
    model = _export(_Float64Grid())
    found = find_float64(model)
    assert any("Cast to DOUBLE" in f for f in found), found
    assert any(f.startswith("tensor") for f in found), found
    with pytest.raises(ValueError, match="float64"):
        assert_no_float64(model)


def test_finds_float64_initializer_and_constant():
    double = onnx.numpy_helper.from_array(__import__("numpy").ones(3), "w")
    const = onnx.helper.make_node("Constant", [], ["c"], value=double, name="k")
    add = onnx.helper.make_node("Add", ["w", "c"], ["y"])
    graph = onnx.helper.make_graph([const, add], "g", [], [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.DOUBLE, [3])],
                                   initializer=[double])
    found = find_float64(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)]))
    assert "initializer 'w'" in found and "Constant node 'k' attribute 'value' (float64 constant)" in found
    assert "tensor 'y'" in found


def test_clean_model():
    model = _export(_Float32Grid())
    assert find_float64(model) == []
    assert_no_float64(model)
