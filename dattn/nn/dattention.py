"""Deformable attention (DAttention, Xia et al., CVPR 2022) as used by the widely copied YOLO recipe.

Same constructor, attribute names, state-dict keys and outputs as the recipe's class, so that objects
unpickled from recipe checkpoints run with this `forward`. Unlike the recipe, the forward pass is
export-safe: no in-place ops on traced tensors, no float64, no `torch.tensor` built from traced shapes,
and plain matmuls instead of einsum.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

REF_GRIDS = ("recipe", "aligned")


class LayerNormProxy(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    # The recipe uses timm's trunc_normal_ with its default cut-off at +-2 (absolute, not in std units).
    return nn.init.trunc_normal_(tensor, std=std, a=-2.0, b=2.0)


def _normalized_centres(size, dtype, device, offset: float, denominator):
    """Coordinates (i + offset) / denominator * 2 - 1 for i in [0, size), built from arange in `dtype`."""
    return (torch.arange(size, dtype=dtype, device=device) + offset) / denominator * 2.0 - 1.0


class DAttention(nn.Module):
    """Deformable multi-head attention over an NCHW feature map; output has the input's shape.

    Args:
        q_size: the channel count C of the input (the recipe's yaml passes it first). C is split into
            `n_heads` heads of C / n_heads channels.
        kv_size: ignored, kept for the recipe's call form `DAttention(C, [20, 20])`.
        ref_grid: "recipe" (default) keeps the recipe's reference points (i + 0.5) / (H - 1) * 2 - 1,
            which sit half a pixel off the align_corners=True pixel centres; trained weights depend on
            them. "aligned" uses i / (H - 1) * 2 - 1, for new models only.
        The other arguments are those of the DAT paper's block.
    """

    ref_grid = "recipe"  # class default, so objects unpickled from recipe checkpoints use the recipe grid

    def __init__(
        self,
        q_size=256,
        kv_size=None,
        n_heads=8,
        n_head_channels=None,
        n_groups=1,
        attn_drop=0.0,
        proj_drop=0.0,
        stride=1,
        offset_range_factor=-1,
        use_pe=True,
        dwc_pe=True,
        no_off=False,
        fixed_pe=False,
        ksize=9,
        log_cpb=False,
        ref_grid="recipe",
    ):
        super().__init__()
        if isinstance(q_size, bool) or not isinstance(q_size, int):
            raise TypeError(f"DAttention: q_size must be the input channel count (an int), got {q_size!r}")
        if q_size % n_heads:
            raise ValueError(f"DAttention: {q_size} input channels do not split into {n_heads} heads")
        if n_heads % n_groups:
            raise ValueError(f"DAttention: {n_heads} heads do not split into {n_groups} offset groups")
        if ref_grid not in REF_GRIDS:
            raise ValueError(f"DAttention: ref_grid must be one of {REF_GRIDS}, got {ref_grid!r}")
        n_head_channels = q_size // n_heads  # the recipe derives it from C and ignores the argument
        self.dwc_pe = dwc_pe
        self.n_head_channels = n_head_channels
        self.scale = n_head_channels**-0.5
        self.n_heads = n_heads
        self.q_h, self.q_w = q_size, q_size  # the recipe's (C, C); only the table sizes below read them
        self.kv_h, self.kv_w = self.q_h // stride, self.q_w // stride
        self.nc = n_head_channels * n_heads
        self.n_groups = n_groups
        self.n_group_channels = self.nc // n_groups
        self.n_group_heads = n_heads // n_groups
        self.use_pe = use_pe
        self.fixed_pe = fixed_pe
        self.no_off = no_off
        self.offset_range_factor = offset_range_factor
        self.ksize = ksize
        self.log_cpb = log_cpb
        self.stride = stride
        if ref_grid != "recipe":
            self.ref_grid = ref_grid

        pad = ksize // 2 if ksize != stride else 0
        self.conv_offset = nn.Sequential(
            nn.Conv2d(self.n_group_channels, self.n_group_channels, ksize, stride, pad, groups=self.n_group_channels),
            LayerNormProxy(self.n_group_channels),
            nn.GELU(),
            nn.Conv2d(self.n_group_channels, 2, 1, 1, 0, bias=False),
        )
        if no_off:
            self.conv_offset.requires_grad_(False)
        self.proj_q = nn.Conv2d(self.nc, self.nc, kernel_size=1)
        self.proj_k = nn.Conv2d(self.nc, self.nc, kernel_size=1)
        self.proj_v = nn.Conv2d(self.nc, self.nc, kernel_size=1)
        self.proj_out = nn.Conv2d(self.nc, self.nc, kernel_size=1)
        self.proj_drop = nn.Dropout(proj_drop)
        self.attn_drop = nn.Dropout(attn_drop)
        self.rpe_table = self._make_position_table() if use_pe and not no_off else None

    def _make_position_table(self):
        if self.dwc_pe:
            return nn.Conv2d(self.nc, self.nc, kernel_size=3, stride=1, padding=1, groups=self.nc)
        if self.fixed_pe:
            table = torch.zeros(self.n_heads, self.q_h * self.q_w, self.kv_h * self.kv_w)
        elif self.log_cpb:
            return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, self.n_group_heads, bias=False))
        else:
            table = torch.zeros(self.n_heads, self.q_h * 2 - 1, self.q_w * 2 - 1)
        return nn.Parameter(_trunc_normal_(table, std=0.01))

    def _reference_points(self, Hk, Wk, dtype, device):
        """(1, Hk, Wk, 2) sampling centres in (y, x) order, normalised to [-1, 1]."""
        if self.ref_grid == "recipe":  # linspace(0.5, H - 0.5, H) / (H - 1) * 2 - 1, computed without linspace
            ys = _normalized_centres(Hk, dtype, device, 0.5, Hk - 1.0)
            xs = _normalized_centres(Wk, dtype, device, 0.5, Wk - 1.0)
        else:
            ys = _normalized_centres(Hk, dtype, device, 0.0, Hk - 1.0)
            xs = _normalized_centres(Wk, dtype, device, 0.0, Wk - 1.0)
        return _yx_grid(ys, xs)

    @staticmethod
    def _query_grid(H, W, dtype, device):
        """(1, H, W, 2) query pixel positions in (y, x) order, normalised to [-1, 1]."""
        return _yx_grid(_normalized_centres(H, dtype, device, 0.0, H - 1.0), _normalized_centres(W, dtype, device, 0.0, W - 1.0))

    def _offsets(self, q, B):
        """Learned offsets (B*g, Hk, Wk, 2) in (y, x) order, bounded as the options say."""
        q_off = q.reshape(B * self.n_groups, self.n_group_channels, q.shape[2], q.shape[3])
        offset = self.conv_offset(q_off)
        Hk, Wk = offset.shape[2], offset.shape[3]
        if self.no_off:
            offset = torch.zeros_like(offset)
        elif self.offset_range_factor >= 0:
            off = offset.tanh()  # per-axis range 1 / (size - 1), scaled by the factor
            offset = torch.cat((off[:, :1] * (1.0 / (Hk - 1.0)), off[:, 1:] * (1.0 / (Wk - 1.0))), dim=1)
            offset = offset * self.offset_range_factor
        return offset.permute(0, 2, 3, 1), Hk, Wk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        dtype, device = x.dtype, x.device
        q = self.proj_q(x)
        offset, Hk, Wk = self._offsets(q, B)
        reference = self._reference_points(Hk, Wk, dtype, device)
        pos = offset + reference
        if self.offset_range_factor < 0:
            pos = pos.clamp(-1.0, 1.0)

        if self.no_off:
            x_sampled = F.avg_pool2d(x, kernel_size=self.stride, stride=self.stride)
        else:
            x_sampled = F.grid_sample(
                x.reshape(B * self.n_groups, self.n_group_channels, H, W),
                pos.flip(-1),  # (y, x) -> (x, y)
                mode="bilinear",
                align_corners=True,
            )
        n_sample = Hk * Wk
        x_sampled = x_sampled.reshape(B, C, 1, n_sample)

        heads = B * self.n_heads
        q = q.reshape(heads, self.n_head_channels, H * W)
        k = self.proj_k(x_sampled).reshape(heads, self.n_head_channels, n_sample)
        v = self.proj_v(x_sampled).reshape(heads, self.n_head_channels, n_sample)
        attn = torch.matmul(q.transpose(1, 2), k) * self.scale  # (heads, HW, n_sample)

        residual_lepe = None
        if self.rpe_table is not None:
            if self.dwc_pe:
                residual_lepe = self.rpe_table(q.reshape(B, C, H, W)).reshape(heads, self.n_head_channels, H * W)
            elif self.fixed_pe:
                attn = attn + self.rpe_table.expand(B, -1, -1, -1).reshape(heads, H * W, n_sample)
            else:
                attn = attn + self._relative_bias(pos, B, H, W, n_sample)

        attn = self.attn_drop(F.softmax(attn, dim=2))
        out = torch.matmul(v, attn.transpose(1, 2))  # (heads, c, HW)
        if residual_lepe is not None:
            out = out + residual_lepe
        return self.proj_drop(self.proj_out(out.reshape(B, C, H, W)))

    def _relative_bias(self, pos, B, H, W, n_sample):
        """Attention bias (B*heads, HW, n_sample) from query-to-sample displacements."""
        groups = B * self.n_groups
        q_grid = self._query_grid(H, W, pos.dtype, pos.device).reshape(1, H * W, 1, 2)
        displacement = q_grid - pos.reshape(groups, 1, n_sample, 2)
        if self.log_cpb:
            displacement = displacement * 4.0
            displacement = torch.sign(displacement) * torch.log2(displacement.abs() + 1.0) / 3.0  # log2(8) = 3
            bias = self.rpe_table(displacement)  # (B*g, HW, n_sample, heads per group)
            return bias.permute(0, 3, 1, 2).reshape(B * self.n_heads, H * W, n_sample)
        table = self.rpe_table.expand(B, -1, -1, -1).reshape(groups, self.n_group_heads, *self.rpe_table.shape[1:])
        bias = F.grid_sample(table, (displacement * 0.5).flip(-1), mode="bilinear", align_corners=True)
        return bias.reshape(B * self.n_heads, H * W, n_sample)


def _yx_grid(ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_y, grid_x), dim=-1).unsqueeze(0)
