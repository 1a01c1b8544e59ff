"""decompose_einsum: torch.einsum modules exported at several opsets, rewritten, run in ORT."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from dattn.exporting.passes.einsum import decompose_einsum, parse_equation


class _Einsum(torch.nn.Module):
    def __init__(self, equation):
        super().__init__()
        self.equation = equation

    def forward(self, *xs):
        return torch.einsum(self.equation, *xs)


def _export(equation, shapes, opset, dynamic=None):
    args = tuple(torch.randn(*s) for s in shapes)
    names = [f"in{i}" for i in range(len(shapes))]
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Einsum(equation), args, f, opset_version=opset, dynamo=False,
                          input_names=names, output_names=["out"], dynamic_axes=dynamic)
    model = onnx.load_from_string(f.getvalue())
    assert [n.op_type for n in model.graph.node].count("Einsum") == 1
    return model


def _check(model, equation, shape_sets):
    rewritten = decompose_einsum(model)
    assert not [n for n in rewritten.graph.node if n.op_type == "Einsum"]
    onnx.checker.check_model(rewritten, full_check=True)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(rewritten.SerializeToString(), so, providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, shapes in enumerate(shape_sets):
        g = torch.Generator().manual_seed(seed)
        xs = [torch.randn(*s, generator=g) for s in shapes]
        expected = torch.einsum(equation, *xs).numpy()
        got = sess.run(None, {f"in{i}": x.numpy() for i, x in enumerate(xs)})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


OPSETS = [12, 13, 17, 18, 21]
# (equation, input shapes): DAttention's two, then other batch-matmul family members
EQUATIONS = [
    ("b c m, b c n -> b m n", [(2, 8, 6), (2, 8, 5)]),
    ("b m n, b c n -> b c m", [(2, 6, 5), (2, 8, 5)]),
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bij,bjk->bki", [(2, 3, 4), (2, 4, 5)]),
    ("abcd,cdbe->eab", [(2, 3, 4, 5), (4, 5, 3, 6)]),  # multi-label contracted group: Reshape path
    ("bi,bj->bij", [(3, 4), (3, 5)]),  # outer product, no contracted label
    ("bc,bc->b", [(3, 4), (3, 4)]),  # per-batch dot product
    ("ij,k->ik", [(3, 4), (5,)]),  # j summed in one operand only: ReduceSum
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (3, 5, 6)]),  # ellipsis with broadcasting
    ("ij->ji", [(3, 4)]),
    ("bij->bj", [(2, 3, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]),  # implicit output
]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("equation,shapes", EQUATIONS, ids=[e for e, _ in EQUATIONS])
def test_static(equation, shapes, opset):
    _check(_export(equation, shapes, opset), equation, [shapes])


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("equation,sizes", [
    ("b c m, b c n -> b m n", [((1, 4, 6), (1, 4, 5)), ((3, 16, 9), (3, 16, 7))]),
    ("b m n, b c n -> b c m", [((1, 6, 5), (1, 4, 5)), ((3, 9, 7), (3, 16, 7))]),
    ("abcd,cdbe->eab", [((2, 3, 4, 5), (4, 5, 3, 6)), ((1, 2, 3, 2), (3, 2, 2, 4))]),
])
def test_dynamic_axes(equation, sizes, opset):
    shapes = sizes[0]
    dynamic = {f"in{i}": {d: f"d{i}_{d}" for d in range(len(s))} for i, s in enumerate(shapes)}
    dynamic["out"] = {0: "o0"}
    _check(_export(equation, shapes, opset, dynamic), equation, sizes)


def test_input_model_untouched():
    model = _export("ij,jk->ik", [(3, 4), (4, 5)], 13)
    before = model.SerializeToString()
    decompose_einsum(model)
    assert model.SerializeToString() == before


@pytest.mark.parametrize("equation,ranks", [
    ("ii->i", [2]),
    ("ij,jk,kl->il", [2, 2, 2]),
    ("...ij,jk->...ik", [None, 2]),
    ("ij,jk->iz", [2, 2]),
])
def test_refuses_unsupported(equation, ranks):
    with pytest.raises(ValueError, match=equation.replace(".", r"\.")):
        if len(ranks) > 2:  # parses fine; the rewrite refuses
            node = onnx.helper.make_node("Einsum", ["a", "b", "c"], ["y"], equation=equation)
            graph = onnx.helper.make_graph([node], "g", [
                onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2, 2]) for n in "abc"
            ], [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
            decompose_einsum(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)]))
        else:
            parse_equation(equation, ranks)
