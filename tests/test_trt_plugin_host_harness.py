"""The kernel's per-sample arithmetic (gridSampleBilinear.h), built for the host with a plain C++
compiler, agrees with torch.nn.functional.grid_sample(bilinear, zeros) on random and adversarial grids."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "dattn" / "plugin" / "trt_gridsample"
HOST_SOURCE = PLUGIN_DIR / "host" / "gridSampleHost.cpp"
# fp32 against torch's fp32 CPU kernel: only the rounding of the unnormalised coordinate differs.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def host_sampler(tmp_path_factory):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler (g++/c++) on PATH")
    library = tmp_path_factory.mktemp("host_harness") / "libdattn_grid_sample_host.so"
    subprocess.run(
        [compiler, "-std=c++14", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
         str(HOST_SOURCE), "-o", str(library)],
        check=True,
    )
    lib = ctypes.CDLL(str(library))
    function = lib.dattnGridSampleBilinearHost
    pointer = ctypes.POINTER(ctypes.c_float)
    function.argtypes = [pointer, pointer, pointer, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_int32] * 5
    function.restype = None

    def sample(x: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
        x = np.ascontiguousarray(x.numpy(), dtype=np.float32)
        grid = np.ascontiguousarray(grid.numpy(), dtype=np.float32)
        n, c, h, w = x.shape
        ho, wo = grid.shape[1:3]
        out = np.empty((n, c, ho, wo), dtype=np.float32)
        as_ptr = lambda a: a.ctypes.data_as(pointer)  # noqa: E731
        function(as_ptr(x), as_ptr(grid), as_ptr(out), n, c, h, w, ho, wo, int(align_corners))
        return torch.from_numpy(out)

    return sample


def torch_reference(x, grid, align_corners):
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 4, 5, 3, 7), (2, 3, 7, 9, 5, 6), (3, 8, 20, 20, 20, 20), (1, 5, 1, 1, 2, 3)])
def test_random_grids_match_torch(host_sampler, align_corners, shape):
    n, c, h, w, ho, wo = shape
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(n, c, h, w, generator=generator)
    # Beyond [-1, 1] on purpose: the border band where one or two corners fall outside.
    grid = torch.rand(n, ho, wo, 2, generator=generator) * 2.4 - 1.2
    ours = host_sampler(x, grid, align_corners)
    expected = torch_reference(x, grid, align_corners)
    difference = (ours - expected).abs().max().item()
    print(f"random {shape} align_corners={align_corners}: max |ours - torch| = {difference:.3g}")
    assert difference <= TOLERANCE


def adversarial_coordinates(size: int, align_corners: bool) -> list[float]:
    """Exactly +-1, pixel centres and edges, the half-pixel border, far outside, tiny values."""
    centres = [(2 * i + 1) / size - 1 for i in range(size)] if not align_corners else [
        2 * i / max(size - 1, 1) - 1 for i in range(size)]
    edges = [2 * i / size - 1 for i in range(size + 1)]
    return sorted(set(
        [-1.0, 1.0, 0.0, -1.0 - 1 / size, 1.0 + 1 / size, -1.0 - 2 / size, 1.0 + 2 / size,
         np.nextafter(np.float32(1), np.float32(2)).item(), np.nextafter(np.float32(-1), np.float32(-2)).item(),
         1.5, -1.5, 3.0, -3.0, 1e10, -1e10, 1e30, -1e30, 1e-30]
        + centres + edges))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (5, 4)])
def test_adversarial_grids_match_torch(host_sampler, align_corners, height, width):
    xs = adversarial_coordinates(width, align_corners)
    ys = adversarial_coordinates(height, align_corners)
    grid = torch.tensor([[(gx, gy) for gx in xs] for gy in ys], dtype=torch.float32)[None]
    x = torch.randn(1, 2, height, width, generator=torch.Generator().manual_seed(7))
    ours = host_sampler(x, grid, align_corners)
    expected = torch_reference(x, grid, align_corners)
    difference = (ours - expected).abs().max().item()
    print(f"adversarial {height}x{width} align_corners={align_corners}: {grid.shape[1] * grid.shape[2]} points, "
          f"max |ours - torch| = {difference:.3g}")
    assert difference <= TOLERANCE


@pytest.mark.parametrize("align_corners", [False, True])
def test_non_finite_coordinates_sample_zero(host_sampler, align_corners):
    # torch's CUDA kernel moves a NaN/inf coordinate out of range (output 0); its CPU kernel returns NaN,
    # also for a finite coordinate like 3.4e38 whose unnormalisation overflows to inf.
    # The plugin runs on the GPU, so it follows the CUDA kernel; finite neighbours still match torch.
    x = torch.randn(1, 3, 4, 5, generator=torch.Generator().manual_seed(3))
    grid = torch.rand(1, 4, 6, 2, generator=torch.Generator().manual_seed(4)) * 2 - 1
    poisoned = torch.zeros(1, 4, 6, dtype=torch.bool)
    for row, col, axis, value in [(0, 0, 0, float("nan")), (1, 2, 1, float("nan")), (2, 3, 0, float("inf")),
                                  (3, 5, 1, float("-inf")), (0, 4, 0, float("nan")), (0, 4, 1, float("inf")),
                                  (1, 0, 0, 3.4e38), (2, 1, 1, -3.4e38)]:
        grid[0, row, col, axis] = value
        poisoned[0, row, col] = True
    ours = host_sampler(x, grid, align_corners)
    assert torch.all(ours[:, :, poisoned[0]] == 0)
    expected = torch_reference(x, grid, align_corners)
    difference = (ours - expected)[:, :, ~poisoned[0]].abs().max().item()
    assert difference <= TOLERANCE


def test_inf_pixels_outside_the_footprint_do_not_leak(host_sampler):
    # A corner that is out of bounds, or has zero weight but is inside, must behave like torch.
    x = torch.tensor([[[[1.0, float("inf")], [2.0, 3.0]]]])
    grid = torch.tensor([[[[-1.0, -1.0], [-1.0, 1.0], [1.5, 1.5]]]])
    for align_corners in (False, True):
        ours = host_sampler(x, grid, align_corners)
        expected = torch_reference(x, grid, align_corners)
        torch.testing.assert_close(ours, expected, equal_nan=True)
