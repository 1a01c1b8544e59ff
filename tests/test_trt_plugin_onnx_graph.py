"""The plugin graph without TensorRT: torch GridSample exported to ONNX, rewritten to DAttnGridSample
nodes by grid_sample_to_plugin, and run in ONNX Runtime with the numpy reference op, agrees with torch."""

import io

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from dattn.exporting.passes.grid_sample_plugin import grid_sample_to_plugin
from dattn.plugin.contract import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
from dattn.plugin.ort_reference import grid_sample_bilinear_reference, plugin_session

pytest.importorskip("onnxruntime_extensions", reason="the reference op runs through onnxruntime-extensions")
TOLERANCE = 1e-5
# End to end, ORT's and torch's tanh differ by an ulp, which the sampling scales by the map size.
GRAPH_TOLERANCE = 5e-5


class TwoSamplers(torch.nn.Module):
    """Offsets -> a grid slightly beyond [-1, 1], sampled once with each align_corners."""

    def forward(self, x, offsets):
        grid = torch.tanh(offsets.permute(0, 2, 3, 1)) * 1.1
        corners = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        centres = F.grid_sample(x, grid * 0.9, mode="bilinear", padding_mode="zeros", align_corners=False)
        return corners + 2 * centres


def export(module, opset=17, **grid_sample_kwargs) -> onnx.ModelProto:
    x, offsets = torch.randn(1, 8, 10, 12), torch.randn(1, 2, 6, 7)
    buffer = io.BytesIO()
    torch.onnx.export(module, (x, offsets), buffer, dynamo=False, opset_version=opset,
                      input_names=["x", "offsets"], output_names=["y"],
                      dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "offsets": {0: "n", 2: "ho", 3: "wo"},
                                    "y": {0: "n", 2: "ho", 3: "wo"}})
    return onnx.load_from_string(buffer.getvalue())


@pytest.fixture(scope="module")
def exported():
    return export(TwoSamplers().eval())


def plugin_nodes(model):
    return [node for node in model.graph.node if node.op_type == OP_TYPE]


def test_pass_writes_the_contract_node(exported):
    before = exported.SerializeToString()
    rewritten = grid_sample_to_plugin(exported)
    assert exported.SerializeToString() == before, "the pass must not mutate its input"
    assert not [node for node in rewritten.graph.node if node.op_type == "GridSample"]
    nodes = plugin_nodes(rewritten)
    assert len(nodes) == 2
    attributes = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} for node in nodes]
    assert sorted(a["align_corners"] for a in attributes) == [0, 1]
    for node, attrs in zip(nodes, attributes):
        assert node.domain == DOMAIN and len(node.input) == 2 and len(node.output) == 1
        assert attrs["plugin_version"] == PLUGIN_VERSION.encode()
        assert attrs["plugin_namespace"] == PLUGIN_NAMESPACE.encode()
    assert {imp.domain: imp.version for imp in rewritten.opset_import}[DOMAIN] == 1
    onnx.checker.check_model(rewritten)


@pytest.mark.parametrize("shape", [(1, 8, 10, 12, 6, 7), (3, 8, 17, 9, 11, 5), (2, 8, 20, 20, 20, 20)])
def test_plugin_graph_in_onnxruntime_matches_torch(exported, shape):
    n, c, h, w, ho, wo = shape
    generator = torch.Generator().manual_seed(sum(shape))
    x, offsets = torch.randn(n, c, h, w, generator=generator), torch.randn(n, 2, ho, wo, generator=generator)
    session = plugin_session(grid_sample_to_plugin(exported))
    (ours,) = session.run(None, {"x": x.numpy(), "offsets": offsets.numpy()})
    with torch.no_grad():
        expected = TwoSamplers()(x, offsets).numpy()
    difference = np.abs(ours - expected).max()
    print(f"{shape}: max |onnxruntime plugin graph - torch| = {difference:.3g}")
    assert ours.shape == expected.shape and difference <= GRAPH_TOLERANCE


@pytest.mark.parametrize("align_corners", [False, True])
def test_reference_matches_torch_on_adversarial_grids(align_corners):
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(1))
    values = torch.tensor([-1.0, 1.0, -1.25, 1.25, -1.5, 1.5, 0.0, 0.3, -3.0, 3.0, 1e10, -1e10])
    gx, gy = torch.meshgrid(values, values, indexing="xy")
    grid = torch.stack([gx, gy], dim=-1)[None].repeat(2, 1, 1, 1)
    ours = grid_sample_bilinear_reference(x.numpy(), grid.numpy(), align_corners)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners).numpy()
    assert np.abs(ours - expected).max() <= TOLERANCE
    # Non-finite coordinates sample 0, like torch's CUDA kernel and the plugin.
    grid[0, 0, 0, 0], grid[1, 2, 3, 1] = float("nan"), float("inf")
    ours = grid_sample_bilinear_reference(x.numpy(), grid.numpy(), align_corners)
    assert np.all(ours[0, :, 0, 0] == 0) and np.all(ours[1, :, 2, 3] == 0)


class OneSampler(torch.nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x, offsets):
        return F.grid_sample(x, offsets.permute(0, 2, 3, 1), **self.kwargs)


@pytest.mark.parametrize("kwargs,complaint", [
    ({"mode": "nearest", "padding_mode": "zeros", "align_corners": False}, "mode='nearest'"),
    ({"mode": "bilinear", "padding_mode": "border", "align_corners": False}, "padding_mode='border'"),
])
def test_pass_refuses_what_the_plugin_cannot_do(kwargs, complaint):
    model = export(OneSampler(**kwargs).eval())
    with pytest.raises(ValueError, match=complaint):
        grid_sample_to_plugin(model)


def test_pass_is_idempotent():
    model = export(OneSampler(mode="bilinear", padding_mode="zeros", align_corners=False).eval())
    rewritten = grid_sample_to_plugin(grid_sample_to_plugin(model))
    assert len(plugin_nodes(rewritten)) == 1
    assert [imp.domain for imp in rewritten.opset_import].count(DOMAIN) == 1


def test_pass_takes_opset_20_linear_mode():
    model = export(TwoSamplers().eval(), opset=20)
    assert {a.s for n in model.graph.node if n.op_type == "GridSample" for a in n.attribute if a.name == "mode"} == {b"linear"}
    assert len(plugin_nodes(grid_sample_to_plugin(model))) == 2
