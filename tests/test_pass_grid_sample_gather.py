"""grid_sample_to_gather: ONNX's own GridSample conformance cases, and agreement with torch."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from dattn.exporting.passes.grid_sample_gather import grid_sample_to_gather


def _conformance_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        return [c for c in collect_testcases("GridSample")]


CASES = _conformance_cases()


def _attrs(case):
    node = case.model.graph.node[0]
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _supported(case):
    a = _attrs(case)
    return a.get("mode", b"linear") in (b"linear", b"bilinear") and a.get("padding_mode", b"zeros") == b"zeros"


SUPPORTED = [c for c in CASES if _supported(c)]
UNSUPPORTED = [c for c in CASES if not _supported(c)]


def _restamp(model, opset):
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            imp.version = opset
    return model


def _run(model, feeds):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_conformance_cases_found():
    # 6 bilinear/linear 4-D cases and 2 trilinear 5-D cases with zeros padding in onnx 1.23
    assert len(SUPPORTED) >= 8, [c.name for c in CASES]


@pytest.mark.parametrize("opset", [None, 11, 13, 16, 18])
@pytest.mark.parametrize("case", SUPPORTED, ids=lambda c: c.name)
def test_onnx_conformance(case, opset):
    model = case.model if opset is None else _restamp(case.model, opset)
    rewritten = grid_sample_to_gather(model)
    assert not [n for n in rewritten.graph.node if n.op_type == "GridSample"]
    onnx.checker.check_model(rewritten, full_check=True)
    for inputs, outputs in case.data_sets:
        feeds = {i.name: v for i, v in zip(rewritten.graph.input, inputs)}
        np.testing.assert_allclose(_run(rewritten, feeds)[0], outputs[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", UNSUPPORTED, ids=lambda c: c.name)
def test_refuses_other_modes_and_paddings(case):
    with pytest.raises(ValueError, match="only bilinear/linear with zeros padding"):
        grid_sample_to_gather(case.model)


def test_input_model_untouched():
    case = SUPPORTED[0]
    before = case.model.SerializeToString()
    grid_sample_to_gather(case.model)
    assert case.model.SerializeToString() == before


class _Sample(torch.nn.Module):
    def __init__(self, align_corners):
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x, grid):
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=self.align_corners)


def _export(module, args, opset):
    """Export with dynamic axes. Below 16 torch cannot export grid_sampler: export at 16 and
    re-stamp, which gives the default-domain GridSample placeholder the lead's exporter writes."""
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, f, opset_version=max(opset, 16), dynamo=False,
            input_names=["x", "grid"], output_names=["y"],
            dynamic_axes={"x": {0: "n", 1: "c", 2: "h", 3: "w"}, "grid": {0: "n", 1: "ho", 2: "wo"}, "y": {0: "n"}},
        )
    model = onnx.load_from_string(f.getvalue())
    return model if opset >= 16 else _restamp(model, opset)


def _grid(n, ho, wo, seed):
    g = torch.empty(n, ho, wo, 2).uniform_(-1.3, 1.3, generator=torch.Generator().manual_seed(seed))
    flat = g.view(-1)
    special = [1.0, -1.0, 1.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 0.0]
    flat[: len(special)] = torch.tensor(special)
    flat[-4:] = torch.tensor([1.0, 1.0, -1.0, -1.0])  # a sample exactly on each corner pair
    return g


@pytest.mark.parametrize("opset", [11, 13, 16, 17, 20, 21])
@pytest.mark.parametrize("align_corners", [False, True])
def test_agrees_with_torch(opset, align_corners):
    module = _Sample(align_corners).eval()
    model = grid_sample_to_gather(_export(module, (torch.randn(1, 3, 5, 6), _grid(1, 4, 3, 0)), opset))
    assert not [n for n in model.graph.node if n.op_type == "GridSample"]
    onnx.checker.check_model(model, full_check=True)
    for seed, (n, c, h, w, ho, wo) in enumerate([(2, 8, 7, 9, 5, 4), (1, 64, 20, 20, 20, 20)]):
        x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
        grid = _grid(n, ho, wo, seed)
        expected = module(x, grid).numpy()
        got = _run(model, {"x": x.numpy(), "grid": grid.numpy()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, equal_nan=True)
        assert np.isnan(expected).any()  # the NaN/inf samples were exercised


def test_no_float64_and_valid_dtypes():
    model = grid_sample_to_gather(_export(_Sample(False), (torch.randn(1, 3, 5, 6), _grid(1, 4, 3, 0)), 17))
    inferred = onnx.shape_inference.infer_shapes(model)
    doubles = [v.name for v in inferred.graph.value_info if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE]
    doubles += [i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.DOUBLE]
    assert doubles == []


@pytest.mark.parametrize("align_corners", [False, True])
def test_float16_graph_at_batch_2_agrees_with_torch(align_corners):
    # Batch 2 of a 40x40 map has 3200 rows: past 2048, float16 can no longer count them one by one.
    n, c, h, w = 2, 8, 40, 40
    node = onnx.helper.make_node("GridSample", ["x", "grid"], ["y"], name="sample", align_corners=int(align_corners))
    graph = onnx.helper.make_graph(
        [node], "float16_sampling",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, [n, c, h, w]),
         onnx.helper.make_tensor_value_info("grid", onnx.TensorProto.FLOAT16, [n, 12, 12, 2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, [n, c, 12, 12])])
    model = grid_sample_to_gather(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 16)]))
    onnx.checker.check_model(model, full_check=True)
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(n, c, h, w, generator=generator).half()
    grid = (torch.rand(n, 12, 12, 2, generator=generator) * 2 - 1).half()
    expected = F.grid_sample(x.float(), grid.float(), mode="bilinear", align_corners=align_corners).numpy()
    got = _run(model, {"x": x.numpy(), "grid": grid.numpy()})[0].astype(np.float32)
    # float16 arithmetic rounds the bilinear weights (coordinates near pixel 40 to 1/32); a wrong pixel is off by ~1.
    np.testing.assert_allclose(got, expected, rtol=0, atol=0.06)
