"""decompose_layer_norm: a channel LayerNorm (permute -> nn.LayerNorm -> permute) vs torch."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dattn.exporting.passes.layer_norm import decompose_layer_norm


class _ChannelLayerNorm(torch.nn.Module):
    def __init__(self, channels, bias=True):
        super().__init__()
        self.norm = torch.nn.LayerNorm(channels, eps=1e-5, bias=bias)
        with torch.no_grad():  # non-trivial affine parameters
            self.norm.weight.uniform_(0.5, 1.5)
            if bias:
                self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _export(module, opset):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(1, 16, 5, 6),), f, opset_version=opset, dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})
    return onnx.load_from_string(f.getvalue())


def _run(model, x):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("opset", [17, 18, 20])
def test_agrees_with_torch(opset, bias):
    module = _ChannelLayerNorm(16, bias).eval()
    model = _export(module, opset)
    assert "LayerNormalization" in [n.op_type for n in model.graph.node]
    rewritten = decompose_layer_norm(model)
    assert "LayerNormalization" not in [n.op_type for n in rewritten.graph.node]
    onnx.checker.check_model(rewritten, full_check=True)
    for shape in [(1, 16, 5, 6), (2, 16, 7, 3)]:
        x = torch.randn(*shape) * 3 + 1
        np.testing.assert_allclose(_run(rewritten, x.numpy()), module(x).detach().numpy(), rtol=0, atol=1e-5)


def _layer_norm_model(axis, x_type, stash_type, outputs=("y",)):
    node = onnx.helper.make_node("LayerNormalization", ["x", "scale", "bias"], list(outputs),
                                 axis=axis, epsilon=1e-3, stash_type=stash_type)
    shape = [2, 3, 4, 5]
    stat_shape = shape[:axis] + [1] * len(shape[axis:])
    np_type = onnx.helper.tensor_dtype_to_np_dtype(x_type)
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(rng.uniform(0.5, 1.5, shape[axis:]).astype(np_type), "scale"),
             onnx.numpy_helper.from_array(rng.uniform(-1, 1, shape[axis:]).astype(np_type), "bias")]
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", x_type, shape)],
                                   [onnx.helper.make_tensor_value_info("y", x_type, shape)]
                                   + [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, stat_shape) for o in outputs[1:]],
                                   initializer=inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


@pytest.mark.parametrize("axis", [1, -2, -1])
def test_axis_epsilon_and_optional_outputs_match_ort(axis):
    model = _layer_norm_model(axis, onnx.TensorProto.FLOAT, 1, outputs=("y", "mean", "inv_std"))
    rewritten = decompose_layer_norm(model)
    onnx.checker.check_model(rewritten, full_check=True)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    want = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = ort.InferenceSession(rewritten.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_float16_input_is_computed_in_float32():
    model = _layer_norm_model(-1, onnx.TensorProto.FLOAT16, 1)
    rewritten = decompose_layer_norm(model)
    casts = [n for n in rewritten.graph.node if n.op_type == "Cast"]
    assert [onnx.helper.get_attribute_value(c.attribute[0]) for c in casts] == [onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16]
    onnx.checker.check_model(rewritten, full_check=True)
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float16)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    want = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ort.InferenceSession(rewritten.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=0, atol=2e-3)
