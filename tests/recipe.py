"""The seed recipe's DAttention arithmetic, written here from its formulas, and recipe-style checkpoints.

The project cannot import the recipe's pasted code, so this module re-derives what the recipe computes (linspace reference
grid normalised in place by H - 1, einsum attention, offset range as a tensor of 1 / (size - 1)) as a
function of a module's parameters, and gives classes that pickle under the recipe's module path.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

RECIPE_MODULE = "ultralytics.nn.modules.conv"  # where the recipe tells users to paste the classes


def _recipe_grid(ys, xs):
    """(H, W, 2) grid of (y, x), normalised in place by (size - 1) as the recipe does."""
    H, W = len(ys), len(xs)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1)
    grid[..., 1].div_(W - 1.0).mul_(2.0).sub_(1.0)
    grid[..., 0].div_(H - 1.0).mul_(2.0).sub_(1.0)
    return grid


def recipe_forward(m, x):
    """What the recipe's DAttention.forward computes for module `m` (a dattn or recipe-class instance)."""
    B, C, H, W = x.shape
    g, heads, hc = m.n_groups, m.n_heads, m.n_head_channels
    q = m.proj_q(x)
    offset = m.conv_offset(q.reshape(B * g, m.n_group_channels, H, W))
    Hk, Wk = offset.shape[2:]
    n_sample = Hk * Wk
    if m.offset_range_factor >= 0 and not m.no_off:
        offset_range = torch.tensor([1.0 / (Hk - 1.0), 1.0 / (Wk - 1.0)]).reshape(1, 2, 1, 1)
        offset = offset.tanh().mul(offset_range).mul(m.offset_range_factor)
    offset = offset.permute(0, 2, 3, 1)
    kw = dict(dtype=x.dtype, device=x.device)
    reference = _recipe_grid(torch.linspace(0.5, Hk - 0.5, Hk, **kw), torch.linspace(0.5, Wk - 0.5, Wk, **kw))[None].expand(B * g, -1, -1, -1)
    if m.no_off:
        offset = offset.fill_(0.0)
    pos = offset + reference if m.offset_range_factor >= 0 else (offset + reference).clamp(-1.0, 1.0)
    if m.no_off:
        sampled = F.avg_pool2d(x, kernel_size=m.stride, stride=m.stride)
    else:
        sampled = F.grid_sample(x.reshape(B * g, m.n_group_channels, H, W), pos[..., (1, 0)], mode="bilinear", align_corners=True)
    sampled = sampled.reshape(B, C, 1, n_sample)
    q = q.reshape(B * heads, hc, H * W)
    k = m.proj_k(sampled).reshape(B * heads, hc, n_sample)
    v = m.proj_v(sampled).reshape(B * heads, hc, n_sample)
    attn = torch.einsum("bcm,bcn->bmn", q, k).mul(m.scale)
    lepe = None
    if m.use_pe and not m.no_off:
        if m.dwc_pe:
            lepe = m.rpe_table(q.reshape(B, C, H, W)).reshape(B * heads, hc, H * W)
        elif m.fixed_pe:
            attn = attn + m.rpe_table[None].expand(B, -1, -1, -1).reshape(B * heads, H * W, n_sample)
        else:
            q_grid = _recipe_grid(torch.arange(0, H, **kw), torch.arange(0, W, **kw))[None].expand(B * g, -1, -1, -1)
            disp = q_grid.reshape(B * g, H * W, 2).unsqueeze(2) - pos.reshape(B * g, n_sample, 2).unsqueeze(1)
            if m.log_cpb:
                disp = disp.mul(4.0)
                disp = torch.sign(disp) * torch.log2(torch.abs(disp) + 1.0) / math.log2(8.0)
                bias = m.rpe_table(disp)  # (B*g, HW, n, heads per group)
                attn = attn + bias.permute(0, 3, 1, 2).reshape(B * heads, H * W, n_sample)
            else:
                table = m.rpe_table[None].expand(B, -1, -1, -1).reshape(B * g, heads // g, *m.rpe_table.shape[1:])
                bias = F.grid_sample(table, disp.mul(0.5)[..., (1, 0)], mode="bilinear", align_corners=True)
                attn = attn + bias.reshape(B * heads, H * W, n_sample)
    attn = F.softmax(attn, dim=2)
    out = torch.einsum("bmn,bcn->bcm", attn, v)
    if m.use_pe and m.dwc_pe:
        out = out + lepe
    return m.proj_out(out.reshape(B, C, H, W))


class RecipeLayerNormProxy(nn.Module):
    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class RecipeDAttention(nn.Module):
    forward = recipe_forward


for _cls, _name in ((RecipeDAttention, "DAttention"), (RecipeLayerNormProxy, "LayerNormProxy")):
    _cls.__module__, _cls.__qualname__, _cls.__name__ = RECIPE_MODULE, _name, _name


def as_recipe_objects(model: nn.Module) -> nn.Module:
    """Turn dattn's blocks inside `model` into recipe-class objects (same attributes, recipe forward), in place."""
    from dattn.nn import DAttention, LayerNormProxy

    for module in model.modules():
        if type(module) is DAttention:
            module.__class__ = RecipeDAttention
        elif type(module) is LayerNormProxy:
            module.__class__ = RecipeLayerNormProxy
    return model


@contextlib.contextmanager
def recipe_classes_pasted():
    """While active, the recipe classes live in ultralytics' conv module, as after following the recipe."""
    import importlib

    conv = importlib.import_module(RECIPE_MODULE)
    conv.DAttention, conv.LayerNormProxy = RecipeDAttention, RecipeLayerNormProxy
    try:
        yield
    finally:
        del conv.DAttention, conv.LayerNormProxy
