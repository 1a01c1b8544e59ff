"""The plugin's CUDA kernel, run through a torch extension, agrees with torch's CUDA grid_sample."""

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")

SHAPES = [  # (N, C, H, W, Ho, Wo): odd sizes, batches, and the DAttention sizes
    (1, 1, 4, 5, 3, 7), (2, 3, 7, 9, 5, 6), (3, 13, 17, 19, 11, 23), (1, 256, 20, 20, 20, 20), (4, 512, 40, 40, 40, 40),
    (2, 64, 80, 80, 80, 80),
]


@pytest.fixture(scope="module")
def kernel():
    from dattn.plugin.torch_kernel import load_torch_kernel

    return load_torch_kernel()


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_fp32_matches_torch(kernel, shape, align_corners):
    n, c, h, w, ho, wo = shape
    generator = torch.Generator(device="cuda").manual_seed(sum(shape))
    x = torch.randn(n, c, h, w, device="cuda", generator=generator)
    grid = torch.rand(n, ho, wo, 2, device="cuda", generator=generator) * 2.4 - 1.2
    ours = kernel.grid_sample_bilinear(x, grid, align_corners)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    difference = (ours - expected).abs().max().item()
    print(f"fp32 {shape} align_corners={align_corners}: max |kernel - torch| = {difference:.3g}")
    assert difference <= 1e-5


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_fp16_matches_torch(kernel, shape, align_corners):
    n, c, h, w, ho, wo = shape
    generator = torch.Generator(device="cuda").manual_seed(sum(shape) + 1)
    x = torch.randn(n, c, h, w, device="cuda", generator=generator)
    grid = torch.rand(n, ho, wo, 2, device="cuda", generator=generator) * 2.4 - 1.2
    ours = kernel.grid_sample_bilinear(x.half(), grid.half(), align_corners).float()
    # The reference: torch in fp32 on the same fp16-rounded inputs (the kernel computes in fp32 too).
    expected = F.grid_sample(x.half().float(), grid.half().float(), mode="bilinear", padding_mode="zeros",
                             align_corners=align_corners)
    relative = ((ours - expected).abs() / expected.abs().clamp_min(1.0)).max().item()
    print(f"fp16 {shape} align_corners={align_corners}: max relative difference = {relative:.3g}")
    assert relative <= 1e-2


@pytest.mark.parametrize("align_corners", [False, True])
def test_non_finite_and_border_coordinates_match_torch_cuda(kernel, align_corners):
    x = torch.randn(2, 5, 6, 7, device="cuda")
    values = torch.tensor([-1.0, 1.0, -1.2, 1.2, 0.0, 3.0, -3.0, 1e10, float("nan"), float("inf"), -float("inf")])
    gx, gy = torch.meshgrid(values, values, indexing="xy")
    grid = torch.stack([gx, gy], dim=-1)[None].repeat(2, 1, 1, 1).cuda()
    ours = kernel.grid_sample_bilinear(x, grid, align_corners)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5, equal_nan=True)
