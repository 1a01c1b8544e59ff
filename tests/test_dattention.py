"""dattn.nn.DAttention against the recipe's arithmetic, its attributes, and tracing."""

import itertools

import pytest
import torch

from dattn.nn import DAttention
from recipe import recipe_forward

# Attribute names the recipe's class sets in __init__; unpickled recipe objects carry exactly these.
RECIPE_ATTRIBUTES = {
    "dwc_pe", "n_head_channels", "scale", "n_heads", "q_h", "q_w", "kv_h", "kv_w", "nc", "n_groups",
    "n_group_channels", "n_group_heads", "use_pe", "fixed_pe", "no_off", "offset_range_factor", "ksize",
    "log_cpb", "stride",
}
POSITION_ENCODINGS = {
    "dwc_pe": {},
    "fixed_pe": {"dwc_pe": False, "fixed_pe": True},
    "log_cpb": {"dwc_pe": False, "log_cpb": True},
    "rpe_table": {"dwc_pe": False},
    "no_pe": {"use_pe": False},
}
OFFSETS = {"no_off": {"no_off": True}, "range=-1": {"offset_range_factor": -1}, "range=0": {"offset_range_factor": 0}, "range=2": {"offset_range_factor": 2}}


def _option_grid():
    for (pe, pe_kw), (off, off_kw), stride, groups in itertools.product(POSITION_ENCODINGS.items(), OFFSETS.items(), (1, 2), (1, 2, 4)):
        if off == "no_off" and pe == "dwc_pe":
            continue  # the recipe's forward fails there (its depth-wise lepe is never computed)
        if pe == "fixed_pe" and stride == 2:
            continue  # the recipe's fixed table is sized (C*C, C*C/stride^2) and fits only stride 1 at H*W = C*C
        yield pytest.param({**pe_kw, **off_kw, "stride": stride, "n_groups": groups}, id=f"{pe}-{off}-s{stride}-g{groups}")


def _perturbed(module, seed=0):
    """Weights away from their init, so offsets and tables matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return module.eval()


@pytest.mark.parametrize("options", list(_option_grid()))
def test_same_outputs_as_recipe_arithmetic(options):
    channels, size = (16, 16) if options.get("fixed_pe") else (32, 12)
    block = _perturbed(DAttention(channels, [20, 20], **options))
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, recipe = block(x), recipe_forward(block, x)
    assert ours.shape == x.shape
    assert (ours - recipe).abs().max().item() <= 1e-6


def test_recipe_attribute_names_and_state_dict_keys():
    block = DAttention(64, [20, 20])
    assert RECIPE_ATTRIBUTES <= vars(block).keys()
    assert list(block.state_dict()) == [
        "conv_offset.0.weight", "conv_offset.0.bias", "conv_offset.1.norm.weight", "conv_offset.1.norm.bias",
        "conv_offset.3.weight", "proj_q.weight", "proj_q.bias", "proj_k.weight", "proj_k.bias", "proj_v.weight",
        "proj_v.bias", "proj_out.weight", "proj_out.bias", "rpe_table.weight", "rpe_table.bias",
    ]


def test_yaml_call_form_gives_eight_heads():
    block = DAttention(256, [20, 20])
    assert (block.n_heads, block.n_head_channels, block.nc) == (8, 32, 256)


@pytest.mark.parametrize("channels", [250, 12])
def test_channels_that_do_not_split_into_heads_are_refused(channels):
    with pytest.raises(ValueError, match=f"{channels} input channels do not split into 8 heads"):
        DAttention(channels)


def test_aligned_reference_grid_is_an_explicit_option():
    recipe, aligned = DAttention(32), DAttention(32, ref_grid="aligned")
    aligned.load_state_dict(recipe.state_dict())
    x = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(recipe.eval()(x), aligned.eval()(x))
    with pytest.raises(ValueError, match="ref_grid"):
        DAttention(32, ref_grid="centred")


@pytest.mark.parametrize("options", [{}, {"offset_range_factor": 2}, {"dwc_pe": False}, {"dwc_pe": False, "log_cpb": True}, {"n_groups": 2, "stride": 2}])
def test_trace_is_free_of_float64_and_inplace_ops_and_stays_dynamic(options):
    block = _perturbed(DAttention(32, **options))
    traced = torch.jit.trace(block, torch.randn(1, 32, 12, 12), check_trace=False)
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert not {k for k in kinds if k.endswith("_") and k.startswith("aten::")}, "in-place op recorded"
    assert "aten::linspace" not in kinds
    x = torch.randn(3, 32, 16, 20)
    with torch.no_grad():
        assert (traced(x) - block(x)).abs().max().item() <= 1e-6


def test_onnx_export_of_the_block_has_no_float64(tmp_path):
    onnx = pytest.importorskip("onnx")
    from dattn.exporting.passes.dtype_check import find_float64

    block = _perturbed(DAttention(32))
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, (torch.randn(1, 32, 12, 12),), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}})
    assert find_float64(onnx.load(str(path))) == []
